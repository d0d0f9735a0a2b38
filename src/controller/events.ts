/**
 * Kubernetes Events on the GitRepository, with their revision and signer in the message.
 * Identical events for one object within a window are aggregated (count, lastTimestamp)
 * instead of creating a storm of new ones.
 */
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../util/logger.ts';

export interface EventSubject {
  readonly metadata: { readonly name: string; readonly namespace: string; readonly uid?: string };
}

export interface EventRecorder {
  record(
    subject: EventSubject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    signal: AbortSignal,
  ): Promise<void>;
  /** Forgets the repeat counts kept for `<namespace>/<name>` (deleted, or left the shard). */
  forget?(key: string): void;
  /** Repeat counts held (tests prove memory follows the work). */
  readonly held?: number;
}

export function createEventRecorder(options: {
  client: KubeClient;
  instance: string;
  logger: Logger;
  windowMs?: number;
  now?: () => Date;
}): EventRecorder {
  const recent = new Map<string, { name: string; count: number; at: number; first: string }>();
  const windowMs = options.windowMs ?? 10 * 60_000;
  const now = options.now ?? (() => new Date());
  return {
    forget(key) {
      for (const k of recent.keys()) if (k.startsWith(`${key}|`)) recent.delete(k);
    },
    get held() {
      return recent.size;
    },
    async record(subject, type, reason, message, signal) {
      const { name, namespace, uid } = subject.metadata;
      const key = `${namespace}/${name}|${type}|${reason}|${message}`;
      const at = now();
      for (const [k, v] of recent) if (at.getTime() - v.at > windowMs) recent.delete(k);
      const seen = recent.get(key);
      const text = message.length > 1_000 ? `${message.slice(0, 999)}…` : message;
      try {
        if (seen !== undefined) {
          seen.count++;
          seen.at = at.getTime();
          await options.client.request({
            method: 'PATCH',
            path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/events/${encodeURIComponent(seen.name)}`,
            headers: { 'content-type': 'application/merge-patch+json' },
            body: JSON.stringify({ count: seen.count, lastTimestamp: at.toISOString() }),
            signal,
            timeoutMs: 10_000,
          });
          return;
        }
        const created = await options.client.create(
          {
            apiVersion: 'v1',
            kind: 'Event',
            metadata: { name: '', generateName: `${name}.`, namespace },
            involvedObject: {
              apiVersion: 'signet.dev/v1alpha1',
              kind: 'GitRepository',
              name,
              namespace,
              ...(uid === undefined ? {} : { uid }),
            },
            type,
            reason,
            message: text,
            count: 1,
            firstTimestamp: at.toISOString(),
            lastTimestamp: at.toISOString(),
            source: { component: 'signet' },
            reportingComponent: 'signet.dev/signet',
            reportingInstance: options.instance,
          },
          { signal, timeoutMs: 10_000 },
        );
        recent.set(key, { name: created.metadata.name, count: 1, at: at.getTime(), first: at.toISOString() });
      } catch (error) {
        if (signal.aborted) return;
        options.logger.warn(
          { reason, err: error instanceof Error ? error.message : String(error) },
          'could not record event',
        );
      }
    },
  };
}
