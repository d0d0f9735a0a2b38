/**
 * Benchmark: verifying a 1,000-commit Range (SSH ed25519, and OpenPGP ed25519) with the trust core, against a
 * `git verify-commit` loop over the same commits. The git loop is timed on a sample (default 100 commits) and
 * extrapolated to the whole range. Objects are preloaded with one `git cat-file --batch`, so the Signet number
 * measures parsing + crypto + policy (plus one `git rev-list`), not object I/O.
 *
 * Run: node bench/verify.bench.ts   (prints one JSON line, then one human line)
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMessage, generateKey, sign as pgpSign } from 'openpgp';
import { loadTrustMaterial, type TrustMaterial } from '../src/verify/trust.ts';
import { verifyRevision } from '../src/verify/verify-revision.ts';
import {
  buildCommitObject,
  createGpgHome,
  createInProcessSshSigner,
  GitCliRevisionReader,
  makeTempDir,
  runCommand,
  writeLooseObject,
} from '../test/support/git-fixtures.ts';

export interface VerifyBenchCase {
  readonly format: 'ssh' | 'openpgp';
  readonly commits: number;
  readonly seconds: number;
  readonly commitsPerSecond: number;
  readonly gitLoopSample: number;
  readonly gitLoopSampleSeconds: number;
  /** Extrapolated from the sample. */
  readonly gitLoopCommitsPerSecond: number;
  readonly ratio: number;
}

export interface VerifyBenchResult {
  readonly bench: 'verify';
  readonly node: string;
  readonly ssh: VerifyBenchCase;
  readonly openpgp: VerifyBenchCase;
  readonly targets: { readonly sshCommitsPerSecond: 2000; readonly ratioVsGit: 10 };
  readonly pass: boolean;
}

export interface VerifyBenchOptions {
  readonly commits?: number;
  readonly gitSample?: number;
  readonly repeats?: number;
}

const EMAIL = 'bench@example.com';

async function buildChain(
  gitDir: string,
  count: number,
  signPayload: (payload: Buffer) => Promise<string> | string,
): Promise<string[]> {
  const tree = await writeLooseObject(gitDir, 'tree', new Uint8Array());
  const oids: string[] = [];
  let parent: string | undefined;
  for (let i = 0; i < count; i++) {
    const object = buildCommitObject({
      tree,
      parents: parent === undefined ? [] : [parent],
      email: EMAIL,
      timestamp: 1_700_000_000 + i,
      message: `bench commit ${i}\n`,
    });
    parent = await writeLooseObject(
      gitDir,
      'commit',
      object.withSignature(await signPayload(object.payload)),
    );
    oids.push(parent);
  }
  return oids;
}

async function timeVerification(
  dir: string,
  head: string,
  oids: readonly string[],
  trust: TrustMaterial,
  repeats: number,
): Promise<number> {
  const reader = new GitCliRevisionReader(dir);
  await reader.preload(oids);
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run <= repeats; run++) {
    const started = performance.now();
    const verdict = await verifyRevision({
      reader,
      mode: 'Range',
      commit: head,
      allowRollback: false,
      matchCommitter: true,
      trust,
      now: new Date(),
    });
    const elapsed = (performance.now() - started) / 1000;
    if (!verdict.verified)
      throw new Error(`bench range did not verify: ${verdict.reason} ${verdict.message}`);
    if (verdict.evidence.commitsVerified !== oids.length)
      throw new Error('bench range verified the wrong count');
    if (run > 0) best = Math.min(best, elapsed); // run 0 is the warm-up
  }
  return best;
}

async function timeGitLoop(
  dir: string,
  sample: readonly string[],
  gitConfig: readonly string[],
  env: Record<string, string>,
) {
  const started = performance.now();
  for (const oid of sample) {
    await runCommand('git', [...gitConfig, 'verify-commit', oid], { cwd: dir, env });
  }
  return (performance.now() - started) / 1000;
}

function summarise(
  format: 'ssh' | 'openpgp',
  commits: number,
  seconds: number,
  sample: number,
  sampleSeconds: number,
): VerifyBenchCase {
  const commitsPerSecond = commits / seconds;
  const gitLoopCommitsPerSecond = sample / sampleSeconds;
  return {
    format,
    commits,
    seconds: Number(seconds.toFixed(4)),
    commitsPerSecond: Math.round(commitsPerSecond),
    gitLoopSample: sample,
    gitLoopSampleSeconds: Number(sampleSeconds.toFixed(3)),
    gitLoopCommitsPerSecond: Number(gitLoopCommitsPerSecond.toFixed(1)),
    ratio: Number((commitsPerSecond / gitLoopCommitsPerSecond).toFixed(1)),
  };
}

async function benchSsh(commits: number, gitSample: number, repeats: number): Promise<VerifyBenchCase> {
  const dir = await makeTempDir('bench-ssh');
  try {
    await runCommand('git', ['init', '-q', dir]);
    const signer = createInProcessSshSigner();
    const oids = await buildChain(join(dir, '.git'), commits, (payload) => signer.sign(payload));
    const head = oids[oids.length - 1] ?? '';
    const trust = await loadTrustMaterial({ allowed_signers: `${EMAIL} ${signer.publicKeyLine}\n` });
    const seconds = await timeVerification(dir, head, oids, trust, repeats);
    const signersFile = join(dir, 'allowed_signers');
    await writeFile(signersFile, `${EMAIL} ${signer.publicKeyLine}\n`);
    const sample = oids.slice(0, gitSample);
    const sampleSeconds = await timeGitLoop(
      dir,
      sample,
      ['-c', `gpg.ssh.allowedSignersFile=${signersFile}`],
      {},
    );
    return summarise('ssh', oids.length, seconds, sample.length, sampleSeconds);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchOpenPgp(commits: number, gitSample: number, repeats: number): Promise<VerifyBenchCase> {
  const dir = await makeTempDir('bench-pgp');
  const gpg = await createGpgHome();
  try {
    await runCommand('git', ['init', '-q', dir]);
    const { privateKey, publicKey } = await generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'Bench', email: EMAIL }],
      format: 'object',
    });
    const oids = await buildChain(join(dir, '.git'), commits, async (payload) =>
      pgpSign({
        message: await createMessage({ binary: payload }),
        signingKeys: privateKey,
        detached: true,
        format: 'armored',
      }),
    );
    const head = oids[oids.length - 1] ?? '';
    const armoredPublic = publicKey.armor();
    const trust = await loadTrustMaterial({ 'bench.asc': armoredPublic });
    const seconds = await timeVerification(dir, head, oids, trust, repeats);
    await gpg.gpg(['--import'], undefined, armoredPublic);
    const sample = oids.slice(0, gitSample);
    const sampleSeconds = await timeGitLoop(dir, sample, ['-c', `gpg.program=${await gpg.program()}`], {});
    return summarise('openpgp', oids.length, seconds, sample.length, sampleSeconds);
  } finally {
    await gpg.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs both cases and returns the numbers (used by bench/run.ts). */
export async function runVerifyBench(options: VerifyBenchOptions = {}): Promise<VerifyBenchResult> {
  const commits = options.commits ?? 1000;
  const gitSample = Math.min(options.gitSample ?? 100, commits);
  const repeats = options.repeats ?? 3;
  const ssh = await benchSsh(commits, gitSample, repeats);
  const openpgp = await benchOpenPgp(commits, gitSample, repeats);
  return {
    bench: 'verify',
    node: process.version,
    ssh,
    openpgp,
    targets: { sshCommitsPerSecond: 2000, ratioVsGit: 10 },
    pass: ssh.commitsPerSecond >= 2000 && ssh.ratio >= 10 && openpgp.ratio >= 10,
  };
}

export function describeVerifyBench(result: VerifyBenchResult): string {
  const line = (c: VerifyBenchCase) =>
    `${c.format}: ${c.commits} commits in ${c.seconds}s = ${c.commitsPerSecond} commits/s; git verify-commit loop ${c.gitLoopCommitsPerSecond} commits/s (timed on ${c.gitLoopSample} commits, extrapolated) → ${c.ratio}× faster`;
  return `verify bench [${result.pass ? 'PASS' : 'FAIL'}] ${line(result.ssh)} | ${line(result.openpgp)} (targets: ≥2000 SSH commits/s, ≥10× git)`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = await runVerifyBench();
  process.stdout.write(`${JSON.stringify(result)}\n${describeVerifyBench(result)}\n`);
  if (!result.pass) process.exitCode = 1;
}
