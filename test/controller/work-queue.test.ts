import { describe, expect, it } from 'vitest';
import { KeyedWorkQueue } from '../../src/controller/work-queue.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function until(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met before deadline');
    await new Promise((r) => setImmediate(r));
  }
}

describe('KeyedWorkQueue', () => {
  it('collapses duplicate adds of a waiting key into one run', async () => {
    const runs: string[] = [];
    const gate = deferred();
    const queue = new KeyedWorkQueue({
      concurrency: 1,
      handler: async (key) => {
        runs.push(key);
        if (key === 'blocker') await gate.promise;
      },
    });
    queue.add('blocker');
    queue.add('a');
    queue.add('a');
    queue.add('a');
    gate.resolve();
    await until(() => queue.depth === 0);
    expect(runs).toEqual(['blocker', 'a']);
  });

  it('never runs one key twice at once, and reruns a key added while it ran', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    const gate = deferred();
    const queue = new KeyedWorkQueue({
      concurrency: 4,
      handler: async () => {
        inFlight++;
        runs++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (runs === 1) await gate.promise;
        inFlight--;
      },
    });
    queue.add('k');
    await until(() => runs === 1);
    queue.add('k');
    queue.add('k');
    gate.resolve();
    await until(() => runs === 2 && queue.depth === 0);
    expect(maxInFlight).toBe(1);
    expect(runs).toBe(2);
  });

  it('keeps the earliest timer of addAfter and reports handler errors without stopping', async () => {
    const errors: string[] = [];
    const runs: number[] = [];
    const queue = new KeyedWorkQueue({
      concurrency: 2,
      handler: async (key) => {
        runs.push(Date.now());
        if (key === 'bad') throw new Error('boom');
      },
      onError: (key) => errors.push(key),
    });
    const start = Date.now();
    queue.addAfter('k', 5_000);
    queue.addAfter('k', 20);
    queue.add('bad');
    await until(() => runs.length === 2);
    expect(errors).toEqual(['bad']);
    expect((runs[1] ?? 0) - start).toBeLessThan(4_000);
    await queue.shutdown(100);
  });

  it('aborts in-flight work after the grace period on shutdown', async () => {
    let aborted = false;
    const queue = new KeyedWorkQueue({
      concurrency: 1,
      handler: (_key, signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          });
        }),
    });
    queue.add('k');
    await until(() => queue.depth === 1);
    await queue.shutdown(20);
    expect(aborted).toBe(true);
  });
});
