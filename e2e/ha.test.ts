// High availability and sharding with the built CLI as separate processes (`bin/signet run`), as
// the Deployment runs it: two replicas with --leader-elect, only the Lease holder reconciles, and
// a SIGKILLed leader (no lease release) is replaced by the standby within the lease duration;
// --shard splits GitRepositories by the signet.dev/shard label, each reconciled by exactly one
// process, the unlabelled ones by the process without --shard; --namespace keeps a process to its
// namespace (a GitRepository of its shard elsewhere is never touched). Default lease timings (15 s
// lease, 10 s renew deadline, 2 s retry), the ones production runs with.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLeaseTimings } from '../src/controller/leader.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { repoRoot } from './support/controlplane.ts';
import {
  createObjects,
  gitRepositoryObject,
  releaseGitRepositories,
  trustObjects,
} from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  appliedRepositories,
  ensureBuilt,
  type LogLine,
  leaderGauge,
  type OperatorProcess,
  reconcilesTotal,
  startOperatorProcess,
} from './support/operator-process.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
} from './support/signet.ts';

const ns = useTestNamespace('signet-ha');
/** A second namespace, outside every process's --namespace. */
const elsewhere = useTestNamespace('signet-ha-elsewhere');
const suffix = randomBytes(3).toString('hex');
const workDir = join(repoRoot, '.signet', 'e2e-ha', suffix);
let admin: KubeClient;
let signed: SignedRepo;
let signetBin = '';
const processes: OperatorProcess[] = [];

function startSignet(name: string, flags: readonly string[], podName?: string): OperatorProcess {
  const running = startOperatorProcess(
    signetBin,
    [
      'run',
      '--kubeconfig',
      kubeconfigPath(),
      '--namespace',
      ns.name,
      '--metrics-addr',
      '127.0.0.1:0',
      '--health-addr',
      '127.0.0.1:0',
      '--cache-dir',
      join(workDir, `cache-${name}`),
      ...flags,
    ],
    {
      ...(podName === undefined ? {} : { env: { POD_NAME: podName } }),
      logPath: join(repoRoot, '.signet', 'e2e-logs', `ha-${suffix}-${name}.log`),
    },
  );
  processes.push(running);
  return running;
}

async function gitRepository(
  name: string,
  path: string,
  labels: Record<string, string> = {},
  namespace = ns.name,
): Promise<void> {
  await admin.apply(gitRepositoryObject(signed, namespace, name, { interval: '2s', path }, labels), {
    fieldManager: 'signet-ha-e2e',
  });
}

async function leaseHolder(name: string): Promise<string | undefined> {
  const lease = await admin.get({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    name,
    namespace: ns.name,
  });
  return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
}

function appliedRevision(name: string, commit: string): Promise<boolean> {
  return waitFor(
    async () => {
      const status = await repoStatus(admin, ns.name, name);
      return (
        status.lastAppliedRevision === `main@sha1:${commit}` && condition(status, 'Ready')?.status === 'True'
      );
    },
    { timeoutMs: 60_000, description: `${ns.name}/${name} to apply ${commit.slice(0, 12)}` },
  );
}

/** Every GitRepository (ns/name) a process mentioned in any log line. */
function repositoriesTouched(logs: readonly LogLine[]): string[] {
  return [...new Set(logs.flatMap((l) => (l.gitrepository === undefined ? [] : [l.gitrepository])))].sort();
}

function logTime(logs: readonly LogLine[], message: string): number | undefined {
  const line = logs.find((l) => l.msg === message);
  return line === undefined ? undefined : Date.parse(String(line.time));
}

beforeAll(async () => {
  signetBin = await ensureBuilt();
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo();
  await signed.commit({
    'ha/app.yaml': configMapYaml('ha', { revision: '1' }),
    'shard-a/app.yaml': configMapYaml('shard-a', { shard: 'a' }),
    'shard-b/app.yaml': configMapYaml('shard-b', { shard: 'b' }),
    'unsharded/app.yaml': configMapYaml('unsharded', { shard: 'none' }),
  });
  // In both namespaces: a GitRepository elsewhere would reconcile fine if a process picked it up.
  for (const namespace of [ns.name, elsewhere.name]) {
    await createObjects(admin, trustObjects(signed, namespace));
  }
}, 300_000);

afterAll(async () => {
  for (const running of processes) await running.stop('SIGTERM');
  for (const namespace of [ns.name, elsewhere.name]) {
    await releaseGitRepositories(admin, namespace);
  }
  await signed?.close();
  await admin?.close();
  await rm(workDir, { recursive: true, force: true });
});

describe('two replicas with --leader-elect', () => {
  const leaseName = `signet-ha-${suffix}`;
  const electionFlags = ['--leader-elect', '--lease-namespace', ns.name, '--lease-name', leaseName];
  let first: OperatorProcess;
  let second: OperatorProcess;

  beforeAll(async () => {
    // The first replica takes the fresh Lease; the second starts once it leads.
    first = startSignet('a', electionFlags, 'replica-a');
    await waitFor(() => first.logs.some((l) => l.msg === 'became leader'), {
      timeoutMs: 60_000,
      description: 'replica-a to lead',
    });
    second = startSignet('b', electionFlags, 'replica-b');
    await second.metricsPort();
    await gitRepository('ha', './ha');
  }, 120_000);

  it('only the Lease holder reconciles; the standby keeps still', async () => {
    await appliedRevision('ha', await signed.repo.git(['rev-parse', 'HEAD']));
    expect(await leaseHolder(leaseName)).toBe('replica-a');
    // A few more reconcile cycles (interval 2 s) to give the standby every chance to act.
    const before = reconcilesTotal(await first.metrics());
    await waitFor(async () => reconcilesTotal(await first.metrics()) >= before + 2, {
      timeoutMs: 30_000,
      description: 'the leader to reconcile twice more',
    });
    const leaderMetrics = await first.metrics();
    const standbyMetrics = await second.metrics();
    expect(leaderGauge(leaderMetrics)).toBe(1);
    expect(leaderGauge(standbyMetrics)).toBe(0);
    expect(reconcilesTotal(standbyMetrics)).toBe(0);
    expect(appliedRepositories(first.logs)).toEqual([`${ns.name}/ha`]);
    expect(repositoriesTouched(second.logs)).toEqual([]);
    expect(second.logs.some((l) => l.msg === 'became leader')).toBe(false);
    // The standby is ready too (its caches are synced), so a PodDisruptionBudget can evict either.
    const standbyPorts = second.logs.find((l) => l.msg === 'signet operator running')?.ports as {
      health: number;
    };
    const ready = await fetch(`http://127.0.0.1:${standbyPorts.health}/readyz`, {
      signal: AbortSignal.timeout(5_000),
    });
    expect(ready.status).toBe(200);
  });

  it('a SIGKILLed leader (Lease not released) is replaced within the lease duration, and the new leader rolls out a new commit', async () => {
    const killedAt = Date.now();
    const exit = await first.stop('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    // The Lease still names the dead replica: nothing released it.
    expect(await leaseHolder(leaseName)).toBe('replica-a');
    const commit = await signed.commit({ 'ha/app.yaml': configMapYaml('ha', { revision: '2' }) });
    await waitFor(async () => (await leaseHolder(leaseName)) === 'replica-b', {
      timeoutMs: defaultLeaseTimings.leaseDurationMs + 3 * defaultLeaseTimings.retryPeriodMs + 5_000,
      intervalMs: 50,
      description: 'replica-b to hold the Lease',
    });
    const tookOverAt = logTime(second.logs, 'became leader') ?? Date.now();
    const takeoverMs = tookOverAt - killedAt;
    // At most the lease duration after the last renewal (which came before the kill), plus one
    // retry period of the standby and a little scheduling slack.
    expect(takeoverMs).toBeLessThanOrEqual(
      defaultLeaseTimings.leaseDurationMs + defaultLeaseTimings.retryPeriodMs + 1_000,
    );
    await appliedRevision('ha', commit);
    const appliedAt = Date.now();
    const live = await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'ha', namespace: ns.name });
    expect(live?.data).toEqual({ revision: '2' });
    expect(leaderGauge(await second.metrics())).toBe(1);
    expect(reconcilesTotal(await second.metrics())).toBeGreaterThan(0);
    expect(
      second.logs.some(
        (l) =>
          l.msg === 'revision applied' &&
          l.gitrepository === `${ns.name}/ha` &&
          l.revision === `main@sha1:${commit}`,
      ),
    ).toBe(true);
    console.info(
      `leader takeover after SIGKILL: ${takeoverMs} ms (lease ${defaultLeaseTimings.leaseDurationMs} ms); new commit applied ${appliedAt - killedAt} ms after the kill`,
    );
  });

  afterAll(async () => {
    const exit = await second.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    // A graceful stop releases the Lease, and says so without a warning.
    expect(await leaseHolder(leaseName)).toBe('');
    expect(second.logs.map((l) => l.msg)).toContain('stepped down: releasing the lease');
    expect(second.logs.map((l) => l.msg)).not.toContain('lost leadership: stopped reconciling');
  });
});

describe('--shard', () => {
  const shardA = `a-${suffix}`;
  const shardB = `b-${suffix}`;
  let processA: OperatorProcess;
  let processB: OperatorProcess;
  let unsharded: OperatorProcess;

  beforeAll(async () => {
    // Each with --leader-elect: shards elect independently, on signet-leader-<shard> and signet-leader.
    const election = ['--leader-elect', '--lease-namespace', ns.name];
    processA = startSignet('shard-a', [...election, '--shard', shardA]);
    processB = startSignet('shard-b', [...election, '--shard', shardB]);
    unsharded = startSignet('unsharded', election);
    await Promise.all([processA.metricsPort(), processB.metricsPort(), unsharded.metricsPort()]);
    await gitRepository('shard-a', './shard-a', { 'signet.dev/shard': shardA });
    // Shard a's label, but outside the --namespace every process runs with.
    await gitRepository('shard-a', './shard-a', { 'signet.dev/shard': shardA }, elsewhere.name);
    await gitRepository('shard-b', './shard-b', { 'signet.dev/shard': shardB });
    await gitRepository('unsharded', './unsharded');
  }, 120_000);

  it('reconciles each GitRepository in exactly one process, the unlabelled one in the process without --shard', async () => {
    const commit = await signed.repo.git(['rev-parse', 'HEAD']);
    for (const name of ['shard-a', 'shard-b', 'unsharded']) await appliedRevision(name, commit);
    // Let every process go through more reconcile cycles (interval 2 s) before judging.
    for (const running of [processA, processB, unsharded]) {
      await waitFor(async () => reconcilesTotal(await running.metrics()) >= 3, {
        timeoutMs: 30_000,
        description: 'three reconciles in each process',
      });
    }
    expect(repositoriesTouched(processA.logs)).toEqual([`${ns.name}/shard-a`]);
    expect(repositoriesTouched(processB.logs)).toEqual([`${ns.name}/shard-b`]);
    // The `ha` GitRepository of the test above is unlabelled too, so the unsharded process owns it.
    expect(repositoriesTouched(unsharded.logs).filter((key) => key !== `${ns.name}/ha`)).toEqual([
      `${ns.name}/unsharded`,
    ]);
    expect(appliedRepositories(processA.logs)).toEqual([`${ns.name}/shard-a`]);
    expect(appliedRepositories(processB.logs)).toEqual([`${ns.name}/shard-b`]);
    expect(appliedRepositories(unsharded.logs)).toContain(`${ns.name}/unsharded`);
    expect(await leaseHolder(`signet-leader-${shardA}`)).toBeTruthy();
    expect(await leaseHolder(`signet-leader-${shardB}`)).toBeTruthy();
    expect(await leaseHolder('signet-leader')).toBeTruthy();
  });

  it('--namespace: a GitRepository of its shard in another namespace is never reconciled', async () => {
    expect(processA.child.spawnargs).toEqual(expect.arrayContaining(['--namespace', ns.name]));
    // Two more reconciles of shard-a in its own namespace, long after both GitRepositories existed.
    const before = reconcilesTotal(await processA.metrics());
    await waitFor(async () => reconcilesTotal(await processA.metrics()) >= before + 2, {
      timeoutMs: 30_000,
      description: 'two more reconciles in the shard-a process',
    });
    const ignored = await admin.get({
      apiVersion: 'signet.dev/v1alpha1',
      kind: 'GitRepository',
      name: 'shard-a',
      namespace: elsewhere.name,
    });
    expect(ignored?.metadata.finalizers ?? []).toEqual([]);
    expect(ignored?.status).toBeUndefined();
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'shard-a', namespace: elsewhere.name }),
    ).toBeUndefined();
    for (const running of [processA, processB, unsharded]) {
      expect(repositoriesTouched(running.logs).filter((key) => key.startsWith(`${elsewhere.name}/`))).toEqual(
        [],
      );
    }
    // The same spec in the process's own namespace was applied.
    expect(condition(await repoStatus(admin, ns.name, 'shard-a'), 'Ready')?.status).toBe('True');
  });

  afterAll(async () => {
    for (const running of [processA, processB, unsharded]) {
      expect(await running.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    }
  });
});
