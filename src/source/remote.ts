/**
 * Talking to a Git server over smart HTTP(S) with isomorphic-git (imperative shell):
 * - `pollRemote`: the no-op poll, ONE round trip (a protocol-v1 ref advertisement GET), resolving
 *   the spec's ref to a commit;
 * - `fetchRevision`: an incremental fetch into a per-object bare cache directory, skipped when the
 *   cache already holds what is needed.
 *
 * History depth (the choice): HEAD/Tag/TagAndHEAD verification needs only the tip, so those fetch
 * with depth 1. Range verification and rollback protection need the commits between the last
 * applied commit (`since`) and the new one: the fetch then asks for no depth at all, which on a
 * shallow cache brings exactly the commits missing between the new tip and what the cache has
 * (the server stops at our `have`). Only when `since` is still not reachable locally afterwards (a
 * force push, a rollback, a cache that lost it, or Range without `since`) is the cache unshallowed
 * in full (`deepen 2147483647`, git's own --unshallow) — correct first, cheap in the common case.
 */
import * as fs from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import semver from 'semver';
import type { GitRef } from '../api/gitrepository.ts';
import { SourceError, safeUrl } from './errors.ts';
import { installSyncSha1Digest } from './fast-sha1.ts';
import { createHttpClient } from './http-client.ts';
import type { ObjectLimits } from './object-limits.ts';
import { hasObject as storeHas } from './object-store.ts';
import { type PackReceiverOptions, withNativePackReceiver } from './pack-receiver.ts';
import { openRepoReader } from './repo-reader.ts';
import { createSshTransport } from './ssh-transport.ts';
import { parseGitUrl } from './url.ts';

export interface GitCredentials {
  readonly username?: string;
  readonly password?: string;
  readonly bearerToken?: string;
  /** PEM CA bundle added to the system roots (Secret key `ca.crt`). */
  readonly caPem?: string;
  /** SSH: OpenSSH private key (Secret key `identity`; `password` is its passphrase). */
  readonly identity?: string;
  /** SSH: pinned host keys (Secret key `known_hosts`). */
  readonly knownHosts?: string;
}

export interface GitRemote {
  readonly url: string;
  readonly insecure: boolean;
  /** Per HTTP request. */
  readonly timeoutMs: number;
  readonly credentials: GitCredentials;
}

export interface ResolvedRef {
  readonly commit: string;
  /** The ref name used in revisions (`main`, `v1.2.0`); undefined for commit refs. */
  readonly refName?: string;
  readonly tagName?: string;
  /** The annotated tag object oid (absent for lightweight tags). */
  readonly tagObject?: string;
}

export interface RemoteCallOptions {
  readonly signal: AbortSignal;
  /** Bound on any one HTTP response body, i.e. on the pack (default 256 MiB). */
  readonly maxResponseBytes?: number;
  /** Called once per HTTP request (credential-free URL). */
  readonly onRequest?: (method: string, url: string) => void;
}

export const defaultMaxPackBytes = 256 * 1024 * 1024;
/** git's INFINITE_DEPTH: `deepen` by this much unshallows the history. */
const unshallowDepth = 2_147_483_647;
/** The local ref that remembers the last fetched commit, sent as our `have`. */
const lastFetchedRef = 'refs/signet/last';

/** What isomorphic-git talks to: an HTTP client and URL, over HTTPS or (ssh-transport.ts) SSH. */
interface Endpoint {
  readonly http: git.HttpClient;
  readonly url: string;
  readonly ssh: boolean;
  close(): void;
}

function endpointFor(
  remote: GitRemote,
  options: RemoteCallOptions,
  refPrefixes?: readonly string[],
): Endpoint {
  const parsed = parseGitUrl(remote.url);
  if (parsed.ok && parsed.url.kind === 'ssh') {
    const transport = createSshTransport({
      url: parsed.url,
      credentials: remote.credentials,
      timeoutMs: remote.timeoutMs,
      maxResponseBytes: options.maxResponseBytes ?? defaultMaxPackBytes,
      signal: options.signal,
      ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
      ...(refPrefixes === undefined ? {} : { refPrefixes }),
    });
    return { http: transport.http, url: transport.url, ssh: true, close: transport.close };
  }
  return { http: httpClientFor(remote, options), url: remote.url, ssh: false, close: () => undefined };
}

function httpClientFor(remote: GitRemote, options: RemoteCallOptions) {
  let protocol: string;
  try {
    protocol = new URL(remote.url).protocol;
  } catch {
    throw new SourceError('FetchFailed', `${safeUrl(remote.url)} is not a valid URL`);
  }
  if (protocol === 'http:' && !remote.insecure) {
    throw new SourceError(
      'InsecureURL',
      `${safeUrl(remote.url)}: http:// is refused; use https:// or set spec.insecure: true`,
    );
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new SourceError('FetchFailed', `${safeUrl(remote.url)}: only https:// (or http:// with insecure)`);
  }
  return createHttpClient({
    auth: remote.credentials,
    ...(remote.credentials.caPem === undefined ? {} : { caPem: remote.credentials.caPem }),
    insecure: remote.insecure,
    timeoutMs: remote.timeoutMs,
    maxResponseBytes: options.maxResponseBytes ?? defaultMaxPackBytes,
    signal: options.signal,
    ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
  });
}

/** Maps isomorphic-git and transport errors to a SourceError with an actionable, credential-free message. */
export function toSourceError(error: unknown, url: string): SourceError {
  for (let current: unknown = error, depth = 0; current !== undefined && depth < 5; depth++) {
    if (current instanceof SourceError) return current;
    current = (current as { cause?: unknown } | null)?.cause;
  }
  const cause = (error ?? {}) as {
    code?: string;
    message?: string;
    data?: { statusCode?: number; message?: string; what?: string };
  };
  const status = cause.data?.statusCode;
  if (status === 401 || status === 403) {
    return new SourceError(
      'AuthFailed',
      `${safeUrl(url)}: the Git server answered ${status}; check spec.secretRef (username/password or bearerToken)`,
      { cause: error },
    );
  }
  if (status === 404) {
    return new SourceError('NotFound', `${safeUrl(url)}: repository not found (404); check spec.url`, {
      cause: error,
    });
  }
  if (status !== undefined) {
    return new SourceError('FetchFailed', `${safeUrl(url)}: the Git server answered ${status}`, {
      cause: error,
    });
  }
  if (cause.code === 'NotFoundError') {
    return new SourceError(
      'RefNotFound',
      `${safeUrl(url)}: ${cause.data?.what ?? 'the ref'} is not on the server (deleted since the poll?)`,
      { cause: error },
    );
  }
  if (cause.code === 'InternalError' || cause.code === 'ParseError') {
    // isomorphic-git reports an unreadable answer either as a pkt-line ParseError (damaged framing)
    // or, for pack decoding (zlib "incorrect data check", truncation), wrapped in a "please report
    // this bug" InternalError; the user needs to know the server's pack was unreadable.
    const detail = cause.code === 'ParseError' ? cause.message : cause.data?.message;
    return new SourceError(
      'FetchFailed',
      `${safeUrl(url)}: the pack the Git server sent could not be decoded (corrupt or truncated): ${detail ?? 'internal error'}`,
      { cause: error },
    );
  }
  return new SourceError('FetchFailed', `${safeUrl(url)}: ${cause.message ?? String(error)}`, {
    cause: error,
  });
}

/** The highest tag (by semver precedence) that satisfies `range`; `v` prefixes allowed. Pure. */
export function selectSemverTag(tagNames: readonly string[], range: string): string | undefined {
  let best: { name: string; version: string } | undefined;
  for (const name of tagNames) {
    const version = semver.clean(name);
    if (version === null || !semver.satisfies(version, range)) continue;
    if (best === undefined || semver.gt(version, best.version)) best = { name, version };
  }
  return best?.name;
}

/**
 * Resolves the spec's ref to a commit in ONE round trip (no round trip for a commit ref):
 * branch → refs/heads/<b>; tag → refs/tags/<t> (peeled commit and annotated tag object);
 * semver → the highest matching tag; commit → the oid itself (its existence is checked by the fetch).
 */
export async function pollRemote(
  remote: GitRemote,
  ref: GitRef,
  options: RemoteCallOptions,
): Promise<ResolvedRef> {
  if ('commit' in ref) return { commit: ref.commit };
  const endpoint = endpointFor(remote, options);
  const prefix =
    'branch' in ref ? `refs/heads/${ref.branch}` : 'tag' in ref ? `refs/tags/${ref.tag}` : 'refs/tags/';
  let refs: { ref: string; oid: string; peeled?: string }[];
  try {
    refs = await git.listServerRefs({
      http: endpoint.http,
      url: endpoint.url,
      prefix,
      peelTags: true,
      // HTTPS v1: the ref advertisement is a single GET; v2 needs a capabilities GET and an ls-refs
      // POST. SSH: one channel either way, so v2 (ls-refs with our prefix) where the server offers it.
      protocolVersion: endpoint.ssh ? 2 : 1,
    });
  } catch (error) {
    throw toSourceError(error, remote.url);
  } finally {
    endpoint.close();
  }
  if ('branch' in ref) {
    const found = refs.find((r) => r.ref === prefix);
    if (found === undefined) {
      throw new SourceError(
        'RefNotFound',
        `branch "${ref.branch}" not found in ${safeUrl(remote.url)}; check spec.ref.branch`,
      );
    }
    return { commit: found.oid, refName: ref.branch };
  }
  let tagName: string;
  if ('tag' in ref) {
    tagName = ref.tag;
  } else {
    const best = selectSemverTag(
      refs.map((r) => r.ref.slice('refs/tags/'.length)),
      ref.semver,
    );
    if (best === undefined) {
      throw new SourceError(
        'RefNotFound',
        `no tag in ${safeUrl(remote.url)} matches semver range "${ref.semver}"`,
      );
    }
    tagName = best;
  }
  const found = refs.find((r) => r.ref === `refs/tags/${tagName}`);
  if (found === undefined) {
    throw new SourceError('RefNotFound', `tag "${tagName}" not found in ${safeUrl(remote.url)}`);
  }
  return found.peeled === undefined
    ? { commit: found.oid, refName: tagName, tagName }
    : { commit: found.peeled, refName: tagName, tagName, tagObject: found.oid };
}

/** `<cacheRoot>/<namespace>/<name>`: one bare repository per GitRepository object. */
export function cacheDirFor(cacheRoot: string, namespace: string, name: string): string {
  const safe = (part: string) => {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(part) || part.includes('..')) {
      throw new SourceError('InvalidPath', `"${part}" is not a Kubernetes name usable as a cache directory`);
    }
    return part;
  };
  return join(cacheRoot, safe(namespace), safe(name));
}

export interface FetchRevisionRequest extends RemoteCallOptions {
  /** The bare cache directory (see cacheDirFor); created when absent. */
  readonly dir: string;
  readonly remote: GitRemote;
  readonly ref: GitRef;
  readonly resolved: ResolvedRef;
  /** 1 for HEAD/Tag/TagAndHEAD; 'full' when ancestry or a Range back to `since` is needed. */
  readonly depth: number | 'full';
  /** The last applied commit: history back to it is made available when depth is 'full'. */
  readonly since?: string;
  /** Called for each pack indexed natively (tests and benchmarks; see pack-receiver.ts). */
  readonly onPack?: PackReceiverOptions['onPack'];
  /** Bounds on what each received object may inflate to (default defaultObjectLimits). */
  readonly limits?: ObjectLimits;
  /** Most commits the ancestry check of a shallow cache reads (default defaultMaxWalkCommits). */
  readonly maxWalkCommits?: number;
}

export interface FetchOutcome {
  readonly dir: string;
  /** False when the cache already had everything (no request was made). */
  readonly fetched: boolean;
  /** True when the cache holds a truncated history. */
  readonly shallow: boolean;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const dirLocks = new Map<string, Promise<unknown>>();

/** Runs `work` after any earlier fetch into the same directory has finished. */
async function withDirLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const previous = dirLocks.get(dir) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(work);
  dirLocks.set(dir, run);
  try {
    return await run;
  } finally {
    if (dirLocks.get(dir) === run) dirLocks.delete(dir);
  }
}

/** Fetches what verification needs into `dir`; no request at all when the cache already has it. */
export async function fetchRevision(request: FetchRevisionRequest): Promise<FetchOutcome> {
  const { dir, remote, resolved } = request;
  return withDirLock(dir, async () => {
    await mkdir(dir, { recursive: true });
    if (!(await exists(join(dir, 'HEAD')))) await git.init({ fs, gitdir: dir, bare: true });
    // Only indexes and file names are read: an object is never inflated to learn that it exists.
    const hasObject = (oid: string) => storeHas(dir, oid);
    const hasRevision = async () =>
      (await hasObject(resolved.commit)) &&
      (resolved.tagObject === undefined || (await hasObject(resolved.tagObject)));
    const isShallow = () => exists(join(dir, 'shallow'));
    const historyComplete = async () => {
      if (request.depth !== 'full' || !(await isShallow())) return true;
      if (request.since === undefined) return false;
      return openRepoReader(dir, {
        ...(request.limits === undefined ? {} : { limits: request.limits }),
        ...(request.maxWalkCommits === undefined ? {} : { maxWalkCommits: request.maxWalkCommits }),
      })
        .isAncestor(request.since, resolved.commit, request.signal)
        .catch(
          (error: unknown) =>
            // Over the walk bound a deeper fetch cannot help: verification's own walk refuses it.
            error instanceof SourceError && error.code === 'TooLarge',
        );
    };

    if ((await hasRevision()) && (await historyComplete())) {
      return { dir, fetched: false, shallow: await isShallow() };
    }

    const remoteRef =
      'commit' in request.ref
        ? request.ref.commit
        : 'branch' in request.ref
          ? `refs/heads/${request.ref.branch}`
          : `refs/tags/${resolved.tagName ?? ('tag' in request.ref ? request.ref.tag : '')}`;
    const fetchOnce = async (depth: number | undefined) => {
      request.signal.throwIfAborted();
      installSyncSha1Digest();
      // Packs are indexed natively (pack-receiver.ts); isomorphic-git keeps the protocol. One
      // connection per fetch (an SSH connection is closed when the fetch ends).
      // Protocol v2 over SSH lists only the ref fetched (a commit is looked for in every ref).
      const endpoint = endpointFor(remote, request, 'commit' in request.ref ? undefined : [remoteRef]);
      const http = withNativePackReceiver(endpoint.http, {
        gitdir: dir,
        signal: request.signal,
        ...(request.limits === undefined ? {} : { limits: request.limits }),
        ...(request.onPack === undefined ? {} : { onPack: request.onPack }),
      });
      try {
        await git.addRemote({ fs, gitdir: dir, remote: 'origin', url: endpoint.url, force: true });
        await git.fetch({
          fs,
          http,
          gitdir: dir,
          url: endpoint.url,
          remote: 'origin',
          // Our `have`: the last fetched commit, so the server sends only what is new.
          ref: lastFetchedRef,
          remoteRef,
          singleBranch: true,
          tags: false,
          ...(depth === undefined ? {} : { depth }),
        });
      } catch (error) {
        throw toSourceError(error, remote.url);
      } finally {
        endpoint.close();
      }
    };

    if (!(await hasRevision())) {
      const shallow = await isShallow();
      const depth =
        request.depth !== 'full'
          ? request.depth
          : shallow && (request.since === undefined || !(await hasObject(request.since)))
            ? unshallowDepth
            : undefined;
      // An earlier revision is cached: fetch without `deepen`. isomorphic-git never asks for thin
      // packs, and git upload-pack then answers a shallow `deepen` with the whole tree again (10,000
      // objects for a one-file change); without `deepen` it sends only what our `have` lacks.
      const lastFetched =
        typeof request.depth === 'number'
          ? await git.resolveRef({ fs, gitdir: dir, ref: lastFetchedRef }).catch(() => undefined)
          : undefined;
      if (lastFetched !== undefined && (await hasObject(lastFetched))) {
        try {
          await fetchOnce(undefined);
        } catch (error) {
          // Unrelated history (e.g. a force push of an orphan branch) can be far larger than the
          // new tree: fall back to the shallow fetch the caller asked for.
          if (!(error instanceof SourceError && error.code === 'TooLarge')) throw error;
          await fetchOnce(depth);
        }
      } else {
        await fetchOnce(depth);
      }
    }
    if (!(await historyComplete())) await fetchOnce(unshallowDepth);

    if (!(await hasObject(resolved.commit))) {
      throw new SourceError(
        'RefNotFound',
        `commit ${resolved.commit} is not in ${safeUrl(remote.url)} (not reachable from any ref the server offers)`,
      );
    }
    if (resolved.tagObject !== undefined && !(await hasObject(resolved.tagObject))) {
      throw new SourceError(
        'FetchFailed',
        `tag object ${resolved.tagObject} was not sent by ${safeUrl(remote.url)}`,
      );
    }
    await git.writeRef({ fs, gitdir: dir, ref: lastFetchedRef, value: resolved.commit, force: true });
    return { dir, fetched: true, shallow: await isShallow() };
  });
}
