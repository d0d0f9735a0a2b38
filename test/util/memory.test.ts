import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryReleaser } from '../../src/util/memory.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryReleaser', () => {
  it('runs one collection after the last of a batch of releases', () => {
    vi.useFakeTimers();
    const collect = vi.fn();
    const releaser = new MemoryReleaser(2_000, collect);
    for (let i = 0; i < 100; i++) {
      releaser.released();
      vi.advanceTimersByTime(10);
    }
    expect(collect).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2_000);
    expect(collect).toHaveBeenCalledTimes(1);
    expect(releaser.collections).toBe(1);
    releaser.released();
    releaser.stop();
    vi.advanceTimersByTime(5_000);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('reaches V8 full collection without --expose-gc on the command line', () => {
    expect(() => new MemoryReleaser(1).released()).not.toThrow();
  });
});
