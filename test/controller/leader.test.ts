import { describe, expect, it } from 'vitest';
import {
  canAcquire,
  LeaderElector,
  type LeaseRecord,
  type LeaseStore,
  microTime,
  type StoredLease,
} from '../../src/controller/leader.ts';

/** An in-memory lease with resourceVersion-checked updates, as the API server does. */
class MemoryLeaseStore implements LeaseStore {
  lease: StoredLease | undefined;
  #version = 0;
  async get(): Promise<StoredLease | undefined> {
    return this.lease;
  }
  async create(spec: LeaseRecord): Promise<boolean> {
    if (this.lease) return false;
    this.lease = { spec, resourceVersion: String(++this.#version) };
    return true;
  }
  async update(spec: LeaseRecord, resourceVersion: string): Promise<boolean> {
    if (this.lease?.resourceVersion !== resourceVersion) return false;
    this.lease = { spec, resourceVersion: String(++this.#version) };
    return true;
  }
}

async function until(predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met before deadline');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function elector(
  store: LeaseStore,
  identity: string,
  log: string[],
  timings = { leaseDurationMs: 300, renewDeadlineMs: 200, retryPeriodMs: 50 },
): LeaderElector {
  return new LeaderElector({
    store,
    identity,
    ...timings,
    onStartedLeading: () => log.push(`${identity}+`),
    onStoppedLeading: () => log.push(`${identity}-`),
  });
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
    const log: string[] = [];
    const a = elector(store, 'a', log);
    const b = elector(store, 'b', log);
    const stopA = new AbortController();
    const stopB = new AbortController();
    const runA = a.run(stopA.signal);
    const runB = b.run(stopB.signal);
    await until(() => a.isLeader || b.isLeader);
    await new Promise((r) => setTimeout(r, 150));
    expect(a.isLeader && b.isLeader).toBe(false);
    const [leader, follower, stopLeader] = a.isLeader ? [a, b, stopA] : [b, a, stopB];
    stopLeader.abort();
    await (leader === a ? runA : runB);
    await until(() => follower.isLeader);
    stopA.abort();
    stopB.abort();
    await Promise.all([runA, runB]);
    expect(log.filter((entry) => entry.endsWith('+'))).toHaveLength(2);
  });

  it('steps down when renewals fail past the renew deadline', async () => {
    const store = new MemoryLeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', log);
    const stop = new AbortController();
    const run = a.run(stop.signal);
    await until(() => a.isLeader);
    // Another holder steals the lease (e.g. after a network partition): renewals now fail.
    store.lease = {
      spec: { holderIdentity: 'thief', leaseDurationSeconds: 60, renewTime: new Date().toISOString() },
      resourceVersion: 'stolen',
    };
    await until(() => !a.isLeader);
    expect(log).toEqual(['a+', 'a-']);
    stop.abort();
    await run;
  });

  it('steps down at the first renewal that finds another holder, long before the renew deadline', async () => {
    const store = new MemoryLeaseStore();
    const log: string[] = [];
    const slowDeadline = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 50 };
    const a = elector(store, 'a', log, slowDeadline);
    const stop = new AbortController();
    const run = a.run(stop.signal);
    await until(() => a.isLeader);
    store.lease = {
      spec: { holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: new Date().toISOString() },
      resourceVersion: 'moved',
    };
    const moved = Date.now();
    await until(() => !a.isLeader, 1_000);
    expect(Date.now() - moved).toBeLessThan(1_000);
    // It does not take the lease back while b's lease is valid.
    await new Promise((r) => setTimeout(r, 200));
    expect(a.isLeader).toBe(false);
    expect(store.lease?.spec.holderIdentity).toBe('b');
    expect(log).toEqual(['a+', 'a-']);
    stop.abort();
    await run;
  });

  it('keeps leading through failed renewals shorter than the renew deadline', async () => {
    const inner = new MemoryLeaseStore();
    let failing = false;
    const flaky: LeaseStore = {
      get: () => (failing ? Promise.reject(new Error('API server unavailable')) : inner.get()),
      create: (spec) => inner.create(spec),
      update: (spec, rv) => inner.update(spec, rv),
    };
    const log: string[] = [];
    const a = elector(flaky, 'a', log, { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 50 });
    const stop = new AbortController();
    const run = a.run(stop.signal);
    await until(() => a.isLeader);
    failing = true;
    await new Promise((r) => setTimeout(r, 300));
    expect(a.isLeader).toBe(true);
    failing = false;
    await new Promise((r) => setTimeout(r, 200));
    expect(a.isLeader).toBe(true);
    expect(log).toEqual(['a+']);
    stop.abort();
    await run;
  });
});
