/**
 * Event-loop delay while something runs: for hardening tests that prove no hostile input stalls the process
 * (issue 13, item 4). `monitorEventLoopDelay` samples a libuv timer every `resolutionMs`; a synchronous
 * stretch of N ms shows up as a delay of about N ms. Peak RSS is the process's lifetime maximum
 * (`resourceUsage().maxRSS`), so `peakRssGrowthMiB` is how far the run pushed that maximum, 0 if not at all.
 *
 * A delay is wall-clock time: on a shared machine it also counts the time the OS did not run this
 * process at all. `maxBusyMs` separates the two: a ticker every `resolutionMs` reads this thread's
 * CPU time (`process.threadCpuUsage`), and the largest CPU time spent between two ticks is how long
 * the event loop was kept busy by code running on it (the operator's, the test's, and V8's
 * garbage collection on this thread); time descheduled is not in it.
 */
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';

export interface EventLoopMeasurement<T> {
  readonly result: T;
  readonly elapsedMs: number;
  /** Longest the event loop was blocked during the run, in ms. */
  readonly maxDelayMs: number;
  readonly p99DelayMs: number;
  /** Most CPU time this thread spent between two ticks `resolutionMs` apart, in ms (see above). */
  readonly maxBusyMs: number;
  /** Wall-clock length of the tick gap in which `maxBusyMs` was spent, in ms. */
  readonly maxBusyGapMs: number;
  /** Longest garbage-collection pause V8 reported during the run, in ms (part of the delay). */
  readonly maxGcMs: number;
  /** Process peak RSS after the run, MiB. */
  readonly peakRssMiB: number;
  /** How much the run raised the process peak RSS, MiB. */
  readonly peakRssGrowthMiB: number;
}

const NS_PER_MS = 1e6;
const US_PER_MS = 1e3;
const KIB_PER_MIB = 1024;

/** The largest CPU time this thread spent between two ticks of a `resolutionMs` ticker. */
function busyTicker(resolutionMs: number): { stop(): { maxBusyMs: number; maxBusyGapMs: number } } {
  const cpuMs = () => {
    const usage = process.threadCpuUsage();
    return (usage.user + usage.system) / US_PER_MS;
  };
  let lastWall = performance.now();
  let lastCpu = cpuMs();
  let maxBusyMs = 0;
  let maxBusyGapMs = 0;
  const tick = () => {
    const wall = performance.now();
    const cpu = cpuMs();
    if (cpu - lastCpu > maxBusyMs) {
      maxBusyMs = cpu - lastCpu;
      maxBusyGapMs = wall - lastWall;
    }
    lastWall = wall;
    lastCpu = cpu;
  };
  const timer = setInterval(tick, resolutionMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { maxBusyMs, maxBusyGapMs };
    },
  };
}

/** Runs `run` while sampling event-loop delay; returns its result with the delay and time it took. */
export async function measureEventLoop<T>(
  run: () => Promise<T>,
  resolutionMs = 5,
): Promise<EventLoopMeasurement<T>> {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  const peakBefore = process.resourceUsage().maxRSS;
  histogram.enable();
  let maxGcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) maxGcMs = Math.max(maxGcMs, entry.duration);
  });
  gc.observe({ entryTypes: ['gc'] });
  const busy = busyTicker(resolutionMs);
  const start = performance.now();
  try {
    const result = await run();
    const elapsedMs = performance.now() - start;
    histogram.disable();
    const { maxBusyMs, maxBusyGapMs } = busy.stop();
    const peakAfter = process.resourceUsage().maxRSS;
    return {
      result,
      elapsedMs,
      maxDelayMs: histogram.max / NS_PER_MS,
      p99DelayMs: histogram.percentile(99) / NS_PER_MS,
      maxBusyMs,
      maxBusyGapMs,
      maxGcMs,
      peakRssMiB: peakAfter / KIB_PER_MIB,
      peakRssGrowthMiB: (peakAfter - peakBefore) / KIB_PER_MIB,
    };
  } finally {
    histogram.disable();
    busy.stop();
    gc.disconnect();
  }
}
