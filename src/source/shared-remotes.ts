/**
 * Shared fetches: GitRepositories with the same remote share one bare object store and one ref
 * poll per interval. The share is keyed by the normalised URL AND a fingerprint of everything the
 * server may judge access by (the credentials of spec.secretRef, the CA, spec.insecure), so a
 * GitRepository is only ever given content that its own credentials fetched: a tenant whose
 * credentials the server refuses has a key of its own, and its poll and fetch fail on their own.
 *
 * The key is an HMAC-SHA256 under a random salt kept in the cache directory (so the store survives
 * restarts without the directory name being a plain hash of a password); it is never logged.
 *
 * `SharedRemotes` holds, per key, the GitRepositories using it and the last ref advertisement per
 * ref prefix; the last user's release forgets the key (memory follows the work).
 */
import { createHmac } from 'node:crypto';
import type { GitRemote } from './remote.ts';
import { parseGitUrl } from './url.ts';

/** The remote's identity as the server sees it: same string ⇔ same repository on the same server. */
export function normaliseRemoteUrl(raw: string): string {
  const parsed = parseGitUrl(raw);
  if (parsed.ok && parsed.url.kind === 'ssh') {
    const { user, host, port, path } = parsed.url;
    return `ssh://${user}@${host.toLowerCase()}:${port}|${path}`;
  }
  try {
    const url = new URL(raw);
    url.hash = '';
    url.username = '';
    url.password = '';
    return url.href.replace(/\/+$/, '');
  } catch {
    return raw;
  }
}

/** The share key of a remote: HMAC(salt, URL + every credential field + insecure), hex. Pure. */
export function remoteShareKey(remote: GitRemote, salt: Uint8Array): string {
  const c = remote.credentials;
  const material = JSON.stringify([
    normaliseRemoteUrl(remote.url),
    remote.insecure,
    c.username ?? null,
    c.password ?? null,
    c.bearerToken ?? null,
    c.caPem ?? null,
    c.identity ?? null,
    c.knownHosts ?? null,
  ]);
  return createHmac('sha256', salt).update(material).digest('hex');
}

/** One ref advertisement, shared while younger than the asker's bound (and while in flight). */
interface Poll<T> {
  readonly startedAt: number;
  readonly result: Promise<T>;
}

interface Share<T> {
  readonly users: Set<string>;
  readonly polls: Map<string, Poll<T>>;
}

/** Per share key: its users (cache keys `<namespace>/<name>`) and its recent polls. */
export class SharedRemotes<T> {
  readonly #shares = new Map<string, Share<T>>();
  /** The share key each user is on (a user that changes URL or credentials moves). */
  readonly #userKey = new Map<string, string>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Records that `user` reads through `key` (leaving the key it used before). */
  join(user: string, key: string): void {
    const before = this.#userKey.get(user);
    if (before === key) return;
    if (before !== undefined) this.#leave(user, before);
    this.#userKey.set(user, key);
    const share = this.#shares.get(key) ?? { users: new Set<string>(), polls: new Map() };
    share.users.add(user);
    this.#shares.set(key, share);
  }

  /** Forgets `user`; a key left without users is forgotten with its polls. */
  release(user: string): void {
    const key = this.#userKey.get(user);
    if (key === undefined) return;
    this.#userKey.delete(user);
    this.#leave(user, key);
  }

  #leave(user: string, key: string): void {
    const share = this.#shares.get(key);
    if (share === undefined) return;
    share.users.delete(user);
    if (share.users.size === 0) this.#shares.delete(key);
  }

  /**
   * The advertisement for (`key`, `prefix`): the one in flight, or one started at most `maxAgeMs`
   * ago, else a new `poll()`. A failed poll is not kept (the next asker polls again).
   */
  poll(key: string, prefix: string, maxAgeMs: number, poll: () => Promise<T>): Promise<T> {
    const share = this.#shares.get(key);
    const now = this.#now();
    const recent = share?.polls.get(prefix);
    if (recent !== undefined && now - recent.startedAt <= maxAgeMs) return recent.result;
    const result = poll();
    if (share === undefined) return result;
    const entry: Poll<T> = { startedAt: now, result };
    share.polls.set(prefix, entry);
    result.catch(() => {
      if (share.polls.get(prefix) === entry) share.polls.delete(prefix);
    });
    return result;
  }

  /** Held entries (for tests proving memory follows the work): keys, users, polls. */
  get size(): { readonly keys: number; readonly users: number; readonly polls: number } {
    let polls = 0;
    for (const share of this.#shares.values()) polls += share.polls.size;
    return { keys: this.#shares.size, users: this.#userKey.size, polls };
  }
}
