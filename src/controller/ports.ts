/**
 * What the reconciler needs from the outside world, as interfaces: the Git source and the
 * clock. The controller wires real adapters (src/source, Date); tests may wire others.
 */
import type { GitRef } from '../api/gitrepository.ts';
import type { RevisionReader } from '../verify/verify-revision.ts';

export interface GitCredentials {
  readonly username?: string;
  readonly password?: string;
  readonly bearerToken?: string;
  readonly caPem?: string;
  /** SSH: OpenSSH private key (Secret key `identity`). */
  readonly identity?: string;
  /** SSH: pinned host keys (Secret key `known_hosts`). */
  readonly knownHosts?: string;
}

export interface RemoteSpec {
  readonly url: string;
  readonly insecure: boolean;
  readonly timeoutMs: number;
  readonly credentials: GitCredentials;
}

export interface ResolvedRevision {
  readonly commit: string;
  /** The ref name for revisions (`main`, `v1.2.0`); undefined for commit refs. */
  readonly refName?: string;
  readonly tagObject?: string;
  readonly tagName?: string;
}

export interface TreeSnapshot {
  readonly files: readonly { readonly path: string; readonly content: Uint8Array; readonly oid?: string }[];
  readonly symlinks: readonly { readonly path: string; readonly target: string }[];
}

export interface FetchedRepository extends RevisionReader {
  /** The bare repository read from, when it is a directory (tests and benchmarks inspect its packs). */
  readonly gitdir?: string;
  /** Files under `path` (relative paths) of `commit`. */
  readTree(commit: string, path: string, signal: AbortSignal): Promise<TreeSnapshot>;
}

/** Who asks for a poll, and how old a shared ref advertisement it accepts. */
export interface PollShare {
  /** `<namespace>/<name>` of the GitRepository. */
  readonly cacheKey: string;
  /** An advertisement polled this recently for the same remote and credentials is reused (0: poll now). */
  readonly maxAgeMs: number;
}

export interface SourcePort {
  /**
   * One round trip: resolves the spec's ref to a commit. With `share`, GitRepositories on the same
   * remote with the same credentials share one poll per `maxAgeMs`.
   */
  resolve(remote: RemoteSpec, ref: GitRef, signal: AbortSignal, share?: PollShare): Promise<ResolvedRevision>;
  /** Forgets what is held for this GitRepository (deleted, or left the shard). */
  release?(cacheKey: string): void;
  /** Entries held in memory, by kind (tests prove they follow the work). */
  held?(): Readonly<Record<string, number>>;
  /** Fetches what verification needs into the per-object cache; skips the network when cached. */
  fetch(
    cacheKey: string,
    remote: RemoteSpec,
    ref: GitRef,
    resolved: ResolvedRevision,
    options: { depth: number | 'full'; since?: string },
    signal: AbortSignal,
  ): Promise<FetchedRepository>;
}
