/**
 * The one retry backoff of the operator (work queue, informer reconnects, Slack deliveries, API
 * server requests). Exponential, capped, with "equal jitter": the delay before the n-th retry is
 * drawn uniformly from [½·d, d] where d = min(max, base·2^(n-1)). It is NOT "full jitter" (which
 * draws from [0, d]): half of the delay is kept so that a retry never comes right back at once.
 */
export interface BackoffOptions {
  /** d for the first retry, in ms. */
  readonly baseMs: number;
  /** Cap on d, in ms. */
  readonly maxMs: number;
  /** Returns a number in [0, 1). Injectable for deterministic tests. */
  readonly random?: () => number;
}

export const defaultBackoffOptions: BackoffOptions = { baseMs: 1_000, maxMs: 5 * 60_000 };

/**
 * Delay in whole ms before retry number `failures` (1-based, values below 1 count as 1):
 * d = min(maxMs, baseMs·2^(failures-1)), then uniform in [d/2, d] (equal jitter, see above).
 */
export function backoffDelay(failures: number, options: BackoffOptions = defaultBackoffOptions): number {
  const exponent = Math.max(0, Math.min(failures - 1, 30));
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  const random = options.random ?? Math.random;
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Jitter a periodic requeue interval uniformly within ±`fraction` so many objects do not poll in lockstep. */
export function jitterInterval(
  intervalMs: number,
  fraction = 0.1,
  random: () => number = Math.random,
): number {
  return Math.max(1, Math.round(intervalMs * (1 - fraction + 2 * fraction * random())));
}
