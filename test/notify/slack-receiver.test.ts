import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SlackConfigError } from '../../src/notify/errors.ts';
import { SlackNotifier, type SlackNotifierOptions } from '../../src/notify/slack.ts';
import { parseSlackTarget } from '../../src/notify/slack-target.ts';
import {
  alert,
  captureLogger,
  counterValue,
  generatePki,
  Receiver,
  secretPath,
  type TestPki,
  until,
} from './support.ts';

/**
 * Real timers, a real HTTP(S) receiver on 127.0.0.1 standing in for Slack, the real undici client.
 * After every test, no captured log line and no error message may contain the webhook URL.
 */
describe('SlackNotifier against a real receiver', () => {
  const receivers: Receiver[] = [];
  const notifiers: SlackNotifier[] = [];
  const errorMessages: string[] = [];
  let logLines: string[] = [];
  let currentUrl = '';

  async function startReceiver(tls?: { key: string; cert: string }): Promise<Receiver> {
    const receiver = new Receiver(tls);
    await receiver.listen();
    receivers.push(receiver);
    return receiver;
  }

  function start(address: string, options: Partial<SlackNotifierOptions> = {}, ca?: string) {
    currentUrl = address;
    const registry = new Registry();
    const { logger, lines } = captureLogger();
    logLines = lines;
    const notifier = new SlackNotifier({
      target: parseSlackTarget(ca === undefined ? { address } : { address, 'ca.crt': ca }),
      registry,
      logger,
      batchWindowMs: 50,
      retryBaseMs: 20,
      retryMaxMs: 200,
      requestTimeoutMs: 2_000,
      ...options,
    });
    notifiers.push(notifier);
    return { notifier, registry };
  }

  async function flush(notifier: SlackNotifier, timeoutMs = 10_000): Promise<void> {
    try {
      await notifier.flush(AbortSignal.timeout(timeoutMs));
    } catch (error) {
      errorMessages.push(String(error), (error as Error).stack ?? '');
      throw error;
    }
  }

  afterEach(async () => {
    for (const notifier of notifiers.splice(0)) await notifier.close();
    for (const receiver of receivers.splice(0)) await receiver.close();
    const everything = [...logLines, ...errorMessages].join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    expect(everything).not.toContain('SECRETTOKEN');
    expect(everything).not.toContain(secretPath);
    expect(everything).not.toContain(currentUrl);
    errorMessages.length = 0;
  });

  it('posts one reverted ConfigMap drift as this exact Block Kit JSON', async () => {
    const receiver = await startReceiver();
    const { notifier, registry } = start(receiver.url());
    notifier.notify(alert());
    await flush(notifier);
    expect(receiver.requests).toHaveLength(1);
    const [request] = receiver.requests;
    expect(request).toMatchObject({
      method: 'POST',
      path: secretPath,
      contentType: 'application/json; charset=utf-8',
    });
    expect(request!.body).toEqual({
      text: 'DriftReverted: flux-system/platform on prod-eu-1 (1 object): ConfigMap/payments/app-config drifted and was reverted',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'DriftReverted: flux-system/platform' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Cluster*\nprod-eu-1' },
            { type: 'mrkdwn', text: '*Revision*\n`main@sha1:8f3c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70`' },
            { type: 'mrkdwn', text: '*Signer*\nalice@example.com' },
            { type: 'mrkdwn', text: '*Action*\nreverted' },
          ],
        },
        {
          type: 'section',
          text: { type: 'mrkdwn', text: 'ConfigMap/payments/app-config drifted and was reverted' },
        },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*Objects (1)*\n• *ConfigMap* `payments/app-config`: `data.LOG_LEVEL` (by `kubectl-edit`)',
          },
        },
        { type: 'context', elements: [{ type: 'mrkdwn', text: '1 alert · 2026-11-22T10:00:00.000Z' }] },
      ],
    });
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
  });

  it('sends 50 objects drifting at once as ONE message listing 20 and "and 30 more"', async () => {
    const receiver = await startReceiver();
    const { notifier, registry } = start(receiver.url(), { batchWindowMs: 300 });
    const names = Array.from({ length: 50 }, (_, i) => `cm-${String(i).padStart(2, '0')}`);
    for (const name of names) {
      notifier.notify(
        alert({
          kind: 'DriftDetected',
          action: 'reported',
          objects: [
            { kind: 'ConfigMap', namespace: 'payments', name, fields: ['data.x'], manager: 'kubectl' },
          ],
          message: 'ConfigMaps in payments drifted',
        }),
      );
    }
    await flush(notifier);
    expect(receiver.requests).toHaveLength(1);
    const lines = names
      .slice(0, 20)
      .map((name) => `• *ConfigMap* \`payments/${name}\`: \`data.x\` (by \`kubectl\`)`);
    expect(receiver.requests[0]!.body).toEqual({
      text: 'DriftDetected: flux-system/platform on prod-eu-1 (50 objects): ConfigMaps in payments drifted',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'DriftDetected: flux-system/platform' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Cluster*\nprod-eu-1' },
            { type: 'mrkdwn', text: '*Revision*\n`main@sha1:8f3c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70`' },
            { type: 'mrkdwn', text: '*Signer*\nalice@example.com' },
            { type: 'mrkdwn', text: '*Action*\nreported' },
          ],
        },
        { type: 'section', text: { type: 'mrkdwn', text: 'ConfigMaps in payments drifted' } },
        {
          type: 'section',
          text: { type: 'mrkdwn', text: ['*Objects (50)*', ...lines, '…and 30 more objects'].join('\n') },
        },
        { type: 'context', elements: [{ type: 'mrkdwn', text: '50 alerts · 2026-11-22T10:00:00.000Z' }] },
      ],
    });
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftDetected')).toBe(50);
  });

  it('500 then 200: retried and delivered exactly once, later duplicates suppressed', async () => {
    const receiver = await startReceiver();
    receiver.replies.push({ status: 500, body: 'internal_error' });
    const { notifier, registry } = start(receiver.url());
    notifier.notify(alert());
    await flush(notifier);
    notifier.notify(alert());
    await flush(notifier);
    expect(receiver.requests).toHaveLength(2);
    expect(receiver.requests[1]!.body).toEqual(receiver.requests[0]!.body);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
    expect(await counterValue(registry, 'signet_alerts_failed_total', 'DriftReverted')).toBe(0);
    expect(logLines.some((line) => line.includes('"status":500'))).toBe(true);
  });

  it('honours 429 Retry-After: 1 (the second attempt comes at least 1 s later)', async () => {
    const receiver = await startReceiver();
    receiver.replies.push({ status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' });
    const { notifier, registry } = start(receiver.url(), { retryBaseMs: 10 });
    notifier.notify(alert());
    await flush(notifier);
    expect(receiver.requests).toHaveLength(2);
    const gapMs = receiver.requests[1]!.atMs - receiver.requests[0]!.atMs;
    expect(gapMs).toBeGreaterThanOrEqual(1_000);
    expect(gapMs).toBeLessThan(3_000);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
  });

  it('de-duplicates identical alerts', async () => {
    const receiver = await startReceiver();
    const { notifier } = start(receiver.url());
    for (let i = 0; i < 5; i += 1)
      notifier.notify({ ...alert(), occurredAt: new Date(Date.UTC(2026, 10, 22, 10, 0, i)) });
    await flush(notifier);
    notifier.notify(alert());
    await flush(notifier);
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]!.body).toMatchObject({
      blocks: expect.arrayContaining([
        { type: 'context', elements: [{ type: 'mrkdwn', text: '1 alert · 2026-11-22T10:00:00.000Z' }] },
      ]),
    });
  });

  it('counts queue-overflow drops in signet_alerts_dropped_total and delivers the rest', async () => {
    const receiver = await startReceiver();
    const { notifier, registry } = start(receiver.url(), { maxQueuedAlerts: 10, batchWindowMs: 200 });
    for (let i = 0; i < 25; i += 1) notifier.notify(alert({ message: `drift ${i}` }));
    expect(notifier.pending).toBe(10);
    await flush(notifier);
    expect(receiver.requests).toHaveLength(1);
    expect(await counterValue(registry, 'signet_alerts_dropped_total', 'DriftReverted')).toBe(15);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(10);
    expect(logLines.filter((line) => line.includes('queue full'))).toHaveLength(1);
  });

  it('retries through a Slack outage (hung request, refused connections) and then sends each alert once', async () => {
    const receiver = await startReceiver();
    receiver.replies.push('hang', { status: 503 }, { status: 502 });
    const { notifier, registry } = start(receiver.url(), { requestTimeoutMs: 300 });
    const first = alert({ message: 'first' });
    notifier.notify(first);
    await until(() => receiver.requests.length >= 2);
    notifier.notify(first);
    notifier.notify(alert({ message: 'second' }));
    await flush(notifier);
    const messages = receiver.requests.map((request) => (request.body as { text: string }).text);
    expect(messages.filter((text) => text.endsWith(': first'))).toHaveLength(4);
    expect(messages.filter((text) => text.endsWith(': second'))).toHaveLength(1);
    expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(2);
    expect(logLines.some((line) => line.includes('"code":"Timeout"'))).toBe(true);

    // Connection refused: the receiver is gone, then comes back on the same port.
    const port = receiver.port;
    await receiver.close();
    receivers.splice(receivers.indexOf(receiver), 1);
    notifier.notify(alert({ message: 'third' }));
    await until(() => logLines.some((line) => line.includes('ECONNREFUSED')));
    const revived = new Receiver();
    receivers.push(revived);
    await revived.listenOn(port);
    await flush(notifier);
    expect(revived.requests.map((r) => (r.body as { text: string }).text)).toEqual([
      expect.stringMatching(/: third$/),
    ]);
  });

  describe('https with a custom CA', () => {
    let pki: TestPki;
    beforeAll(async () => {
      pki = await generatePki();
    });

    it('delivers when ca.crt signs the receiver certificate', async () => {
      const receiver = await startReceiver({ key: pki.serverKey, cert: pki.serverCert });
      const { notifier, registry } = start(receiver.url('https'), {}, pki.caCert);
      notifier.notify(alert());
      await flush(notifier);
      expect(receiver.requests).toHaveLength(1);
      expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(1);
    });

    it('fails (counted, not retried) with the wrong CA or none', async () => {
      const receiver = await startReceiver({ key: pki.serverKey, cert: pki.serverCert });
      for (const ca of [pki.otherCaCert, undefined]) {
        const { notifier, registry } = start(receiver.url('https'), {}, ca);
        notifier.notify(alert());
        await flush(notifier);
        expect(await counterValue(registry, 'signet_alerts_failed_total', 'DriftReverted')).toBe(1);
        expect(await counterValue(registry, 'signet_alerts_sent_total', 'DriftReverted')).toBe(0);
        expect(logLines.some((line) => line.includes('"code":"TlsFailed"'))).toBe(true);
      }
      expect(receiver.requests).toHaveLength(0);
    });
  });

  it('refuses plain http to a non-loopback host before any request', async () => {
    const receiver = await startReceiver();
    const { notifier } = start(receiver.url());
    notifier.notify(alert({ kind: 'Recovered' }));
    await flush(notifier);
    const address = `http://hooks.example.com${secretPath}`;
    let refused: unknown;
    try {
      parseSlackTarget({ address });
    } catch (error) {
      refused = error;
      errorMessages.push(String(error), (error as Error).stack ?? '');
    }
    expect(refused).toBeInstanceOf(SlackConfigError);
    expect(refused).toMatchObject({ code: 'AddressInsecure' });
    expect(String(refused)).not.toContain('hooks.example.com');
  });
});
