// The whole loop against the real control plane: a signed repository over HTTPS, the operator
// reconciling it, a new signed commit rolled out, an unsigned commit refused with the last good
// revision in force, pruning, drift reverted and alerted to a real Slack stand-in, the finalizer;
// each step also read back from the operator's own /metrics, /healthz and /readyz over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { Receiver } from '../test/notify/support.ts';
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
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-operator');
let admin: KubeClient;
let editor: KubeClient;
let signed: SignedRepo;
let slack: Receiver;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
const captured = capturingLogger();

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** GET a path of the operator's metrics or health server. */
async function scrape(port: number | undefined, path: string): Promise<{ status: number; text: string }> {
  if (port === undefined) throw new Error(`no server for ${path}: the operator was started without it`);
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, text: await response.text() };
}

/** Samples of the Prometheus text format (`name{a="b",...} value`), comments skipped. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = pair[2] as string;
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

async function metrics(): Promise<Sample[]> {
  const { status, text } = await scrape(operator.operator.ports.metrics, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  return parseMetrics(text);
}

/** Value of the sample `name` whose labels include `labels` (undefined when absent). */
/** Reconciles finished so far, whatever their result. */
function reconcilesSoFar(samples: readonly Sample[]): number {
  return samples
    .filter((sample) => sample.name === 'signet_reconciles_total')
    .reduce((sum, sample) => sum + sample.value, 0);
}

function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  return samples.find(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  )?.value;
}

beforeAll(async () => {
  admin = await adminClient();
  editor = await adminClient('kubectl-edit/1.0');
  await installCrd(admin);
  signed = await createSignedRepo();
  slack = new Receiver();
  await slack.listen();
  await signed.commit({
    'deploy/app.yaml': configMapYaml('app', { color: 'blue' }),
    'deploy/extra.yaml': configMapYaml('extra', { keep: 'no' }),
    'README.md': 'not a manifest path\n',
  });
  await createObjects(admin, trustObjects(signed, ns.name, { slackAddress: slack.url('http') }));
  // Kept to this file's namespace (--namespace): GitRepositories that earlier test files left behind
  // (namespaces still terminating) would otherwise be reconciled and finalized by this operator, and
  // their requests counted below (a CI-check run under load counted 11 finalizer PATCHes in the
  // docs-only commit's window).
  operator = await startTestOperator(
    { metricsAddress: '127.0.0.1:0', healthAddress: '127.0.0.1:0', namespace: ns.name },
    captured.logger,
  );
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'apps', {
      interval: '1s',
      path: './deploy',
      alerts: { slack: { secretRef: { name: 'slack' } } },
    }),
    { fieldManager: 'e2e' },
  );
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await slack?.close();
  await signed?.close();
  await admin?.close();
  await editor?.close();
});

function head(): Promise<string> {
  return signed.repo.git(['rev-parse', 'HEAD']);
}

describe('the operator on a real API server', () => {
  it('verifies and applies the signed revision, with status, labels, managed fields and an Event', async () => {
    const commit = await head();
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'apps');
        return condition(s, 'Ready')?.status === 'True' ? s : undefined;
      },
      { timeoutMs: 60_000, description: 'GitRepository Ready' },
    );
    expect(status.lastAppliedRevision).toBe(`main@sha1:${commit}`);
    expect(status.lastAttemptedRevision).toBe(`main@sha1:${commit}`);
    expect(condition(status, 'Verified')).toMatchObject({ status: 'True', reason: 'Verified' });
    expect(status.verification?.signer).toMatchObject({ type: 'ssh', principal: 'release@example.com' });
    expect(status.inventory?.entries.map((e) => e.id)).toEqual([
      `${ns.name}_app__ConfigMap`,
      `${ns.name}_extra__ConfigMap`,
    ]);
    expect(status.observedGeneration).toBe(1);
    const app = await admin.get(configMap('app'));
    expect(app?.data).toEqual({ color: 'blue' });
    expect(app?.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'signet',
      'signet.dev/name': 'apps',
      'signet.dev/namespace': ns.name,
    });
    expect(app?.metadata.managedFields?.some((f) => f.manager === 'signet' && f.operation === 'Apply')).toBe(
      true,
    );
    const events = await admin.list('v1', 'Event', {
      namespace: ns.name,
      fieldSelector: 'involvedObject.name=apps',
    });
    expect(events.items.map((e) => e.message as string)).toContainEqual(
      expect.stringContaining(`Applied revision main@sha1:${commit} signed by ssh key SHA256:`),
    );

    // The same reconcile, as Prometheus scrapes it (observed right after the status write).
    const samples = await waitFor(
      async () => {
        const scraped = await metrics();
        return (sampleValue(scraped, 'signet_reconciles_total', { result: 'applied' }) ?? 0) >= 1
          ? scraped
          : undefined;
      },
      { timeoutMs: 10_000, description: 'signet_reconciles_total{result="applied"} on /metrics' },
    );
    const buckets = samples.filter(
      (s) => s.name === 'signet_reconcile_duration_seconds_bucket' && s.labels.result === 'applied',
    );
    expect(buckets.map((s) => s.labels.le)).toEqual([
      '0.01',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '10',
      '30',
      '60',
      '120',
      '+Inf',
    ]);
    const applied = sampleValue(samples, 'signet_reconciles_total', { result: 'applied' });
    // Cumulative buckets, +Inf holding every observation (one per reconcile of that result).
    const counts = buckets.map((s) => s.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(
      sampleValue(samples, 'signet_reconcile_duration_seconds_count', { result: 'applied' }),
    );
    expect(counts.at(-1)).toBe(applied);
    expect(
      sampleValue(samples, 'signet_reconcile_duration_seconds_sum', { result: 'applied' }),
    ).toBeGreaterThan(0);
    expect(sampleValue(samples, 'signet_managed_objects', { namespace: ns.name, name: 'apps' })).toBe(2);

    // /healthz (alive) and /readyz (GitRepository cache synced) on the health server.
    expect(await scrape(operator.operator.ports.health, '/healthz')).toEqual({ status: 200, text: 'ok' });
    expect(await scrape(operator.operator.ports.health, '/readyz')).toEqual({ status: 200, text: 'ok' });
  });

  it('rolls out a new signed commit and prunes what left Git', async () => {
    const commit = await signed.commit({
      'deploy/app.yaml': configMapYaml('app', { color: 'green' }),
      'deploy/extra.yaml': null,
    });
    await waitFor(
      async () => (await repoStatus(admin, ns.name, 'apps')).lastAppliedRevision === `main@sha1:${commit}`,
      {
        timeoutMs: 30_000,
        description: 'the new revision applied',
      },
    );
    expect((await admin.get(configMap('app')))?.data).toEqual({ color: 'green' });
    await waitFor(async () => (await admin.get(configMap('extra'))) === undefined, {
      timeoutMs: 10_000,
      description: 'extra pruned',
    });
    expect((await repoStatus(admin, ns.name, 'apps')).inventory?.entries.map((e) => e.id)).toEqual([
      `${ns.name}_app__ConfigMap`,
    ]);
    expect(sampleValue(await metrics(), 'signet_managed_objects', { namespace: ns.name, name: 'apps' })).toBe(
      1,
    );
  });

  it('records a signed commit that changes nothing under spec.path as applied, without rendering or applying', async () => {
    const before = await repoStatus(admin, ns.name, 'apps');
    // The previous reconcile ends with its Event, written after the status the last test waited
    // for: count from after it, so only this commit's requests are counted.
    await waitFor(
      async () =>
        (
          await admin.list('v1', 'Event', {
            namespace: ns.name,
            fieldSelector: 'involvedObject.kind=GitRepository,involvedObject.name=apps',
          })
        ).items.some((e) =>
          String((e as { message?: string }).message).includes(
            `Applied revision ${before.lastAppliedRevision}`,
          ),
        ),
      { timeoutMs: 10_000, description: 'the Event of the previous revision' },
    );
    const stats = operator.operator.admin.stats;
    const methodsBefore = { ...stats.byMethod };
    const reconcilesBefore = reconcilesSoFar(await metrics());
    const commit = await signed.commit({ 'README.md': 'docs only: no manifest changed\n' });
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'apps');
        return s.lastAppliedRevision === `main@sha1:${commit}` ? s : undefined;
      },
      { timeoutMs: 30_000, description: 'the docs-only revision recorded' },
    );
    expect(condition(status, 'Ready')).toMatchObject({ status: 'True', reason: 'ReconciliationSucceeded' });
    expect(condition(status, 'Ready')?.message).toContain(
      `manifests unchanged since ${before.lastAppliedRevision ?? ''}`,
    );
    expect(status.inventory).toEqual(before.inventory);
    expect(status.verification?.commit).toBe(commit);
    // One status patch and one Event, no apply, no dry-run (both would be PATCHes), nothing deleted.
    // GETs: the repository's Secret for each reconcile's ls-remote (at spec.interval 1 s other,
    // unchanged reconciles may fall inside this window), plus the signers ConfigMap once, for the
    // commit that was verified. Watches re-established meanwhile are not counted.
    // Counted once that reconcile has finished (its Event is its last write).
    const reconciles = await waitFor(
      async () => {
        const finished = reconcilesSoFar(await metrics()) - reconcilesBefore;
        return finished >= 1 ? finished : undefined;
      },
      { timeoutMs: 10_000, description: 'the reconcile of the docs-only commit to finish' },
    );
    const byMethod = Object.fromEntries(
      Object.entries(stats.byMethod).map(([method, count]) => [method, count - (methodsBefore[method] ?? 0)]),
    );
    const observed = JSON.stringify({ ...byMethod, reconciles });
    expect(byMethod.PATCH ?? 0, observed).toBe(1);
    expect(byMethod.POST ?? 0, observed).toBe(1);
    expect(byMethod.DELETE ?? 0, observed).toBe(0);
    expect(byMethod.PUT ?? 0, observed).toBe(0);
    // Finished reconciles, at most one more in flight, each one Secret GET; one signers GET.
    expect(byMethod.GET ?? 0, observed).toBeLessThanOrEqual(reconciles + 1 + 1);
    const events = await admin.list('v1', 'Event', {
      namespace: ns.name,
      fieldSelector: 'involvedObject.kind=GitRepository,involvedObject.name=apps',
    });
    expect(
      events.items.some((e) => String((e as { message?: string }).message).includes(`main@sha1:${commit}`)),
    ).toBe(true);
  });

  it('refuses an unsigned commit: nothing applied, the last verified revision stays, status and Slack say why', async () => {
    const good = await head();
    const before = await metrics();
    expect(sampleValue(before, 'signet_verification_failures_total')).toBeUndefined();
    const bad = await signed.commit(
      { 'deploy/app.yaml': configMapYaml('app', { color: 'EVIL' }) },
      { unsigned: true },
    );
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'apps');
        return condition(s, 'Verified')?.status === 'False' ? s : undefined;
      },
      { timeoutMs: 30_000, description: 'Verified=False' },
    );
    expect(condition(status, 'Verified')?.reason).toBe('Unsigned');
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'VerificationFailed' });
    expect(condition(status, 'Ready')?.message).toContain(`main@sha1:${good} stays in force`);
    expect(status.lastAppliedRevision).toBe(`main@sha1:${good}`);
    expect(status.lastAttemptedRevision).toBe(`main@sha1:${bad}`);
    expect((await admin.get(configMap('app')))?.data).toEqual({ color: 'green' });
    const alert = await waitFor(
      () => slack.requests.find((r) => JSON.stringify(r.body).includes('VerificationFailed')),
      { timeoutMs: 15_000, description: 'a VerificationFailed alert' },
    );
    expect(JSON.stringify(alert.body)).toContain(bad.slice(0, 12));
    // Counted by reason (every reconcile that refuses it, at spec.interval 1 s), and as a result.
    const after = await waitFor(
      async () => {
        const scraped = await metrics();
        return (sampleValue(scraped, 'signet_verification_failures_total', { reason: 'Unsigned' }) ?? 0) >= 1
          ? scraped
          : undefined;
      },
      { timeoutMs: 10_000, description: 'signet_verification_failures_total{reason="Unsigned"}' },
    );
    expect(
      after.filter((s) => s.name === 'signet_verification_failures_total').map((s) => s.labels.reason),
    ).toEqual(['Unsigned']);
    expect(sampleValue(after, 'signet_reconciles_total', { result: 'rejected' })).toBeGreaterThanOrEqual(1);
    expect(
      sampleValue(after, 'signet_reconcile_duration_seconds_count', { result: 'rejected' }),
    ).toBeGreaterThanOrEqual(1);
    // The last verified revision's objects are still the ones counted as managed.
    expect(sampleValue(after, 'signet_managed_objects', { namespace: ns.name, name: 'apps' })).toBe(1);
  });

  it('recovers when a signed commit follows, and reverts an out-of-band edit within seconds', async () => {
    const commit = await signed.commit({
      'deploy/app.yaml': configMapYaml('app', { color: 'green' }),
      'deploy/more.yaml': configMapYaml('more', { n: '1' }),
    });
    await waitFor(
      async () => (await repoStatus(admin, ns.name, 'apps')).lastAppliedRevision === `main@sha1:${commit}`,
      {
        timeoutMs: 30_000,
        description: 'recovery',
      },
    );
    const live = await editor.get(configMap('app'));
    if (live === undefined) throw new Error('app ConfigMap missing');
    const driftLabels = { mode: 'Revert', kind: 'ConfigMap' };
    const driftBefore = sampleValue(await metrics(), 'signet_drift_events_total', driftLabels) ?? 0;
    const editedAt = Date.now();
    await editor.request({
      method: 'PUT',
      path: `/api/v1/namespaces/${ns.name}/configmaps/app?fieldManager=kubectl-edit`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...live, data: { color: 'red' } }),
    });
    await waitFor(
      async () =>
        ((await admin.get(configMap('app')))?.data as Record<string, string> | undefined)?.color === 'green',
      {
        timeoutMs: 10_000,
        intervalMs: 20,
        description: 'the edit reverted',
      },
    );
    const latencyMs = Date.now() - editedAt;
    expect(latencyMs).toBeLessThan(3_000);
    const message = await waitFor(
      () => slack.requests.find((r) => JSON.stringify(r.body).includes('DriftReverted')),
      { timeoutMs: 10_000, description: 'a DriftReverted alert' },
    );
    const body = message.body as { text: string; blocks: { type: string; text?: { text: string } }[] };
    expect(body.blocks[0]).toEqual({
      type: 'header',
      text: { type: 'plain_text', text: `DriftReverted: ${ns.name}/apps` },
    });
    expect(JSON.stringify(body.blocks)).toContain(`ConfigMap* \`${ns.name}/app\`: \`.data.color\``);
    expect(JSON.stringify(body.blocks)).toContain('kubectl-edit');
    // One edit, one drift event (the revert's own watch event is not drift).
    await waitFor(
      async () => sampleValue(await metrics(), 'signet_drift_events_total', driftLabels) === driftBefore + 1,
      { timeoutMs: 10_000, description: 'signet_drift_events_total{mode="Revert",kind="ConfigMap"} +1' },
    );

    await editor.delete(configMap('more'));
    await waitFor(
      async () =>
        ((await admin.get(configMap('more')))?.data as Record<string, string> | undefined)?.n === '1',
      {
        timeoutMs: 10_000,
        intervalMs: 20,
        description: 'the deleted object recreated',
      },
    );
    await waitFor(
      async () => sampleValue(await metrics(), 'signet_drift_events_total', driftLabels) === driftBefore + 2,
      { timeoutMs: 10_000, description: 'signet_drift_events_total +1 for the deletion' },
    );
    expect(
      (await metrics()).filter((s) => s.name === 'signet_drift_events_total').map((s) => s.labels),
    ).toEqual([driftLabels]);
  });

  it('never logs the webhook URL or Secret values', () => {
    const logs = captured.lines.join('\n');
    expect(logs).not.toContain('SECRETTOKEN');
    expect(logs).not.toContain(slack.url('http'));
  });

  it('prunes everything on deletion through its finalizer', async () => {
    await deleteGitRepositoryAndWait(admin, ns.name, 'apps');
    expect(await admin.get(configMap('app'))).toBeUndefined();
    expect(await admin.get(configMap('more'))).toBeUndefined();
  });
});
