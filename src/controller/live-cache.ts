/**
 * The live state of every object Signet manages, from one label-selected list-watch per
 * (identity, resource type, namespace scope), shared by all GitRepositories. Plans read live
 * objects from here instead of the API server (a no-op reconcile costs no request), and every
 * watch event on a managed object is handed to `onManagedChange` so drift is seen in seconds.
 */

import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { resourceListWatch } from '../kube/watch.ts';
import { inventoryId } from '../plan/inventory.ts';
import { managedByLabel, managedByValue, ownerNameLabel, ownerNamespaceLabel } from '../render/labels.ts';
import { identityOf, type KubeObject } from '../render/object.ts';
import type { Logger } from '../util/logger.ts';
import { Informer, type LiveObject } from '../watch/informer.ts';

export const managedSelector = `${managedByLabel}=${managedByValue}`;

export interface ManagedChange {
  readonly owner: { readonly namespace: string; readonly name: string };
  /** Inventory id of the object. */
  readonly id: string;
  readonly deleted: boolean;
}

export interface WatchScope {
  /** Cache key of the identity the watch runs as ('' for the operator itself). */
  readonly identity: string;
  readonly client: KubeClient;
  /** Limit the watch to one namespace (tenant mode); undefined watches all namespaces. */
  readonly namespace?: string;
}

interface Entry {
  readonly informer: Informer;
  readonly apiVersion: string;
  readonly kind: string;
}

/**
 * Shares equal sub-structures between cached objects (hash-consing). Objects applied from one
 * revision mostly carry identical label maps and identical managedFields field sets, so the
 * cache keeps one frozen copy of each instead of one per object. Bounded: when full it starts
 * over (already shared copies stay valid; only later objects stop sharing with them).
 */
export class StructureInterner {
  readonly #entries = new Map<string, unknown>();
  readonly #limit: number;

  constructor(limit = 8_192) {
    this.#limit = limit;
  }

  intern<T>(value: T): T {
    if (value === undefined || value === null || typeof value !== 'object') return value;
    const key = JSON.stringify(value);
    const shared = this.#entries.get(key);
    if (shared !== undefined) return shared as T;
    if (this.#entries.size >= this.#limit) this.#entries.clear();
    const frozen = deepFreeze(value);
    this.#entries.set(key, frozen);
    return frozen;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Forgets every shared copy (no cached object is left to share with). */
  clear(): void {
    this.#entries.clear();
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * The cached form of a live object: the client-side-apply annotation (a second copy of the whole
 * object) is dropped, apiVersion and kind are the watch's own strings, and labels and each
 * managedFields entry's field set are shared through the interner. Everything drift and the plan
 * read (values, labels, annotations, managedFields with managers and times) is kept.
 */
export function slimLiveObject(
  object: LiveObject,
  type: { readonly apiVersion: string; readonly kind: string },
  interner: StructureInterner,
): LiveObject {
  const { metadata } = object;
  let annotations = metadata.annotations;
  if (annotations !== undefined && 'kubectl.kubernetes.io/last-applied-configuration' in annotations) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _dropped, ...rest } = annotations;
    annotations = rest;
  }
  const managedFields = metadata.managedFields?.map((entry) =>
    entry.fieldsV1 === undefined ? entry : { ...entry, fieldsV1: interner.intern(entry.fieldsV1) },
  );
  return {
    ...object,
    apiVersion: object.apiVersion === type.apiVersion ? type.apiVersion : object.apiVersion,
    kind: object.kind === type.kind ? type.kind : object.kind,
    metadata: {
      ...metadata,
      ...(metadata.labels === undefined ? {} : { labels: interner.intern(metadata.labels) }),
      ...(annotations === undefined ? {} : { annotations }),
      ...(managedFields === undefined ? {} : { managedFields }),
    },
  };
}

/** How long a resource type the identity may not list is left alone before trying again. */
const forbiddenRetryMs = 5 * 60_000;

function isForbidden(error: unknown): boolean {
  return error instanceof KubeApiError && (error.status === 403 || error.status === 401);
}

export class LiveCache {
  readonly #informers = new Map<string, Entry>();
  /** Types this identity may not list (tenant mode, cluster-scoped kinds): not watched for a while. */
  readonly #forbidden = new Map<string, number>();
  readonly #onChange: (change: ManagedChange) => void;
  readonly #logger: Logger;
  readonly #interner = new StructureInterner();
  /** GitRepositories (`<namespace>/<name>`) reading each watch, by watch key. */
  readonly #usersOf = new Map<string, Set<string>>();
  /** The watch keys each GitRepository reads. */
  readonly #keysOf = new Map<string, Set<string>>();

  constructor(options: { onManagedChange: (change: ManagedChange) => void; logger: Logger }) {
    this.#onChange = options.onManagedChange;
    this.#logger = options.logger;
  }

  static #key(scope: WatchScope, apiVersion: string, kind: string): string {
    return `${scope.identity}|${scope.namespace ?? '*'}|${apiVersion}|${kind}`;
  }

  #emit(object: LiveObject, deleted: boolean): void {
    const labels = object.metadata.labels ?? {};
    const name = labels[ownerNameLabel];
    const namespace = labels[ownerNamespaceLabel];
    if (name === undefined || namespace === undefined) return;
    const id = inventoryId(identityOf(object as unknown as KubeObject));
    this.#onChange({ owner: { namespace, name }, id, deleted });
  }

  /** Starts (once) the watches for these resource types and waits until each has listed. */
  async ensure(
    scope: WatchScope,
    types: Iterable<{ apiVersion: string; kind: string }>,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<boolean> {
    const waiting: { key: string; informer: Informer }[] = [];
    for (const { apiVersion, kind } of types) {
      const key = LiveCache.#key(scope, apiVersion, kind);
      if ((this.#forbidden.get(key) ?? 0) > Date.now()) continue;
      let entry = this.#informers.get(key);
      if (entry === undefined) {
        const informer = new Informer({
          transport: resourceListWatch(scope.client, {
            apiVersion,
            kind,
            ...(scope.namespace === undefined ? {} : { namespace: scope.namespace }),
          }),
          labelSelector: managedSelector,
          transform: (object) => slimLiveObject(object, { apiVersion, kind }, this.#interner),
          handlers: {
            onAdd: (object) => this.#emit(object, false),
            onUpdate: (object) => this.#emit(object, false),
            onDelete: (object) => this.#emit(object, true),
            onError: (error, attempt) => {
              if (isForbidden(error) && !informer.synced) {
                // Not allowed to list this type: drift on it cannot be watched; planning falls back
                // to server-side apply without a live copy. Stop and retry later, not in a loop.
                this.#forbidden.set(key, Date.now() + forbiddenRetryMs);
                this.#informers.delete(key);
                void informer.stop();
                this.#logger.warn(
                  { apiVersion, kind, identity: scope.identity },
                  'not allowed to watch this type',
                );
                return;
              }
              this.#logger.warn(
                { apiVersion, kind, attempt, err: error instanceof Error ? error.message : String(error) },
                'watch of managed objects failed; reconnecting with backoff',
              );
            },
          },
        });
        entry = { informer, apiVersion, kind };
        this.#informers.set(key, entry);
        informer.start();
      }
      if (!entry.informer.synced) waiting.push({ key, informer: entry.informer });
    }
    const deadline = Date.now() + options.timeoutMs;
    while (waiting.some(({ key, informer }) => !informer.synced && !this.#forbidden.has(key))) {
      if (Date.now() > deadline) return false;
      options.signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return waiting.every(({ informer }) => informer.synced);
  }

  /**
   * Records the types `user` (a GitRepository) reads from now on, replacing the ones it read
   * before; a watch no GitRepository reads any more is stopped and its objects dropped.
   */
  use(user: string, scope: WatchScope, types: Iterable<{ apiVersion: string; kind: string }>): void {
    const keys = new Set<string>();
    for (const { apiVersion, kind } of types) keys.add(LiveCache.#key(scope, apiVersion, kind));
    const before = this.#keysOf.get(user);
    this.#keysOf.set(user, keys);
    for (const key of keys) {
      const users = this.#usersOf.get(key) ?? new Set<string>();
      users.add(user);
      this.#usersOf.set(key, users);
    }
    for (const key of before ?? []) if (!keys.has(key)) this.#drop(user, key);
  }

  /** Forgets `user` (deleted, or left the shard): watches no one else reads are stopped. */
  release(user: string): void {
    const keys = this.#keysOf.get(user);
    if (keys === undefined) return;
    this.#keysOf.delete(user);
    for (const key of keys) this.#drop(user, key);
  }

  #drop(user: string, key: string): void {
    const users = this.#usersOf.get(key);
    users?.delete(user);
    if (users !== undefined && users.size > 0) return;
    this.#usersOf.delete(key);
    const entry = this.#informers.get(key);
    this.#informers.delete(key);
    if (entry !== undefined) {
      void entry.informer.stop().catch((error: unknown) =>
        this.#logger.warn(
          {
            apiVersion: entry.apiVersion,
            kind: entry.kind,
            err: error instanceof Error ? error.message : String(error),
          },
          'stopping an unused watch failed',
        ),
      );
    }
    if (this.#informers.size === 0) this.#interner.clear();
  }

  /** Entries held (tests prove they go back to zero once no GitRepository is left). */
  held(): {
    readonly watches: number;
    readonly objects: number;
    readonly interned: number;
    readonly users: number;
  } {
    return {
      watches: this.#informers.size,
      objects: this.size,
      interned: this.#interner.size,
      users: this.#keysOf.size,
    };
  }

  /** The live object with this identity, if a synced watch covers its type. */
  get(
    scope: WatchScope,
    object: { apiVersion: string; kind: string; namespace?: string; name: string },
  ): LiveObject | undefined {
    const entry = this.#informers.get(LiveCache.#key(scope, object.apiVersion, object.kind));
    if (entry === undefined) return undefined;
    const key = object.namespace ? `${object.namespace}/${object.name}` : object.name;
    return entry.informer.get(key);
  }

  /** True when a synced watch covers this type (so an absent object is known to be gone). */
  covers(scope: WatchScope, apiVersion: string, kind: string): boolean {
    return this.#informers.get(LiveCache.#key(scope, apiVersion, kind))?.informer.synced === true;
  }

  /** Objects tracked across all watches (for the managed-objects gauge and memory benchmarks). */
  get size(): number {
    let total = 0;
    for (const { informer } of this.#informers.values()) total += informer.size;
    return total;
  }

  watchStats(): { lists: number; watches: number; events: number; relists: number } {
    const total = { lists: 0, watches: 0, events: 0, relists: 0 };
    for (const { informer } of this.#informers.values()) {
      total.lists += informer.stats.lists;
      total.watches += informer.stats.watches;
      total.events += informer.stats.events;
      total.relists += informer.stats.relists;
    }
    return total;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#informers.values()].map(({ informer }) => informer.stop()));
    this.#informers.clear();
  }
}
