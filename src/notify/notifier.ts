import type { Alert } from './alert.ts';

/** Where alerts go. `notify` only enqueues: it never blocks, never throws, never awaits the network. */
export interface Notifier {
  notify(alert: Alert): void;
}

/** A notifier that owns a queue: `flush` delivers what is pending, `close` releases it. */
export interface QueueingNotifier extends Notifier {
  /** Resolves when nothing is pending; rejects with `NotifierStateError` if `signal` aborts first. */
  flush(signal?: AbortSignal): Promise<void>;
  /** Stops accepting alerts, aborts in-flight requests and counts what is left as dropped. */
  close(): Promise<void>;
}

/** The notifier used when no alert provider is configured. */
export class NopNotifier implements QueueingNotifier {
  notify(_alert: Alert): void {}

  async flush(_signal?: AbortSignal): Promise<void> {}

  async close(): Promise<void> {}
}
