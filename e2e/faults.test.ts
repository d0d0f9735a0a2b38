// Faults survived, against a real API server: a misbehaving Git server (500, hang past spec.timeout,
// connection closed mid-pack, corrupted pack), a freeze (the branch force-pushed back to an older
// signed revision), and a field owned by another manager. Each case asserts what the cluster and
// the status look like afterwards, then the recovery once the fault is gone.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { Receiver } from '../test/notify/support.ts';
import {
  type ControlPlane,
  reapOrphanedPlanes,
  repoRoot,
  startControlPlane,
} from './support/controlplane.ts';
import { createObjects, gitRepositoryObject, trustObjects } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  ensureBuilt,
  type OperatorProcess,
  signetRunArgs,
  startOperatorProcess,
} from './support/operator-process.ts';
import { registerSecret } from './support/secret-scan.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-faults');
let admin: KubeClient;
let signed: SignedRepo;
let slack: Receiver;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
const captured = capturingLogger();
/** Recovery times measured in this file (ms), printed at the end for docs/reliability.md. */
const measured: Record<string, number> = {};
/** Status messages seen in this file, printed at the end for docs/reliability.md. */
const observed: Record<string, string> = {};

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const appColor = async (): Promise<string | undefined> =>
  ((await admin.get(configMap('app')))?.data as Record<string, string> | undefined)?.color;

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('faults');
  slack = new Receiver();
  await slack.listen();
  registerSecret('faults: Slack webhook URL', slack.url('http'));
  await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'v1' }) });
  await createObjects(admin, trustObjects(signed, ns.name, { slackAddress: slack.url('http') }));
  operator = await startTestOperator({ namespace: ns.name }, captured.logger);
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'apps', {
      interval: '1s',
      timeout: '3s',
      path: './deploy',
      alerts: { slack: { secretRef: { name: 'slack' } } },
    }),
    { fieldManager: 'e2e' },
  );
}, 120_000);

afterAll(async () => {
  console.log(`faults.test.ts recovery times (ms): ${JSON.stringify(measured)}`);
  console.log(`faults.test.ts messages: ${JSON.stringify(observed, null, 2)}`);
  await operator?.stop();
  await slack?.close();
  await signed?.close();
  await admin?.close();
});

const status = (): Promise<RepoStatus> => repoStatus(admin, ns.name, 'apps');

/** Pokes the operator (the requestedAt annotation) so a backed-off key is reconciled now. */
async function requestReconcile(): Promise<void> {
  await admin.request({
    method: 'PATCH',
    path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/apps`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({
      metadata: { annotations: { 'reconcile.signet.dev/requestedAt': new Date().toISOString() } },
    }),
  });
}

async function waitApplied(commit: string, timeoutMs = 60_000): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await status();
      return s.lastAppliedRevision === `main@sha1:${commit}` && condition(s, 'Ready')?.status === 'True'
        ? s
        : undefined;
    },
    { timeoutMs, description: `main@sha1:${commit} applied and Ready` },
  );
}

async function waitReadyFalse(reason: string, timeoutMs = 60_000): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await status();
      const ready = condition(s, 'Ready');
      return ready?.status === 'False' && ready.reason === reason ? s : undefined;
    },
    { timeoutMs, description: `Ready=False with reason ${reason}` },
  );
}

describe('a misbehaving Git server', () => {
  let good = '';
  let color = 'v1';

  it('applies the first signed revision', async () => {
    good = await signed.repo.git(['rev-parse', 'HEAD']);
    await waitApplied(good);
    expect(await appColor()).toBe('v1');
  });

  const faults = [
    { name: '500', fault: { kind: 'status', status: 500 } as const, expect: /answered 500/ },
    {
      name: 'hang past spec.timeout',
      fault: { kind: 'hang' } as const,
      expect: /no complete answer within 3000 ms \(spec\.timeout\)/,
    },
    {
      name: 'close mid-pack',
      fault: { kind: 'close-mid-pack' } as const,
      expect: /git-upload-pack: ECONNRESET/,
    },
    {
      name: 'corrupt pack',
      fault: { kind: 'corrupt-pack' } as const,
      expect: /the pack the Git server sent could not be decoded \(corrupt or truncated\)/,
    },
  ];
  for (const [index, scenario] of faults.entries()) {
    it(`${scenario.name}: Ready=False FetchFailed, nothing changes; recovers when the server is healthy`, async () => {
      const wanted = `fault-${index}`;
      signed.server.setFault(scenario.fault);
      const next = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: wanted }) });
      const failed = await waitReadyFalse('FetchFailed');
      const ready = condition(failed, 'Ready');
      observed[scenario.name] = ready?.message ?? '';
      expect(ready?.message).toMatch(/^fetching /);
      expect(ready?.message).toMatch(scenario.expect);
      expect(ready?.message).toContain('127.0.0.1');
      // Not fetched, so not verified: Verified=False FetchFailed with the same message.
      expect(condition(failed, 'Verified')).toMatchObject({ status: 'False', reason: 'FetchFailed' });
      expect(condition(failed, 'Verified')?.message).toBe(ready?.message);
      expect(failed.lastAppliedRevision).toBe(`main@sha1:${good}`);
      // Still failing a few reconciles later (interval 1s), and the object was never touched.
      await requestReconcile();
      await waitFor(async () => (await status()).conditions !== undefined, { timeoutMs: 2_000 });
      expect((await status()).lastAppliedRevision).toBe(`main@sha1:${good}`);
      expect(await appColor()).toBe(color);

      signed.server.setFault(undefined);
      const healedAt = Date.now();
      await requestReconcile();
      const applied = await waitApplied(next);
      measured[scenario.name] = Date.now() - healedAt;
      expect(condition(applied, 'Ready')?.reason).toBe('ReconciliationSucceeded');
      expect(await appColor()).toBe(wanted);
      good = next;
      color = wanted;
    });
  }

  it('the hang fault is cut by spec.timeout, not left to hang forever', async () => {
    signed.server.setFault({ kind: 'hang' });
    const next = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'hang-2' }) });
    const started = Date.now();
    await requestReconcile();
    await waitReadyFalse('FetchFailed', 20_000);
    // spec.timeout is 3s: the failure is reported within one timeout plus scheduling.
    expect(Date.now() - started).toBeLessThan(12_000);
    signed.server.setFault(undefined);
    await requestReconcile();
    await waitApplied(next);
    good = next;
  });
});

describe('a freeze: the branch force-pushed back to an older signed revision', () => {
  it('is rejected as RollbackRejected, alerted to Slack, and the newer revision stays in force', async () => {
    const older = await signed.repo.git(['rev-parse', 'HEAD']);
    const newer = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'newer' }) });
    await waitApplied(newer);
    await signed.repo.git(['reset', '--hard', older]);
    const rejected = await waitFor(
      async () => {
        const s = await status();
        return condition(s, 'Verified')?.reason === 'RollbackRejected' ? s : undefined;
      },
      { timeoutMs: 30_000, description: 'Verified=False RollbackRejected' },
    );
    observed.rollback = condition(rejected, 'Ready')?.message ?? '';
    expect(condition(rejected, 'Verified')?.status).toBe('False');
    expect(condition(rejected, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(rejected, 'Ready')?.message).toContain(`main@sha1:${newer} stays in force`);
    expect(rejected.lastAppliedRevision).toBe(`main@sha1:${newer}`);
    expect(rejected.lastAttemptedRevision).toBe(`main@sha1:${older}`);
    expect(await appColor()).toBe('newer');
    const alert = await waitFor(
      () =>
        slack.requests.find(
          (r) =>
            JSON.stringify(r.body).includes('RollbackRejected') &&
            JSON.stringify(r.body).includes('VerificationFailed'),
        ),
      { timeoutMs: 15_000, description: 'a RollbackRejected alert' },
    );
    expect(JSON.stringify(alert.body)).toContain(older.slice(0, 12));

    // Moving forward again from the newer commit is accepted.
    await signed.repo.git(['reset', '--hard', newer]);
    const forward = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'forward' }) });
    await waitApplied(forward);
    expect(await appColor()).toBe('forward');
  });
});

describe('a field owned by another manager', () => {
  it('reports the conflict (object and manager) in status; spec.force takes the field', async () => {
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'shared', namespace: ns.name },
        data: { x: 'theirs' },
      } as never,
      { fieldManager: 'other-team' },
    );
    const conflicting = await signed.commit({ 'deploy/shared.yaml': configMapYaml('shared', { x: 'ours' }) });
    const committedAt = Date.now();
    const failed = await waitReadyFalse('ApplyFailed');
    measured['field-manager conflict: commit → ApplyFailed reported'] = Date.now() - committedAt;
    const message = condition(failed, 'Ready')?.message ?? '';
    observed.conflict = message;
    expect(message).toContain(`main@sha1:${conflicting}`);
    expect(message).toContain(`${ns.name}/shared`);
    expect(message).toContain('other-team');
    expect(message).toContain('.data.x');
    expect((await admin.get(configMap('shared')))?.data).toEqual({ x: 'theirs' });

    const forcedAt = Date.now();
    await admin.request({
      method: 'PATCH',
      path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/apps`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ spec: { force: true } }),
    });
    await waitApplied(conflicting);
    measured['field-manager conflict: spec.force set → applied'] = Date.now() - forcedAt;
    const shared = await admin.get(configMap('shared'));
    expect(shared?.data).toEqual({ x: 'ours' });
    const owners = (shared?.metadata.managedFields ?? []).filter((f) =>
      JSON.stringify(f.fieldsV1 ?? {}).includes('f:x'),
    );
    expect(owners.map((f) => f.manager)).toEqual(['signet']);
  });

  it('never logs the webhook URL', () => {
    const logs = captured.lines.join('\n');
    expect(logs).not.toContain(slack.url('http'));
  });
});

// ---------------------------------------------------------------------------------------------
// Control-plane faults: these stop and kill kube-apiserver and etcd, so they run on their OWN plane.

const planesDir = join(repoRoot, '.signet', 'e2e-faults');

/** `count` ConfigMaps `<prefix>-<i>` in files of 100 documents each: `deploy/<prefix>-<n>.yaml`. */
function bulkFiles(prefix: string, count: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let start = 0; start < count; start += 100) {
    const docs: string[] = [];
    for (let i = start; i < Math.min(count, start + 100); i++) {
      docs.push(configMapYaml(`${prefix}-${i}`, { index: String(i), payload: 'x'.repeat(200) }));
    }
    files[`deploy/${prefix}-${start / 100}.yaml`] = docs.join('---\n');
  }
  return files;
}

describe('control-plane faults (own plane)', () => {
  const namespace = 'signet-plane-faults';
  let plane: ControlPlane;
  let kube: KubeClient;
  let repo: SignedRepo;
  let running: Awaited<ReturnType<typeof startTestOperator>> | undefined;
  const planeLogs = capturingLogger();

  const planeStatus = (): Promise<RepoStatus> => repoStatus(kube, namespace, 'big');
  const countManaged = async (): Promise<number> =>
    (
      await kube.list('v1', 'ConfigMap', {
        namespace,
        labelSelector: 'signet.dev/name=big',
        timeoutMs: 10_000,
      })
    ).items.length;
  const waitBigApplied = (commit: string, timeoutMs: number): Promise<RepoStatus> =>
    waitFor(
      async () => {
        const s = await planeStatus();
        return s.lastAppliedRevision === `main@sha1:${commit}` && condition(s, 'Ready')?.status === 'True'
          ? s
          : undefined;
      },
      { timeoutMs, intervalMs: 200, description: `main@sha1:${commit} applied on the own plane` },
    );
  const startPlaneOperator = () =>
    startTestOperator({ kubeconfig: plane.kubeconfigPath, namespace, applyConcurrency: 4 }, planeLogs.logger);

  beforeAll(async () => {
    await reapOrphanedPlanes(planesDir);
    plane = await startControlPlane({
      stateDir: join(planesDir, String(process.pid)),
      reuse: false,
      ownerPid: process.pid,
    });
    kube = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: 'signet-e2e-faults/0.1.0' });
    await installCrd(kube);
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } as never);
    repo = await createSignedRepo('big');
    await createObjects(kube, trustObjects(repo, namespace));
    running = await startPlaneOperator();
  }, 180_000);

  afterAll(async () => {
    await running?.stop();
    await repo?.close();
    await kube?.close();
    await plane?.stop();
  });

  // Large enough that the operator is still applying when kube-apiserver is back: with 1,000 objects a
  // quiet machine finished the rest within ~200 ms of the restart, before the first status sample
  // (a clean-clone run failed on 'the window was observed at all').
  const killedRevisionObjects = 3_000;
  it(`kube-apiserver killed while a ${killedRevisionObjects.toLocaleString('en-US')}-object revision is applied: reconnects and finishes it, no event storm`, async () => {
    const commit = await repo.commit(bulkFiles('cm', killedRevisionObjects));
    await kube.apply(
      gitRepositoryObject(repo, namespace, 'big', { interval: '2s', timeout: '20s', path: './deploy' }),
      { fieldManager: 'e2e' },
    );
    const atKill = await waitFor(
      async () => {
        const n = await countManaged();
        return n >= 20 ? n : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 50, description: 'the apply under way' },
    );
    const killedAt = Date.now();
    await plane.restartApiServer({ force: true });
    const restartedAt = Date.now();
    // From the restart to convergence, sample the status and then the objects (in that order:
    // objects only grow here, so a status read before a count below 1,000 was written while the
    // revision was half-applied). The status must never say Ready=True for the revision then.
    const revision = `main@sha1:${commit}`;
    const samples: { objects: number; ready: string; lastApplied: string | undefined }[] = [];
    const status = await waitFor(
      async () => {
        const s = await planeStatus();
        const objects = await countManaged();
        const ready = condition(s, 'Ready');
        samples.push({
          objects,
          ready: `${ready?.status ?? 'absent'} ${ready?.reason ?? ''}`.trim(),
          lastApplied: s.lastAppliedRevision,
        });
        return objects === killedRevisionObjects &&
          s.lastAppliedRevision === revision &&
          ready?.status === 'True'
          ? s
          : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200, description: `${revision} applied on the own plane` },
    );
    measured['kube-apiserver SIGKILL mid-apply → Ready'] = Date.now() - killedAt;
    measured['kube-apiserver restarted → Ready'] = Date.now() - restartedAt;
    observed['objects existing when kube-apiserver was killed'] = String(atKill);
    const halfApplied = samples.filter((sample) => sample.objects < killedRevisionObjects);
    observed['status samples while half-applied (after the restart)'] =
      `${halfApplied.length} of ${samples.length}, objects ${halfApplied.map((h) => h.objects).join(', ')}; ` +
      `Ready ${[...new Set(halfApplied.map((h) => h.ready))].join(' | ')}`;
    expect(atKill).toBeLessThan(killedRevisionObjects);
    // The window was observed at all (else the next assertion would hold vacuously).
    expect(halfApplied.length).toBeGreaterThan(0);
    expect(halfApplied.filter((h) => h.ready.startsWith('True') && h.lastApplied === revision)).toEqual([]);
    expect(halfApplied.filter((h) => h.lastApplied === revision)).toEqual([]);
    expect(await countManaged()).toBe(killedRevisionObjects);
    expect(status.inventory?.entries).toHaveLength(killedRevisionObjects);
    const events = await kube.list('v1', 'Event', { namespace, fieldSelector: 'involvedObject.name=big' });
    observed['events after the apiserver kill'] = events.items
      .map((e) => `${e.type as string} ${e.reason as string} x${String(e.count ?? 1)}`)
      .join('; ');
    // Repeats fold into an Event's count (src/controller/events.ts): bound the sum, not the objects.
    const eventTotal = events.items.reduce((sum, e) => sum + (typeof e.count === 'number' ? e.count : 1), 0);
    observed['summed Event count after the apiserver kill'] = String(eventTotal);
    expect(events.items.length).toBeLessThanOrEqual(5);
    expect(eventTotal).toBeLessThanOrEqual(5);
  });

  it('etcd stopped for 20 s: the operator backs off (no hot loop) and applies a new commit afterwards without a restart', async () => {
    const operator = running!.operator;
    const before = operator.admin.stats.total;
    await plane.stopEtcd({ force: true });
    const stoppedAt = Date.now();
    // The outage itself is the fault under test: it lasts 20 s whatever the operator does.
    await new Promise((resolveOutage) => setTimeout(resolveOutage, 20_000));
    const during = operator.admin.stats.total - before;
    observed['operator requests during the 20 s etcd outage'] = String(during);
    await plane.startEtcd();
    expect(during).toBeLessThan(100);
    const commit = await repo.commit({
      'deploy/after-etcd.yaml': configMapYaml('after-etcd', { ok: 'yes' }),
    });
    await waitBigApplied(commit, 120_000);
    measured['etcd back → new commit applied'] = Date.now() - stoppedAt - 20_000;
    expect(await countManaged()).toBe(killedRevisionObjects + 1);
  });

  it('the operator process SIGKILLed mid-apply and restarted: converges, the inventory never loses an object, prune still works', async () => {
    // The in-process operator hands over to `bin/signet run` as a separate process, as in a pod.
    await running?.stop();
    running = undefined;
    const signetBin = await ensureBuilt();
    const processCaches: string[] = [];
    const startPlaneProcess = async (name: string): Promise<OperatorProcess> => {
      // Each process gets an empty Git cache, as a new pod would.
      const cacheDir = await mkdtemp(join(tmpdir(), `signet-faults-${name}-`));
      processCaches.push(cacheDir);
      return startOperatorProcess(
        signetBin,
        signetRunArgs({
          kubeconfig: plane.kubeconfigPath,
          namespace,
          cacheDir,
          extra: ['--apply-concurrency', '4'],
        }),
        { logPath: join(repoRoot, '.signet', 'e2e-logs', `faults-${name}-${process.pid}.log`) },
      );
    };
    const killed = await startPlaneProcess('sigkilled');
    let restarted: OperatorProcess | undefined;
    try {
      await killed.metricsPort();
      const commit = await repo.commit(bulkFiles('more', 1_000));
      await waitFor(
        async () => {
          const n = await countManaged();
          return n >= killedRevisionObjects + 1 + 20 ? n : undefined;
        },
        {
          timeoutMs: 60_000,
          intervalMs: 50,
          description: 'the second apply under way in the operator process',
        },
      );
      const exit = await killed.stop('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
      // It died in the middle of the apply: it never got to log the revision as applied.
      expect(
        killed.logs.some((l) => l.msg === 'revision applied' && l.revision === `main@sha1:${commit}`),
      ).toBe(false);

      // Everything Signet created is in the inventory recorded before the apply started.
      const live = await kube.list('v1', 'ConfigMap', { namespace, labelSelector: 'signet.dev/name=big' });
      const inventory = new Set((await planeStatus()).inventory?.entries.map((e) => e.id));
      const missing = live.items
        .map((o) => `${namespace}_${o.metadata.name}__ConfigMap`)
        .filter((id) => !inventory.has(id));
      observed['objects existing when the operator process was SIGKILLed'] = String(live.items.length);
      expect(live.items.length).toBeLessThan(killedRevisionObjects + 1 + 1_000);
      expect(missing).toEqual([]);

      // A fresh process (new pid, empty Git cache) converges to the same state.
      const restartedAt = Date.now();
      restarted = await startPlaneProcess('restarted');
      const status = await waitBigApplied(commit, 120_000);
      measured['operator process restarted → revision applied'] = Date.now() - restartedAt;
      expect(await countManaged()).toBe(killedRevisionObjects + 1 + 1_000);
      expect(status.inventory?.entries).toHaveLength(killedRevisionObjects + 1 + 1_000);
      const applied = restarted.logs.find(
        (l) => l.msg === 'revision applied' && l.revision === `main@sha1:${commit}`,
      );
      expect(applied).toBeDefined();
      observed['the restarted process applied'] = JSON.stringify({
        created: applied?.created,
        configured: applied?.configured,
        unchanged: applied?.unchanged,
      });

      // An object the killed process created is still tracked: removing it from Git prunes it.
      const pruned = await repo.commit({ 'deploy/more-0.yaml': null });
      const after = await waitBigApplied(pruned, 60_000);
      await waitFor(async () => (await countManaged()) === killedRevisionObjects + 1 + 1_000 - 100, {
        timeoutMs: 30_000,
        description: 'more-0.yaml pruned',
      });
      expect(after.inventory?.entries).toHaveLength(killedRevisionObjects + 1 + 1_000 - 100);
      expect(
        await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'more-0', namespace }),
      ).toBeUndefined();
      expect(
        await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'more-100', namespace }),
      ).toBeDefined();
      expect(await restarted.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    } finally {
      await killed.stop('SIGKILL');
      await restarted?.stop('SIGKILL');
      for (const dir of processCaches) await rm(dir, { recursive: true, force: true });
    }
  });
});
