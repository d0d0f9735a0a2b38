// A restart without a storm (issue 18): 20 GitRepositories, each a path of one signed monorepo, are
// applied by one in-process operator; it stops and a fresh operator starts on the same Git cache
// directory (a restart on the same node). Counted from the API server's audit log by user agent and
// from the Git source's request hook: the fresh operator brings every GitRepository back to Ready
// with no PATCH of any managed object, at most 3 requests per GitRepository (the informers' lists
// and watches excluded), no pack fetched and at most 2 ref polls. Drift made while no operator ran (an edited and a
// deleted ConfigMap) is still reverted, and only those two objects are applied. A restart with an
// empty cache directory (an emptyDir) fetches again and reaches the same state. All 20 share one
// object store and one ref poll (same URL, same credentials): one pack per cold start.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { type AuditEvent, localAuditLogPath, readAuditLog } from './support/audit.ts';
import { gitRepositoryObject, releaseGitRepositories } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { capturingLogger, configMapYaml, startTestOperator, waitAllReady } from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-fleet-restart');
const fleetSize = 20;
const names = Array.from({ length: fleetSize }, (_, i) => `team-${i}`);
let admin: KubeClient;
let signed: Awaited<ReturnType<typeof startSuite>>['signed'];
let cacheDir: string;
let auditLogPath: string;
type TestOperator = Awaited<ReturnType<typeof startTestOperator>>;
let running: TestOperator | undefined;

function serviceAccountYaml(name: string): string {
  return `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n`;
}

/** Git requests of one operator, by method (GET: ref advertisement, POST: pack). */
function gitCounter(): { counts: Map<string, number>; onRequest: (method: string) => void } {
  const counts = new Map<string, number>();
  return { counts, onRequest: (method) => counts.set(method, (counts.get(method) ?? 0) + 1) };
}

/** Starts an operator under its own user agent and waits until it has reconciled every GitRepository once. */
async function startAndSettle(
  userAgent: string,
  dir: string,
  git: ReturnType<typeof gitCounter>,
): Promise<TestOperator> {
  const captured = capturingLogger(userAgent);
  running = await startTestOperator({ userAgent, namespace: ns.name, concurrent: 4 }, captured.logger, {
    cacheDir: dir,
    onRequest: git.onRequest,
  });
  const operator = running;
  const warnings = () =>
    captured.lines
      .filter((line) => /"level":(4|5)\d/.test(line))
      .slice(0, 5)
      .join('\n');
  await waitFor(
    async () => {
      const values = (await operator.operator.metrics.reconcilesTotal.get()).values;
      const done = values.filter((v) => v.labels.result !== 'failed').reduce((sum, v) => sum + v.value, 0);
      return done >= fleetSize;
    },
    { timeoutMs: 60_000, description: `${userAgent} to reconcile all ${fleetSize} GitRepositories` },
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}; first warnings:\n${warnings()}`);
  });
  await waitAllReady(admin, ns.name, names, 60_000);
  return operator;
}

/** The requests `userAgent` sent, apart from the informers' lists and watches. */
async function requestsOf(userAgent: string): Promise<AuditEvent[]> {
  return (await readAuditLog(auditLogPath)).filter(
    (e) => e.userAgent.startsWith(userAgent) && e.verb !== 'list' && e.verb !== 'watch',
  );
}

const managedPath = (kind: 'configmaps' | 'serviceaccounts', name: string) =>
  `/api/v1/namespaces/${ns.name}/${kind}/${name}`;

function managedPatches(events: readonly AuditEvent[]): string[] {
  return events
    .filter((e) => e.verb === 'patch' && /\/(configmaps|serviceaccounts)\//.test(e.requestURI))
    .map((e) => e.requestURI.split('?')[0] ?? '');
}

/** A short per-verb/resource breakdown for the report. */
function breakdown(events: readonly AuditEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) {
    const resource = (e.requestURI.split('?')[0] ?? '').replace(/\/[^/]+$/, '');
    const key = `${e.verb} ${resource.replace(ns.name, '<ns>')}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

beforeAll(async () => {
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'fleet-restart' }));
  auditLogPath = localAuditLogPath('e2e/fleet-restart', "the operator's requests");
  const files: Record<string, string> = {};
  for (const name of names) {
    files[`teams/${name}/config.yaml`] = configMapYaml(`${name}-config`, { team: name, color: 'blue' });
    files[`teams/${name}/sa.yaml`] = serviceAccountYaml(`${name}-sa`);
  }
  await signed.commit(files);
  cacheDir = await mkdtemp(join(tmpdir(), 'signet-fleet-cache-'));
  for (const name of names) {
    await admin.apply(
      gitRepositoryObject(signed, ns.name, name, { interval: '10m', path: `./teams/${name}` }),
      { fieldManager: 'e2e' },
    );
  }
}, 120_000);

/** Stops the running operator (also when a test failed before its own stop). */
async function stopRunning(): Promise<void> {
  const operator = running;
  running = undefined;
  await operator?.stop();
}

afterEach(stopRunning);

afterAll(async () => {
  await stopRunning();
  await releaseGitRepositories(admin, ns.name);
  await closeAll(signed, admin);
  if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
});

describe('a restart with nothing changed', () => {
  it('the first operator applies all 20 GitRepositories (2 objects each) from one monorepo', async () => {
    const git = gitCounter();
    await startAndSettle('signet-fleet/first', cacheDir, git);
    const patches = managedPatches(await requestsOf('signet-fleet/first'));
    expect(patches.length).toBe(fleetSize * 2);
    console.log('cold start:', JSON.stringify({ git: Object.fromEntries(git.counts) }));
    // Shared fetches: one pack for the 20, and ref polls shared while in flight or recent.
    expect(git.counts.get('POST')).toBe(1);
    expect(git.counts.get('GET') ?? 0).toBeLessThanOrEqual(3);
    await stopRunning();
  }, 180_000);

  it('the restarted operator (same cache) reaches Ready with 0 managed PATCHes, ≤ 3 requests per GitRepository and no pack fetched', async () => {
    const git = gitCounter();
    await startAndSettle('signet-fleet/restart', cacheDir, git);
    const events = await requestsOf('signet-fleet/restart');
    const perRepository = events.filter(
      (e) => e.requestURI.includes(`/namespaces/${ns.name}/`) || e.requestURI.includes('validatingadmission'),
    );
    console.log(
      'restart (same cache):',
      JSON.stringify({
        requests: events.length,
        perGitRepository: perRepository.length / fleetSize,
        git: Object.fromEntries(git.counts),
        breakdown: breakdown(events),
      }),
    );
    expect(managedPatches(events)).toEqual([]);
    expect(perRepository.length).toBeLessThanOrEqual(3 * fleetSize);
    expect(git.counts.get('POST') ?? 0).toBe(0);
    expect(git.counts.get('GET') ?? 0).toBeLessThanOrEqual(2);
    await stopRunning();
  }, 180_000);

  it('drift made while no operator ran is reverted after the restart, and only the drifted objects are applied', async () => {
    await admin.request({
      method: 'PATCH',
      path: `${managedPath('configmaps', 'team-0-config')}?fieldManager=kubectl-edit`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { color: 'red' } }),
      timeoutMs: 15_000,
    });
    await admin.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'team-1-config', namespace: ns.name });
    const git = gitCounter();
    await startAndSettle('signet-fleet/drifted', cacheDir, git);
    const events = await requestsOf('signet-fleet/drifted');
    expect(managedPatches(events).sort()).toEqual(
      [managedPath('configmaps', 'team-0-config'), managedPath('configmaps', 'team-1-config')].sort(),
    );
    const color = async (name: string) =>
      (
        (await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name }))?.data as
          | Record<string, string>
          | undefined
      )?.color;
    expect(await color('team-0-config')).toBe('blue');
    expect(await color('team-1-config')).toBe('blue');
    expect(git.counts.get('POST') ?? 0).toBe(0);
    await stopRunning();
  }, 180_000);

  it('a restart with an empty cache directory fetches again and applies nothing', async () => {
    const emptyDir = await mkdtemp(join(tmpdir(), 'signet-fleet-empty-'));
    try {
      const git = gitCounter();
      await startAndSettle('signet-fleet/emptydir', emptyDir, git);
      const events = await requestsOf('signet-fleet/emptydir');
      console.log('restart (empty cache):', JSON.stringify({ git: Object.fromEntries(git.counts) }));
      expect(managedPatches(events)).toEqual([]);
      expect(git.counts.get('POST') ?? 0).toBe(1);
      await stopRunning();
    } finally {
      await rm(emptyDir, { recursive: true, force: true });
    }
  }, 180_000);
});
