import { afterEach, describe, expect, it, vi } from 'vitest';
import { Deadline, withDeadline } from '../../src/util/deadline.ts';

describe('Deadline', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts with a TimeoutError DOMException when the time is up, like AbortSignal.timeout', () => {
    vi.useFakeTimers();
    const deadline = new Deadline(1_000);
    vi.advanceTimersByTime(999);
    expect(deadline.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.timedOut).toBe(true);
    const reason: unknown = deadline.signal.reason;
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe('TimeoutError');
    expect(vi.getTimerCount()).toBe(0);
  });

  it("aborts with the parent's reason when the parent aborts first, and stops its timer", () => {
    vi.useFakeTimers();
    const parent = new AbortController();
    const deadline = new Deadline(1_000, parent.signal);
    const reason = new Error('operator stopping');
    parent.abort(reason);
    expect(deadline.signal.reason).toBe(reason);
    expect(deadline.timedOut).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is aborted at once below an already aborted parent', () => {
    const parent = new AbortController();
    parent.abort(new Error('gone'));
    const deadline = new Deadline(60_000, parent.signal);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.timedOut).toBe(false);
  });

  it('once disposed, neither the time nor the parent aborts it, and no timer is left', () => {
    vi.useFakeTimers();
    const parent = new AbortController();
    const deadline = new Deadline(1_000, parent.signal);
    deadline.dispose();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5_000);
    parent.abort(new Error('late'));
    expect(deadline.signal.aborted).toBe(false);
  });
});

describe('withDeadline', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('leaves no timer behind when the work resolves or rejects long before the time is up', async () => {
    vi.useFakeTimers();
    await expect(withDeadline(300_000, undefined, async () => 'done')).resolves.toBe('done');
    await expect(
      withDeadline(300_000, undefined, async () => {
        throw new Error('failed');
      }),
    ).rejects.toThrow('failed');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('hands the work a signal that aborts at the deadline while the work is still running', async () => {
    vi.useFakeTimers();
    const outcome = withDeadline(
      1_000,
      undefined,
      (signal, deadline) =>
        new Promise<string>((resolve) => {
          signal.addEventListener('abort', () => resolve(deadline.timedOut ? 'timed out' : 'aborted'));
        }),
    );
    vi.advanceTimersByTime(1_000);
    await expect(outcome).resolves.toBe('timed out');
  });
});
