// Helpers shared by the benches (not part of the product).
import { rm } from 'node:fs/promises';
import { type ControlPlane, startControlPlane } from '../e2e/support/controlplane.ts';
import type { KubeClient } from '../src/kube/client.ts';

/**
 * Polls `probe` (in-process state, or a request cheap for the server) until it returns a value;
 * fails after `timeoutMs` naming what it waited for.
 */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string | (() => string),
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Watches one object of `collectionPath` from `resourceVersion` until its status passes `done`;
 * fails after `timeoutMs` with the last status seen.
 */
export async function watchStatusUntil(
  client: KubeClient,
  collectionPath: string,
  name: string,
  resourceVersion: string,
  done: (status: Readonly<Record<string, unknown>>) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const controller = new AbortController();
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([controller.signal, deadline]);
  let lastStatus: unknown;
  let matched = false;
  let from = resourceVersion;
  while (!matched) {
    const query = new URLSearchParams({
      watch: '1',
      fieldSelector: `metadata.name=${name}`,
      resourceVersion: from,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    });
    const timedOut = () =>
      new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last status ${JSON.stringify(lastStatus)?.slice(0, 2_000)})`,
      );
    const outcome = await client
      .stream(
        { path: `${collectionPath}?${query}`, subject: what, signal, idleTimeoutMs: 120_000 },
        (line) => {
          const event = JSON.parse(line) as {
            type: string;
            object: { metadata?: { resourceVersion?: string }; status?: Record<string, unknown> };
          };
          from = event.object.metadata?.resourceVersion ?? from;
          if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
          lastStatus = event.object.status;
          if (done(event.object.status ?? {})) {
            matched = true;
            controller.abort();
          }
        },
      )
      .catch((error: unknown) => {
        if (matched) return undefined;
        throw deadline.aborted ? timedOut() : error;
      });
    if (matched) return;
    if (deadline.aborted) throw timedOut();
    if (outcome !== undefined && outcome.status !== 'closed') {
      throw new Error(`watching ${what}: HTTP ${outcome.status}`);
    }
  }
}

/**
 * Counts an engine's pre-warmed spares (its `observeSpare` callback) so that a benchmark can let the
 * spare started after a render finish initialising before it times the next one: the latency of a
 * render that arrives at an idle operator, which is how renders arrive (a new revision or spec).
 */
export function spareCounter() {
  let ready = 0;
  let waiters: (() => void)[] = [];
  return {
    observe(event: 'ready' | 'released'): void {
      if (event !== 'ready') return;
      ready++;
      for (const wake of waiters) wake();
      waiters = [];
    },
    /** Resolves once `count` spares have reported ready in total. */
    async readyAtLeast(count: number): Promise<void> {
      // A spare's worker does not keep the process alive (unref'd): this handle does meanwhile.
      const keepAlive = setInterval(() => undefined, 60_000);
      try {
        while (ready < count) await new Promise<void>((resolve) => waiters.push(resolve));
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}

/** A fresh control plane of the bench's own in `stateDir` (never a reused one), stopped if this process dies. */
export function startBenchPlane(stateDir: string): Promise<ControlPlane> {
  return startControlPlane({ stateDir, reuse: false, ownerPid: process.pid, readyTimeoutMs: 180_000 });
}

interface BenchParts {
  readonly repo?: { close(): Promise<unknown> } | undefined;
  readonly client?: { close(): Promise<unknown> } | undefined;
  readonly plane?: { stop(): Promise<unknown> } | undefined;
}

/**
 * A bench's teardown: its repository, client and control plane closed in that order, their
 * failures ignored (a teardown must not hide the bench's own error), then its directories removed.
 */
export async function tearDownBench(parts: BenchParts, dirs: readonly string[]): Promise<void> {
  await parts.repo?.close().catch(() => undefined);
  await parts.client?.close().catch(() => undefined);
  await parts.plane?.stop().catch(() => undefined);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
