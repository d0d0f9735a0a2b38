import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SlackConfigError } from '../../src/notify/errors.ts';
import { createNotifier } from '../../src/notify/factory.ts';
import { NopNotifier } from '../../src/notify/notifier.ts';
import { SlackNotifier } from '../../src/notify/slack.ts';
import { alert, captureLogger, secretPath } from './support.ts';

describe('createNotifier', () => {
  const dependencies = () => ({ registry: new Registry(), logger: captureLogger().logger });

  it('falls back to a no-op notifier without Slack settings', async () => {
    const notifier = createNotifier(undefined, dependencies());
    expect(notifier).toBeInstanceOf(NopNotifier);
    notifier.notify(alert());
    await notifier.flush();
    await notifier.close();
  });

  it('builds a Slack notifier, sharing counters on one registry', async () => {
    const shared = dependencies();
    const slack = {
      secretData: { address: `https://hooks.slack.com${secretPath}` },
      events: ['DriftDetected'],
    };
    const first = createNotifier(slack, shared);
    const second = createNotifier(slack, shared);
    expect(first).toBeInstanceOf(SlackNotifier);
    await Promise.all([first.close(), second.close()]);
    expect(shared.registry.getSingleMetric('signet_alerts_sent_total')).toBeDefined();
  });

  it('reports invalid settings with a coded error', () => {
    expect(() => createNotifier({ secretData: {}, events: undefined }, dependencies())).toThrow(
      SlackConfigError,
    );
    expect(() =>
      createNotifier(
        { secretData: { address: `https://hooks.slack.com${secretPath}` }, events: ['Nope'] },
        dependencies(),
      ),
    ).toThrow(expect.objectContaining({ code: 'UnknownEvent' }));
  });
});
