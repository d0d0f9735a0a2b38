// Sharding proven (issue 18) with the built CLI as separate processes (`bin/signet run`), as three
// Deployments of two replicas would run it: each shard (`--shard`) elects its own leader on its own
// Lease (signet-leader-<shard>), and every process names its pod in its user agent
// (`signet/<version> (<POD_NAME>)`), so the API server's audit log says which process wrote what.
// 60 GitRepositories over one signed repository, labelled across the three shards: each is written
// (finalizer, status) by exactly one process, the leader of its own shard; the standbys write
// nothing; a SIGKILLed shard leader is replaced by its standby within the lease duration, which then
// rolls out a new commit for that shard's share; across the whole run no GitRepository and no
// managed object is written by processes of two shards.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLeaseTimings } from '../src/controller/leader.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { type AuditEvent, localAuditLogPath, readAuditLog } from './support/audit.ts';
import { repoRoot } from './support/controlplane.ts';
import {
  createObjects,
  gitRepositoryObject,
  releaseGitRepositories,
  trustObjects,
} from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { ensureBuilt, type OperatorProcess, startOperatorProcess } from './support/operator-process.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type SignedRepo,
} from './support/signet.ts';

const ns = useTestNamespace('signet-sharding');
const suffix = randomBytes(3).toString('hex');
const workDir = join(repoRoot, '.signet', 'e2e-sharding', suffix);
const shardNames = ['a', 'b', 'c'] as const;
type ShardName = (typeof shardNames)[number];
const repositoryCount = 60;
let admin: KubeClient;
let signed: SignedRepo;
let auditLogPath = '';

interface Replica {
  readonly shard: ShardName;
  readonly pod: string;
  readonly process: OperatorProcess;
}
const replicas: Replica[] = [];

const shardKey = (shard: ShardName) => `${shard}-${suffix}`;
const repoName = (index: number) => `fleet-${String(index).padStart(2, '0')}`;
const shardOf = (index: number): ShardName => shardNames[index % shardNames.length] as ShardName;
const podOf = (shard: ShardName, replica: number) => `signet-${shard}-${suffix}-${replica}`;

function startReplica(shard: ShardName, replica: number): Replica {
  const pod = podOf(shard, replica);
  const running = startOperatorProcess(
    join(repoRoot, 'bin', 'signet'),
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
      join(workDir, `cache-${pod}`),
      '--leader-elect',
      '--lease-namespace',
      ns.name,
      '--shard',
      shardKey(shard),
    ],
    {
      env: { POD_NAME: pod, SIGNET_LOG_LEVEL: 'info' },
      logPath: join(repoRoot, '.signet', 'e2e-logs', `sharding-${pod}.log`),
    },
  );
  const started = { shard, pod, process: running };
  replicas.push(started);
  return started;
}

/** The pod a `signet/<version> (<pod>)` user agent names, if any. */
function podOfAgent(userAgent: string): string | undefined {
  return /^signet\/\S+ \(([^)]+)\)$/.exec(userAgent)?.[1];
}

const writeVerbs = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

/** Writes by this run's operator processes, with the pod that sent each. */
async function operatorWrites(): Promise<{ pod: string; event: AuditEvent }[]> {
  const pods = new Set(replicas.map((r) => r.pod));
  return (await readAuditLog(auditLogPath)).flatMap((event) => {
    const pod = podOfAgent(event.userAgent);
    return pod !== undefined && pods.has(pod) && writeVerbs.has(event.verb) ? [{ pod, event }] : [];
  });
}

/** GitRepository name → pods that wrote it (metadata or status), from the audit log. */
function writersOfRepositories(
  writes: readonly { pod: string; event: AuditEvent }[],
): Map<string, Set<string>> {
  const prefix = `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/`;
  const writers = new Map<string, Set<string>>();
  for (const { pod, event } of writes) {
    const path = event.requestURI.split('?')[0] ?? '';
    if (!path.startsWith(prefix)) continue;
    const name = path.slice(prefix.length).split('/')[0] ?? '';
    writers.set(name, (writers.get(name) ?? new Set()).add(pod));
  }
  return writers;
}

/** ConfigMap name → pods that applied it. */
function writersOfConfigMaps(
  writes: readonly { pod: string; event: AuditEvent }[],
): Map<string, Set<string>> {
  const prefix = `/api/v1/namespaces/${ns.name}/configmaps/`;
  const writers = new Map<string, Set<string>>();
  for (const { pod, event } of writes) {
    const path = event.requestURI.split('?')[0] ?? '';
    if (!path.startsWith(prefix) || event.verb !== 'patch') continue;
    const name = path.slice(prefix.length);
    writers.set(name, (writers.get(name) ?? new Set()).add(pod));
  }
  return writers;
}

async function leaseSpec(shard: ShardName): Promise<{ holderIdentity?: string; renewTime?: string }> {
  const lease = await admin.get({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    name: `signet-leader-${shardKey(shard)}`,
    namespace: ns.name,
  });
  return (lease?.spec ?? {}) as { holderIdentity?: string; renewTime?: string };
}

async function leaseHolder(shard: ShardName): Promise<string | undefined> {
  return (await leaseSpec(shard)).holderIdentity;
}

/** Waits until every GitRepository is Ready with `commit` applied (one LIST per poll). */
async function allApplied(commit: string, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const list = await admin.list('signet.dev/v1alpha1', 'GitRepository', { namespace: ns.name });
      const done = list.items.filter((item) => {
        const status = (item.status ?? {}) as { lastAppliedRevision?: string };
        return (
          status.lastAppliedRevision === `main@sha1:${commit}` &&
          condition(item.status as Parameters<typeof condition>[0], 'Ready')?.status === 'True'
        );
      });
      return done.length === repositoryCount ? true : undefined;
    },
    {
      timeoutMs,
      intervalMs: 500,
      description: `${repositoryCount} GitRepositories to apply ${commit.slice(0, 12)}`,
    },
  );
}

function files(revision: string): Record<string, string> {
  const tree: Record<string, string> = {};
  for (let index = 0; index < repositoryCount; index++) {
    tree[`fleet/${repoName(index)}/app.yaml`] = configMapYaml(repoName(index), {
      revision,
      shard: shardOf(index),
    });
  }
  return tree;
}

let firstCommit = '';

beforeAll(async () => {
  await ensureBuilt();
  auditLogPath = localAuditLogPath('e2e/sharding.test.ts', 'writes by user agent');
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('sharding');
  firstCommit = await signed.commit(files('1'));
  await createObjects(admin, trustObjects(signed, ns.name));
  // Replica 0 of each shard first, so that it leads; replica 1 once it does (a standby).
  const leaders = shardNames.map((shard) => startReplica(shard, 0));
  for (const leader of leaders) {
    await waitFor(() => leader.process.logs.some((l) => l.msg === 'became leader'), {
      timeoutMs: 90_000,
      description: `${leader.pod} to lead shard ${leader.shard}`,
    });
  }
  const standbys = shardNames.map((shard) => startReplica(shard, 1));
  await Promise.all(standbys.map((s) => s.process.metricsPort(90_000)));
  for (let index = 0; index < repositoryCount; index++) {
    await admin.apply(
      gitRepositoryObject(
        signed,
        ns.name,
        repoName(index),
        { interval: '15s', path: `./fleet/${repoName(index)}` },
        { 'signet.dev/shard': shardKey(shardOf(index)) },
      ),
      { fieldManager: 'signet-sharding-e2e' },
    );
  }
}, 300_000);

afterAll(async () => {
  for (const replica of replicas) await replica.process.stop('SIGTERM');
  await releaseGitRepositories(admin, ns.name);
  await signed?.close();
  await admin?.close();
  await rm(workDir, { recursive: true, force: true });
});

describe('three shards of two replicas, 60 GitRepositories', () => {
  it('each GitRepository and each of its objects is written by exactly one process, its shard leader; standbys write nothing', async () => {
    await allApplied(firstCommit, 150_000);
    for (const shard of shardNames) expect(await leaseHolder(shard)).toBe(podOf(shard, 0));
    const writes = await operatorWrites();
    const repositories = writersOfRepositories(writes);
    const configMaps = writersOfConfigMaps(writes);
    for (let index = 0; index < repositoryCount; index++) {
      const leader = podOf(shardOf(index), 0);
      expect({ name: repoName(index), writers: [...(repositories.get(repoName(index)) ?? [])] }).toEqual({
        name: repoName(index),
        writers: [leader],
      });
      expect({ name: repoName(index), writers: [...(configMaps.get(repoName(index)) ?? [])] }).toEqual({
        name: repoName(index),
        writers: [leader],
      });
    }
    // A standby only ever tries the Lease of its shard (and asks who it is at start-up).
    for (const shard of shardNames) {
      const standby = podOf(shard, 1);
      const standbyWrites = writes.filter(
        (w) =>
          w.pod === standby &&
          !w.event.requestURI.includes('/leases/') &&
          !/\/(selfsubjectreviews|selfsubjectaccessreviews|selfsubjectrulesreviews)\b/.test(
            w.event.requestURI,
          ),
      );
      expect(standbyWrites.map((w) => `${w.event.verb} ${w.event.requestURI}`)).toEqual([]);
    }
  });

  it('a SIGKILLed shard leader is replaced by its standby within the lease duration, which rolls out the next commit; no GitRepository is ever written by two shards', async () => {
    const victim = replicas.find((r) => r.pod === podOf('a', 0));
    const standby = replicas.find((r) => r.pod === podOf('a', 1));
    if (victim === undefined || standby === undefined) throw new Error('shard a has no replicas');
    const killedAt = Date.now();
    expect((await victim.process.stop('SIGKILL')).signal).toBe('SIGKILL');
    // The dead leader's last renewal: the Lease runs out leaseDuration after it.
    const lastRenewal = Date.parse((await leaseSpec('a')).renewTime ?? '');
    expect(lastRenewal).toBeLessThanOrEqual(Date.now());
    await waitFor(async () => ((await leaseHolder('a')) === standby.pod ? true : undefined), {
      timeoutMs: defaultLeaseTimings.leaseDurationMs + 3 * defaultLeaseTimings.retryPeriodMs + 10_000,
      intervalMs: 100,
      description: `${standby.pod} to hold shard a's Lease`,
    });
    const tookOver = standby.process.logs.find((l) => l.msg === 'became leader');
    const tookOverAt = Date.parse(String(tookOver?.time));
    const takeoverMs = tookOverAt - killedAt;
    const sinceRenewalMs = tookOverAt - lastRenewal;
    // Not before the Lease ran out (no split brain), and at most one retry period of the standby
    // (plus a little scheduling slack) after it did.
    expect(sinceRenewalMs).toBeGreaterThanOrEqual(defaultLeaseTimings.leaseDurationMs);
    expect(sinceRenewalMs).toBeLessThanOrEqual(
      defaultLeaseTimings.leaseDurationMs + defaultLeaseTimings.retryPeriodMs + 1_000,
    );
    expect(takeoverMs).toBeLessThanOrEqual(
      defaultLeaseTimings.leaseDurationMs + defaultLeaseTimings.retryPeriodMs + 1_000,
    );
    const secondCommit = await signed.commit(files('2'));
    await allApplied(secondCommit, 150_000);
    for (let index = 0; index < repositoryCount; index++) {
      const live = await admin.get({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: repoName(index),
        namespace: ns.name,
      });
      expect(live?.data).toEqual({ revision: '2', shard: shardOf(index) });
    }
    const writes = await operatorWrites();
    const sinceKill = writes.filter((w) => Date.parse(w.event.receivedAt) > killedAt + 1_000);
    const repositories = writersOfRepositories(writes);
    const configMaps = writersOfConfigMaps(writes);
    const repositoriesSinceKill = writersOfRepositories(sinceKill);
    for (let index = 0; index < repositoryCount; index++) {
      const shard = shardOf(index);
      const ownPods = [podOf(shard, 0), podOf(shard, 1)];
      // Over the whole run: only the processes of its own shard.
      for (const writers of [repositories.get(repoName(index)), configMaps.get(repoName(index))]) {
        expect([...(writers ?? [])].filter((pod) => !ownPods.includes(pod))).toEqual([]);
      }
      // After the kill: shard a's share by the new leader alone, the others by their first leaders.
      const expected = shard === 'a' ? standby.pod : podOf(shard, 0);
      expect({
        name: repoName(index),
        writers: [...(repositoriesSinceKill.get(repoName(index)) ?? [])],
      }).toEqual({
        name: repoName(index),
        writers: [expected],
      });
    }
    console.info(
      `shard a: leader takeover ${takeoverMs} ms after SIGKILL, ${sinceRenewalMs} ms after the last renewal (lease ${defaultLeaseTimings.leaseDurationMs} ms); ${writes.length} writes by 6 processes audited`,
    );
  });
});
