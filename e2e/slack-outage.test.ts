// Slack unreachable while drift happens, against the real API server, with real timers and a real
// Slack stand-in (test/notify/support.ts Receiver, an HTTP server on 127.0.0.1).
//
// 1. An in-process operator (production defaults: 2 s batch window, retry backoff 1 s doubling to a
//    60 s cap, queue bound 1,000). The receiver is down for a real 120 s: it answers 503 for the
//    first 60 s, then its listening socket is closed (connections refused) for 60 s. Five distinct
//    out-of-band changes and one identical repeat happen at spread-out moments; each is reverted.
//    When the receiver listens again on the same port, each distinct alert is delivered exactly
//    once, the repeat is suppressed, nothing is dropped.
// 2. `bin/signet run --max-queued-alerts 3` as its own process: six distinct alerts during a 30 s
//    outage (connections refused). The first three are delivered once after the receiver returns;
//    signet_alerts_dropped_total counts exactly the other three; later alerts flow again.
// Neither operator logs the webhook URL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { type ReceivedRequest, Receiver, secretPath } from '../test/notify/support.ts';
import { createObjects, gitRepositoryObject, trustObjects } from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { ensureBuilt, type OperatorProcess, startOperatorProcess } from './support/operator-process.ts';
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

const outageNs = useTestNamespace('signet-slack-outage');
const boundNs = useTestNamespace('signet-slack-bound');
const captured = capturingLogger();
const editorManager = 'outage-editor';

/** Case 1: the outage and its phases. */
const outageMs = 120_000;
const refusedFromMs = 60_000;
/** Case 2: the queue bound and its (shorter) outage. */
const maxQueuedAlerts = 3;
const boundOutageMs = 30_000;
const boundNames = ['bound-1', 'bound-2', 'bound-3', 'bound-4', 'bound-5', 'bound-6'];

let admin: KubeClient;
let editor: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let boundOperator: OperatorProcess;
let cacheDir: string;
let revision = '';
const outageSlack = new Receiver();
const boundSlack = new Receiver();
/** The webhook addresses (credentials: they must never reach a log line). */
const webhookUrls: string[] = [];

interface SlackBody {
  text: string;
  blocks: {
    type: string;
    text?: { type: string; text: string };
    fields?: { text: string }[];
    elements?: { text: string }[];
  }[];
}

const configMap = (namespace: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  name,
  namespace,
});

async function dataOf(namespace: string, name: string): Promise<Record<string, string> | undefined> {
  return (await admin.get(configMap(namespace, name)))?.data as Record<string, string> | undefined;
}

/** An out-of-band merge patch of a ConfigMap's data, recorded under field manager `outage-editor`. */
async function tamper(namespace: string, name: string, data: Record<string, string>): Promise<void> {
  const response = await editor.request({
    method: 'PATCH',
    path: `/api/v1/namespaces/${namespace}/configmaps/${name}?fieldManager=${editorManager}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({ data }),
    timeoutMs: 15_000,
  });
  expect(response.status).toBe(200);
}

async function revertedTo(namespace: string, name: string, data: Record<string, string>): Promise<void> {
  await waitFor(async () => JSON.stringify(await dataOf(namespace, name)) === JSON.stringify(data), {
    timeoutMs: 15_000,
    intervalMs: 50,
    description: `ConfigMap ${namespace}/${name} reverted to its Git content`,
  });
}

/** Value of `name{kind="<kind>"}` in a Prometheus text exposition (0 when absent). */
function sample(metricsText: string, name: string, kind = 'DriftReverted'): number {
  for (const line of metricsText.split('\n')) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (match?.[1] === name && match[2]?.split(',').includes(`kind="${kind}"`)) return Number(match[3]);
  }
  return 0;
}

async function scrapeInProcess(): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${operator.operator.ports.metrics}/metrics`, {
    signal: AbortSignal.timeout(5_000),
  });
  expect(response.status).toBe(200);
  return response.text();
}

interface AlertCounters {
  sent: number;
  failed: number;
  dropped: number;
  queued: number;
}

function counters(metricsText: string): AlertCounters {
  return {
    sent: sample(metricsText, 'signet_alerts_sent_total'),
    failed: sample(metricsText, 'signet_alerts_failed_total'),
    dropped: sample(metricsText, 'signet_alerts_dropped_total'),
    queued: sample(metricsText, 'signet_alerts_queued'),
  };
}

/** Waits until the alert counters scraped by `scrape` equal `expected`. */
async function countersReach(
  scrape: () => Promise<string>,
  expected: AlertCounters,
  description: string,
  timeoutMs = 15_000,
): Promise<void> {
  let last: AlertCounters | undefined;
  try {
    await waitFor(
      async () => {
        last = counters(await scrape());
        return JSON.stringify(last) === JSON.stringify(expected);
      },
      { timeoutMs, intervalMs: 100, description },
    );
  } catch (error) {
    throw new Error(
      `${description}: expected ${JSON.stringify(expected)}, last scraped ${JSON.stringify(last)}`,
      { cause: error },
    );
  }
}

/** A deadline wait for a moment of the scenario (`offsetMs` after `startMs`, performance.now() time). */
async function until(startMs: number, offsetMs: number): Promise<void> {
  await waitFor(() => performance.now() - startMs >= offsetMs, {
    timeoutMs: offsetMs + 30_000,
    intervalMs: 100,
    description: `${offsetMs / 1000} s into the outage`,
  });
}

/** Polls for `durationMs` and fails at the first violation `check` names. */
async function holdsFor(check: () => string | undefined, durationMs: number): Promise<void> {
  const deadline = Date.now() + durationMs;
  while (Date.now() < deadline) {
    const violation = check();
    if (violation !== undefined) throw new Error(violation);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Names of the ConfigMaps (in `namespace`) listed in a message's Objects section, in order. */
function objectNames(request: ReceivedRequest, namespace: string): string[] {
  const text = JSON.stringify((request.body as SlackBody).blocks);
  const pattern = new RegExp(`• \\*ConfigMap\\* \`${namespace}/([a-z0-9-]+)\``, 'g');
  return [...text.matchAll(pattern)].map((match) => match[1] ?? '');
}

/** Alerts a message carries, from its context block ("1 alert · …" / "4 alerts · …"). */
function alertsInMessage(request: ReceivedRequest): number {
  const context = (request.body as SlackBody).blocks.find((block) => block.type === 'context');
  const match = /^(\d+) alerts? · /.exec(context?.elements?.[0]?.text ?? '');
  return match === null ? 0 : Number(match[1]);
}

function occurrences(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

interface LogRecord {
  readonly msg?: string;
  readonly [key: string]: unknown;
}

function parseLogs(lines: readonly string[]): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of lines.flatMap((chunk) => chunk.split('\n'))) {
    try {
      const parsed = JSON.parse(line) as unknown;
      if (typeof parsed === 'object' && parsed !== null) records.push(parsed as LogRecord);
    } catch {
      // not a log record
    }
  }
  return records;
}

/** Checks a delivered message is this GitRepository's DriftReverted Block Kit message. */
function expectDriftRevertedMessage(request: ReceivedRequest, namespace: string, name: string): void {
  expect(request.method).toBe('POST');
  expect(request.path).toBe(secretPath);
  expect(request.contentType).toBe('application/json; charset=utf-8');
  const body = request.body as SlackBody;
  expect(typeof body.text).toBe('string');
  expect(body.text).toContain(`DriftReverted: ${namespace}/${name}`);
  expect(body.blocks[0]).toEqual({
    type: 'header',
    text: { type: 'plain_text', text: `DriftReverted: ${namespace}/${name}` },
  });
  for (const block of body.blocks) expect(['header', 'section', 'context']).toContain(block.type);
  const fields = body.blocks[1]?.fields?.map((f) => f.text) ?? [];
  expect(fields).toContain('*Cluster*\ne2e');
  expect(fields).toContain(`*Revision*\n\`${revision}\``);
  expect(fields).toContain('*Action*\nreverted');
}

beforeAll(async () => {
  admin = await adminClient();
  editor = await adminClient('kubectl-edit/1.0');
  await installCrd(admin);
  await outageSlack.listen();
  await boundSlack.listen();
  webhookUrls.push(outageSlack.url('http'), boundSlack.url('http'));
  signed = await createSignedRepo('slack-outage');
  const files: Record<string, string> = {};
  for (const name of ['alpha', 'bravo', 'charlie', 'delta', 'echo'])
    files[`outage/${name}.yaml`] = configMapYaml(name, { x: 'from-git', y: 'from-git' });
  for (const name of boundNames) files[`bound/${name}.yaml`] = configMapYaml(name, { x: 'from-git' });
  const commit = await signed.commit(files);
  revision = `main@sha1:${commit}`;
  await createObjects(admin, trustObjects(signed, outageNs.name, { slackAddress: outageSlack.url('http') }));
  await createObjects(admin, trustObjects(signed, boundNs.name, { slackAddress: boundSlack.url('http') }));

  // Case 1: in-process, the production batch window, default retry and queue bound.
  operator = await startTestOperator(
    { namespace: outageNs.name, metricsAddress: '127.0.0.1:0', alertBatchWindowMs: 2_000 },
    captured.logger,
  );
  // Case 2: the CLI, its own namespace and a queue bound of 3.
  const signetBin = await ensureBuilt();
  cacheDir = await mkdtemp(join(tmpdir(), 'signet-slack-bound-'));
  boundOperator = startOperatorProcess(signetBin, [
    'run',
    '--kubeconfig',
    kubeconfigPath(),
    '--namespace',
    boundNs.name,
    '--metrics-addr',
    '127.0.0.1:0',
    '--health-addr',
    '0',
    '--cache-dir',
    cacheDir,
    '--cluster-name',
    'e2e',
    '--max-queued-alerts',
    String(maxQueuedAlerts),
  ]);
  await boundOperator.metricsPort();

  for (const [namespace, path] of [
    [outageNs.name, './outage'],
    [boundNs.name, './bound'],
  ] as const) {
    await admin.apply(
      gitRepositoryObject(signed, namespace, 'alerts', {
        interval: '1m',
        path,
        drift: { mode: 'Revert' },
        alerts: { slack: { secretRef: { name: 'slack' } } },
      }),
      { fieldManager: 'e2e' },
    );
  }
  for (const namespace of [outageNs.name, boundNs.name]) {
    await waitFor(
      async () => {
        const status = await repoStatus(admin, namespace, 'alerts');
        return condition(status, 'Ready')?.status === 'True' && status.lastAppliedRevision === revision;
      },
      { timeoutMs: 60_000, description: `GitRepository ${namespace}/alerts Ready at ${revision}` },
    );
  }
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await boundOperator?.stop();
  await outageSlack.close().catch(() => undefined);
  await boundSlack.close().catch(() => undefined);
  await signed?.close();
  await admin?.close();
  await editor?.close();
  if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
});

describe('Slack down while drift happens', () => {
  it('a 120 s outage (60 s of 503, 60 s refused): every distinct drift alert delivered once after it returns, the repeat suppressed, nothing dropped', async () => {
    const ns = outageNs.name;
    const gitData = { x: 'from-git', y: 'from-git' };
    const port = outageSlack.port;
    expect(outageSlack.requests).toHaveLength(0);

    // Phase 1 (0–60 s): the receiver answers every request 503.
    outageSlack.replies.push(
      ...Array.from({ length: 10_000 }, () => ({ status: 503, body: 'service_unavailable' })),
    );
    const downAt = performance.now();
    let queued = 0;
    const distinctDrift = async (name: string, change: () => Promise<void>) => {
      await change();
      await revertedTo(ns, name, gitData);
      queued += 1;
      await countersReach(
        scrapeInProcess,
        { sent: 0, failed: 0, dropped: 0, queued },
        `${queued} alert(s) queued after ${name}`,
      );
    };

    await distinctDrift('alpha', () => tamper(ns, 'alpha', { x: 'tampered' }));
    // The notifier is really trying: the first alert's message reaches the receiver and gets a 503.
    await waitFor(() => outageSlack.requests.length >= 1, {
      timeoutMs: 15_000,
      description: 'a first delivery attempt answered 503',
    });
    expect(objectNames(outageSlack.requests[0]!, ns)).toEqual(['alpha']);

    await until(downAt, 20_000);
    await distinctDrift('bravo', () => tamper(ns, 'bravo', { x: 'tampered' }));

    await until(downAt, 40_000);
    await distinctDrift('charlie', async () => {
      expect(
        (
          await editor.request({
            method: 'DELETE',
            path: `/api/v1/namespaces/${ns}/configmaps/charlie`,
            timeoutMs: 15_000,
          })
        ).status,
      ).toBe(200);
    });

    // Phase 2 (60–120 s): the listening socket is closed, connections are refused.
    await until(downAt, refusedFromMs);
    await outageSlack.close();
    const answered503 = outageSlack.requests.length;
    outageSlack.replies.length = 0;
    expect(answered503).toBeGreaterThanOrEqual(3);
    // Every attempt so far carried only the first alert: the worker delivers one message at a time.
    for (const request of outageSlack.requests) expect(objectNames(request, ns)).toEqual(['alpha']);
    const refused = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5_000) }).then(
      () => 'answered',
      (error: unknown) => String((error as Error & { cause?: { code?: string } }).cause?.code),
    );
    expect(refused).toBe('ECONNREFUSED');

    await until(downAt, 70_000);
    await distinctDrift('delta', () => tamper(ns, 'delta', { x: 'tampered' }));

    // The same out-of-band change to alpha again: reverted again, and its identical alert suppressed.
    await until(downAt, 80_000);
    const suppressed = () =>
      parseLogs(captured.lines).filter(
        (r) => r.msg === 'duplicate alert suppressed' && r.gitRepository === `${ns}/alerts`,
      ).length;
    expect(suppressed()).toBe(0);
    await tamper(ns, 'alpha', { x: 'tampered' });
    await revertedTo(ns, 'alpha', gitData);
    await waitFor(() => suppressed() === 1, {
      timeoutMs: 15_000,
      description: 'the repeated alert suppressed as a duplicate',
    });
    await countersReach(
      scrapeInProcess,
      { sent: 0, failed: 0, dropped: 0, queued },
      'no alert added by the repeat',
    );

    await until(downAt, 100_000);
    await distinctDrift('echo', () => tamper(ns, 'echo', { x: 'tampered', y: 'tampered' }));

    // The receiver returns on the same port after 120 s.
    await until(downAt, outageMs);
    expect(outageSlack.requests).toHaveLength(answered503);
    await countersReach(scrapeInProcess, { sent: 0, failed: 0, dropped: 0, queued: 5 }, 'five alerts held');
    await outageSlack.listenOn(port);
    const upAt = performance.now();
    const measuredOutageMs = upAt - downAt;

    await countersReach(
      scrapeInProcess,
      { sent: 5, failed: 0, dropped: 0, queued: 0 },
      'all five alerts delivered after the receiver returned',
      90_000,
    );
    // Nothing else arrives: every alert was delivered once and the queue is empty.
    const deliveredCount = outageSlack.requests.length - answered503;
    await holdsFor(
      () =>
        outageSlack.requests.length - answered503 === deliveredCount
          ? undefined
          : `another message arrived: ${outageSlack.requests.length - answered503} delivered`,
      3_000,
    );
    const delivered = outageSlack.requests.slice(answered503);
    for (const request of delivered) expectDriftRevertedMessage(request, ns, 'alerts');
    const names = delivered.flatMap((request) => objectNames(request, ns));
    expect(occurrences(names)).toEqual({ alpha: 1, bravo: 1, charlie: 1, delta: 1, echo: 1 });
    expect(names).toEqual(['alpha', 'bravo', 'charlie', 'delta', 'echo']);
    expect(delivered.reduce((sum, request) => sum + alertsInMessage(request), 0)).toBe(5);
    const blocks = JSON.stringify(delivered.map((request) => (request.body as SlackBody).blocks));
    for (const name of ['alpha', 'bravo', 'delta'])
      expect(blocks).toContain(`\`${ns}/${name}\`: \`.data.x\` (by \`${editorManager}\`)`);
    expect(blocks).toContain(`\`${ns}/charlie\`: deleted`);
    expect(blocks).toContain(`\`${ns}/echo\`: \`.data.x\`, \`.data.y\` (by \`${editorManager}\`)`);

    // The notifier saw both kinds of failure and retried through them.
    const retries = parseLogs(captured.lines).filter(
      (r) => r.msg === 'slack webhook request failed; retrying',
    );
    const retried503 = retries.filter((r) => r.status === 503).length;
    const retriedRefused = retries.filter(
      (r) => r.code === 'ConnectionFailed' && String(r.reason).includes('ECONNREFUSED'),
    ).length;
    // (One 503 may be lost to the socket close at 60 s; the client then saw a reset, not the 503.)
    expect(retried503).toBeGreaterThanOrEqual(answered503 - 1);
    expect(retried503).toBeLessThanOrEqual(answered503);
    expect(retriedRefused).toBeGreaterThanOrEqual(1);
    expect(Math.max(...retries.map((r) => Number(r.retryInMs)))).toBeLessThanOrEqual(60_000);

    const firstDeliveryMs = delivered[0]!.atMs - upAt;
    const lastDeliveryMs = delivered[delivered.length - 1]!.atMs - upAt;
    console.log(
      `slack-outage: outage ${(measuredOutageMs / 1000).toFixed(1)} s (503 then refused), 5 distinct drift alerts + 1 repeat during it, ` +
        `${answered503} attempts answered 503, ${retriedRefused} refused connections, ` +
        `delivered after return: ${delivered.length} message(s) carrying ${names.length} alerts, ` +
        `first ${(firstDeliveryMs / 1000).toFixed(1)} s / last ${(lastDeliveryMs / 1000).toFixed(1)} s after return, duplicates 0, dropped 0; ` +
        `backoff pauses (ms): ${retries.map((r) => r.retryInMs).join(', ')}`,
    );
  }, 330_000);

  it(`a queue bound of ${maxQueuedAlerts} (signet run --max-queued-alerts): the first ${maxQueuedAlerts} alerts delivered once after the outage, the excess counted as dropped`, async () => {
    const ns = boundNs.name;
    const gitData = { x: 'from-git' };
    const port = boundSlack.port;
    const scrape = () => boundOperator.metrics();
    expect(boundSlack.requests).toHaveLength(0);

    await boundSlack.close();
    const downAt = performance.now();
    for (const [index, name] of boundNames.entries()) {
      await tamper(ns, name, { x: 'tampered' });
      await revertedTo(ns, name, gitData);
      // Each alert is accepted or dropped before the next change is made, so the order is known.
      await countersReach(
        scrape,
        {
          sent: 0,
          failed: 0,
          dropped: Math.max(0, index + 1 - maxQueuedAlerts),
          queued: Math.min(index + 1, maxQueuedAlerts),
        },
        `alert ${index + 1} of ${boundNames.length} accepted or dropped`,
      );
    }
    await until(downAt, boundOutageMs);
    expect(boundSlack.requests).toHaveLength(0);
    await boundSlack.listenOn(port);
    const upAt = performance.now();

    await countersReach(
      scrape,
      { sent: maxQueuedAlerts, failed: 0, dropped: boundNames.length - maxQueuedAlerts, queued: 0 },
      `${maxQueuedAlerts} alerts delivered after the receiver returned`,
      60_000,
    );
    const deliveredCount = boundSlack.requests.length;
    await holdsFor(
      () =>
        boundSlack.requests.length === deliveredCount
          ? undefined
          : `another message arrived: ${boundSlack.requests.length} delivered`,
      3_000,
    );
    const delivered = [...boundSlack.requests];
    for (const request of delivered) expectDriftRevertedMessage(request, ns, 'alerts');
    const names = delivered.flatMap((request) => objectNames(request, ns));
    expect(names).toEqual(boundNames.slice(0, maxQueuedAlerts));
    const lastDeliveryMs = delivered[delivered.length - 1]!.atMs - upAt;

    const logs = boundOperator.logs;
    const full = logs.filter(
      (l) => l.msg === 'slack notifier queue full: dropping new alerts until it drains',
    );
    expect(full).toHaveLength(1);
    expect(full[0]?.maxQueuedAlerts).toBe(maxQueuedAlerts);
    expect(logs.find((l) => l.msg === 'slack notifier queue accepting alerts again')?.dropped).toBe(
      boundNames.length - maxQueuedAlerts,
    );

    // Drops do not stick: once the queue drained, a new change to a dropped object is alerted.
    const dropped = boundNames[maxQueuedAlerts]!;
    await tamper(ns, dropped, { x: 'tampered-again' });
    await revertedTo(ns, dropped, gitData);
    await countersReach(
      scrape,
      { sent: maxQueuedAlerts + 1, failed: 0, dropped: boundNames.length - maxQueuedAlerts, queued: 0 },
      'the next alert delivered',
    );
    const next = boundSlack.requests[deliveredCount];
    expect(next).toBeDefined();
    expectDriftRevertedMessage(next!, ns, 'alerts');
    expect(objectNames(next!, ns)).toEqual([dropped]);

    console.log(
      `slack-outage (bound ${maxQueuedAlerts}): outage ${((upAt - downAt) / 1000).toFixed(1)} s (refused), ` +
        `${boundNames.length} distinct alerts during it, delivered after return: ${delivered.length} message(s) carrying ${names.length} alerts, ` +
        `last ${(lastDeliveryMs / 1000).toFixed(1)} s after return, duplicates 0, dropped ${boundNames.length - maxQueuedAlerts}; ` +
        `backoff pauses (ms): ${logs
          .filter((l) => l.msg === 'slack webhook request failed; retrying')
          .map((l) => l.retryInMs)
          .join(', ')}`,
    );
  }, 180_000);

  it('never logs the webhook URL', () => {
    const everything = [...captured.lines, ...boundOperator.lines].join('\n');
    expect(captured.lines.length).toBeGreaterThan(0);
    expect(boundOperator.lines.length).toBeGreaterThan(0);
    expect(webhookUrls).toHaveLength(2);
    for (const secret of ['SECRETTOKEN', secretPath, ...webhookUrls])
      expect(everything).not.toContain(secret);
  });
});
