/** Exponential backoff with full jitter, per key: the delay for the n-th consecutive failure. */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
  /** Returns a number in [0, 1). Injectable for deterministic tests. */
  readonly random?: () => number;
}

export const defaultBackoffOptions: BackoffOptions = { baseMs: 1_000, maxMs: 5 * 60_000 };

/** Delay before retry number `failures` (1-based): base·2^(n-1) capped at max, jittered into [½·d, d]. */
export function backoffDelay(failures: number, options: BackoffOptions = defaultBackoffOptions): number {
  const exponent = Math.max(0, Math.min(failures - 1, 30));
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  const random = options.random ?? Math.random;
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Jitter a periodic requeue interval by up to ±`fraction` so many objects do not poll in lockstep. */
export function jitterInterval(
  intervalMs: number,
  fraction = 0.1,
  random: () => number = Math.random,
): number {
  return Math.max(1, Math.round(intervalMs * (1 - fraction + 2 * fraction * random())));
}
