/**
 * Routes alerts of a GitRepository to its notifier (Slack when `spec.alerts.slack` is set).
 * Notifiers are built once per GitRepository and Secret content; a bad Slack setting is logged
 * (its message never contains the webhook URL) and the alert counted as dropped by the notifier.
 */
import { createHash } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { GitRepository } from '../api/gitrepository.ts';
import type { Alert, AlertKind, AlertObject } from '../notify/alert.ts';
import { createNotifier } from '../notify/factory.ts';
import type { QueueingNotifier } from '../notify/notifier.ts';
import { withDeadline } from '../util/deadline.ts';
import type { Logger } from '../util/logger.ts';

export interface AlertInput {
  readonly kind: AlertKind;
  readonly message: string;
  readonly revision?: string;
  readonly signer?: string;
  readonly objects?: readonly AlertObject[];
  readonly action?: string;
}

export interface Alerter {
  alert(repo: GitRepository, input: AlertInput): void;
  forget(key: string): Promise<void>;
  /** GitRepositories with a notifier held. */
  readonly held?: number;
  flush(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** The decoded data of Secret `namespace/name`; rejects when it cannot be read (e.g. not found). */
export type ReadSecret = (
  namespace: string,
  name: string,
  signal: AbortSignal,
) => Promise<Record<string, string>>;

export interface AlerterOptions {
  /** Reads the Slack Secret for each alert (the operator serves it from its reference cache). */
  readonly readSecret: ReadSecret;
  readonly clusterName: string;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly batchWindowMs?: number;
  /** Alerts each GitRepository's notifier holds (waiting or in flight) before dropping new ones. Default 1,000. */
  readonly maxQueuedAlerts?: number;
  readonly now?: () => Date;
}

const secretReadTimeoutMs = 10_000;

export function createAlerter(options: AlerterOptions): Alerter {
  const notifiers = new Map<string, { fingerprint: string; notifier: QueueingNotifier }>();
  const now = options.now ?? (() => new Date());

  async function notifierFor(repo: GitRepository): Promise<QueueingNotifier | undefined> {
    const slack = repo.spec.alerts.slack;
    const key = `${repo.metadata.namespace}/${repo.metadata.name}`;
    if (slack === undefined) return undefined;
    const data = await withDeadline(secretReadTimeoutMs, undefined, (signal) =>
      options.readSecret(repo.metadata.namespace, slack.secretRef.name, signal),
    );
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([data, slack.events]))
      .digest('hex');
    const existing = notifiers.get(key);
    if (existing?.fingerprint === fingerprint) return existing.notifier;
    if (existing !== undefined) void existing.notifier.close();
    const notifier = createNotifier(
      { secretData: data, events: slack.events },
      {
        registry: options.registry,
        logger: options.logger,
        ...(options.batchWindowMs === undefined ? {} : { batchWindowMs: options.batchWindowMs }),
        ...(options.maxQueuedAlerts === undefined ? {} : { maxQueuedAlerts: options.maxQueuedAlerts }),
      },
    );
    notifiers.set(key, { fingerprint, notifier });
    return notifier;
  }

  return {
    alert(repo, input) {
      const alert: Alert = {
        kind: input.kind,
        gitRepository: { namespace: repo.metadata.namespace, name: repo.metadata.name },
        cluster: options.clusterName,
        message: input.message,
        occurredAt: now(),
        ...(input.revision === undefined ? {} : { revision: input.revision }),
        ...(input.signer === undefined ? {} : { signer: input.signer }),
        ...(input.objects === undefined ? {} : { objects: input.objects }),
        ...(input.action === undefined ? {} : { action: input.action }),
      };
      notifierFor(repo).then(
        (notifier) => notifier?.notify(alert),
        (error: unknown) =>
          options.logger.warn(
            {
              gitrepository: `${repo.metadata.namespace}/${repo.metadata.name}`,
              err: error instanceof Error ? error.message : String(error),
            },
            'alert not sent: spec.alerts.slack is not usable',
          ),
      );
    },
    get held() {
      return notifiers.size;
    },
    async forget(key) {
      const existing = notifiers.get(key);
      notifiers.delete(key);
      await existing?.notifier.close();
    },
    async flush(signal) {
      await Promise.all(
        [...notifiers.values()].map(({ notifier }) => notifier.flush(signal).catch(() => undefined)),
      );
    },
    async close() {
      await Promise.all([...notifiers.values()].map(({ notifier }) => notifier.close()));
      notifiers.clear();
    },
  };
}
