/**
 * Leader election on a coordination.k8s.io/v1 Lease, client-go style: acquire when the lease
 * is free or expired, renew before `renewDeadlineMs`, and step down (calling `onStoppedLeading`)
 * as soon as a renewal fails past the deadline, so a replica that lost the lease stops writing.
 * A leader that reads the Lease and finds another holder whose lease has not expired steps down at
 * once, without waiting for the deadline: it has certainly lost (a partition, a clock, an operator
 * who moved the lease by hand), and every moment it keeps writing races the real leader.
 * Optimistic concurrency through resourceVersion makes two candidates racing safe.
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
  readonly onStartedLeading: (signal: AbortSignal) => void;
  readonly onStoppedLeading: () => void;
  readonly onError?: (error: unknown) => void;
  readonly now?: () => Date;
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
export type LeaseAttempt = 'held' | 'held-by-another' | 'failed';

/** Pure: may `identity` take or keep this lease at `now`? */
export function canAcquire(lease: LeaseRecord | undefined, identity: string, now: Date): boolean {
  if (lease === undefined || !lease.holderIdentity) return true;
  if (lease.holderIdentity === identity) return true;
  const renewed = Date.parse(lease.renewTime ?? lease.acquireTime ?? '');
  if (Number.isNaN(renewed)) return true;
  return renewed + (lease.leaseDurationSeconds ?? 15) * 1_000 < now.getTime();
}

export class LeaderElector {
  readonly #options: LeaderElectionOptions;
  #leading = false;
  #leadership: AbortController | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#options = options;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Runs until `signal` aborts; on abort it releases the lease if held. */
  async run(signal: AbortSignal): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.#options;
    let lastRenew = 0;
    while (!signal.aborted) {
      let attempt: LeaseAttempt = 'failed';
      try {
        attempt = await this.#tryAcquireOrRenew(signal);
      } catch (error) {
        this.#options.onError?.(error);
      }
      const now = Date.now();
      if (attempt === 'held') {
        lastRenew = now;
        if (!this.#leading) {
          this.#leading = true;
          this.#leadership = new AbortController();
          this.#options.onStartedLeading(this.#leadership.signal);
        }
      } else if (this.#leading && (attempt === 'held-by-another' || now - lastRenew > renewDeadlineMs)) {
        this.#stepDown();
      }
      await sleepUnlessAborted(retryPeriodMs, signal);
    }
    if (this.#leading) {
      this.#stepDown();
      await this.#release().catch((error: unknown) => this.#options.onError?.(error));
    }
  }

  #stepDown(): void {
    this.#leading = false;
    this.#leadership?.abort(new Error('leadership lost'));
    this.#leadership = undefined;
    this.#options.onStoppedLeading();
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<LeaseAttempt> {
    const { store, identity, leaseDurationMs } = this.#options;
    const now = (this.#options.now ?? (() => new Date()))();
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
    if (stored === undefined) return (await store.create(record, timeout)) ? 'held' : 'failed';
    if (!canAcquire(stored.spec, identity, now)) return 'held-by-another';
    return (await store.update(record, stored.resourceVersion, timeout)) ? 'held' : 'failed';
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
