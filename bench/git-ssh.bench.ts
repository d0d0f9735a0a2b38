/**
 * Benchmark: the Git source over SSH (src/source/ssh-transport.ts) against the git CLI over the same
 * OpenSSH server (test/support/ssh-server.ts: Debian's sshd on loopback, git-shell forced), on the
 * 10,000-file repository of the HTTPS Git bench (bench/git.bench.ts). Figures, each against a
 * same-run git baseline with the same key and the same pinned host key (`ssh -o
 * StrictHostKeyChecking=yes`), medians of alternating runs:
 *
 *  (a) no-op poll: resolve() (an exec channel on the pooled connection, protocol v2 ls-refs) vs
 *      `git ls-remote` (a new ssh process and connection each time, as git always does); ≤ 1×;
 *  (b) incremental fetch of one new commit: resolve + fetch (protocol v2 ls-refs + fetch, as the
 *      sshd passes GIT_PROTOCOL) vs `git fetch --depth 1`; ≤ 2×;
 *  (c) first clone: resolve + fetch depth 1 + readTree of every file vs
 *      `git clone --depth 1 --no-checkout` + `git archive HEAD`; ≤ 3×.
 *
 * Run: node bench/git-ssh.bench.ts   (prints one JSON line, then the rows)
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RemoteSpec, SourcePort } from '../src/controller/ports.ts';
import { createGitSource } from '../src/source/git-source.ts';
import { closeIdleSshConnections } from '../src/source/ssh-connection.ts';
import { createLogger } from '../src/util/logger.ts';
import { generateSshKey, makeTempDir } from '../test/support/git-fixtures.ts';
import { type SshServer, startSshServer } from '../test/support/ssh-server.ts';
import {
  type Comparison,
  commitChange,
  createLargeRepo,
  gitCloneAndArchive,
  gitRunner,
  median,
} from './git.bench.ts';
import { type BenchRow, formatRowLine } from './rows.ts';

export interface SshBenchOptions {
  readonly files?: number;
  readonly polls?: number;
  readonly clones?: number;
  readonly increments?: number;
}

export interface SshBenchResult {
  readonly bench: 'git-ssh';
  readonly files: number;
  readonly poll: Comparison & { readonly connectionsPerPoll: number };
  readonly incremental: Comparison;
  readonly firstClone: Comparison & { readonly filesRead: number };
  readonly targets: { readonly pollRatio: 1; readonly incrementalRatio: 2; readonly firstCloneRatio: 3 };
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const compare = (signet: number[], git: number[]): Comparison => ({
  signetMs: median(signet),
  gitMs: median(git),
  ratio: median(signet) / median(git),
});

export async function runSshBench(options: SshBenchOptions = {}): Promise<SshBenchResult> {
  const files = options.files ?? 10_000;
  const directories = 8;
  const polls = options.polls ?? 15;
  const clones = options.clones ?? 3;
  const increments = options.increments ?? 5;
  const work = await makeTempDir('git-ssh-bench');
  let server: SshServer | undefined;
  try {
    const origin = join(work, 'origin');
    await createLargeRepo(origin, files, directories);
    server = await startSshServer({ hostKeys: ['ed25519'] });
    const key = await generateSshKey(work, 'ed25519', 'bench');
    await server.authorize(key);
    const knownHostsPath = join(work, 'known_hosts');
    await writeFile(knownHostsPath, server.knownHosts);
    const url = server.url(join(origin, '.git'));
    const gitEnv = {
      GIT_SSH_COMMAND: `ssh -i ${key.privateKeyPath} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHostsPath} -o GlobalKnownHostsFile=/dev/null`,
      GIT_TERMINAL_PROMPT: '0',
    };
    const git = gitRunner(work, gitEnv);
    const remote: RemoteSpec = {
      url,
      insecure: false,
      timeoutMs: 120_000,
      credentials: { identity: await readFile(key.privateKeyPath, 'utf8'), knownHosts: server.knownHosts },
    };
    const logger = createLogger({ level: 'silent' });
    const sourceAt = (cacheDir: string): SourcePort => createGitSource({ cacheDir, logger });
    const signal = () => AbortSignal.timeout(300_000);
    const main = { branch: 'main' } as const;

    // (a) no-op poll
    const pollSource = sourceAt(join(work, 'poll-cache'));
    await pollSource.resolve(remote, main, signal());
    await git(['ls-remote', url, 'refs/heads/main']);
    const pollMs: number[] = [];
    const lsRemoteMs: number[] = [];
    const connectionsBefore = server.connections();
    for (let i = 0; i < polls; i++) {
      pollMs.push(await timed(() => pollSource.resolve(remote, main, signal())));
      lsRemoteMs.push(await timed(() => git(['ls-remote', url, 'refs/heads/main'])));
    }
    // Each git ls-remote is one connection: what Signet made is the rest (0 once pooled).
    const connectionsPerPoll = (server.connections() - connectionsBefore - polls) / polls;

    // (c) first clone + read every file
    const cloneMs: number[] = [];
    const gitCloneMs: number[] = [];
    let filesRead = 0;
    for (let i = 0; i < clones; i++) {
      const source = sourceAt(join(work, `clone-cache-${i}`));
      cloneMs.push(
        await timed(async () => {
          const resolved = await source.resolve(remote, main, signal());
          const fetched = await source.fetch('bench/first', remote, main, resolved, { depth: 1 }, signal());
          filesRead = (await fetched.readTree(resolved.commit, '', signal())).files.length;
        }),
      );
      const target = join(work, `git-clone-${i}`);
      gitCloneMs.push(
        await timed(async () => {
          await gitCloneAndArchive(git, url, target, files);
        }),
      );
    }
    if (filesRead !== files) throw new Error(`readTree returned ${filesRead} files, expected ${files}`);

    // (b) incremental fetch of one new commit, alternating with git fetch in the first git clone
    const incrementalSource = sourceAt(join(work, 'clone-cache-0'));
    const incrementalMs: number[] = [];
    const gitFetchMs: number[] = [];
    for (let generation = 1; generation <= increments; generation++) {
      await commitChange(origin, generation, 1, files, directories);
      incrementalMs.push(
        await timed(async () => {
          const resolved = await incrementalSource.resolve(remote, main, signal());
          await incrementalSource.fetch('bench/first', remote, main, resolved, { depth: 1 }, signal());
        }),
      );
      gitFetchMs.push(
        await timed(() => git(['fetch', '-q', '--depth', '1', 'origin', 'main'], join(work, 'git-clone-0'))),
      );
    }
    return {
      bench: 'git-ssh',
      files,
      poll: { ...compare(pollMs, lsRemoteMs), connectionsPerPoll },
      incremental: compare(incrementalMs, gitFetchMs),
      firstClone: { ...compare(cloneMs, gitCloneMs), filesRead },
      targets: { pollRatio: 1, incrementalRatio: 2, firstCloneRatio: 3 },
    };
  } finally {
    closeIdleSshConnections();
    await server?.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** Rows for bench/run.ts: each figure against the git CLI over the same sshd, same run. */
export function benchRows(raw: unknown): BenchRow[] {
  const r = raw as SshBenchResult;
  const f = (n: number, d = 0) => n.toFixed(d);
  return [
    {
      bench: 'git-ssh',
      figure: `no-op poll of a ${r.files}-file repository over SSH (OpenSSH sshd, protocol v2; ${r.poll.connectionsPerPoll} new connections per poll: the authenticated connection is reused)`,
      value: `${f(r.poll.signetMs, 1)} ms`,
      baseline: `git ls-remote over ssh ${f(r.poll.gitMs, 1)} ms`,
      ratio: `${f(r.poll.ratio, 2)}×`,
      target: `≤ ${r.targets.pollRatio}× git ls-remote`,
      pass: r.poll.ratio <= r.targets.pollRatio,
    },
    {
      bench: 'git-ssh',
      figure: 'incremental fetch of one new commit over SSH (poll + fetch, protocol v2 ls-refs + fetch)',
      value: `${f(r.incremental.signetMs)} ms`,
      baseline: `git fetch --depth 1 over ssh ${f(r.incremental.gitMs)} ms`,
      ratio: `${f(r.incremental.ratio, 2)}×`,
      target: `≤ ${r.targets.incrementalRatio}× git fetch`,
      pass: r.incremental.ratio <= r.targets.incrementalRatio,
    },
    {
      bench: 'git-ssh',
      figure: `first clone + read of all ${r.firstClone.filesRead} files over SSH (protocol v2 fetch)`,
      value: `${f(r.firstClone.signetMs)} ms`,
      baseline: `git clone --depth 1 + git archive over ssh ${f(r.firstClone.gitMs)} ms`,
      ratio: `${f(r.firstClone.ratio, 2)}×`,
      target: `≤ ${r.targets.firstCloneRatio}× git clone --depth 1`,
      pass: r.firstClone.ratio <= r.targets.firstCloneRatio,
    },
  ];
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = await runSshBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const row of benchRows(result)) process.stdout.write(`${formatRowLine(row)}\n`);
}
