// Issue 13, item 4, end to end: no single hostile input keeps the event loop busy for more than
// 100 ms per MiB received. The in-process operator (real API server, git http-backend over HTTPS in
// this process too) serves a steady GitRepository that applies a new signed revision inside every
// measured window, beside one hostile GitRepository per input, each refused with its reason:
// (a) a commit of ~300 KiB inflating to 300 MiB as HEAD, (b) a 300 MiB blob bomb under an unsigned
// head, (c) a 200,000-byte OBJECT IDENTIFIER as gitsign signature with spec.verify.keyless, (d) an
// unsigned head on an unrelated history of 120,000 commits pushed over an applied revision
// (rollback protection: with spec.timeout 5s the deadline ends it while the 16 MiB pack is
// indexed; with 60s the walk reads its 100,000-commit bound and refuses). Each window runs from creating the hostile
// GitRepository (or pushing the hostile head) until its refusal is in status and the steady
// revision is applied; monitorEventLoopDelay (10 ms resolution) and RSS are sampled throughout.
// The bound max(100 ms, 100 ms x MiB received) is asserted on the event-loop thread's CPU time
// between two 10 ms ticks (measureEventLoop's maxBusyMs): on the shared 2-core test machine the
// wall-clock delay also counts time the OS did not run this process at all (the baseline window,
// steady repository only, saw 32-178 ms of wall-clock delay with 8-10 ms busy). Both are printed.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { createLogger } from '../src/util/logger.ts';
import { contentInfoWithLongOid } from '../test/support/der.ts';
import { measureEventLoop } from '../test/support/event-loop.ts';
import { fastImportHistory, mebibyte, writeLooseBomb } from '../test/support/git-bombs.ts';
import { createRepo, runCommand, type TestRepo } from '../test/support/git-fixtures.ts';
import {
  armorSignedMessage,
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  OIDC_ISSUER,
  type SigstoreTestbed,
  writeSignedCommit,
} from '../test/support/sigstore-fixtures.ts';
import {
  createObjects,
  deleteGitRepositoryAndWait,
  gitRepositoryObject,
  trustObjects,
} from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

/** Issue 13 item 4: at most 100 ms of event-loop delay per MiB received (and 100 ms at least). */
const DELAY_MS_PER_MIB = 100;
/** Peak RSS while a bomb is refused: at most this much over the RSS just before the window. */
const BOMB_RSS_GROWTH_MIB = 64;
/**
 * The 300 MiB blob is accepted at the fetch (a large file elsewhere in a repository is legitimate)
 * and hashed while it streams through zlib in 1 MiB chunks, each dropped once hashed: 300 MiB of
 * short-lived buffers, freed when V8 next collects. Measured growth 4-87 MiB across runs.
 */
const BLOB_RSS_GROWTH_MIB = 128;
const HISTORY_COMMITS = 120_000;
/**
 * Peak RSS while the long history is refused: most of it is indexing the received pack (~250 MiB
 * transient for 100,000 objects, bounded by the pack size limit, not by these bounds; see
 * docs/reliability.md), so this is a regression guard, not the bombs' bound. Measured 60-404 MiB
 * for the 120,000-object pack across runs.
 */
const HISTORY_RSS_GROWTH_MIB = 512;
/**
 * What the 5 s deadline case may take beyond spec.timeout, from the push to the refusal in status:
 * the next 1 s interval, resolving, the status write, and a loaded machine (measured 5.7-7.5 s in
 * all). Before the walk honoured spec.timeout, this history blocked the event loop for 25 s.
 */
const HISTORY_DEADLINE_MARGIN_MS = 10_000;
const ns = useTestNamespace('signet-event-loop');
let admin: KubeClient;
let signed: SignedRepo;
let bed: SigstoreTestbed;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
const hostileRepos: TestRepo[] = [];
const heads: Record<string, string> = {};
let steadyVersion = 1;

interface Window {
  readonly label: string;
  readonly mibReceived: number;
  readonly maxDelayMs: number;
  readonly p99DelayMs: number;
  /** CPU time of the event-loop thread in the longest-busy 10 ms tick gap (see measureEventLoop). */
  readonly maxBusyMs: number;
  readonly boundMs: number;
  readonly rssGrowthMiB: number;
  readonly refusedAfterMs: number;
  readonly windowMs: number;
  readonly refused?: RepoStatus;
}
const windows: Window[] = [];

const status = (name: string): Promise<RepoStatus> => repoStatus(admin, ns.name, name);

async function waitApplied(name: string, revision: string, timeoutMs = 90_000): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await status(name);
      return s.lastAppliedRevision === revision && condition(s, 'Ready')?.status === 'True' ? s : undefined;
    },
    { timeoutMs, description: `${name}: ${revision} applied and Ready` },
  );
}

/** A repository of its own, served by the same HTTPS server as `name`. */
async function hostileRepo(name: string): Promise<TestRepo> {
  const repo = await createRepo();
  hostileRepos.push(repo);
  signed.server.serve(name, join(repo.dir, '.git'));
  return repo;
}

/** A commit object of `tree` (and `parent`) written by git commit-tree; unsigned. */
async function commitTree(repo: TestRepo, tree: string, message: string, parent?: string): Promise<string> {
  return repo.git(['commit-tree', tree, ...(parent === undefined ? [] : ['-p', parent]), '-m', message]);
}

/**
 * One measured window: `start` creates the hostile GitRepository or pushes its head; the window ends
 * once `isRefused` holds for its status and the steady GitRepository has applied the revision pushed
 * at the start. RSS is sampled every 10 ms; the process's peak RSS catches what sampling misses.
 */
async function measureWindow(
  label: string,
  name: string | undefined,
  start: () => Promise<void>,
  isRefused: (s: RepoStatus) => boolean,
  steadyRevisions = 1,
): Promise<Window> {
  const bytesBefore = name === undefined ? 0 : signed.server.responseBytes(name);
  const rssBefore = process.memoryUsage.rss();
  const maxRssBefore = process.resourceUsage().maxRSS * 1024;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }, 10);
  const nextColor = () => {
    steadyVersion += 1;
    return `v${steadyVersion}`;
  };
  let color = nextColor();
  try {
    const measured = await measureEventLoop(async () => {
      const began = performance.now();
      let steady = await signed.commit({ 'steady/app.yaml': configMapYaml('steady', { color }) });
      await start();
      const refused =
        name === undefined
          ? undefined
          : await waitFor(
              async () => {
                const s = await status(name);
                return isRefused(s) ? s : undefined;
              },
              { timeoutMs: 120_000, intervalMs: 50, description: `${label}: refused` },
            );
      const refusedAfterMs = performance.now() - began;
      await waitApplied('steady', `main@sha1:${steady}`);
      for (let round = 1; round < steadyRevisions; round++) {
        color = nextColor();
        steady = await signed.commit({ 'steady/app.yaml': configMapYaml('steady', { color }) });
        await waitApplied('steady', `main@sha1:${steady}`);
      }
      return { refused, refusedAfterMs };
    }, 10);
    const maxRssAfter = process.resourceUsage().maxRSS * 1024;
    const peak = Math.max(rssPeak, maxRssAfter > maxRssBefore ? maxRssAfter : 0);
    const mibReceived = name === undefined ? 0 : (signed.server.responseBytes(name) - bytesBefore) / mebibyte;
    const window: Window = {
      label,
      mibReceived,
      maxDelayMs: measured.maxDelayMs,
      p99DelayMs: measured.p99DelayMs,
      maxBusyMs: measured.maxBusyMs,
      boundMs: Math.max(DELAY_MS_PER_MIB, DELAY_MS_PER_MIB * mibReceived),
      rssGrowthMiB: (peak - rssBefore) / mebibyte,
      refusedAfterMs: measured.result.refusedAfterMs,
      windowMs: measured.elapsedMs,
      ...(measured.result.refused === undefined ? {} : { refused: measured.result.refused }),
    };
    windows.push(window);
    console.log(
      `event loop, ${label}: ${window.mibReceived.toFixed(3)} MiB received, max delay ${window.maxDelayMs.toFixed(1)} ms ` +
        `(p99 ${window.p99DelayMs.toFixed(1)}), busy ${window.maxBusyMs.toFixed(1)} ms of CPU in a ${measured.maxBusyGapMs.toFixed(0)} ms gap ` +
        `(longest GC pause ${measured.maxGcMs.toFixed(1)} ms) ` +
        `(bound ${window.boundMs.toFixed(0)}), RSS +${window.rssGrowthMiB.toFixed(1)} MiB ` +
        `(before ${(rssBefore / mebibyte).toFixed(0)} MiB), refused after ${window.refusedAfterMs.toFixed(0)} ms, ` +
        `window ${window.windowMs.toFixed(0)} ms`,
    );
    expect(await colorOf('steady')).toBe(color);
    return window;
  } finally {
    clearInterval(sampler);
  }
}

async function colorOf(name: string): Promise<string | undefined> {
  const live = await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
  return (live?.data as Record<string, string> | undefined)?.color;
}

const verified = (s: RepoStatus) => condition(s, 'Verified');

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  bed = await createSigstoreTestbed();
  signed = await createSignedRepo('steady');
  heads.steady = await signed.commit({ 'steady/app.yaml': configMapYaml('steady', { color: 'v1' }) });

  // (a) A commit of ~300 KiB whose message inflates to 300 MiB, as HEAD of main.
  const bombRepo = await hostileRepo('bomb');
  const base = await bombRepo.commit();
  const tree = await bombRepo.git(['rev-parse', `${base}^{tree}`]);
  const bomb = await writeLooseBomb(
    join(bombRepo.dir, '.git'),
    'commit',
    `tree ${tree}\nparent ${base}\nauthor Mallory <mallory@example.com> 1700000100 +0000\ncommitter Mallory <mallory@example.com> 1700000100 +0000\n\n`,
    300,
  );
  heads.bomb = bomb.oid;
  await bombRepo.git(['update-ref', 'refs/heads/main', bomb.oid]);

  // (b) A 300 MiB blob (~300 KiB of zlib) under spec.path of an unsigned head.
  const blobRepo = await hostileRepo('blob');
  const blob = await writeLooseBomb(join(blobRepo.dir, '.git'), 'blob', 'data: ', 300);
  const deploy = await blobRepo.git(['mktree'], { input: `100644 blob ${blob.oid}\thuge.yaml\n` });
  const root = await blobRepo.git(['mktree'], { input: `040000 tree ${deploy}\tdeploy\n` });
  heads.blob = await commitTree(blobRepo, root, 'a 300 MiB file');
  await blobRepo.git(['update-ref', 'refs/heads/main', heads.blob]);

  // (c) An unsigned commit whose gpgsig is a SIGNED MESSAGE holding one 200,000-byte OID.
  const gitsignRepo = await hostileRepo('gitsign');
  heads.gitsign = (
    await writeSignedCommit(gitsignRepo.dir, 'hostile\n', async () =>
      armorSignedMessage(contentInfoWithLongOid(200_000)),
    )
  ).oid;

  // (d) A signed, applied revision; later main is moved to an unrelated history (dates in the future).
  const historyRepo = await hostileRepo('history');
  await mkdir(join(historyRepo.dir, 'deploy'));
  heads.historyApplied = await historyRepo.commit({
    sign: { format: 'ssh', key: signed.key },
    files: { 'deploy/app.yaml': configMapYaml('history', { color: 'signed' }) },
  });
  const started = performance.now();
  await runCommand('git', ['fast-import', '--quiet'], {
    cwd: historyRepo.dir,
    input: fastImportHistory('refs/heads/unrelated', HISTORY_COMMITS, 4_000_000_000),
    timeoutMs: 120_000,
  });
  heads.history = await historyRepo.git(['rev-parse', 'refs/heads/unrelated']);
  heads.walk = heads.history;
  await historyRepo.git(['update-ref', 'refs/heads/walk', heads.historyApplied]);
  signed.server.serve('walk', join(historyRepo.dir, '.git'));
  console.log(
    `event loop: ${HISTORY_COMMITS} commits imported in ${(performance.now() - started).toFixed(0)} ms`,
  );

  await createObjects(admin, [
    ...trustObjects(signed, ns.name),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'sigstore-root', namespace: ns.name },
      data: { 'trusted_root.json': JSON.stringify(bed.trustedRoot) },
    },
  ]);
  operator = await startTestOperator({ namespace: ns.name }, createLogger({ level: 'error' }));
  await admin.apply(gitRepositoryObject(signed, ns.name, 'steady', { interval: '1s', path: './steady' }), {
    fieldManager: 'e2e',
  });
  await admin.apply(
    gitRepositoryObject({ url: signed.server.url('history') }, ns.name, 'history', {
      interval: '1s',
      path: './deploy',
      timeout: '5s',
    }),
    { fieldManager: 'e2e' },
  );
  await admin.apply(
    gitRepositoryObject({ url: signed.server.url('walk') }, ns.name, 'walk', {
      interval: '1s',
      path: './deploy',
      ref: { branch: 'walk' },
      timeout: '60s',
    }),
    { fieldManager: 'e2e' },
  );
  await waitApplied('steady', `main@sha1:${heads.steady}`);
  await waitApplied('history', `main@sha1:${heads.historyApplied}`);
  await waitApplied('walk', `walk@sha1:${heads.historyApplied}`);
}, 240_000);

afterAll(async () => {
  if (windows.length > 0) {
    console.log(
      '| Input | MiB received | Max delay (wall) | Max busy (CPU) | Bound | RSS growth | Time to refuse |',
    );
    for (const w of windows) {
      console.log(
        `| ${w.label} | ${w.mibReceived.toFixed(3)} | ${w.maxDelayMs.toFixed(0)} ms | ${w.maxBusyMs.toFixed(0)} ms | ${w.boundMs.toFixed(0)} ms | +${w.rssGrowthMiB.toFixed(0)} MiB | ${(w.refusedAfterMs / 1000).toFixed(1)} s |`,
      );
    }
  }
  if (admin !== undefined) {
    for (const name of ['steady', 'bomb', 'blob', 'gitsign', 'history', 'walk']) {
      await deleteGitRepositoryAndWait(admin, ns.name, name).catch(() => undefined);
    }
  }
  await operator?.stop();
  for (const repo of hostileRepos) await repo.close();
  await signed?.close();
  await admin?.close();
});

/** Creates the hostile GitRepository `name` (main of its own repository, interval 1s). */
function createHostile(name: string, spec: Record<string, unknown> = {}): () => Promise<void> {
  return async () => {
    await admin.apply(
      gitRepositoryObject({ url: signed.server.url(name) }, ns.name, name, {
        interval: '1s',
        path: './deploy',
        ...spec,
      }),
      { fieldManager: 'e2e' },
    );
  };
}

/**
 * Verified=False for the hostile head of `name` on `branch` (as attempted revision or in the
 * message), whatever the reason: each test asserts the reason after its window, so that a wrong
 * refusal fails with its message, not as a timeout.
 */
const refusedFor =
  (name: string, branch = 'main') =>
  (s: RepoStatus) =>
    verified(s)?.status === 'False' &&
    (s.lastAttemptedRevision === `${branch}@sha1:${heads[name]}` ||
      (verified(s)?.message ?? '').includes(heads[name] ?? '-'));

describe('event-loop delay while hostile input is refused, beside a GitRepository that keeps reconciling', () => {
  it('baseline: only the steady GitRepository applies new revisions', async () => {
    const w = await measureWindow(
      'baseline: steady only, 3 revisions',
      undefined,
      async () => undefined,
      () => true,
      3,
    );
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
  });

  it('(a) a commit inflating to 300 MiB as HEAD is refused at the fetch (FetchFailed)', async () => {
    const w = await measureWindow('zlib-bomb commit', 'bomb', createHostile('bomb'), refusedFor('bomb'));
    expect(verified(w.refused ?? {})?.reason).toBe('FetchFailed');
    expect(verified(w.refused ?? {})?.message).toMatch(
      /commit declares \d+ bytes, over the 1 MiB commit limit/,
    );
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
    expect(w.rssGrowthMiB).toBeLessThanOrEqual(BOMB_RSS_GROWTH_MIB);
    await deleteGitRepositoryAndWait(admin, ns.name, 'bomb');
  });

  it('(b) a 300 MiB blob under an unsigned head is refused (Unsigned) without being held', async () => {
    const w = await measureWindow('300 MiB blob bomb', 'blob', createHostile('blob'), refusedFor('blob'));
    expect(verified(w.refused ?? {})?.reason).toBe('Unsigned');
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
    expect(w.rssGrowthMiB).toBeLessThanOrEqual(BLOB_RSS_GROWTH_MIB);
    await deleteGitRepositoryAndWait(admin, ns.name, 'blob');
  });

  it('(c) a gitsign signature holding a 200,000-byte OID is refused (InvalidSignature)', async () => {
    const keyless = {
      path: './',
      verify: {
        mode: 'HEAD',
        keyless: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }],
        trustedRootRef: { name: 'sigstore-root' },
      },
    };
    const w = await measureWindow(
      'gitsign, 200,000-byte OID',
      'gitsign',
      createHostile('gitsign', keyless),
      refusedFor('gitsign'),
    );
    expect(verified(w.refused ?? {})?.reason).toBe('InvalidSignature');
    expect(verified(w.refused ?? {})?.message).toMatch(/at most 65536 bytes of DER/);
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
    expect(w.rssGrowthMiB).toBeLessThanOrEqual(BOMB_RSS_GROWTH_MIB);
    await deleteGitRepositoryAndWait(admin, ns.name, 'gitsign');
  });

  it(`(d) an unsigned head on an unrelated history of ${HISTORY_COMMITS} commits, spec.timeout 5s: refused by the deadline (or the walk bound, if reached first)`, async () => {
    const w = await measureWindow(
      `unrelated history, ${HISTORY_COMMITS} commits, spec.timeout 5s`,
      'history',
      async () => {
        await hostileRepos[3]?.git(['update-ref', 'refs/heads/main', heads.history ?? '']);
      },
      refusedFor('history'),
    );
    // Fetching and indexing the 16 MiB pack (120,000 objects) takes ~4-5 s on a loaded 2-core machine:
    // the deadline ends either the indexing or the walk after it (FetchFailed). Where the machine is
    // fast enough, the walk reaches its 100,000-commit bound first (RollbackRejected, as in the 60 s
    // case; seen in a CI-check run). Either way the refusal comes within the deadline and a margin.
    const refusal = verified(w.refused ?? {});
    expect(refusal?.message).toMatch(
      refusal?.reason === 'RollbackRejected'
        ? /more than 100000 commits would have to be read; refused/
        : /the deadline passed while indexing the pack \(spec\.timeout\)|spec\.timeout \(5000 ms\) passed while reading the repository; refused/,
    );
    expect(['FetchFailed', 'RollbackRejected']).toContain(refusal?.reason);
    expect(w.refusedAfterMs).toBeLessThan(5_000 + HISTORY_DEADLINE_MARGIN_MS);
    expect(w.refused?.lastAppliedRevision).toBe(`main@sha1:${heads.historyApplied}`);
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
    expect(w.rssGrowthMiB).toBeLessThanOrEqual(HISTORY_RSS_GROWTH_MIB);
    await deleteGitRepositoryAndWait(admin, ns.name, 'history');
  });

  it('(d) the same with spec.timeout 60s: the rollback walk stops at its 100,000-commit bound (RollbackRejected)', async () => {
    const w = await measureWindow(
      `unrelated history, ${HISTORY_COMMITS} commits, spec.timeout 60s`,
      'walk',
      async () => {
        await hostileRepos[3]?.git(['update-ref', 'refs/heads/walk', heads.walk ?? '']);
      },
      refusedFor('walk', 'walk'),
    );
    expect(verified(w.refused ?? {})?.reason).toBe('RollbackRejected');
    expect(verified(w.refused ?? {})?.message).toMatch(
      /more than 100000 commits would have to be read; refused \(raise the bound with --max-walk-commits\)/,
    );
    expect(w.refused?.lastAppliedRevision).toBe(`walk@sha1:${heads.historyApplied}`);
    expect(w.maxBusyMs).toBeLessThanOrEqual(w.boundMs);
    expect(w.rssGrowthMiB).toBeLessThanOrEqual(HISTORY_RSS_GROWTH_MIB);
  });
});
