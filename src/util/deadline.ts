/**
 * A timeout that ends with the work it bounds.
 *
 * `AbortSignal.any([parent, AbortSignal.timeout(ms)])` keeps its timer, the timeout signal and the
 * combined signal with every listener still attached (and whatever those listeners' closures hold:
 * request state, parsed trees) alive for the whole `ms`, even when the work finished long before.
 * With a 5-minute spec.timeout and a thousand reconciles that is thousands of signals pinning
 * memory for minutes. A Deadline's timer is cleared and its listener on the parent removed as soon
 * as it is disposed; until then its signal aborts like the pair above: with a `TimeoutError`
 * DOMException when the time is up, or with the parent's reason when the parent aborts.
 */
export class Deadline implements Disposable {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #parent: AbortSignal | undefined;
  readonly #onParentAbort = () => this.#abort(this.#parent?.reason);

  constructor(timeoutMs: number, parent?: AbortSignal) {
    this.#parent = parent;
    this.#timer = setTimeout(
      () => this.#abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      timeoutMs,
    );
    // Like AbortSignal.timeout: a pending deadline does not keep the process alive.
    this.#timer.unref();
    if (parent?.aborted === true) this.#abort(parent.reason);
    else parent?.addEventListener('abort', this.#onParentAbort, { once: true });
  }

  /** Aborts when the time is up or the parent aborts, whichever is first, unless disposed before. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Whether it was the time, not the parent, that aborted the signal. */
  get timedOut(): boolean {
    const reason: unknown = this.#controller.signal.reason;
    return reason instanceof DOMException && reason.name === 'TimeoutError';
  }

  /** Stops the timer and lets go of the parent; the signal stays as it is (aborted or not). */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#parent?.removeEventListener('abort', this.#onParentAbort);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #abort(reason: unknown): void {
    this.dispose();
    this.#controller.abort(reason);
  }
}

/** Runs `work` under a Deadline of `timeoutMs` below `parent`, and disposes the Deadline when `work` settles. */
export async function withDeadline<T>(
  timeoutMs: number,
  parent: AbortSignal | undefined,
  work: (signal: AbortSignal, deadline: Deadline) => Promise<T>,
): Promise<T> {
  const deadline = new Deadline(timeoutMs, parent);
  try {
    return await work(deadline.signal, deadline);
  } finally {
    deadline.dispose();
  }
}
