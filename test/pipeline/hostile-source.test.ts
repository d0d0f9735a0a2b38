// Hostile repositories over HTTPS (git http-backend), as a push by someone without a trusted key can
// make them: a commit whose message inflates to 300 MiB, and an unsigned head on an unrelated history
// of 100,000 commits. `signet verify` (a child process, its peak RSS measured by /usr/bin/time) and the
// pipeline the operator runs must refuse them with bounded memory, within spec.timeout, without
// holding the event loop.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGitRepository, type TypedReference } from '../../src/api/gitrepository.ts';
import { fetchAndVerify, type PipelineDeps, resolveRevision } from '../../src/controller/pipeline.ts';
import { createGitSource, type SourceLimits } from '../../src/source/git-source.ts';
import { createLogger } from '../../src/util/logger.ts';
import { createTrustMaterialCache } from '../../src/verify/trust.ts';
import { configMapObject, gitRepositoryObject, secretObject, yamlDocuments } from '../cli/support.ts';
import { measureEventLoop } from '../support/event-loop.ts';
import { fastImportHistory, mebibyte, writeLooseBomb } from '../support/git-bombs.ts';
import {
  allowedSignersLine,
  createRepo,
  generateSshKey,
  makeTempDir,
  runCommand,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

const mainPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const historyLength = 100_000;
let dir: string;
let repo: TestRepo;
let server: GitServer;
let url: string;
let allowedSigners: string;
const commits: Record<string, string> = {};

interface Measured {
  readonly code: number;
  readonly stdout: string;
  readonly peakRssBytes: number;
  readonly seconds: number;
}

/** `command args` under /usr/bin/time -v: exit code, stdout, peak RSS and wall time. */
async function measure(command: string, args: readonly string[], cwd?: string): Promise<Measured> {
  const started = performance.now();
  const result = await runCommand('/usr/bin/time', ['-v', command, ...args], {
    timeoutMs: 120_000,
    okCodes: [0, 1, 2, 128],
    env: { HOME: dir, NODE_NO_WARNINGS: '1', GIT_SSL_CAINFO: server.caPath },
    ...(cwd === undefined ? {} : { cwd }),
  });
  const kib = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr)?.[1];
  if (kib === undefined) throw new Error(`no RSS figure from /usr/bin/time: ${result.stderr}`);
  return {
    code: result.code,
    stdout: result.stdout.toString(),
    peakRssBytes: Number(kib) * 1024,
    seconds: (performance.now() - started) / 1000,
  };
}

async function policy(name: string, branch: string, spec: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(
    path,
    yamlDocuments([
      gitRepositoryObject({
        url,
        ref: { branch },
        secretRef: 'git-ca',
        verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers' } },
        spec,
      }),
      secretObject('git-ca', { 'ca.crt': server.caPem }),
      configMapObject('signers', { allowed_signers: allowedSigners }),
    ]),
  );
  return path;
}

const signet = (args: readonly string[]) => measure(process.execPath, [mainPath, ...args]);
const mib = (bytes: number) => Math.round(bytes / mebibyte);

beforeAll(async () => {
  dir = await makeTempDir('hostile-source');
  server = await startGitServer();
  repo = await createRepo();
  const key = await generateSshKey(dir, 'ed25519', 'release@example.com');
  allowedSigners = `${allowedSignersLine('release@example.com', key)}\n`;
  commits.signed = await repo.commit({ sign: { format: 'ssh', key }, files: { 'a.yaml': 'a: 1\n' } });
  const gitdir = join(repo.dir, '.git');
  // A commit of ~300 KiB whose message inflates to 300 MiB, on top of the signed one.
  const tree = await repo.git(['rev-parse', `${commits.signed}^{tree}`]);
  const bomb = await writeLooseBomb(
    gitdir,
    'commit',
    `tree ${tree}\nparent ${commits.signed}\nauthor Mallory <mallory@example.com> 1700000100 +0000\ncommitter Mallory <mallory@example.com> 1700000100 +0000\n\n`,
    300,
  );
  commits.bomb = bomb.oid;
  await repo.git(['update-ref', 'refs/heads/bomb', bomb.oid]);
  // An unrelated history, dated in the future (the attacker picks the dates).
  await runCommand('git', ['fast-import', '--quiet'], {
    cwd: repo.dir,
    input: fastImportHistory('refs/heads/unrelated', historyLength, 4_000_000_000),
    timeoutMs: 120_000,
  });
  commits.unrelated = await repo.git(['rev-parse', 'refs/heads/unrelated']);
  url = server.serve('apps', gitdir);
}, 180_000);

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await runCommand('rm', ['-rf', dir]);
});

// Each test runs `signet verify` child processes over HTTPS: minutes, not the unit default, on a loaded machine.
const childProcessTimeoutMs = 120_000;

describe('a commit that inflates to 300 MiB', { timeout: childProcessTimeoutMs }, () => {
  it('signet verify over HTTPS refuses it at the fetch with a bounded peak RSS', async () => {
    const baseline = await signet(['verify', '-f', await policy('signed', 'main')]);
    expect(baseline.stdout).toMatch(/^verified main@sha1:/);
    const refused = await signet(['verify', '-f', await policy('bomb', 'bomb')]);
    expect(refused.stdout).toMatch(
      new RegExp(
        `^rejected bomb@sha1:${commits.bomb}: FetchFailed: .*the pack the Git server sent was refused: received pack: the entry at offset \\d+: commit declares \\d+ bytes, over the 1 MiB commit limit; refused before inflating it \\(raise the limit with --max-commit-bytes`,
      ),
    );
    expect(refused.code).toBe(2);
    // git itself, for the same input: a clone of that branch over the same HTTPS server.
    const git = await measure('git', [
      'clone',
      '-q',
      '--bare',
      '--single-branch',
      '--branch',
      'bomb',
      url,
      join(dir, 'git-clone'),
    ]);
    console.log(
      `300 MiB commit over HTTPS: signet verify peak RSS ${mib(refused.peakRssBytes)} MiB in ${refused.seconds.toFixed(1)} s (a signed revision: ${mib(baseline.peakRssBytes)} MiB); git clone ${mib(git.peakRssBytes)} MiB in ${git.seconds.toFixed(1)} s`,
    );
    expect(refused.peakRssBytes).toBeLessThan(baseline.peakRssBytes + 64 * mebibyte);
  });

  it('signet verify --repo-dir refuses it from the loose object header with a bounded peak RSS', async () => {
    const baseline = await signet([
      'verify',
      '-f',
      await policy('signed-local', 'main'),
      '--repo-dir',
      repo.dir,
    ]);
    expect(baseline.stdout).toMatch(/^verified main@sha1:/);
    const refused = await signet([
      'verify',
      '-f',
      await policy('bomb-local', 'bomb'),
      '--repo-dir',
      repo.dir,
    ]);
    expect(refused.stdout).toMatch(
      new RegExp(
        `^rejected bomb@sha1:${commits.bomb}: FetchFailed: could not read commit ${commits.bomb}: object ${commits.bomb} \\(loose object ${commits.bomb}\\): commit declares \\d+ bytes, over the 1 MiB commit limit`,
      ),
    );
    expect(refused.code).toBe(1);
    const git = await measure('git', ['cat-file', 'commit', commits.bomb ?? ''], repo.dir);
    console.log(
      `300 MiB loose commit: signet verify --repo-dir peak RSS ${mib(refused.peakRssBytes)} MiB in ${refused.seconds.toFixed(1)} s (signed: ${mib(baseline.peakRssBytes)} MiB); git cat-file ${mib(git.peakRssBytes)} MiB in ${git.seconds.toFixed(1)} s`,
    );
    expect(refused.peakRssBytes).toBeLessThan(baseline.peakRssBytes + 64 * mebibyte);
  });
});

describe('an unsigned head on an unrelated history of 100,000 commits', {
  timeout: childProcessTimeoutMs,
}, () => {
  const cacheDir = () => join(dir, 'cache');
  const references =
    (): PipelineDeps['readReference'] =>
    async (ref: TypedReference): Promise<Record<string, string>> =>
      ref.kind === 'Secret' ? { 'ca.crt': server.caPem } : { allowed_signers: allowedSigners };
  const run = async (limits: SourceLimits, timeout: string) => {
    const repository = parseGitRepository(
      gitRepositoryObject({
        url,
        ref: { branch: 'unrelated' },
        secretRef: 'git-ca',
        verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers' } },
        spec: { timeout },
      }),
    );
    const deps: PipelineDeps = {
      source: createGitSource({ cacheDir: cacheDir(), logger: createLogger({ level: 'error' }), limits }),
      readReference: references(),
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const signal = AbortSignal.timeout(60_000);
    const resolution = await resolveRevision(repository, deps, signal);
    if (!resolution.ok) throw new Error(resolution.message);
    // How long the event loop is kept busy while the revision is refused (test/support/event-loop.ts).
    const started = performance.now();
    const measured = await measureEventLoop(() =>
      fetchAndVerify(
        repository,
        'team-a/unrelated',
        resolution.remote,
        resolution.resolved,
        resolution.revision,
        commits.signed ?? '',
        deps,
        signal,
      ),
    );
    return { result: measured.result, ms: performance.now() - started, measured };
  };

  it('the rollback check stops at --max-walk-commits and refuses (RollbackRejected)', async () => {
    const { result, ms } = await run({ maxWalkCommits: 20_000 }, '60s');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('RollbackRejected');
    expect(result.message).toMatch(
      new RegExp(
        `could not be shown to descend from.*deciding whether ${commits.unrelated} descends from ${commits.signed} \\(rollback protection\\): more than 20000 commits would have to be read; refused \\(raise the bound with --max-walk-commits\\)`,
      ),
    );
    console.log(
      `100,000-commit unrelated history, first fetch + 20,000-commit bound: refused in ${Math.round(ms)} ms`,
    );
  });

  it('the walk honours spec.timeout (the history already cached): refused within the deadline, event loop free', async () => {
    const { result, ms, measured } = await run({ maxWalkCommits: 10_000_000 }, '400ms');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('FetchFailed');
    expect(result.message).toMatch(/spec\.timeout \(400 ms\) passed while reading the repository; refused/);
    console.log(
      `walk cut by spec.timeout 400ms: refused after ${Math.round(ms)} ms, event-loop max delay ` +
        `${Math.round(measured.maxDelayMs)} ms, busiest 5 ms tick ${measured.maxBusyMs.toFixed(1)} ms of CPU`,
    );
    expect(ms).toBeLessThan(400 + 300);
    // Judged on CPU time, as e2e/event-loop.test.ts: wall-clock delay also counts waiting for a core.
    expect(measured.maxBusyMs).toBeLessThan(100);
  });

  it('signet verify --since refuses it at the walk bound with a bounded peak RSS', async () => {
    const refused = await signet([
      'verify',
      '-f',
      await policy('unrelated', 'unrelated'),
      '--since',
      commits.signed ?? '',
      '--max-walk-commits',
      '20000',
    ]);
    expect(refused.stdout).toMatch(
      /^rejected unrelated@sha1:[0-9a-f]{40}: RollbackRejected: .*more than 20000 commits/,
    );
    expect(refused.code).toBe(1);
    console.log(
      `signet verify --since over HTTPS, 100,000 unrelated commits: peak RSS ${mib(refused.peakRssBytes)} MiB in ${refused.seconds.toFixed(1)} s`,
    );
    // Most of it is indexing the received 13 MB pack of 100,000 objects (~250 MiB transient, measured
    // in-process); the walk itself reads at most 20,000 commits. Unbounded, the 1,000,000-commit case
    // reached ~960 MB.
    expect(refused.peakRssBytes).toBeLessThan(640 * mebibyte);
  });
});
