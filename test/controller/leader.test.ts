import { describe, expect, it } from 'vitest';
import {
  canAcquire,
  type LeaderElectionOptions,
  LeaderElector,
  LeadershipLostError,
  type LeaseRecord,
  type LeaseStore,
  microTime,
  type StepDown,
  type StoredLease,
} from '../../src/controller/leader.ts';

/** An in-memory lease with resourceVersion-checked updates, as the API server does. */
class MemoryLeaseStore implements LeaseStore {
  lease: StoredLease | undefined;
  /** Every call, in order: 'get', 'create', 'create 409', 'update', 'update 409'. */
  readonly calls: string[] = [];
  /** Runs before an update is checked: lets a test make another writer win the race. */
  beforeUpdate: (() => void) | undefined;
  #version = 0;
  async get(): Promise<StoredLease | undefined> {
    this.calls.push('get');
    return this.lease;
  }
  async create(spec: LeaseRecord): Promise<boolean> {
    if (this.lease) {
      this.calls.push('create 409');
      return false;
    }
    this.calls.push('create');
    this.lease = { spec, resourceVersion: String(++this.#version) };
    return true;
  }
  async update(spec: LeaseRecord, resourceVersion: string): Promise<boolean> {
    this.beforeUpdate?.();
    if (this.lease?.resourceVersion !== resourceVersion) {
      this.calls.push('update 409');
      return false;
    }
    this.calls.push('update');
    this.lease = { spec, resourceVersion: String(++this.#version) };
    return true;
  }
  /** Another replica writes the Lease (what a replica on the other side of a partition does). */
  takeOver(holder: string, leaseDurationSeconds = 15, renewTime = new Date()): void {
    this.lease = {
      spec: { holderIdentity: holder, leaseDurationSeconds, renewTime: microTime(renewTime) },
      resourceVersion: String(++this.#version),
    };
  }
}

/** Polls `predicate` every 2 ms until it holds; fails at the deadline. */
async function until(predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Observed {
  readonly log: string[];
  readonly stepDowns: StepDown[];
  /** performance.now() of each step-down. */
  readonly stepDownAt: number[];
  /** The store's call count at each step-down (when the store is a MemoryLeaseStore). */
  readonly callsAtStepDown: number[];
  /** The leadership signals handed out, in order. */
  readonly signals: AbortSignal[];
}

function elector(
  store: LeaseStore,
  identity: string,
  timings = { leaseDurationMs: 300, renewDeadlineMs: 200, retryPeriodMs: 50 },
  extra: Partial<LeaderElectionOptions> = {},
): { elector: LeaderElector; observed: Observed } {
  const observed: Observed = { log: [], stepDowns: [], stepDownAt: [], callsAtStepDown: [], signals: [] };
  const created = new LeaderElector({
    store,
    identity,
    ...timings,
    onStartedLeading: (signal) => {
      observed.log.push(`${identity}+`);
      observed.signals.push(signal);
    },
    onStoppedLeading: (stepDown) => {
      observed.log.push(`${identity}-`);
      observed.stepDowns.push(stepDown);
      observed.stepDownAt.push(performance.now());
      if (store instanceof MemoryLeaseStore) observed.callsAtStepDown.push(store.calls.length);
    },
    ...extra,
  });
  return { elector: created, observed };
}

/** Starts `candidate.run` and returns a function that stops it and waits for the loop to end. */
function running(candidate: LeaderElector): () => Promise<void> {
  const stop = new AbortController();
  const run = candidate.run(stop.signal);
  return async () => {
    stop.abort();
    await run;
  };
}

describe('microTime', () => {
  it('writes metav1.MicroTime: RFC 3339 with exactly six fractional digits, in UTC', () => {
    expect(microTime(new Date('2026-11-22T10:11:12.345Z'))).toBe('2026-11-22T10:11:12.345000Z');
    expect(microTime(new Date('2026-11-22T10:11:12Z'))).toBe('2026-11-22T10:11:12.000000Z');
    expect(microTime(new Date(0))).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
  });
});

describe('canAcquire', () => {
  it('allows a free, own or expired lease and refuses a live one held by another', () => {
    const now = new Date('2026-01-01T00:00:10Z');
    expect(canAcquire(undefined, 'a', now)).toBe(true);
    const held = { holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: '2026-01-01T00:00:00Z' };
    expect(canAcquire(held, 'a', now)).toBe(false);
    expect(canAcquire(held, 'b', now)).toBe(true);
    expect(canAcquire(held, 'a', new Date('2026-01-01T00:00:16Z'))).toBe(true);
  });
});

describe('LeaderElector', () => {
  it('elects exactly one of two candidates, and hands over after the leader releases', async () => {
    const store = new MemoryLeaseStore();
    const a = elector(store, 'a');
    const b = elector(store, 'b');
    const stopA = running(a.elector);
    const stopB = running(b.elector);
    await until(() => a.elector.isLeader || b.elector.isLeader);
    // Both keep competing for a few rounds: never two leaders.
    const gets = store.calls.length;
    while (store.calls.length < gets + 12) {
      expect(a.elector.isLeader && b.elector.isLeader).toBe(false);
      await new Promise((r) => setTimeout(r, 2));
    }
    const [leader, follower, stopLeader] = a.elector.isLeader ? [a, b, stopA] : [b, a, stopB];
    await stopLeader();
    expect(leader.observed.stepDowns).toEqual([{ reason: 'stopped' }]);
    expect(store.lease?.spec.holderIdentity).not.toBe(leader === a ? 'a' : 'b');
    await until(() => follower.elector.isLeader);
    await Promise.all([stopA(), stopB()]);
    expect([...a.observed.log, ...b.observed.log].filter((entry) => entry.endsWith('+'))).toHaveLength(2);
  });

  it('steps down at the renew deadline when renewals fail, and aborts the leadership signal', async () => {
    const inner = new MemoryLeaseStore();
    let failing = false;
    let failedGets = 0;
    const unreachable: LeaseStore = {
      get: () => {
        if (!failing) return inner.get();
        failedGets++;
        return Promise.reject(new Error('API server unavailable'));
      },
      create: (spec) => inner.create(spec),
      update: (spec, rv) => inner.update(spec, rv),
    };
    const a = elector(unreachable, 'a');
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    failing = true;
    const failingSince = performance.now();
    await until(() => !a.elector.isLeader);
    const elapsed = performance.now() - failingSince;
    // Not before the deadline (200 ms after the start of the last good renewal, which came before
    // `failingSince`), and not much after it either.
    expect(failedGets).toBeGreaterThan(1);
    expect(elapsed).toBeLessThan(200 + 100);
    expect(a.observed.stepDowns).toHaveLength(1);
    const [stepDown] = a.observed.stepDowns;
    expect(stepDown?.reason).toBe('renew-deadline');
    expect(stepDown?.reason === 'renew-deadline' && stepDown.sinceRenewalMs).toBeGreaterThanOrEqual(200);
    expect(a.observed.signals[0]?.aborted).toBe(true);
    expect(a.observed.signals[0]?.reason).toBeInstanceOf(LeadershipLostError);
    await stop();
    expect(a.observed.log).toEqual(['a+', 'a-']);
  });

  it('steps down at the first renewal that finds another holder, long before the renew deadline', async () => {
    const store = new MemoryLeaseStore();
    const a = elector(store, 'a', { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 50 });
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    const leadership = a.observed.signals[0];
    store.takeOver('b');
    const moved = performance.now();
    const callsAtMove = store.calls.length;
    await until(() => !a.elector.isLeader, 1_000);
    // One retry period (50 ms) and one read, not the 10 s renew deadline.
    expect(performance.now() - moved).toBeLessThan(500);
    expect(store.calls.slice(callsAtMove)).toEqual(['get']);
    expect(a.observed.stepDowns).toEqual([{ reason: 'held-by-another', holder: 'b' }]);
    expect(leadership?.aborted).toBe(true);
    const reason: unknown = leadership?.reason;
    expect(reason).toBeInstanceOf(LeadershipLostError);
    expect(reason instanceof LeadershipLostError && reason.message).toBe(
      'a stopped leading: the Lease is held by b',
    );
    // It keeps trying, but does not take the lease back while b's lease is valid.
    const calls = store.calls.length;
    await until(() => store.calls.length >= calls + 5);
    expect(a.elector.isLeader).toBe(false);
    expect(store.lease?.spec.holderIdentity).toBe('b');
    expect(store.calls).not.toContain('update 409');
    await stop();
    expect(a.observed.log).toEqual(['a+', 'a-']);
    // Stopping as a follower does not release b's lease.
    expect(store.lease?.spec.holderIdentity).toBe('b');
  });

  it('steps down in the same attempt when its renewal is refused (409) and the re-read shows another holder', async () => {
    const store = new MemoryLeaseStore();
    // Waiting for the next attempt would take another 400 ms; the renew deadline is 10 s away.
    const a = elector(store, 'a', { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 400 });
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    let conflictAt = 0;
    let callsAtConflict = 0;
    // b writes the Lease between a's read and a's update: a's update gets 409 (optimistic concurrency).
    store.beforeUpdate = () => {
      store.beforeUpdate = undefined;
      store.takeOver('b');
      conflictAt = performance.now();
      callsAtConflict = store.calls.length;
    };
    await until(() => !a.elector.isLeader, 3_000);
    expect(a.observed.stepDowns).toEqual([{ reason: 'held-by-another', holder: 'b' }]);
    expect(a.observed.stepDownAt[0]! - conflictAt).toBeLessThan(100);
    // The refused update and one re-read, nothing else: the step-down came in that attempt.
    expect(store.calls.slice(callsAtConflict, callsAtConflict + 2)).toEqual(['update 409', 'get']);
    expect(a.observed.callsAtStepDown[0]).toBe(callsAtConflict + 2);
    expect(a.observed.signals[0]?.aborted).toBe(true);
    await stop();
    expect(store.lease?.spec.holderIdentity).toBe('b');
  });

  it('keeps leading when a 409 re-read shows its own or an expired holder, and through failed renewals within the deadline', async () => {
    const inner = new MemoryLeaseStore();
    let failing = false;
    let failedGets = 0;
    const flaky: LeaseStore = {
      get: () => {
        if (!failing) return inner.get();
        failedGets++;
        return Promise.reject(new Error('API server unavailable'));
      },
      create: (spec) => inner.create(spec),
      update: (spec, rv) => inner.update(spec, rv),
    };
    const a = elector(flaky, 'a', { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 20 });
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    // A conflict caused by an expired holder's write: not a live rival, so a keeps the lease.
    inner.beforeUpdate = () => {
      inner.beforeUpdate = undefined;
      inner.takeOver('stale', 1, new Date(Date.now() - 60_000));
    };
    await until(() => inner.calls.includes('update 409'));
    await until(() => inner.lease?.spec.holderIdentity === 'a');
    expect(a.elector.isLeader).toBe(true);
    // Renewals failing for a while, well within the 2 s deadline.
    failing = true;
    await until(() => failedGets >= 5);
    expect(a.elector.isLeader).toBe(true);
    failing = false;
    const calls = inner.calls.length;
    await until(() => inner.calls.slice(calls).includes('update'));
    expect(a.elector.isLeader).toBe(true);
    await stop();
    expect(a.observed.log).toEqual(['a+', 'a-']);
    expect(a.observed.stepDowns).toEqual([{ reason: 'stopped' }]);
    expect(inner.lease?.spec.holderIdentity).toBe('');
  });

  it('steps down at the renew deadline even while a renewal hangs in flight', async () => {
    const inner = new MemoryLeaseStore();
    let hang = false;
    // Requests stuck for good (a transport that ignores its abort signal): the loop cannot notice.
    const stuck: (() => void)[] = [];
    const hanging: LeaseStore = {
      get: () => {
        if (!hang) return inner.get();
        return new Promise((_resolve, reject) => {
          stuck.push(() => reject(new Error('request released by the test')));
        });
      },
      create: (spec) => inner.create(spec),
      update: (spec, rv) => inner.update(spec, rv),
    };
    const a = elector(hanging, 'a', { leaseDurationMs: 5_000, renewDeadlineMs: 300, retryPeriodMs: 50 });
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    hang = true;
    const hungSince = performance.now();
    await until(() => !a.elector.isLeader, 3_000);
    // The renewal after `hungSince` is still in flight: the deadline timer stepped down.
    expect(stuck).toHaveLength(1);
    expect(performance.now() - hungSince).toBeLessThan(300 + 100);
    const [stepDown] = a.observed.stepDowns;
    expect(stepDown?.reason).toBe('renew-deadline');
    expect(stepDown?.reason === 'renew-deadline' && stepDown.sinceRenewalMs).toBeGreaterThanOrEqual(300);
    expect(a.observed.signals[0]?.aborted).toBe(true);
    hang = false;
    for (const release of stuck) release();
    await stop();
    expect(a.observed.log).toEqual(['a+', 'a-']);
  });

  it('fence(): a leader resumed after a pause past its renew deadline stops before its next write', async () => {
    const store = new MemoryLeaseStore();
    let offsetMs = 0;
    const a = elector(
      store,
      'a',
      { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 5_000 },
      { monotonicNow: () => performance.now() + offsetMs },
    );
    const stop = running(a.elector);
    await until(() => a.elector.isLeader);
    const leadership = a.observed.signals[0];
    expect(a.elector.fence()).toBe(true);
    expect(leadership?.aborted).toBe(false);
    // The process was stopped (SIGSTOP, a long GC, a frozen VM) for 12 s: its timers have not run yet.
    offsetMs = 12_000;
    expect(a.elector.fence()).toBe(false);
    // Synchronously: the signal the caller's next request would carry is already aborted.
    expect(leadership?.aborted).toBe(true);
    expect(a.elector.isLeader).toBe(false);
    const [stepDown] = a.observed.stepDowns;
    expect(stepDown?.reason).toBe('renew-deadline');
    expect(stepDown?.reason === 'renew-deadline' && stepDown.sinceRenewalMs).toBeGreaterThanOrEqual(12_000);
    expect(a.elector.fence()).toBe(false);
    expect(a.observed.stepDowns).toHaveLength(1);
    await stop();
  });
});
