// Two replicas racing for one Lease on the real API server, with default lease timings (15 s lease,
// 10 s renew deadline, 2 s retry). Each replica is an in-process operator with its own user agent,
// so the kube-apiserver's audit log says which replica sent which write.
//
// 1. The Lease taken away: replica A leads and is in the middle of applying a 1,000-object
//    revision when the Lease moves to the standby B (what A sees after a partition: another
//    replica holds it). A must step down at its next renewal and stop writing; B leads and applies
//    a newer revision; nothing of A's older revision survives.
// 2. A partitioned from the Lease: a ValidatingAdmissionPolicy refuses every Lease write naming A
//    while A keeps applying a 3,000-object revision (its object writes still go through). A must
//    stop at its renew deadline, on its own; B may take the lease only once it expired, and
//    applies a newer revision that is in Git from the start: every write of A reaches the API
//    server before B's first.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLeaseTimings, microTime } from '../src/controller/leader.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { type AuditEvent, readAuditLog } from './support/audit.ts';
import {
  createObjects,
  gitRepositoryObject,
  releaseGitRepositories,
  trustObjects,
} from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { type LogLine, leaderGauge } from './support/operator-process.ts';
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

const suffix = randomBytes(3).toString('hex');
const writeVerbs = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
/** A request already on the wire when a replica steps down may reach the server this much later. */
const inFlightWindowMicros = 100_000;
const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = defaultLeaseTimings;
let admin: KubeClient;
let signed: SignedRepo;
let auditLogPath = '';

interface Replica {
  readonly identity: string;
  readonly userAgent: string;
  readonly running: Awaited<ReturnType<typeof startTestOperator>>;
  readonly lines: string[];
}

async function startReplica(
  namespace: string,
  leaseName: string,
  identity: string,
  applyConcurrency: number,
): Promise<Replica> {
  const captured = capturingLogger();
  const userAgent = `signet-e2e-${identity}-${suffix}`;
  const running = await startTestOperator(
    {
      leaderElect: true,
      leaseNamespace: namespace,
      leaseName,
      namespace,
      identity,
      userAgent,
      applyConcurrency,
      metricsAddress: '127.0.0.1:0',
    },
    captured.logger,
  );
  return { identity, userAgent, running, lines: captured.lines };
}

/** Stops the replicas, then lets their GitRepositories go with the namespace (no operator left to finalize). */
async function stopReplicas(replicas: readonly Replica[], namespace: string): Promise<void> {
  for (const replica of replicas) await replica.running.stop();
  await releaseGitRepositories(admin, namespace);
}

function logsOf(replica: Replica): LogLine[] {
  return replica.lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

/** Wall-clock ms of the first log line `message` of `replica` (pino's ISO time, ms precision). */
function loggedAt(replica: Replica, message: string): number | undefined {
  const line = logsOf(replica).find((l) => l.msg === message);
  return line === undefined ? undefined : Date.parse(String(line.time));
}

const isLeader = (replica: Replica): boolean => replica.running.operator.isLeader();
const leaderMetric = async (replica: Replica): Promise<number | undefined> =>
  leaderGauge(await replica.running.operator.metrics.registry.metrics());

/** Microseconds since the epoch of an audit timestamp (RFC 3339 with up to nine fractional digits). */
function micros(timestamp: string): number {
  const match = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$/.exec(timestamp);
  if (match === null) throw new Error(`not an audit timestamp: ${timestamp}`);
  const fraction = (match[2] ?? '').padEnd(6, '0').slice(0, 6);
  return Date.parse(`${match[1]}Z`) * 1_000 + Number(fraction);
}

/** Reviews are POSTs (verb create) that persist nothing: the operator's SelfSubjectReview at start. */
const isReview = (e: AuditEvent): boolean =>
  /^\/apis\/(authentication|authorization)\.k8s\.io\//.test(e.requestURI);
const isLease = (e: AuditEvent): boolean => e.requestURI.includes('/apis/coordination.k8s.io/');

/** Write requests (create/update/patch/delete) the API server received from `replica`, oldest first. */
async function writesOf(replica: Replica): Promise<{ objects: AuditEvent[]; lease: AuditEvent[] }> {
  const writes = (await readAuditLog(auditLogPath))
    .filter((e) => e.userAgent === replica.userAgent && writeVerbs.has(e.verb) && !isReview(e))
    .sort((x, y) => micros(x.receivedAt) - micros(y.receivedAt));
  return { objects: writes.filter((e) => !isLease(e)), lease: writes.filter(isLease) };
}

const describeWrite = (e: AuditEvent): string => `${e.verb} ${e.requestURI} ${e.code} at ${e.receivedAt}`;

/**
 * A's writes received at or after its step-down: at most `applyConcurrency` requests that were
 * already on the wire (within the in-flight window), none later.
 */
function writesAfterStepDown(objects: readonly AuditEvent[], stepDownAt: number, applyConcurrency: number) {
  const after = objects.filter((e) => micros(e.receivedAt) >= stepDownAt * 1_000);
  const late = after.filter((e) => micros(e.receivedAt) > stepDownAt * 1_000 + inFlightWindowMicros);
  expect(late.map(describeWrite)).toEqual([]);
  expect(after.length).toBeLessThanOrEqual(applyConcurrency);
  return after;
}

/** `count` ConfigMaps `<prefix>-<i>` with `data.rev = rev`, 100 per file under `dir`. */
function revisionFiles(dir: string, prefix: string, rev: string, count: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let start = 0; start < count; start += 100) {
    const docs: string[] = [];
    for (let i = start; i < Math.min(count, start + 100); i++)
      docs.push(configMapYaml(`${prefix}-${i}`, { rev, index: String(i) }));
    files[`${dir}/${prefix}-${start / 100}.yaml`] = docs.join('---\n');
  }
  return files;
}

/** How many objects of GitRepository `name` hold each `data.rev`. */
async function revisionsLive(namespace: string, name: string): Promise<Record<string, number>> {
  const list = await admin.list('v1', 'ConfigMap', {
    namespace,
    labelSelector: `signet.dev/name=${name}`,
    timeoutMs: 15_000,
  });
  const counts: Record<string, number> = {};
  for (const item of list.items) {
    const rev = (item.data as Record<string, string> | undefined)?.rev ?? '';
    counts[rev] = (counts[rev] ?? 0) + 1;
  }
  return counts;
}

function waitApplied(
  namespace: string,
  name: string,
  commit: string,
  timeoutMs: number,
): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await repoStatus(admin, namespace, name);
      return s.lastAppliedRevision === `main@sha1:${commit}` && condition(s, 'Ready')?.status === 'True'
        ? s
        : undefined;
    },
    { timeoutMs, intervalMs: 100, description: `${namespace}/${name} to apply ${commit.slice(0, 12)}` },
  );
}

/** For `ms`: every object holds `rev`, `loser` never leads and its client sends no write. */
async function holdSteady(
  namespace: string,
  name: string,
  expected: Record<string, number>,
  loser: Replica,
  ms: number,
): Promise<void> {
  const clientWrites = () =>
    Object.entries(loser.running.operator.admin.stats.byMethod)
      .filter(([method]) => method !== 'GET' && method !== 'WATCH')
      .reduce((sum, [, count]) => sum + count, 0);
  const before = clientWrites();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    expect(await revisionsLive(namespace, name)).toEqual(expected);
    expect(isLeader(loser)).toBe(false);
    expect(clientWrites()).toBe(before);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

beforeAll(async () => {
  // The local control plane keeps its audit log next to its kubeconfig (e2e/support/controlplane.ts).
  auditLogPath = join(dirname(kubeconfigPath()), 'logs', 'audit.log');
  if (!existsSync(auditLogPath)) {
    throw new Error(
      `e2e/lease-race counts each replica's writes in the kube-apiserver audit log, expected at ${auditLogPath}: run it against the local control plane the e2e setup starts (KUBECONFIG unset) or one from 'make cluster-up'`,
    );
  }
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('race');
  await signed.commit({ 'README.md': 'lease race\n' });
}, 120_000);

afterAll(async () => {
  await signed?.close();
  await admin?.close();
});

describe('the Lease taken away in the middle of a reconcile', () => {
  const ns = useTestNamespace('signet-lease-race');
  const leaseName = 'signet-race';
  const objectCount = 1_000;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    await createObjects(admin, trustObjects(signed, ns.name));
  });

  afterAll(async () => {
    await stopReplicas(replicas, ns.name);
  });

  it('the loser steps down at its next renewal and sends no write afterwards; the new leader’s revision is the only one left', async () => {
    // A applies one object at a time, so that the 1,000-object revision takes seconds.
    const a = await startReplica(ns.name, leaseName, 'replica-a', 1);
    replicas.push(a);
    await waitFor(() => isLeader(a), { timeoutMs: 30_000, description: 'replica-a to lead' });
    const b = await startReplica(ns.name, leaseName, 'replica-b', 8);
    replicas.push(b);
    // B is a standby: it keeps trying and finds A's live lease each time.
    expect(isLeader(b)).toBe(false);

    const older = await signed.commit(revisionFiles('deploy', 'race', 'older', objectCount));
    await admin.apply(gitRepositoryObject(signed, ns.name, 'race', { interval: '1h', path: './deploy' }), {
      fieldManager: 'e2e',
    });
    await waitFor(async () => ((await revisionsLive(ns.name, 'race')).older ?? 0) >= 50, {
      timeoutMs: 60_000,
      intervalMs: 50,
      description: "replica-a applying the older revision's objects",
    });
    expect(isLeader(b)).toBe(false);

    // The Lease moves to replica-b, valid for a full lease duration (a partition seen from A).
    const movedAt = Date.now();
    const now = microTime(new Date(movedAt));
    const patched = await admin.request({
      method: 'PATCH',
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${leaseName}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({
        spec: {
          holderIdentity: 'replica-b',
          acquireTime: now,
          renewTime: now,
          leaseDurationSeconds: leaseDurationMs / 1_000,
        },
      }),
      timeoutMs: 15_000,
    });
    expect(patched.status).toBe(200);
    const stepDownAt = await waitFor(() => loggedAt(a, 'lost leadership: stopped reconciling'), {
      timeoutMs: retryPeriodMs + 10_000,
      intervalMs: 10,
      description: 'replica-a to step down',
    });
    const stepDownMs = stepDownAt - movedAt;
    expect(isLeader(a)).toBe(false);
    expect(logsOf(a).find((l) => l.msg === 'lost leadership: stopped reconciling')).toMatchObject({
      level: 40,
      reason: 'held-by-another',
      holder: 'replica-b',
    });
    // At its first renewal after the move (one retry period, 2 s), not at the renew deadline (10 s).
    expect(stepDownMs).toBeLessThanOrEqual(retryPeriodMs + 2_000);
    expect(await leaderMetric(a)).toBe(0);
    const olderAtStepDown = (await revisionsLive(ns.name, 'race')).older ?? 0;
    expect(olderAtStepDown).toBeLessThan(objectCount);

    // B leads at its own next renewal (the Lease names it) and picks the GitRepository up.
    const bLeadsAt = await waitFor(() => loggedAt(b, 'became leader'), {
      timeoutMs: retryPeriodMs + 10_000,
      intervalMs: 10,
      description: 'replica-b to lead',
    });
    expect(await leaderMetric(b)).toBe(1);

    // The newer revision, once A has stepped down; B applies it (requested, not left to the 1 h interval).
    const newer = await signed.commit(revisionFiles('deploy', 'race', 'newer', objectCount));
    const newerPushedAt = Date.now();
    await admin.request({
      method: 'PATCH',
      path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/race`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({
        metadata: { annotations: { 'reconcile.signet.dev/requestedAt': new Date().toISOString() } },
      }),
      timeoutMs: 15_000,
    });
    const status = await waitApplied(ns.name, 'race', newer, 90_000);
    const readyAt = Date.now();
    expect(status.lastAppliedRevision).not.toBe(`main@sha1:${older}`);
    expect(status.inventory?.entries).toHaveLength(objectCount);
    expect(await revisionsLive(ns.name, 'race')).toEqual({ newer: objectCount });

    // For 3 s more: every object keeps the newer revision, A never leads and sends nothing.
    await holdSteady(ns.name, 'race', { newer: objectCount }, a, 3_000);
    expect(isLeader(b)).toBe(true);
    expect(logsOf(a).filter((l) => l.msg === 'became leader')).toHaveLength(1);

    // What the API server received from A, by its user agent.
    const aWrites = await writesOf(a);
    const bWrites = await writesOf(b);
    const inFlight = writesAfterStepDown(aWrites.objects, stepDownAt, 1);
    // After the step-down A only reads the Lease (it is B's): no Lease write either.
    expect(
      aWrites.lease.filter((e) => micros(e.receivedAt) >= stepDownAt * 1_000).map(describeWrite),
    ).toEqual([]);
    const aLastWrite = aWrites.objects.at(-1);
    expect(aLastWrite).toBeDefined();
    // No double apply of conflicting revisions: every write of A came before B's first write of the newer one.
    const bNewerWrites = bWrites.objects.filter((e) => micros(e.receivedAt) >= newerPushedAt * 1_000);
    expect(bNewerWrites.length).toBeGreaterThanOrEqual(objectCount);
    expect(micros(aLastWrite!.receivedAt)).toBeLessThan(micros(bNewerWrites[0]!.receivedAt));
    // B's first write at all (its Lease renewal, then the older revision it found in Git when it
    // took over): negative when A was still writing, in its last retry period before noticing.
    const bFirstWrite = [...bWrites.lease, ...bWrites.objects].sort(
      (x, y) => micros(x.receivedAt) - micros(y.receivedAt),
    )[0];
    expect(bFirstWrite).toBeDefined();
    const gapMs = (micros(bFirstWrite!.receivedAt) - micros(aLastWrite!.receivedAt)) / 1_000;
    const aAfterMove = aWrites.objects.filter((e) => micros(e.receivedAt) >= movedAt * 1_000);

    console.info(
      `lease taken away: replica-a stepped down ${stepDownMs} ms after the move (${olderAtStepDown}/${objectCount} of the older revision live); ` +
        `replica-a object writes received by the API server: ${aWrites.objects.length} in all, ${aAfterMove.length} between the move and its step-down, ` +
        `${inFlight.length} at or after its step-down${inFlight.length === 0 ? '' : ` (${inFlight.map((e) => `${(micros(e.receivedAt) - stepDownAt * 1_000) / 1_000} ms after`).join(', ')})`}; ` +
        `replica-b led ${bLeadsAt - movedAt} ms after the move; B's first write came ${gapMs.toFixed(0)} ms after A's last; ` +
        `A's last write ${((micros(bNewerWrites[0]!.receivedAt) - micros(aLastWrite!.receivedAt)) / 1_000).toFixed(0)} ms before B's first write of the newer revision; ` +
        `newer revision Ready ${readyAt - newerPushedAt} ms after the push (${readyAt - movedAt} ms after the move)`,
    );
  }, 180_000);
});

describe('the leader partitioned from its Lease in the middle of a reconcile', () => {
  const ns = useTestNamespace('signet-lease-partition');
  const leaseName = 'signet-partition';
  // Replica A (apply concurrency 1) must still be applying at its renew deadline, ~10 s after the
  // partition: a quiet machine applied 3,000 objects before it (on feec3da's code too).
  const objectCount = 8_000;
  const replicas: Replica[] = [];
  const policyName = `signet-e2e-lease-partition-${suffix}`;
  const policyRef = (kind: string) => ({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    name: policyName,
  });

  beforeAll(async () => {
    await createObjects(admin, trustObjects(signed, ns.name));
  });

  afterAll(async () => {
    for (const kind of ['ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicy'])
      await admin.delete(policyRef(kind)).catch(() => undefined);
    await stopReplicas(replicas, ns.name);
  });

  it('the leader stops at its renew deadline; the standby takes the expired lease only afterwards and its newer revision is the only one left', async () => {
    const a = await startReplica(ns.name, leaseName, 'partitioned-a', 1);
    replicas.push(a);
    await waitFor(() => isLeader(a), { timeoutMs: 30_000, description: 'partitioned-a to lead' });
    const b = await startReplica(ns.name, leaseName, 'standby-b', 8);
    replicas.push(b);
    expect(isLeader(b)).toBe(false);

    await signed.commit(revisionFiles('partition', 'part', 'older', objectCount));
    await admin.apply(
      gitRepositoryObject(signed, ns.name, 'partition', { interval: '1h', path: './partition' }),
      { fieldManager: 'e2e' },
    );
    await waitFor(async () => ((await revisionsLive(ns.name, 'partition')).older ?? 0) >= 20, {
      timeoutMs: 60_000,
      intervalMs: 50,
      description: "partitioned-a applying the older revision's objects",
    });

    // The partition: the API server refuses every write of this Lease that names partitioned-a as
    // holder (its renewals), while its ConfigMap writes still go through.
    await admin.apply(
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: policyName },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: ['coordination.k8s.io'],
                apiVersions: ['v1'],
                resources: ['leases'],
                operations: ['CREATE', 'UPDATE'],
                resourceNames: [leaseName],
              },
            ],
          },
          validations: [
            {
              expression:
                "!has(object.spec) || !has(object.spec.holderIdentity) || object.spec.holderIdentity != 'partitioned-a'",
              message: 'e2e partition: partitioned-a cannot reach its Lease',
            },
          ],
        },
      },
      { fieldManager: 'e2e' },
    );
    await admin.apply(
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: policyName },
        spec: {
          policyName,
          validationActions: ['Deny'],
          matchResources: {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns.name } },
          },
        },
      },
      { fieldManager: 'e2e' },
    );
    // In force once a dry-run renewal naming partitioned-a is refused.
    await waitFor(
      async () => {
        const response = await admin.request({
          method: 'PATCH',
          path: `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${leaseName}?dryRun=All`,
          headers: { 'content-type': 'application/merge-patch+json' },
          body: JSON.stringify({
            spec: { holderIdentity: 'partitioned-a', renewTime: microTime(new Date()) },
          }),
          timeoutMs: 15_000,
        });
        return response.status >= 400;
      },
      { timeoutMs: 30_000, intervalMs: 50, description: 'the partition policy in force' },
    );
    const partitionedAt = Date.now();
    // The newer revision is in Git from now on: whoever reconciles next applies it.
    const newer = await signed.commit(revisionFiles('partition', 'part', 'newer', objectCount));

    const stepDownAt = await waitFor(() => loggedAt(a, 'lost leadership: stopped reconciling'), {
      timeoutMs: renewDeadlineMs + retryPeriodMs + 10_000,
      intervalMs: 10,
      description: 'partitioned-a to step down',
    });
    expect(logsOf(a).find((l) => l.msg === 'lost leadership: stopped reconciling')).toMatchObject({
      level: 40,
      reason: 'renew-deadline',
    });
    expect(await leaderMetric(a)).toBe(0);
    const olderAtStepDown = (await revisionsLive(ns.name, 'partition')).older ?? 0;
    // A was still applying when its deadline came: the stop is what ended its writes.
    expect(olderAtStepDown).toBeLessThan(objectCount);

    const status = await waitApplied(ns.name, 'partition', newer, leaseDurationMs + 120_000);
    const readyAt = Date.now();
    expect(status.inventory?.entries).toHaveLength(objectCount);
    expect(await revisionsLive(ns.name, 'partition')).toEqual({ newer: objectCount });
    await holdSteady(ns.name, 'partition', { newer: objectCount }, a, 3_000);
    expect(isLeader(b)).toBe(true);
    const bLeadsAt = loggedAt(b, 'became leader');
    expect(bLeadsAt).toBeDefined();

    const aWrites = await writesOf(a);
    const bWrites = await writesOf(b);
    // A's last renewal the API server accepted, and the step-down on A's own clock.
    const aRenewals = aWrites.lease.filter((e) => e.code < 300);
    const aLastRenewal = aRenewals.at(-1);
    expect(aLastRenewal).toBeDefined();
    const sinceRenewalMs = stepDownAt - micros(aLastRenewal!.receivedAt) / 1_000;
    // The renew deadline is counted from the start of that renewal (its read came first).
    expect(sinceRenewalMs).toBeGreaterThan(renewDeadlineMs - 1_000);
    expect(sinceRenewalMs).toBeLessThan(renewDeadlineMs + 1_000);
    // Every Lease write of A after that one was refused by the partition.
    const refused = aWrites.lease.filter((e) => micros(e.receivedAt) > micros(aLastRenewal!.receivedAt));
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.filter((e) => e.code < 400).map(describeWrite)).toEqual([]);
    const inFlight = writesAfterStepDown(aWrites.objects, stepDownAt, 1);
    // B took the Lease only once it had expired: a lease duration after A's last renewal.
    const bAcquired = bWrites.lease.find((e) => e.code < 300);
    expect(bAcquired).toBeDefined();
    const takeoverAfterRenewalMs = (micros(bAcquired!.receivedAt) - micros(aLastRenewal!.receivedAt)) / 1_000;
    expect(takeoverAfterRenewalMs).toBeGreaterThan(leaseDurationMs - 1_000);
    // No double apply: A's last write reached the API server before B's first write of any kind.
    const aLastWrite = aWrites.objects.at(-1);
    const bFirstObjectWrite = bWrites.objects[0];
    expect(aLastWrite).toBeDefined();
    expect(bFirstObjectWrite).toBeDefined();
    const marginMs = (micros(bAcquired!.receivedAt) - micros(aLastWrite!.receivedAt)) / 1_000;
    expect(marginMs).toBeGreaterThan(0);
    expect(micros(aLastWrite!.receivedAt)).toBeLessThan(micros(bFirstObjectWrite!.receivedAt));

    console.info(
      `lease partition: partitioned-a's last accepted renewal ${((micros(aLastRenewal!.receivedAt) / 1_000 - partitionedAt) / 1_000).toFixed(1)} s after the policy was in force; ` +
        `it stepped down ${sinceRenewalMs.toFixed(0)} ms after that renewal (${olderAtStepDown}/${objectCount} of the older revision live), ` +
        `${refused.length} renewals refused; object writes at or after the step-down: ${inFlight.length}; ` +
        `standby-b took the lease ${takeoverAfterRenewalMs.toFixed(0)} ms after A's last renewal, ${marginMs.toFixed(0)} ms after A's last write; ` +
        `B led ${bLeadsAt! - partitionedAt} ms after the partition; newer revision Ready ${readyAt - partitionedAt} ms after the partition`,
    );
  }, 240_000);
});
