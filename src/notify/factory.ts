import { NopNotifier, type QueueingNotifier } from './notifier.ts';
import { SlackNotifier, type SlackNotifierOptions } from './slack.ts';
import { parseAlertEvents, parseSlackTarget } from './slack-target.ts';

/** `spec.alerts.slack` of a GitRepository, with its Secret already read and base64-decoded. */
export interface SlackAlertsConfig {
  readonly secretData: Readonly<Record<string, string>>;
  readonly events?: readonly string[];
}

/**
 * The notifier for one GitRepository's alert settings: Slack when configured, otherwise a no-op.
 * Throws `SlackConfigError` (safe to copy into a status condition) when the settings are invalid.
 */
export function createNotifier(
  slack: SlackAlertsConfig | undefined,
  dependencies: Omit<SlackNotifierOptions, 'target' | 'events'>,
): QueueingNotifier {
  if (slack === undefined) return new NopNotifier();
  return new SlackNotifier({
    ...dependencies,
    target: parseSlackTarget(slack.secretData),
    events: parseAlertEvents(slack.events),
  });
}
