/**
 * The Secrets and ConfigMaps GitRepositories reference (Git credentials, signers, trusted root,
 * provenance keys), read without a GET per reconcile. One list-watch per (namespace, kind) is
 * started lazily for namespaces that have GitRepositories and keeps only metadata (names and
 * resourceVersions, never data); the data of a referenced object is read once with a GET and
 * served again for as long as the watch reports the same resourceVersion. A change (rotation)
 * bumps the resourceVersion, so the next read GETs the new data; an object the watch no longer
 * has is read with a GET too, which fails closed (not found) when it is really gone. Where the
 * operator may not list a namespace's Secrets (older RBAC with `get` only), reads fall back to a
 * GET each time. Watches and data are released when no GitRepository uses the namespace any more.
 */
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { resourceListWatch } from '../kube/watch.ts';
import type { KubeObject } from '../render/object.ts';
import type { Logger } from '../util/logger.ts';
import { Informer, type LiveObject } from '../watch/informer.ts';

export type ReferenceKind = 'Secret' | 'ConfigMap';

/** How a referenced object's data is read from the API server (one GET); undefined when absent. */
export type ReadObject = (
  namespace: string,
  kind: ReferenceKind,
  name: string,
  signal: AbortSignal,
) => Promise<KubeObject | undefined>;

interface CachedData {
  readonly resourceVersion: string;
  readonly data: Readonly<Record<string, string>>;
}

/** Only what tells whether cached data is current: the object's identity and resourceVersion. */
export function metadataOnly(object: LiveObject): LiveObject {
  const { name, namespace, uid, resourceVersion } = object.metadata;
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      ...(uid === undefined ? {} : { uid }),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
  };
}

/**
 * The data to serve from the cache, or undefined when it must be read again: only when the
 * watch has listed, still holds the object and reports the resourceVersion the data was read at.
 */
export function currentData(
  watched: LiveObject | undefined,
  cached: CachedData | undefined,
): Readonly<Record<string, string>> | undefined {
  const version = watched?.metadata.resourceVersion;
  if (version === undefined || cached === undefined) return undefined;
  return cached.resourceVersion === version ? cached.data : undefined;
}

const forbiddenRetryMs = 5 * 60_000;

function isForbidden(error: unknown): boolean {
  return error instanceof KubeApiError && (error.status === 403 || error.status === 401);
}

export interface ReferenceCacheOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly read: ReadObject;
  /** Decodes an object's data (Secret: base64 data; ConfigMap: data and binaryData). */
  readonly decode: (kind: ReferenceKind, object: KubeObject) => Record<string, string>;
  /** How long a read waits for a namespace's first list before falling back to a GET. */
  readonly syncTimeoutMs: number;
}

export class ReferenceCache {
  readonly #options: ReferenceCacheOptions;
  /** Metadata-only watches by `<namespace>|<kind>`. */
  readonly #watches = new Map<string, Informer>();
  /** (namespace, kind) pairs the operator may not list, until when. */
  readonly #forbidden = new Map<string, number>();
  /** Data read at a resourceVersion, by `<namespace>|<kind>|<name>`. */
  readonly #data = new Map<string, CachedData>();
  /** GitRepositories (`<namespace>/<name>`) using each namespace. */
  readonly #usersOf = new Map<string, Set<string>>();
  readonly #namespaceOf = new Map<string, string>();
  /** Reads served from the cache and GETs made, for tests and benchmarks. */
  readonly stats = { hits: 0, gets: 0 };

  constructor(options: ReferenceCacheOptions) {
    this.#options = options;
  }

  /** Records that GitRepository `user` reads references in `namespace`. */
  use(user: string, namespace: string): void {
    const before = this.#namespaceOf.get(user);
    if (before === namespace) return;
    if (before !== undefined) this.release(user);
    this.#namespaceOf.set(user, namespace);
    const users = this.#usersOf.get(namespace) ?? new Set<string>();
    users.add(user);
    this.#usersOf.set(namespace, users);
  }

  /** Forgets `user`; a namespace no GitRepository uses any more loses its watches and data. */
  release(user: string): void {
    const namespace = this.#namespaceOf.get(user);
    if (namespace === undefined) return;
    this.#namespaceOf.delete(user);
    const users = this.#usersOf.get(namespace);
    users?.delete(user);
    if (users !== undefined && users.size > 0) return;
    this.#usersOf.delete(namespace);
    for (const kind of ['Secret', 'ConfigMap'] as const) {
      const key = `${namespace}|${kind}`;
      const informer = this.#watches.get(key);
      this.#watches.delete(key);
      this.#forbidden.delete(key);
      void informer?.stop().catch(() => undefined);
    }
    for (const key of this.#data.keys()) if (key.startsWith(`${namespace}|`)) this.#data.delete(key);
  }

  /** The referenced object's data; throws ReferenceError when it does not exist. */
  async read(
    namespace: string,
    kind: ReferenceKind,
    name: string,
    signal: AbortSignal,
  ): Promise<Record<string, string>> {
    const informer = this.#usersOf.has(namespace) ? await this.#synced(namespace, kind, signal) : undefined;
    const dataKey = `${namespace}|${kind}|${name}`;
    const watched = informer?.get(`${namespace}/${name}`);
    const cached = currentData(watched, this.#data.get(dataKey));
    if (cached !== undefined) {
      this.stats.hits++;
      return { ...cached };
    }
    this.stats.gets++;
    const object = await this.#options.read(namespace, kind, name, signal);
    if (object === undefined) {
      this.#data.delete(dataKey);
      throw new ReferenceError(`${kind} ${namespace}/${name} not found`);
    }
    const data = this.#options.decode(kind, object);
    const resourceVersion = object.metadata.resourceVersion;
    if (informer !== undefined && typeof resourceVersion === 'string') {
      this.#data.set(dataKey, { resourceVersion, data: Object.freeze({ ...data }) });
    }
    return data;
  }

  /** The namespace's synced watch of `kind`, started on first use; undefined when not (yet) usable. */
  async #synced(namespace: string, kind: ReferenceKind, signal: AbortSignal): Promise<Informer | undefined> {
    const key = `${namespace}|${kind}`;
    if ((this.#forbidden.get(key) ?? 0) > Date.now()) return undefined;
    let informer = this.#watches.get(key);
    if (informer === undefined) {
      informer = this.#start(namespace, kind, key);
      this.#watches.set(key, informer);
    }
    const deadline = Date.now() + this.#options.syncTimeoutMs;
    while (!informer.synced && this.#watches.get(key) === informer && Date.now() < deadline) {
      signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return informer.synced && this.#watches.get(key) === informer ? informer : undefined;
  }

  #start(namespace: string, kind: ReferenceKind, key: string): Informer {
    const informer: Informer = new Informer({
      transport: resourceListWatch(this.#options.client, {
        apiVersion: 'v1',
        kind,
        namespace,
        metadataOnly: true,
      }),
      transform: metadataOnly,
      handlers: {
        onError: (error, attempt) => {
          if (isForbidden(error) && !informer.synced) {
            this.#forbidden.set(key, Date.now() + forbiddenRetryMs);
            this.#watches.delete(key);
            void informer.stop().catch(() => undefined);
            this.#options.logger.warn(
              { namespace, kind },
              'not allowed to list and watch referenced objects in this namespace; reading each with a GET',
            );
            return;
          }
          this.#options.logger.warn(
            { namespace, kind, attempt, err: error instanceof Error ? error.message : String(error) },
            'watch of referenced objects failed; reconnecting with backoff',
          );
        },
      },
    });
    informer.start();
    return informer;
  }

  /** Entries held (tests prove they follow the work). */
  held(): { readonly namespaces: number; readonly watches: number; readonly data: number } {
    return { namespaces: this.#usersOf.size, watches: this.#watches.size, data: this.#data.size };
  }

  async stop(): Promise<void> {
    const informers = [...this.#watches.values()];
    this.#watches.clear();
    this.#data.clear();
    await Promise.all(informers.map((informer) => informer.stop()));
  }
}
