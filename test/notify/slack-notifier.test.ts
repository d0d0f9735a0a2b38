import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { alertEventKey } from '../../src/notify/alert.ts';
import { NotifierStateError, SlackDeliveryError } from '../../src/notify/errors.ts';
import { parseRetryAfter, SlackNotifier, type SlackNotifierOptions } from '../../src/notify/slack.ts';
import type { SlackMessage } from '../../src/notify/slack-message.ts';
import { parseSlackTarget } from '../../src/notify/slack-target.ts';
import type { WebhookClient, WebhookResponse } from '../../src/notify/webhook-client.ts';
import { alert, captureLogger, counterValue, secretPath, until } from './support.ts';

type Scripted = WebhookResponse | SlackDeliveryError;

/** In-memory transport: answers from a script (then 200), records payloads and the fake time of each call. */
class ScriptedClient implements WebhookClient {
  readonly posts: { atMs: number; message: SlackMessage }[] = [];
  readonly script: Scripted[];
  readonly #clock: FakeClock;
  closed = false;

  constructor(clock: FakeClock, script: Scripted[] = []) {
    this.#clock = clock;
    this.script = script;
  }

  async post(payload: string): Promise<WebhookResponse> {
    this.posts.push({ atMs: this.#clock.nowMs, message: JSON.parse(payload) as SlackMessage });
    const next = this.script.shift() ?? { status: 200, retryAfter: undefined, body: 'ok' };
    if (next instanceof SlackDeliveryError) throw next;
    return next;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Time that only moves when the notifier sleeps (or the test advances it). */
class FakeClock {
  nowMs = 1_000_000;
  readonly sleeps: number[] = [];
  now = (): number => this.nowMs;
  sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
    if (signal.aborted) return;
    this.sleeps.push(ms);
    this.nowMs += ms;
  };
}

function setup(script: Scripted[] = [], options: Partial<SlackNotifierOptions> = {}) {
  const clock = new FakeClock();
  const client = new ScriptedClient(clock, script);
  const registry = new Registry();
  const { logger, lines } = captureLogger();
  const notifier = new SlackNotifier({
    target: parseSlackTarget({ address: `https://hooks.slack.com${secretPath}` }),
    registry,
    logger,
    client,
    now: clock.now,
    sleep: clock.sleep,
    random: () => 1,
    retryBaseMs: 1_000,
    retryMaxMs: 8_000,
    ...options,
  });
  return { clock, client, registry, notifier, lines };
}

/** A sleep that never ends by itself: only the notifier's abort (wake or close) ends it. */
const sleepUntilAborted = (_ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));

const status = (code: number, retryAfter?: string): WebhookResponse => ({
  status: code,
  retryAfter,
  body: 'x',
});

describe('SlackNotifier (fake time, scripted transport)', () => {
  it('sends alerts of one GitRepository and kind within the window as one message', async () => {
    const { client, clock, notifier, registry } = setup();
    notifier.notify(alert({ message: 'a' }));
    notifier.notify(alert({ message: 'b' }));
    notifier.notify(alert({ message: 'c', kind: 'DriftDetected' }));
    notifier.notify(alert({ message: 'd', gitRepository: { namespace: 'flux-system', name: 'other' } }));
    await until(() => client.posts.length === 3);
    expect(client.posts.map((p) => p.message.blocks[0])).toEqual([
      { type: 'header', text: { type: 'plain_text', text: 'DriftReverted: flux-system/platform' } },
      { type: 'header', text: { type: 'plain_text', text: 'DriftDetected: flux-system/platform' } },
      { type: 'header', text: { type: 'plain_text', text: 'DriftReverted: flux-system/other' } },
    ]);
    expect(client.posts[0]!.message.blocks[2]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: '• a\n• b' },
    });
    expect(clock.sleeps).toEqual([2_000]);
    expect(client.posts[0]!.atMs).toBe(1_002_000);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(3);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftDetected')).toBe(1);
    await notifier.close();
    expect(client.closed).toBe(true);
  });

  it('suppresses identical alerts within the dedup window, then sends them again', async () => {
    const { client, clock, notifier } = setup([], { dedupWindowMs: 60_000 });
    const base = alert({
      objects: [
        { kind: 'ConfigMap', namespace: 'a', name: 'x', fields: ['data.b', 'data.a'] },
        { kind: 'Secret', namespace: 'a', name: 'y', fields: [] },
      ],
    });
    notifier.notify(base);
    notifier.notify({ ...base, occurredAt: new Date('2030-01-01T00:00:00Z') });
    notifier.notify({ ...base, objects: [...base.objects!].reverse() });
    await notifier.flush();
    expect(client.posts).toHaveLength(1);
    expect(client.posts[0]!.message.blocks.at(-1)).toMatchObject({
      elements: [{ text: expect.stringMatching(/^1 alert /) }],
    });
    clock.nowMs += 59_000;
    notifier.notify(base);
    await notifier.flush();
    expect(client.posts).toHaveLength(1);
    clock.nowMs += 1_000;
    notifier.notify(base);
    notifier.notify({ ...base, message: 'different message' });
    await notifier.flush();
    expect(client.posts).toHaveLength(2);
    expect(client.posts[1]!.message.blocks.at(-1)).toMatchObject({
      elements: [{ text: expect.stringMatching(/^2 alerts /) }],
    });
    await notifier.close();
  });

  it('retries 5xx, 408 and connection errors with capped exponential backoff until delivered', async () => {
    const { client, clock, notifier, registry } = setup([
      status(503),
      status(500),
      new SlackDeliveryError('ConnectionFailed', 'Slack webhook connection failed (ECONNRESET)', true),
      status(408),
      new SlackDeliveryError('Timeout', 'Slack webhook request timed out', true),
      status(502),
    ]);
    notifier.notify(alert());
    await notifier.flush();
    expect(client.posts).toHaveLength(7);
    expect(clock.sleeps).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(new Set(client.posts.map((p) => JSON.stringify(p.message))).size).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_failed_total', 'DriftReverted')).toBe(0);
    await notifier.close();
  });

  it('waits what 429 Retry-After asks (seconds or HTTP date), capped', async () => {
    const { client, clock, notifier } = setup(
      [
        status(429, '7'),
        status(429, new Date(1_000_000 + 7_000 + 30_000).toUTCString()),
        status(429, '86400'),
        status(429),
      ],
      { maxRetryAfterMs: 120_000, batchWindowMs: 0 },
    );
    notifier.notify(alert());
    await notifier.flush();
    expect(client.posts).toHaveLength(5);
    expect(clock.sleeps).toEqual([7_000, 30_000, 120_000, 8_000]);
    await notifier.close();
  });

  it('does not retry other 4xx or TLS verification failures; counts them failed; logs no URL', async () => {
    const { client, notifier, registry, lines } = setup([
      { status: 404, retryAfter: undefined, body: `channel_not_found ${secretPath}` },
      new SlackDeliveryError('TlsFailed', 'Slack webhook TLS verification failed (CERT_HAS_EXPIRED)', false),
    ]);
    notifier.notify(alert({ kind: 'VerificationFailed' }));
    await notifier.flush();
    notifier.notify(alert({ kind: 'ReconcileFailed' }));
    await notifier.flush();
    expect(client.posts).toHaveLength(2);
    expect(await counterValue(registry, 'signet_alerts_failed_total', 'VerificationFailed')).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_failed_total', 'ReconcileFailed')).toBe(1);
    const refused = lines.map((line) => JSON.parse(line)).find((entry) => entry.status === 404);
    expect(refused).toMatchObject({ level: 50, response: 'channel_not_found [redacted]' });
    expect(lines.join('\n')).not.toContain('SECRETTOKEN');
    await notifier.close();
  });

  it('ignores kinds not in spec.alerts.slack.events', async () => {
    const { client, notifier } = setup([], { events: ['VerificationFailed'] });
    notifier.notify(alert({ kind: 'DriftReverted' }));
    notifier.notify(alert({ kind: 'VerificationFailed' }));
    await notifier.flush();
    expect(client.posts.map((p) => p.message.blocks[0])).toEqual([
      { type: 'header', text: { type: 'plain_text', text: 'VerificationFailed: flux-system/platform' } },
    ]);
    await notifier.close();
  });

  it('drops beyond the queue bound and on close, counting each dropped alert', async () => {
    const { client, notifier, registry } = setup([], {
      maxQueuedAlerts: 3,
      batchWindowMs: 60_000,
      sleep: sleepUntilAborted,
    });
    for (let i = 0; i < 5; i += 1) notifier.notify(alert({ message: `m${i}` }));
    expect(notifier.pending).toBe(3);
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftReverted')).toBe(3);
    expect(await counterValue(registry, 'signet_alerts_dropped_total', 'DriftReverted')).toBe(2);
    await notifier.close();
    notifier.notify(alert({ message: 'after close' }));
    expect(client.posts).toHaveLength(0);
    expect(await counterValue(registry, 'signet_alerts_dropped_total', 'DriftReverted')).toBe(6);
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftReverted')).toBe(0);
  });

  it('signet_alerts_queued counts alerts waiting or in flight, summed over notifiers of one registry', async () => {
    const { client, notifier, registry } = setup([status(503), status(503)]);
    const second = new SlackNotifier({
      target: parseSlackTarget({ address: `https://hooks.slack.com${secretPath}` }),
      registry,
      logger: captureLogger().logger,
      client: new ScriptedClient(new FakeClock()),
      sleep: sleepUntilAborted,
      batchWindowMs: 60_000,
    });
    notifier.notify(alert({ message: 'a' }));
    notifier.notify(alert({ message: 'b', kind: 'DriftDetected' }));
    second.notify(alert({ message: 'c' }));
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftReverted')).toBe(2);
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftDetected')).toBe(1);
    await notifier.flush();
    expect(client.posts).toHaveLength(4);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftReverted')).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftDetected')).toBe(0);
    await second.close();
    expect(await counterValue(registry, 'signet_alerts_queued', 'DriftReverted')).toBe(0);
    expect(await counterValue(registry, 'signet_alerts_dropped_total', 'DriftReverted')).toBe(1);
    await notifier.close();
  });

  it('flush rejects with FlushAborted when its signal aborts, and Closed on close', async () => {
    const { notifier } = setup([status(503)], { sleep: sleepUntilAborted });
    notifier.notify(alert());
    const aborted = new AbortController();
    const flushing = notifier.flush(aborted.signal);
    aborted.abort();
    await expect(flushing).rejects.toMatchObject({ code: 'FlushAborted' });
    const waiting = notifier.flush();
    const closing = notifier.close();
    await expect(waiting).rejects.toBeInstanceOf(NotifierStateError);
    await expect(waiting).rejects.toMatchObject({ code: 'Closed' });
    await closing;
  });

  it('notify never throws, even for malformed input', async () => {
    const { notifier } = setup();
    expect(() => notifier.notify({ kind: 'DriftDetected' } as never)).not.toThrow();
    await notifier.close();
  });
});

describe('alertEventKey', () => {
  it('ignores object and field order and time, and changes with revision, objects or message', () => {
    const base = alert({
      objects: [
        { kind: 'A', namespace: 'n', name: '1', fields: ['x', 'y'] },
        { kind: 'B', name: '2', fields: [] },
      ],
    });
    const key = alertEventKey(base);
    expect(
      alertEventKey({ ...base, objects: [base.objects![1]!, { ...base.objects![0]!, fields: ['y', 'x'] }] }),
    ).toBe(key);
    expect(alertEventKey({ ...base, occurredAt: new Date(0), signer: 'other' })).toBe(key);
    expect(alertEventKey({ ...base, revision: 'main@sha1:0' })).not.toBe(key);
    expect(alertEventKey({ ...base, message: 'other' })).not.toBe(key);
    expect(alertEventKey({ ...base, kind: 'DriftDetected' })).not.toBe(key);
    expect(alertEventKey({ ...base, objects: [base.objects![0]!] })).not.toBe(key);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('1', 0)).toBe(1_000);
    expect(parseRetryAfter(' 30 ', 0)).toBe(30_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4_000)).toBe(6_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 20_000)).toBe(0);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
});
