// Shared by the HTTPS and SSH source tests (test/source/remote, ssh-transport): the SourceError a
// promise rejects with, and a poll-then-fetch into a named cache directory.
import { expect } from 'vitest';
import type { GitRef } from '../../src/api/gitrepository.ts';
import { SourceError } from '../../src/source/errors.ts';
import {
  cacheDirFor,
  type FetchRevisionRequest,
  fetchRevision,
  type GitRemote,
  pollRemote,
} from '../../src/source/remote.ts';

/** The SourceError `promise` rejects with (the test fails if it resolves or rejects otherwise). */
export async function sourceErrorOf(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

/** Polls `ref` on `remote`, recording each request as `METHOD url`. */
export async function pollRecording(
  remote: GitRemote,
  ref: GitRef,
  signal: AbortSignal,
): Promise<{ resolved: Awaited<ReturnType<typeof pollRemote>>; seen: string[] }> {
  const seen: string[] = [];
  const resolved = await pollRemote(remote, ref, {
    signal,
    onRequest: (method, u) => seen.push(`${method} ${u}`),
  });
  return { resolved, seen };
}

export interface FetchSetup {
  /** The remote a test uses unless it passes its own. */
  readonly remote: () => GitRemote;
  /** The cache root (read when a fetch starts, so it may be set in beforeAll). */
  readonly cacheRoot: () => string;
  readonly signal: () => AbortSignal;
}

export type FetchInto = (
  name: string,
  ref: GitRef,
  options?: Partial<FetchRevisionRequest>,
) => Promise<{ dir: string; fetched: boolean; shallow: boolean; commit: string }>;

/** Polls `ref` (with options.remote when given), then fetches it at depth 1 into cache `ns/<name>`. */
export function fetcherInto(setup: FetchSetup): FetchInto {
  return async (name, ref, options = {}) => {
    const resolved = await pollRemote(options.remote ?? setup.remote(), ref, { signal: setup.signal() });
    const outcome = await fetchRevision({
      dir: cacheDirFor(setup.cacheRoot(), 'ns', name),
      remote: setup.remote(),
      ref,
      resolved,
      depth: 1,
      signal: setup.signal(),
      ...options,
    });
    return { ...outcome, commit: resolved.commit };
  };
}
