import { setTimeout as delay } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import { backoffDelay } from '../util/backoff.ts';
import type { Logger } from '../util/logger.ts';
import { type Alert, type AlertKind, alertBatchKey, alertEventKey, alertKinds } from './alert.ts';
import { NotifierStateError, SlackDeliveryError } from './errors.ts';
import { countAlerts, dequeueAlerts, type NotifyMetrics, notifyMetrics } from './metrics.ts';
import type { QueueingNotifier } from './notifier.ts';
import { defaultMaxObjects, renderSlackMessage } from './slack-message.ts';
import type { SlackTarget } from './slack-target.ts';
import { UndiciWebhookClient, type WebhookClient } from './webhook-client.ts';

/** Waits `ms`, or less when `signal` aborts (resolving or rejecting; both are treated as "woken"). */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export interface SlackNotifierOptions {
  readonly target: SlackTarget;
  /** Counters `signet_alerts_{sent,failed,dropped}_total` and gauge `signet_alerts_queued` are registered here (or reused). */
  readonly registry: Registry;
  readonly logger: Logger;
  /** Kinds to send (`spec.alerts.slack.events`); others are ignored. Default: all kinds. */
  readonly events?: Iterable<AlertKind>;
  /** Alerts of one GitRepository and kind arriving within this window go out as one message. Default 2 s. */
  readonly batchWindowMs?: number;
  /** An alert identical (same event key) to one accepted within this window is suppressed. Default 5 min. */
  readonly dedupWindowMs?: number;
  /** Alerts held (waiting or in flight) before new ones are dropped and counted. Default 1,000. */
  readonly maxQueuedAlerts?: number;
  /** Objects listed per message before "and N more objects". Default 20. */
  readonly maxObjectsPerMessage?: number;
  /** Timeout of each webhook request. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Exponential backoff with jitter between attempts: first delay and cap. Default 1 s, 60 s. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Upper bound on a `Retry-After` the receiver asks for. Default 10 min. */
  readonly maxRetryAfterMs?: number;
  readonly now?: () => number;
  readonly sleep?: Sleep;
  readonly random?: () => number;
  /** HTTP adapter; default `UndiciWebhookClient` for `target`. The notifier closes it. */
  readonly client?: WebhookClient;
}

interface Batch {
  readonly key: string;
  readonly alerts: Alert[];
  readonly readyAt: number;
}

const maxRememberedEvents = 10_000;

async function timerSleep(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal });
}

/** Delay asked for by a `Retry-After` header (seconds or HTTP date), or undefined if absent/invalid. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * Sends alerts to a Slack incoming webhook. `notify` enqueues; one worker batches alerts of the same
 * GitRepository and kind within `batchWindowMs` into one message, suppresses identical alerts within
 * `dedupWindowMs`, and delivers messages one at a time: 2xx is sent; 429 waits `Retry-After`; 408,
 * 5xx, timeouts and connection errors retry with capped exponential backoff with jitter until
 * delivered (at least once); other 4xx and TLS verification failures are counted as failed.
 * The webhook URL never reaches a log line, error or metric.
 */
export class SlackNotifier implements QueueingNotifier {
  readonly #target: SlackTarget;
  readonly #logger: Logger;
  readonly #metrics: NotifyMetrics;
  readonly #events: ReadonlySet<AlertKind>;
  readonly #client: WebhookClient;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #batchWindowMs: number;
  readonly #dedupWindowMs: number;
  readonly #maxQueuedAlerts: number;
  readonly #maxObjects: number;
  readonly #requestTimeoutMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxRetryAfterMs: number;

  /** Batches waiting for their window to end or for the worker, by batch key. */
  readonly #batches = new Map<string, Batch>();
  /** Event key → time it was accepted, oldest first. */
  readonly #accepted = new Map<string, number>();
  readonly #closeController = new AbortController();
  #wakeController = new AbortController();
  #queued = 0;
  #droppedSinceFull = 0;
  #flushing = 0;
  #idleWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  readonly #worker: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(options: SlackNotifierOptions) {
    this.#target = options.target;
    this.#logger = options.logger.child({ notifier: 'slack', receiver: options.target.origin });
    this.#metrics = notifyMetrics(options.registry);
    this.#events = new Set(options.events ?? alertKinds);
    this.#client = options.client ?? new UndiciWebhookClient(options.target);
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? timerSleep;
    this.#random = options.random ?? Math.random;
    this.#batchWindowMs = options.batchWindowMs ?? 2_000;
    this.#dedupWindowMs = options.dedupWindowMs ?? 5 * 60_000;
    this.#maxQueuedAlerts = Math.max(1, options.maxQueuedAlerts ?? 1_000);
    this.#maxObjects = options.maxObjectsPerMessage ?? defaultMaxObjects;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#retryBaseMs = options.retryBaseMs ?? 1_000;
    this.#retryMaxMs = options.retryMaxMs ?? 60_000;
    this.#maxRetryAfterMs = options.maxRetryAfterMs ?? 10 * 60_000;
    this.#worker = this.#run().catch((error: unknown) => {
      this.#logger.error({ err: error }, 'slack notifier worker stopped unexpectedly');
    });
  }

  /** Alerts accepted and not yet sent, failed or dropped. */
  get pending(): number {
    return this.#queued;
  }

  notify(alert: Alert): void {
    try {
      this.#enqueue(alert);
    } catch (error) {
      this.#logger.error({ err: error, kind: alert?.kind }, 'could not enqueue alert');
    }
  }

  async flush(signal?: AbortSignal): Promise<void> {
    if (this.#queued === 0) return;
    if (this.#closeController.signal.aborted) throw new NotifierStateError('Closed', 'notifier is closed');
    this.#flushing += 1;
    this.#wake();
    try {
      await new Promise<void>((resolve, reject) => {
        const aborted = () => {
          this.#idleWaiters = this.#idleWaiters.filter((w) => w !== waiter);
          reject(
            new NotifierStateError(
              'FlushAborted',
              `flush aborted with ${this.#queued} alert(s) still pending`,
            ),
          );
        };
        const waiter = {
          resolve: () => {
            signal?.removeEventListener('abort', aborted);
            resolve();
          },
          reject,
        };
        if (signal?.aborted) {
          aborted();
          return;
        }
        this.#idleWaiters.push(waiter);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    } finally {
      this.#flushing -= 1;
    }
  }

  async close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    await this.#closing;
  }

  async #shutDown(): Promise<void> {
    let dropped = 0;
    for (const batch of this.#batches.values()) {
      const kinds = batch.alerts.map((alert) => alert.kind);
      countAlerts(this.#metrics.dropped, kinds);
      dequeueAlerts(this.#metrics.queued, kinds);
      dropped += batch.alerts.length;
    }
    this.#queued -= dropped;
    this.#batches.clear();
    if (dropped > 0) this.#logger.warn({ dropped }, 'slack notifier closed with undelivered alerts');
    this.#closeController.abort();
    for (const waiter of this.#idleWaiters) {
      waiter.reject(new NotifierStateError('Closed', 'notifier closed before pending alerts were delivered'));
    }
    this.#idleWaiters = [];
    await this.#worker;
    await this.#client.close();
  }

  #enqueue(alert: Alert): void {
    if (!this.#events.has(alert.kind)) return;
    if (this.#closeController.signal.aborted) {
      this.#metrics.dropped.inc({ kind: alert.kind });
      this.#logger.warn({ kind: alert.kind }, 'alert dropped: notifier is closed');
      return;
    }
    const now = this.#now();
    this.#forgetExpired(now);
    const eventKey = alertEventKey(alert);
    const acceptedAt = this.#accepted.get(eventKey);
    const repo = alert.gitRepository;
    if (acceptedAt !== undefined && now - acceptedAt < this.#dedupWindowMs) {
      this.#logger.debug(
        { kind: alert.kind, gitRepository: `${repo.namespace}/${repo.name}`, eventKey },
        'duplicate alert suppressed',
      );
      return;
    }
    if (this.#queued >= this.#maxQueuedAlerts) {
      this.#metrics.dropped.inc({ kind: alert.kind });
      if (this.#droppedSinceFull === 0) {
        this.#logger.warn(
          { maxQueuedAlerts: this.#maxQueuedAlerts },
          'slack notifier queue full: dropping new alerts until it drains',
        );
      }
      this.#droppedSinceFull += 1;
      return;
    }
    this.#accepted.delete(eventKey);
    this.#accepted.set(eventKey, now);
    const key = alertBatchKey(alert);
    let batch = this.#batches.get(key);
    if (batch === undefined) {
      batch = { key, alerts: [], readyAt: now + this.#batchWindowMs };
      this.#batches.set(key, batch);
    }
    batch.alerts.push(alert);
    this.#queued += 1;
    this.#metrics.queued.inc({ kind: alert.kind });
    this.#wake();
  }

  #forgetExpired(now: number): void {
    for (const [eventKey, acceptedAt] of this.#accepted) {
      if (now - acceptedAt < this.#dedupWindowMs && this.#accepted.size <= maxRememberedEvents) break;
      this.#accepted.delete(eventKey);
    }
  }

  #wake(): void {
    const previous = this.#wakeController;
    this.#wakeController = new AbortController();
    previous.abort();
  }

  async #pause(ms: number | undefined, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    if (ms === undefined) {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      return;
    }
    try {
      await this.#sleep(ms, signal);
    } catch {
      // Woken early: the caller re-examines its state.
    }
  }

  #nextBatch(): Batch | undefined {
    let next: Batch | undefined;
    for (const batch of this.#batches.values()) {
      if (next === undefined || batch.readyAt < next.readyAt) next = batch;
    }
    return next;
  }

  async #run(): Promise<void> {
    const closed = this.#closeController.signal;
    while (!closed.aborted) {
      const wakeOrClose = AbortSignal.any([this.#wakeController.signal, closed]);
      const next = this.#nextBatch();
      if (next === undefined) {
        for (const waiter of this.#idleWaiters) waiter.resolve();
        this.#idleWaiters = [];
        await this.#pause(undefined, wakeOrClose);
        continue;
      }
      const waitMs = this.#flushing > 0 ? 0 : next.readyAt - this.#now();
      if (waitMs > 0) {
        await this.#pause(waitMs, wakeOrClose);
        continue;
      }
      this.#batches.delete(next.key);
      await this.#deliver(next);
      this.#queued -= next.alerts.length;
      dequeueAlerts(
        this.#metrics.queued,
        next.alerts.map((alert) => alert.kind),
      );
      if (this.#droppedSinceFull > 0 && this.#queued < this.#maxQueuedAlerts) {
        this.#logger.warn({ dropped: this.#droppedSinceFull }, 'slack notifier queue accepting alerts again');
        this.#droppedSinceFull = 0;
      }
    }
  }

  /** Remove the webhook address from text a receiver sent back, then bound it. */
  #scrub(text: string): string {
    let scrubbed = text.replaceAll(this.#target.webhookUrl(), '[redacted]');
    const path = new URL(this.#target.webhookUrl()).pathname;
    if (path.length > 1) scrubbed = scrubbed.replaceAll(path, '[redacted]');
    return scrubbed.slice(0, 200);
  }

  async #deliver(batch: Batch): Promise<void> {
    const first = batch.alerts[0]!;
    const kinds = batch.alerts.map((alert) => alert.kind);
    const log = this.#logger.child({
      kind: first.kind,
      gitRepository: `${first.gitRepository.namespace}/${first.gitRepository.name}`,
      alerts: batch.alerts.length,
    });
    const payload = JSON.stringify(renderSlackMessage(batch.alerts, { maxObjects: this.#maxObjects }));
    const closed = this.#closeController.signal;
    for (let attempt = 1; ; attempt += 1) {
      if (closed.aborted) break;
      let retryInMs: number;
      try {
        const response = await this.#client.post(payload, {
          signal: closed,
          timeoutMs: this.#requestTimeoutMs,
        });
        if (response.status >= 200 && response.status < 300) {
          countAlerts(this.#metrics.sent, kinds);
          log.info({ attempt }, 'alert delivered to slack');
          return;
        }
        const backoff = this.#backoff(attempt);
        if (response.status === 429) {
          const asked = parseRetryAfter(response.retryAfter, this.#now());
          retryInMs = asked === undefined ? backoff : Math.min(asked, this.#maxRetryAfterMs);
        } else if (response.status === 408 || response.status >= 500) {
          retryInMs = backoff;
        } else {
          countAlerts(this.#metrics.failed, kinds);
          log.error(
            { attempt, status: response.status, response: this.#scrub(response.body) },
            'slack refused the alert; not retrying',
          );
          return;
        }
        log.warn({ attempt, status: response.status, retryInMs }, 'slack webhook request failed; retrying');
      } catch (error) {
        if (closed.aborted) break;
        const failure =
          error instanceof SlackDeliveryError
            ? error
            : new SlackDeliveryError('ConnectionFailed', 'Slack webhook request failed', true);
        if (!failure.retryable) {
          countAlerts(this.#metrics.failed, kinds);
          log.error({ attempt, code: failure.code, reason: failure.message }, 'slack alert delivery failed');
          return;
        }
        retryInMs = this.#backoff(attempt);
        log.warn(
          { attempt, code: failure.code, reason: failure.message, retryInMs },
          'slack webhook request failed; retrying',
        );
      }
      await this.#pause(retryInMs, closed);
    }
    countAlerts(this.#metrics.dropped, kinds);
    log.warn('alert dropped: notifier closed before delivery');
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: this.#retryBaseMs,
      maxMs: this.#retryMaxMs,
      random: this.#random,
    });
  }
}
