/**
 * Event-loop delay while something runs: for hardening tests that prove no hostile input stalls the process
 * (issue 13, item 4). `monitorEventLoopDelay` samples a libuv timer every `resolutionMs`; a synchronous
 * stretch of N ms shows up as a delay of about N ms. Peak RSS is the process's lifetime maximum
 * (`resourceUsage().maxRSS`), so `peakRssGrowthMiB` is how far the run pushed that maximum, 0 if not at all.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

export interface EventLoopMeasurement<T> {
  readonly result: T;
  readonly elapsedMs: number;
  /** Longest the event loop was blocked during the run, in ms. */
  readonly maxDelayMs: number;
  readonly p99DelayMs: number;
  /** Process peak RSS after the run, MiB. */
  readonly peakRssMiB: number;
  /** How much the run raised the process peak RSS, MiB. */
  readonly peakRssGrowthMiB: number;
}

const NS_PER_MS = 1e6;
const KIB_PER_MIB = 1024;

/** Runs `run` while sampling event-loop delay; returns its result with the delay and time it took. */
export async function measureEventLoop<T>(
  run: () => Promise<T>,
  resolutionMs = 5,
): Promise<EventLoopMeasurement<T>> {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  const peakBefore = process.resourceUsage().maxRSS;
  histogram.enable();
  const start = performance.now();
  try {
    const result = await run();
    const elapsedMs = performance.now() - start;
    histogram.disable();
    const peakAfter = process.resourceUsage().maxRSS;
    return {
      result,
      elapsedMs,
      maxDelayMs: histogram.max / NS_PER_MS,
      p99DelayMs: histogram.percentile(99) / NS_PER_MS,
      peakRssMiB: peakAfter / KIB_PER_MIB,
      peakRssGrowthMiB: (peakAfter - peakBefore) / KIB_PER_MIB,
    };
  } finally {
    histogram.disable();
  }
}
