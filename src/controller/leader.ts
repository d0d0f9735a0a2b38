/**
 * Leader election on a coordination.k8s.io/v1 Lease, client-go style: acquire when the lease
 * is free or expired, renew every `retryPeriodMs`, and step down (calling `onStoppedLeading` and
 * aborting the leadership signal that in-flight work runs under) when:
 * - a renewal finds the Lease held by another identity whose lease has not expired, or an update
 *   is refused with 409 and the re-read shows such a holder: at once, without waiting for the
 *   deadline. This replica has certainly lost (a partition, an operator who moved the Lease), and
 *   every moment it keeps writing races the real leader;
 * - `renewDeadlineMs` has passed since the start of the last successful renewal: on a timer, so a
 *   renewal stuck in flight cannot stretch leadership, and in `fence()`, a synchronous check that
 *   callers make right before they write (a process resumed after a pause writes nothing before
 *   noticing). Other candidates take the lease only `leaseDurationMs` after the last renewal they
 *   saw, so with renewDeadline < leaseDuration the old leader has stopped before a new one starts.
 * Deadlines use the monotonic clock; optimistic concurrency through resourceVersion makes two
 * candidates racing safe.
 */
import { sleepUnlessAborted } from '../util/sleep.ts';

export interface LeaseRecord {
  readonly holderIdentity?: string;
  readonly leaseDurationSeconds?: number;
  readonly acquireTime?: string;
  readonly renewTime?: string;
  readonly leaseTransitions?: number;
}

export interface StoredLease {
  readonly spec: LeaseRecord;
  readonly resourceVersion: string;
}

/** The few Lease operations leader election needs; `src/kube` implements them. */
export interface LeaseStore {
  get(signal: AbortSignal): Promise<StoredLease | undefined>;
  /** Creates the lease; resolves false when it already exists (409). */
  create(spec: LeaseRecord, signal: AbortSignal): Promise<boolean>;
  /** Replaces the lease if resourceVersion still matches; resolves false on conflict (409). */
  update(spec: LeaseRecord, resourceVersion: string, signal: AbortSignal): Promise<boolean>;
}

export interface LeaderElectionOptions {
  readonly store: LeaseStore;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** Called with a signal that aborts (with a LeadershipLostError) when this replica stops leading. */
  readonly onStartedLeading: (signal: AbortSignal) => void;
  readonly onStoppedLeading: (stepDown: StepDown) => void;
  readonly onError?: (error: unknown) => void;
  /** Wall clock, for the Lease's renewTime/acquireTime. */
  readonly now?: () => Date;
  /** Monotonic milliseconds, for the renew deadline (default performance.now). */
  readonly monotonicNow?: () => number;
}

/** Why a leader stopped leading. */
export type StepDown =
  | { readonly reason: 'held-by-another'; readonly holder: string }
  | { readonly reason: 'renew-deadline'; readonly sinceRenewalMs: number }
  | { readonly reason: 'stopped' };

/** The reason a leadership signal aborts with. */
export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError';
  readonly code = 'LEADERSHIP_LOST';
  readonly identity: string;
  readonly stepDown: StepDown;
  constructor(identity: string, stepDown: StepDown) {
    super(`${identity} stopped leading: ${describeStepDown(stepDown)}`);
    this.identity = identity;
    this.stepDown = stepDown;
  }
}

export function describeStepDown(stepDown: StepDown): string {
  switch (stepDown.reason) {
    case 'held-by-another':
      return `the Lease is held by ${stepDown.holder === '' ? 'another identity' : stepDown.holder}`;
    case 'renew-deadline':
      return `no successful renewal for ${Math.round(stepDown.sinceRenewalMs)} ms (renew deadline)`;
    case 'stopped':
      return 'stopping';
  }
}

export const defaultLeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/**
 * A Lease's acquireTime/renewTime are metav1.MicroTime: RFC 3339 with exactly six fractional
 * digits. The API server rejects (400) the three digits of Date#toISOString.
 */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** What one acquire-or-renew attempt found. */
export type LeaseAttempt =
  | { readonly kind: 'held' }
  | { readonly kind: 'held-by-another'; readonly holder: string }
  | { readonly kind: 'failed' };

/** Pure: may `identity` take or keep this lease at `now`? */
export function canAcquire(lease: LeaseRecord | undefined, identity: string, now: Date): boolean {
  if (lease === undefined || !lease.holderIdentity) return true;
  if (lease.holderIdentity === identity) return true;
  const renewed = Date.parse(lease.renewTime ?? lease.acquireTime ?? '');
  if (Number.isNaN(renewed)) return true;
  return renewed + (lease.leaseDurationSeconds ?? 15) * 1_000 < now.getTime();
}

const held: LeaseAttempt = { kind: 'held' };
const failed: LeaseAttempt = { kind: 'failed' };

export class LeaderElector {
  readonly #options: LeaderElectionOptions;
  readonly #clock: () => number;
  #leading = false;
  #leadership: AbortController | undefined;
  /** Monotonic instant of the start of the last successful renewal. */
  #renewedAt = 0;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#options = options;
    this.#clock = options.monotonicNow ?? (() => performance.now());
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Fencing, synchronous: whether this replica may still write as the leader. A leader whose last
   * successful renewal started `renewDeadlineMs` ago or more steps down here (its leadership
   * signal aborts before this returns), whatever the renewal loop is doing.
   */
  fence(): boolean {
    if (this.#leading) {
      const sinceRenewalMs = this.#clock() - this.#renewedAt;
      if (sinceRenewalMs >= this.#options.renewDeadlineMs) {
        this.#stepDown({ reason: 'renew-deadline', sinceRenewalMs });
      }
    }
    return this.#leading;
  }

  /** Runs until `signal` aborts; on abort it steps down and releases the lease if it holds it. */
  async run(signal: AbortSignal): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.#options;
    let attempt: LeaseAttempt = failed;
    while (!signal.aborted) {
      const started = this.#clock();
      attempt = failed;
      try {
        attempt = await this.#tryAcquireOrRenew(signal);
      } catch (error) {
        this.#options.onError?.(error);
      }
      if (attempt.kind === 'held') {
        // Counted from the start of the attempt: the renewTime others judge the lease by is older
        // than the answer. A renewal that took past the deadline does not extend leadership.
        if (this.#clock() - started < renewDeadlineMs) {
          this.#renewedAt = started;
          if (!this.#leading && !signal.aborted) {
            this.#leading = true;
            this.#leadership = new AbortController();
            this.#options.onStartedLeading(this.#leadership.signal);
          }
          if (this.#leading) this.#armDeadline();
        }
      } else if (this.#leading) {
        if (attempt.kind === 'held-by-another') {
          this.#stepDown({ reason: 'held-by-another', holder: attempt.holder });
        } else {
          this.fence();
        }
      }
      await sleepUnlessAborted(retryPeriodMs, signal);
    }
    const wasLeading = this.#leading;
    if (wasLeading) this.#stepDown({ reason: 'stopped' });
    if (wasLeading || attempt.kind === 'held') {
      await this.#release().catch((error: unknown) => this.#options.onError?.(error));
    }
  }

  /** Steps down when the renew deadline passes without a renewal (re-armed by each renewal). */
  #armDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    const waitMs = this.#renewedAt + this.#options.renewDeadlineMs - this.#clock();
    this.#deadlineTimer = setTimeout(
      () => {
        // Timers may fire a fraction of a millisecond early by the monotonic clock: check again then.
        if (this.fence()) this.#armDeadline();
      },
      Math.max(0, Math.ceil(waitMs)),
    );
    this.#deadlineTimer.unref();
  }

  #stepDown(stepDown: StepDown): void {
    this.#leading = false;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#leadership?.abort(new LeadershipLostError(this.#options.identity, stepDown));
    this.#leadership = undefined;
    this.#options.onStoppedLeading(stepDown);
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<LeaseAttempt> {
    const { store, identity, leaseDurationMs } = this.#options;
    const wallClock = this.#options.now ?? (() => new Date());
    const now = wallClock();
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.#options.retryPeriodMs * 2)]);
    const stored = await store.get(timeout);
    const record: LeaseRecord = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1_000),
      renewTime: microTime(now),
      acquireTime:
        stored?.spec.holderIdentity === identity && stored.spec.acquireTime
          ? stored.spec.acquireTime
          : microTime(now),
      leaseTransitions:
        (stored?.spec.leaseTransitions ?? 0) + (stored && stored.spec.holderIdentity !== identity ? 1 : 0),
    };
    if (stored !== undefined && !canAcquire(stored.spec, identity, now)) {
      return { kind: 'held-by-another', holder: stored.spec.holderIdentity ?? '' };
    }
    const written =
      stored === undefined
        ? await store.create(record, timeout)
        : await store.update(record, stored.resourceVersion, timeout);
    if (written) return held;
    // 409: someone wrote the Lease between our read and our write. If it is another live holder,
    // this replica has lost now; anything else (our own renewal raced, an expired holder) is retried.
    const current = await store.get(timeout);
    if (current !== undefined && !canAcquire(current.spec, identity, wallClock())) {
      return { kind: 'held-by-another', holder: current.spec.holderIdentity ?? '' };
    }
    return failed;
  }

  async #release(): Promise<void> {
    const signal = AbortSignal.timeout(5_000);
    const stored = await this.#options.store.get(signal);
    if (stored?.spec.holderIdentity !== this.#options.identity) return;
    await this.#options.store.update(
      { ...stored.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      stored.resourceVersion,
      signal,
    );
  }
}
