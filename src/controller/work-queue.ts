import PQueue from 'p-queue';

/**
 * A keyed work queue with client-go workqueue semantics, run on p-queue:
 * - a key is processed by at most one worker at a time;
 * - adding a key that is already waiting collapses into one run;
 * - adding a key while it runs marks it dirty, and it runs once more afterwards;
 * - `addAfter` schedules a key, keeping only the earliest pending timer per key.
 * Only keys are queued, never object snapshots: the handler reads the latest state itself.
 */
export type KeyHandler = (key: string, signal: AbortSignal) => Promise<void>;

export interface WorkQueueOptions {
  readonly concurrency: number;
  readonly handler: KeyHandler;
  /** Called when the handler throws; the queue itself never rejects. */
  readonly onError?: (key: string, error: unknown) => void;
}

export class KeyedWorkQueue {
  readonly #queue: PQueue;
  readonly #handler: KeyHandler;
  readonly #onError: (key: string, error: unknown) => void;
  readonly #waiting = new Set<string>();
  readonly #running = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #abort = new AbortController();
  #shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.#queue = new PQueue({ concurrency: Math.max(1, options.concurrency) });
    this.#handler = options.handler;
    this.#onError = options.onError ?? (() => {});
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Number of keys waiting or running. */
  get depth(): number {
    return this.#waiting.size + this.#running.size;
  }

  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#cancelTimer(key);
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#waiting.has(key)) return;
    this.#waiting.add(key);
    void this.#queue.add(() => this.#run(key));
  }

  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Drops any scheduled run of `key` (e.g. the object was deleted). */
  forget(key: string): void {
    this.#cancelTimer(key);
    this.#dirty.delete(key);
  }

  /**
   * Stops accepting work, cancels timers, lets in-flight handlers finish until `graceMs`,
   * then aborts them through their signal and waits for them to return.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#shuttingDown = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.clear();
    this.#waiting.clear();
    this.#dirty.clear();
    const idle = this.#queue.onIdle();
    const grace = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([idle.then(() => 'idle' as const), grace])) === 'timeout') {
      this.#abort.abort(new Error('work queue shutting down'));
      await idle;
    }
  }

  async #run(key: string): Promise<void> {
    this.#waiting.delete(key);
    if (this.#shuttingDown) return;
    this.#running.add(key);
    try {
      await this.#handler(key, this.#abort.signal);
    } catch (error) {
      this.#onError(key, error);
    } finally {
      this.#running.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
    }
  }

  #cancelTimer(key: string): void {
    const existing = this.#timers.get(key);
    if (existing !== undefined) {
      clearTimeout(existing.timer);
      this.#timers.delete(key);
    }
  }
}
