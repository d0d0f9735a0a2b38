// Two replicas racing for one Lease on the real API server. Replica A leads and is in the middle of
// applying a 1,000-object revision when the Lease moves to replica B (what A would find after a
// partition). A must notice at its next renewal, step down and stop writing at once; B applies a
// newer revision of the same objects; nothing of A's older revision survives or comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLeaseTimings, microTime } from '../src/controller/leader.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { createObjects, gitRepositoryObject, trustObjects } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-lease-race');
const leaseName = 'signet-race';
const objectCount = 1_000;
let admin: KubeClient;
let signed: SignedRepo;
const replicas: Awaited<ReturnType<typeof startTestOperator>>[] = [];

/** `objectCount` ConfigMaps `race-<i>` with `data.rev = rev`, 100 per file. */
function revisionFiles(rev: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let start = 0; start < objectCount; start += 100) {
    const docs: string[] = [];
    for (let i = start; i < start + 100; i++)
      docs.push(configMapYaml(`race-${i}`, { rev, index: String(i) }));
    files[`deploy/race-${start / 100}.yaml`] = docs.join('---\n');
  }
  return files;
}

/** Write requests (anything but GET and WATCH) the replica's own client has sent so far. */
function writesOf(replica: (typeof replicas)[number]): number {
  const { byMethod } = replica.operator.admin.stats;
  return Object.entries(byMethod)
    .filter(([method]) => method !== 'GET' && method !== 'WATCH')
    .reduce((sum, [, count]) => sum + count, 0);
}

async function revisionsLive(): Promise<Map<string, number>> {
  const list = await admin.list('v1', 'ConfigMap', {
    namespace: ns.name,
    labelSelector: 'signet.dev/name=race',
    timeoutMs: 15_000,
  });
  const counts = new Map<string, number>();
  for (const item of list.items) {
    const rev = (item.data as Record<string, string> | undefined)?.rev ?? '';
    counts.set(rev, (counts.get(rev) ?? 0) + 1);
  }
  return counts;
}

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('race');
  await signed.commit({ 'README.md': 'lease race\n' });
  await createObjects(admin, trustObjects(signed, ns.name));
}, 120_000);

afterAll(async () => {
  for (const replica of replicas) await replica.stop();
  await signed?.close();
  await admin?.close();
});

describe('lease lost in the middle of a reconcile', () => {
  it('the loser steps down at its next renewal and stops writing; the new leader’s revision is the only one left', async () => {
    const election = { leaderElect: true, leaseNamespace: ns.name, leaseName, namespace: ns.name };
    // A applies one object at a time so that the 1,000-object revision takes seconds.
    const a = await startTestOperator({ ...election, identity: 'replica-a', applyConcurrency: 1 });
    replicas.push(a);
    await waitFor(() => a.operator.isLeader() || undefined, {
      timeoutMs: 30_000,
      description: 'replica-a to lead',
    });

    const older = await signed.commit(revisionFiles('older'));
    await admin.apply(gitRepositoryObject(signed, ns.name, 'race', { interval: '1h', path: './deploy' }), {
      fieldManager: 'e2e',
    });
    await waitFor(
      async () => {
        const n = (await revisionsLive()).get('older') ?? 0;
        return n >= 50 ? n : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 50, description: "replica-a applying the older revision's objects" },
    );

    // The Lease moves to replica-b, valid for a full lease duration: A's next renewal finds it.
    const movedAt = Date.now();
    const now = microTime(new Date());
    const patched = await admin.request({
      method: 'PATCH',
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${leaseName}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({
        spec: {
          holderIdentity: 'replica-b',
          acquireTime: now,
          renewTime: now,
          leaseDurationSeconds: defaultLeaseTimings.leaseDurationMs / 1_000,
        },
      }),
      timeoutMs: 15_000,
    });
    expect(patched.status).toBe(200);
    await waitFor(() => (a.operator.isLeader() ? undefined : true), {
      timeoutMs: defaultLeaseTimings.retryPeriodMs + 3_000,
      intervalMs: 10,
      description: 'replica-a to step down',
    });
    const stepDownMs = Date.now() - movedAt;
    // Well inside the renew deadline (10 s): at the first renewal after the move.
    expect(stepDownMs).toBeLessThan(defaultLeaseTimings.renewDeadlineMs);
    const writesAtStepDown = writesOf(a);
    const olderApplied = (await revisionsLive()).get('older') ?? 0;
    expect(olderApplied).toBeLessThan(objectCount);

    // B holds the Lease (its own identity is the holder) and applies a newer revision of the same objects.
    const newer = await signed.commit(revisionFiles('newer'));
    const b = await startTestOperator({ ...election, identity: 'replica-b', applyConcurrency: 8 });
    replicas.push(b);
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'race');
        return s.lastAppliedRevision === `main@sha1:${newer}` && condition(s, 'Ready')?.status === 'True'
          ? s
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200, description: 'replica-b to apply the newer revision' },
    );
    const convergedMs = Date.now() - movedAt;
    expect(status.lastAppliedRevision).not.toBe(`main@sha1:${older}`);
    expect(status.inventory?.entries).toHaveLength(objectCount);

    // For the next 3 s: every object holds the newer revision, A sends nothing and never leads.
    const holdUntil = Date.now() + 3_000;
    while (Date.now() < holdUntil) {
      const live = await revisionsLive();
      expect(Object.fromEntries(live)).toEqual({ newer: objectCount });
      expect(a.operator.isLeader()).toBe(false);
      expect(writesOf(a)).toBe(writesAtStepDown);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(b.operator.isLeader()).toBe(true);
    console.info(
      `lease race: replica-a stepped down ${stepDownMs} ms after the Lease moved, with ${olderApplied}/${objectCount} of the older revision applied; replica-b applied the newer revision ${convergedMs} ms after the move; replica-a writes after stepping down: ${writesOf(a) - writesAtStepDown}`,
    );
  });
});
