/**
 * The Git source as the controller's SourcePort, composed from the standalone pieces:
 * `pollRemote` (one round trip), `fetchRevision` (incremental, per-object bare cache),
 * `openRepoReader` (verification reads) and `readTree` (bounded, blob-cached tree reads).
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import type { GitRef } from '../api/gitrepository.ts';
import type {
  FetchedRepository,
  PollShare,
  RemoteSpec,
  ResolvedRevision,
  SourcePort,
} from '../controller/ports.ts';
import { withDeadline } from '../util/deadline.ts';
import type { Logger } from '../util/logger.ts';
import { SourceError, safeUrl } from './errors.ts';
import { gitHostOf, HostGate } from './host-gate.ts';
import { defaultObjectLimits, type ObjectLimits } from './object-limits.ts';
import { openObjectStore } from './object-store.ts';
import {
  type AdvertisedRef,
  defaultMaxPackBytes,
  fetchRevision,
  listRemoteRefs,
  pollRemote,
  refPrefix,
  resolveAdvertisedRef,
  selectSemverTag,
} from './remote.ts';
import {
  BlobCache,
  defaultMaxWalkCommits,
  defaultTreeLimits,
  openRepoReader,
  readTree,
  type TreeLimits,
} from './repo-reader.ts';
import { remoteShareKey, SharedRemotes } from './shared-remotes.ts';

export { defaultObjectLimits, type ObjectLimits } from './object-limits.ts';
export { BlobCache, defaultMaxWalkCommits, defaultTreeLimits, type TreeLimits } from './repo-reader.ts';

/** The bounds on untrusted repository content, from configuration (operator and CLI flags). */
export interface SourceLimits {
  /** Files under spec.path; `maxFileBytes` is also the bound on every blob read. */
  readonly tree?: TreeLimits;
  /** Commits/tags and trees (the blob bound is `tree.maxFileBytes`). */
  readonly objects?: ObjectLimits;
  /** Most commits one history walk (Range listing, rollback check) reads. */
  readonly maxWalkCommits?: number;
}

/** The object bounds in force: commits/tags and trees from `limits.objects`, blobs the file limit. */
export function objectLimitsOf(limits: SourceLimits = {}): ObjectLimits {
  return {
    ...(limits.objects ?? defaultObjectLimits),
    blobBytes: (limits.tree ?? defaultTreeLimits).maxFileBytes,
  };
}

export interface GitSourceOptions {
  /** Root of the per-object bare caches. */
  readonly cacheDir: string;
  readonly logger: Logger;
  /** Bound on one HTTP response (the pack); default 256 MiB. */
  readonly maxPackBytes?: number;
  readonly limits?: SourceLimits;
  /** Blob cache bound in bytes, shared by every repository of this source (default 64 MiB). */
  readonly blobCacheBytes?: number;
  readonly onRequest?: (method: string, url: string) => void;
  /**
   * Git requests in flight per host (`--git-host-concurrency`); a poll or fetch finding its host
   * at the limit fails at once with HostBusy (host-gate.ts). Default: no limit.
   */
  readonly hostConcurrency?: number;
}

/** A Git source that also reports what it holds (tests prove memory follows the work). */
export interface GitSource extends SourcePort {
  release(cacheKey: string): void;
  /** Share keys, their users and their kept polls. */
  held(): { readonly keys: number; readonly users: number; readonly polls: number; readonly blobs: number };
}

/** A RevisionReader plus readTree over one bare repository directory. */
export function createRepoReader(
  gitdir: string,
  blobs: BlobCache,
  limits: SourceLimits = {},
): FetchedRepository {
  // One bounded object store (and pack cache) per fetched state of the directory.
  const store = openObjectStore(gitdir, { limits: objectLimitsOf(limits) });
  const reader = openRepoReader(gitdir, {
    store,
    maxWalkCommits: limits.maxWalkCommits ?? defaultMaxWalkCommits,
  });
  return {
    gitdir,
    readObject: reader.readObject,
    listRange: reader.listRange,
    isAncestor: reader.isAncestor,
    async readTree(commit, path, signal) {
      return readTree(gitdir, commit, path, limits.tree ?? defaultTreeLimits, {
        store,
        blobCache: blobs,
        signal,
      });
    },
  };
}

/**
 * The salt of the share keys, kept in `<cacheRoot>/shared/.salt` (created once, mode 0600), so a
 * share's directory survives restarts while its name reveals nothing about the credentials.
 */
async function loadSalt(cacheRoot: string): Promise<Buffer> {
  const dir = join(cacheRoot, 'shared');
  const path = join(dir, '.salt');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await readFile(path).catch(() => undefined);
  if (existing !== undefined && existing.length === 32) return existing;
  const salt = randomBytes(32);
  await writeFile(path, salt, { mode: 0o600 });
  return salt;
}

/**
 * Settles with `work`, or rejects as soon as `signal` aborts: with `timedOut()` when its reason is
 * a timeout (spec.timeout passed while waiting on a shared poll), else with the reason itself.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, timedOut: () => Error): Promise<T> {
  const reasonOf = (): unknown =>
    signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError'
      ? timedOut()
      : signal.reason;
  if (signal.aborted) return Promise.reject(reasonOf());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reasonOf());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * The operator's Git source. GitRepositories on the same remote with the same credentials (the
 * share key, shared-remotes.ts) share one bare store `<cacheRoot>/shared/<key>` and, given a
 * PollShare, one ref advertisement per poll interval; verification stays each one's own.
 */
export function createGitSource(options: GitSourceOptions): GitSource {
  const blobs = new BlobCache(options.blobCacheBytes ?? 64 * 1024 * 1024);
  const shared = new SharedRemotes<AdvertisedRef[]>();
  const hostGate = options.hostConcurrency === undefined ? undefined : new HostGate(options.hostConcurrency);
  const gateFor =
    (remote: RemoteSpec) =>
    <T>(work: () => Promise<T>): Promise<T> =>
      hostGate === undefined ? work() : hostGate.run(gitHostOf(remote.url), work);
  let salt: Promise<Buffer> | undefined;
  const shareKey = async (remote: RemoteSpec) => {
    if (salt === undefined) {
      const loading = loadSalt(options.cacheDir);
      salt = loading;
      // A failed load (e.g. a read-only cache directory) is tried again by the next reconcile.
      loading.catch(() => {
        if (salt === loading) salt = undefined;
      });
    }
    return remoteShareKey(remote, await salt);
  };
  const callOptions = (signal: AbortSignal) => ({
    signal,
    maxResponseBytes: options.maxPackBytes ?? defaultMaxPackBytes,
    ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
  });
  const resolveShared = async (
    remote: RemoteSpec,
    ref: Exclude<Parameters<SourcePort['resolve']>[1], { commit: string }>,
    signal: AbortSignal,
    share: PollShare,
  ): Promise<ResolvedRevision> => {
    const key = await shareKey(remote);
    shared.join(share.cacheKey, key);
    const prefix = refPrefix(ref);
    // The shared poll is not cut short by one asker's signal (others may wait on it): it has its
    // own deadline, spec.timeout of the GitRepository that started it.
    const refs = shared.poll(key, prefix, share.maxAgeMs, () =>
      gateFor(remote)(() =>
        withDeadline(remote.timeoutMs, undefined, (pollSignal) =>
          listRemoteRefs(remote, prefix, callOptions(pollSignal)),
        ),
      ),
    );
    const timedOut = () =>
      new SourceError(
        'Timeout',
        `GET ${safeUrl(remote.url)}/info/refs: no complete answer within ${remote.timeoutMs} ms (spec.timeout)`,
      );
    return resolveAdvertisedRef(await untilAborted(refs, signal, timedOut), ref, remote.url);
  };
  return {
    resolve: (remote, ref, signal, share) =>
      share === undefined || 'commit' in ref
        ? gateFor(remote)(() => pollRemote(remote, ref, callOptions(signal)))
        : resolveShared(remote, ref, signal, share),
    release: (cacheKey) => {
      shared.release(cacheKey);
      if (shared.size.users === 0) blobs.clear();
    },
    held: () => ({ ...shared.size, blobs: blobs.size }),
    async fetch(cacheKey, remote, ref, resolved, fetchOptions, signal) {
      const key = await shareKey(remote);
      shared.join(cacheKey, key);
      const outcome = await fetchRevision({
        ...callOptions(signal),
        dir: join(options.cacheDir, 'shared', key),
        gate: gateFor(remote),
        remote,
        ref,
        resolved,
        depth: fetchOptions.depth,
        limits: objectLimitsOf(options.limits),
        maxWalkCommits: options.limits?.maxWalkCommits ?? defaultMaxWalkCommits,
        ...(fetchOptions.since === undefined ? {} : { since: fetchOptions.since }),
      });
      if (outcome.fetched) {
        // The share key is never logged (it is derived from the credentials).
        options.logger.debug({ cacheKey, commit: resolved.commit, shallow: outcome.shallow }, 'fetched');
      }
      return createRepoReader(outcome.dir, blobs, options.limits);
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A SourcePort over a local clone (for `signet verify --repo-dir`): no network at all. */
export function createLocalSource(dir: string, limits: SourceLimits = {}): SourcePort {
  const blobs = new BlobCache(64 * 1024 * 1024);
  const gitdirOf = async () => ((await exists(join(dir, '.git'))) ? join(dir, '.git') : dir);
  const resolveTag = async (gitdir: string, tag: string): Promise<ResolvedRevision> => {
    const oid = await git
      .resolveRef({ fs, gitdir, ref: `refs/tags/${tag}`, depth: 1 })
      .catch(() => undefined);
    if (oid === undefined) throw new SourceError('RefNotFound', `tag "${tag}" not found in ${dir}`);
    // Read with the object bounds: the tag object is as untrusted as any commit.
    const object = await openObjectStore(gitdir, { limits: objectLimitsOf(limits) }).read(oid);
    if (object.type !== 'tag') return { commit: oid, refName: tag, tagName: tag };
    const target = /^object ([0-9a-f]{40})\n/.exec(object.content.toString('latin1', 0, 64))?.[1];
    if (target === undefined) throw new SourceError('CorruptRepository', `tag object ${oid} names no object`);
    return { commit: target, refName: tag, tagName: tag, tagObject: oid };
  };
  return {
    async resolve(_remote, ref: GitRef): Promise<ResolvedRevision> {
      const gitdir = await gitdirOf();
      if ('commit' in ref) return { commit: ref.commit };
      if ('semver' in ref) {
        const best = selectSemverTag(await git.listTags({ fs, gitdir }), ref.semver);
        if (best === undefined) throw new SourceError('RefNotFound', `no tag matches ${ref.semver}`);
        return resolveTag(gitdir, best);
      }
      if ('tag' in ref) return resolveTag(gitdir, ref.tag);
      const oid = await git
        .resolveRef({ fs, gitdir, ref: `refs/heads/${ref.branch}` })
        .catch(() => undefined);
      if (oid === undefined)
        throw new SourceError('RefNotFound', `branch "${ref.branch}" not found in ${dir}`);
      return { commit: oid, refName: ref.branch };
    },
    async fetch() {
      return createRepoReader(await gitdirOf(), blobs, limits);
    },
  };
}
