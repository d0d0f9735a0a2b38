/**
 * The Git source on isomorphic-git over smart HTTP(S): resolve a ref in one round trip, fetch
 * incrementally into a per-object bare cache, read raw objects for verification, and read only
 * the blobs under spec.path (each blob oid read once, then cached).
 */
import * as fs from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import semver from 'semver';
import type { GitRef } from '../api/gitrepository.ts';
import type {
  FetchedRepository,
  RemoteSpec,
  ResolvedRevision,
  SourcePort,
  TreeSnapshot,
} from '../controller/ports.ts';
import type { Logger } from '../util/logger.ts';
import { SourceError, safeUrl } from './errors.ts';
import { createHttpClient } from './http-client.ts';

export interface TreeLimits {
  readonly maxFileBytes: number;
  readonly maxTotalBytes: number;
  readonly maxFiles: number;
  readonly maxDepth: number;
}

export const defaultTreeLimits: TreeLimits = {
  maxFileBytes: 4 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxFiles: 20_000,
  maxDepth: 32,
};

export interface GitSourceOptions {
  readonly cacheDir: string;
  readonly logger: Logger;
  readonly maxPackBytes?: number;
  readonly treeLimits?: TreeLimits;
  /** Blob cache bound in bytes, shared across repositories (default 64 MiB). */
  readonly blobCacheBytes?: number;
  readonly onRequest?: (method: string, url: string) => void;
}

const objectTypes = new Set(['commit', 'tag', 'tree', 'blob']);

function mapError(error: unknown, url: string): SourceError {
  if (error instanceof SourceError) return error;
  const cause =
    (error as {
      caller?: string;
      data?: { statusCode?: number; message?: string };
      code?: string;
      message?: string;
    }) ?? {};
  const status = cause.data?.statusCode;
  if (cause.code === 'InternalError') {
    // isomorphic-git wraps pack decoding failures (e.g. zlib "incorrect data check") in a long
    // "please report this bug" text; what the user needs is that the server's pack was unreadable.
    return new SourceError(
      'FetchFailed',
      `${safeUrl(url)}: the pack the Git server sent could not be decoded (corrupt or truncated): ${cause.data?.message ?? 'internal error'}`,
      { cause: error },
    );
  }
  if (status === 401 || status === 403) {
    return new SourceError(
      'AuthFailed',
      `${safeUrl(url)}: ${status} from the Git server; check spec.secretRef (username/password or bearerToken)`,
      { cause: error },
    );
  }
  if (status === 404)
    return new SourceError('NotFound', `${safeUrl(url)}: repository not found (404)`, { cause: error });
  if (status !== undefined)
    return new SourceError('FetchFailed', `${safeUrl(url)}: the Git server answered ${status}`, {
      cause: error,
    });
  // isomorphic-git wraps the http client's errors; find ours in the cause chain.
  for (let current: unknown = error, depth = 0; current !== undefined && depth < 5; depth++) {
    if (current instanceof SourceError) return current;
    current = (current as { cause?: unknown; data?: unknown }).cause;
  }
  return new SourceError('FetchFailed', `${safeUrl(url)}: ${cause.message ?? String(error)}`, {
    cause: error,
  });
}

/** A bounded cache of blob contents by oid: a blob already read is never read again. */
export class BlobCache {
  readonly #entries = new Map<string, Uint8Array>();
  #bytes = 0;
  readonly #maxBytes: number;
  hits = 0;
  misses = 0;
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }
  get(oid: string): Uint8Array | undefined {
    const found = this.#entries.get(oid);
    if (found !== undefined) {
      this.hits++;
      this.#entries.delete(oid);
      this.#entries.set(oid, found);
    }
    return found;
  }
  set(oid: string, content: Uint8Array): void {
    this.misses++;
    if (content.byteLength > this.#maxBytes / 4) return;
    this.#entries.set(oid, content);
    this.#bytes += content.byteLength;
    for (const [key, value] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(key);
      this.#bytes -= value.byteLength;
    }
  }
}

function safeDirName(key: string): string {
  return key.replace(/[^A-Za-z0-9._-]+/g, '_');
}

export function createRepoReader(
  gitdir: string,
  blobs: BlobCache,
  limits: TreeLimits = defaultTreeLimits,
): FetchedRepository {
  const cache = {};
  const readObject = async (oid: string) => {
    try {
      const result = await git.readObject({ fs, gitdir, oid, format: 'content', cache });
      if (!objectTypes.has(result.type) || !(result.object instanceof Uint8Array)) {
        throw new SourceError('CorruptRepository', `object ${oid} has an unexpected type ${result.type}`);
      }
      return { type: result.type as 'commit' | 'tag' | 'tree' | 'blob', raw: result.object };
    } catch (error) {
      if (error instanceof SourceError) throw error;
      throw new SourceError('NotFound', `object ${oid} is not in the fetched repository`, { cause: error });
    }
  };
  const parentsOf = async (oid: string): Promise<string[]> => {
    try {
      const { commit } = await git.readCommit({ fs, gitdir, oid, cache });
      return commit.parent;
    } catch (error) {
      const shallow = await fs.promises.readFile(join(gitdir, 'shallow'), 'utf8').catch(() => '');
      if (shallow.includes(oid)) return [];
      throw new SourceError('ShallowHistory', `commit ${oid} is missing: history was cut before it`, {
        cause: error,
      });
    }
  };
  const ancestors = async (from: string, limit: number): Promise<Set<string>> => {
    const seen = new Set<string>([from]);
    const queue = [from];
    while (queue.length > 0) {
      const oid = queue.shift() as string;
      for (const parent of await parentsOf(oid)) {
        if (!seen.has(parent)) {
          seen.add(parent);
          if (seen.size > limit)
            throw new SourceError('TooLarge', `history from ${from} has more than ${limit} commits`);
          queue.push(parent);
        }
      }
    }
    return seen;
  };
  return {
    readObject,
    async listRange(head, since, signal) {
      const stop = since === undefined ? new Set<string>() : await ancestors(since, 1_000_000);
      const result: string[] = [];
      const seen = new Set<string>([head]);
      const queue = [head];
      while (queue.length > 0) {
        signal?.throwIfAborted();
        const oid = queue.shift() as string;
        if (stop.has(oid)) continue;
        result.push(oid);
        for (const parent of await parentsOf(oid)) {
          if (!seen.has(parent)) {
            seen.add(parent);
            queue.push(parent);
          }
        }
      }
      return result;
    },
    async isAncestor(ancestor, descendant) {
      if (ancestor === descendant) return true;
      return (await ancestors(descendant, 1_000_000)).has(ancestor);
    },
    async readTree(commit, path, signal) {
      const files: TreeSnapshot['files'][number][] = [];
      const symlinks: { path: string; target: string }[] = [];
      let total = 0;
      const segments = path.split('/').filter((s) => s !== '' && s !== '.');
      if (segments.some((s) => s === '..') || path.startsWith('/')) {
        throw new SourceError(
          'InvalidPath',
          `spec.path "${path}" must be relative and must not contain ".."`,
        );
      }
      const { commit: parsed } = await git.readCommit({ fs, gitdir, oid: commit, cache });
      let treeOid = parsed.tree;
      for (const segment of segments) {
        const { tree } = await git.readTree({ fs, gitdir, oid: treeOid, cache });
        const entry = tree.find((e) => e.path === segment);
        if (entry === undefined || entry.type !== 'tree') {
          throw new SourceError(
            'InvalidPath',
            `spec.path "${path}" does not exist at ${commit.slice(0, 12)}`,
          );
        }
        treeOid = entry.oid;
      }
      const walk = async (oid: string, prefix: string, depth: number): Promise<void> => {
        signal.throwIfAborted();
        if (depth > limits.maxDepth)
          throw new SourceError('TooLarge', `${prefix}: deeper than ${limits.maxDepth} directories`);
        const { tree } = await git.readTree({ fs, gitdir, oid, cache });
        for (const entry of tree) {
          const relative = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
          if (entry.type === 'tree') {
            await walk(entry.oid, relative, depth + 1);
          } else if (entry.mode === '120000') {
            const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
            symlinks.push({ path: relative, target: Buffer.from(blob).toString('utf8') });
          } else if (entry.type === 'blob') {
            if (files.length >= limits.maxFiles)
              throw new SourceError('TooLarge', `more than ${limits.maxFiles} files under spec.path`);
            let content = blobs.get(entry.oid);
            if (content === undefined) {
              content = (await git.readBlob({ fs, gitdir, oid: entry.oid, cache })).blob;
              blobs.set(entry.oid, content);
            }
            if (content.byteLength > limits.maxFileBytes) {
              throw new SourceError(
                'TooLarge',
                `${relative}: ${content.byteLength} bytes is over the ${limits.maxFileBytes}-byte file limit`,
              );
            }
            total += content.byteLength;
            if (total > limits.maxTotalBytes)
              throw new SourceError('TooLarge', `files under spec.path exceed ${limits.maxTotalBytes} bytes`);
            files.push({ path: relative, content, oid: entry.oid });
          }
          // Submodules (commit entries) are ignored: their content is not in this repository.
        }
      };
      await walk(treeOid, '', 0);
      return { files, symlinks };
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export function createGitSource(options: GitSourceOptions): SourcePort {
  const blobs = new BlobCache(options.blobCacheBytes ?? 64 * 1024 * 1024);
  const httpFor = (remote: RemoteSpec, signal: AbortSignal) => {
    if (remote.url.startsWith('http://') && !remote.insecure) {
      throw new SourceError(
        'InsecureURL',
        `${safeUrl(remote.url)}: http:// is refused unless spec.insecure is true`,
      );
    }
    return createHttpClient({
      auth: remote.credentials,
      ...(remote.credentials.caPem === undefined ? {} : { caPem: remote.credentials.caPem }),
      insecure: remote.insecure,
      timeoutMs: remote.timeoutMs,
      maxResponseBytes: options.maxPackBytes ?? 256 * 1024 * 1024,
      signal,
      ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
    });
  };
  return {
    async resolve(remote, ref, signal) {
      if ('commit' in ref) return { commit: ref.commit };
      const http = httpFor(remote, signal);
      const prefix =
        'branch' in ref ? `refs/heads/${ref.branch}` : 'tag' in ref ? `refs/tags/${ref.tag}` : 'refs/tags/';
      let refs: { ref: string; oid: string; peeled?: string }[];
      try {
        refs = await git.listServerRefs({
          http,
          url: remote.url,
          prefix,
          peelTags: true,
          protocolVersion: 1, // v1: the ref advertisement is a single GET; v2 needs a second request
        });
      } catch (error) {
        throw mapError(error, remote.url);
      }
      if ('branch' in ref) {
        const found = refs.find((r) => r.ref === prefix);
        if (found === undefined)
          throw new SourceError('RefNotFound', `branch ${ref.branch} not found in ${safeUrl(remote.url)}`);
        return { commit: found.oid, refName: ref.branch };
      }
      let tagName: string;
      if ('tag' in ref) {
        tagName = ref.tag;
      } else {
        const candidates = refs
          .map((r) => r.ref.slice('refs/tags/'.length))
          .filter(
            (name) =>
              semver.valid(semver.clean(name) ?? '') !== null &&
              semver.satisfies(semver.clean(name) ?? '', ref.semver),
          );
        const best = candidates.sort((a, b) =>
          semver.rcompare(semver.clean(a) ?? '0.0.0', semver.clean(b) ?? '0.0.0'),
        )[0];
        if (best === undefined)
          throw new SourceError(
            'RefNotFound',
            `no tag matches semver range ${ref.semver} in ${safeUrl(remote.url)}`,
          );
        tagName = best;
      }
      const found = refs.find((r) => r.ref === `refs/tags/${tagName}`);
      if (found === undefined)
        throw new SourceError('RefNotFound', `tag ${tagName} not found in ${safeUrl(remote.url)}`);
      return found.peeled === undefined
        ? { commit: found.oid, refName: tagName, tagName }
        : { commit: found.peeled, refName: tagName, tagName, tagObject: found.oid };
    },

    async fetch(cacheKey, remote, ref, resolved, fetchOptions, signal) {
      const gitdir = join(options.cacheDir, safeDirName(cacheKey));
      await mkdir(gitdir, { recursive: true });
      if (!(await exists(join(gitdir, 'HEAD')))) await git.init({ fs, gitdir, bare: true });
      const reader = createRepoReader(gitdir, blobs, options.treeLimits);
      const has = async (oid: string) =>
        reader.readObject(oid).then(
          () => true,
          () => false,
        );
      const shallow = await exists(join(gitdir, 'shallow'));
      const wantFull = fetchOptions.depth === 'full';
      const haveAll =
        (await has(resolved.commit)) &&
        (resolved.tagObject === undefined || (await has(resolved.tagObject))) &&
        (!wantFull || !shallow || (fetchOptions.since !== undefined && (await has(fetchOptions.since))));
      if (!haveAll) {
        if (wantFull && shallow) {
          // A shallow cache cannot prove ancestry: start over with full history.
          await rm(gitdir, { recursive: true, force: true });
          await mkdir(gitdir, { recursive: true });
          await git.init({ fs, gitdir, bare: true });
        }
        const http = httpFor(remote, signal);
        const refToFetch = 'branch' in ref ? ref.branch : 'commit' in ref ? undefined : resolved.tagName;
        try {
          await git.addRemote({ fs, gitdir, remote: 'origin', url: remote.url, force: true });
          await git.fetch({
            fs,
            http,
            gitdir,
            url: remote.url,
            ...(refToFetch === undefined ? {} : { ref: refToFetch }),
            singleBranch: refToFetch !== undefined,
            tags: resolved.tagName !== undefined,
            ...(fetchOptions.depth === 'full' ? {} : { depth: fetchOptions.depth }),
          });
        } catch (error) {
          throw mapError(error, remote.url);
        }
        if (!(await has(resolved.commit))) {
          throw new SourceError(
            'RefNotFound',
            `commit ${resolved.commit} is not in ${safeUrl(remote.url)} after fetching`,
          );
        }
        options.logger.debug({ cacheKey, commit: resolved.commit }, 'fetched');
      }
      return reader;
    },
  };
}

/** A SourcePort over a local clone (for `signet verify --repo-dir`): no network at all. */
export function createLocalSource(dir: string): SourcePort {
  const blobs = new BlobCache(64 * 1024 * 1024);
  const gitdirOf = async () => ((await exists(join(dir, '.git'))) ? join(dir, '.git') : dir);
  return {
    async resolve(_remote, ref: GitRef): Promise<ResolvedRevision> {
      const gitdir = await gitdirOf();
      if ('commit' in ref) return { commit: ref.commit };
      if ('semver' in ref) {
        const tags = await git.listTags({ fs, gitdir });
        const best = tags
          .filter(
            (name) =>
              semver.valid(semver.clean(name) ?? '') !== null &&
              semver.satisfies(semver.clean(name) ?? '', ref.semver),
          )
          .sort((a, b) => semver.rcompare(semver.clean(a) ?? '0.0.0', semver.clean(b) ?? '0.0.0'))[0];
        if (best === undefined) throw new SourceError('RefNotFound', `no tag matches ${ref.semver}`);
        return this.resolve(_remote, { tag: best }, AbortSignal.timeout(60_000));
      }
      const name = 'branch' in ref ? `refs/heads/${ref.branch}` : `refs/tags/${ref.tag}`;
      const oid = await git.resolveRef({ fs, gitdir, ref: name, depth: 1 }).catch(() => undefined);
      if (oid === undefined) throw new SourceError('RefNotFound', `${name} not found in ${dir}`);
      if ('branch' in ref) return { commit: oid, refName: ref.branch };
      const { type } = await git.readObject({ fs, gitdir, oid, format: 'content' });
      if (type !== 'tag') return { commit: oid, refName: ref.tag, tagName: ref.tag };
      const { tag } = await git.readTag({ fs, gitdir, oid });
      return { commit: tag.object, refName: ref.tag, tagName: ref.tag, tagObject: oid };
    },
    async fetch() {
      return createRepoReader(await gitdirOf(), blobs);
    },
  };
}
