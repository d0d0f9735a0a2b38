/**
 * The Git source as the controller's SourcePort, composed from the standalone pieces:
 * `pollRemote` (one round trip), `fetchRevision` (incremental, per-object bare cache),
 * `openRepoReader` (verification reads) and `readTree` (bounded, blob-cached tree reads).
 */
import * as fs from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import type { GitRef } from '../api/gitrepository.ts';
import type { FetchedRepository, ResolvedRevision, SourcePort } from '../controller/ports.ts';
import type { Logger } from '../util/logger.ts';
import { SourceError } from './errors.ts';
import { defaultObjectLimits, type ObjectLimits } from './object-limits.ts';
import { openObjectStore } from './object-store.ts';
import { defaultMaxPackBytes, fetchRevision, pollRemote, selectSemverTag } from './remote.ts';
import {
  BlobCache,
  defaultMaxWalkCommits,
  defaultTreeLimits,
  openRepoReader,
  readTree,
  type TreeLimits,
} from './repo-reader.ts';

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

/** The cache key (`<namespace>/<name>`) as a directory below the cache root. */
function cacheDirOf(cacheRoot: string, cacheKey: string): string {
  const parts = cacheKey.split('/').map((part) => part.replace(/[^A-Za-z0-9._-]+/g, '_'));
  if (parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new SourceError('InvalidPath', `cache key "${cacheKey}" cannot name a cache directory`);
  }
  return join(cacheRoot, ...parts);
}

export function createGitSource(options: GitSourceOptions): SourcePort {
  const blobs = new BlobCache(options.blobCacheBytes ?? 64 * 1024 * 1024);
  const callOptions = (signal: AbortSignal) => ({
    signal,
    maxResponseBytes: options.maxPackBytes ?? defaultMaxPackBytes,
    ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
  });
  return {
    resolve: (remote, ref, signal) => pollRemote(remote, ref, callOptions(signal)),
    async fetch(cacheKey, remote, ref, resolved, fetchOptions, signal) {
      const outcome = await fetchRevision({
        ...callOptions(signal),
        dir: cacheDirOf(options.cacheDir, cacheKey),
        remote,
        ref,
        resolved,
        depth: fetchOptions.depth,
        limits: objectLimitsOf(options.limits),
        maxWalkCommits: options.limits?.maxWalkCommits ?? defaultMaxWalkCommits,
        ...(fetchOptions.since === undefined ? {} : { since: fetchOptions.since }),
      });
      if (outcome.fetched) {
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
