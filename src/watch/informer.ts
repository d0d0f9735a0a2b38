/**
 * A list-then-watch cache of one resource type, label-selected. It keeps resourceVersion
 * bookkeeping (treated as opaque strings), asks for bookmarks, relists on 410 Gone (emitting
 * deletes for objects that vanished meanwhile) and reconnects with backoff on any other error.
 * Handlers are synchronous and must only enqueue work: they receive the cached object, which
 * is read-only.
 */
import { backoffDelay } from '../util/backoff.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly generation?: number;
  readonly deletionTimestamp?: string;
  readonly managedFields?: readonly ManagedFieldsEntry[];
}

export interface ManagedFieldsEntry {
  readonly manager?: string;
  readonly operation?: string;
  readonly apiVersion?: string;
  readonly time?: string;
  readonly fieldsType?: string;
  readonly fieldsV1?: unknown;
  readonly subresource?: string;
}

export interface LiveObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly [field: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: LiveObject | WatchStatus;
}

export interface WatchStatus {
  readonly kind: 'Status';
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
}

export interface ListResult {
  readonly items: readonly LiveObject[];
  readonly resourceVersion: string;
}

/** The transport an informer needs; `src/kube` implements it on the API server. */
export interface ListWatchTransport {
  list(labelSelector: string | undefined, signal: AbortSignal): Promise<ListResult>;
  /**
   * Streams watch events from `resourceVersion` (with bookmarks) until the server ends the
   * stream (resolve) or the connection fails (reject). Must honour `signal`. When `onEvent`
   * throws, the transport ends the stream and rejects with that error.
   */
  watch(
    labelSelector: string | undefined,
    resourceVersion: string,
    signal: AbortSignal,
    onEvent: (event: WatchEvent) => void,
  ): Promise<void>;
}

export interface InformerHandlers {
  onAdd?(object: LiveObject): void;
  onUpdate?(object: LiveObject, previous: LiveObject): void;
  onDelete?(object: LiveObject): void;
  /** A list completed (initial or after 410 Gone); the cache is consistent. */
  onSynced?(): void;
  onError?(error: unknown, attempt: number): void;
}

export class GoneError extends Error {
  override readonly name = 'GoneError';
}

export function objectKey(meta: Pick<ObjectMeta, 'name' | 'namespace'>): string {
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}

function isStatus(object: WatchEvent['object']): object is WatchStatus {
  return object.kind === 'Status';
}

export interface InformerOptions {
  readonly transport: ListWatchTransport;
  readonly labelSelector?: string;
  readonly handlers: InformerHandlers;
  readonly backoff?: { baseMs: number; maxMs: number };
  /** Strip heavy fields before caching (e.g. last-applied annotations); must not mutate its input. */
  readonly transform?: (object: LiveObject) => LiveObject;
}

export class Informer {
  readonly #options: InformerOptions;
  readonly #store = new Map<string, LiveObject>();
  #resourceVersion = '';
  #synced = false;
  #running: Promise<void> | undefined;
  readonly #abort = new AbortController();
  /** Counts of list and watch calls, for tests and benchmarks that assert no hot loop. */
  readonly stats = { lists: 0, watches: 0, events: 0, relists: 0 };

  constructor(options: InformerOptions) {
    this.#options = options;
  }

  get synced(): boolean {
    return this.#synced;
  }

  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  get(key: string): LiveObject | undefined {
    return this.#store.get(key);
  }

  list(): IterableIterator<LiveObject> {
    return this.#store.values();
  }

  get size(): number {
    return this.#store.size;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('informer stopped'));
    await this.#running;
  }

  /** Resolves when the first list has completed, or rejects after `timeoutMs`. */
  async waitForSync(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#synced) {
      if (Date.now() > deadline) throw new Error(`informer not synced within ${timeoutMs} ms`);
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#relist(signal);
          needList = false;
        }
        this.stats.watches++;
        await this.#options.transport.watch(
          this.#options.labelSelector,
          this.#resourceVersion,
          signal,
          (event) => this.#apply(event),
        );
        failures = 0; // a clean end of stream: rewatch from the last resourceVersion
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof GoneError) {
          this.stats.relists++;
          needList = true;
          continue;
        }
        failures++;
        this.#options.handlers.onError?.(error, failures);
        const delay = backoffDelay(failures, this.#options.backoff ?? { baseMs: 200, maxMs: 30_000 });
        await sleepUnlessAborted(delay, signal);
      }
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const result = await this.#options.transport.list(this.#options.labelSelector, signal);
    const seen = new Set<string>();
    for (const raw of result.items) {
      const object = this.#transform(raw);
      const key = objectKey(object.metadata);
      seen.add(key);
      const previous = this.#store.get(key);
      this.#store.set(key, object);
      if (previous === undefined) this.#options.handlers.onAdd?.(object);
      else if (previous.metadata.resourceVersion !== object.metadata.resourceVersion)
        this.#options.handlers.onUpdate?.(object, previous);
    }
    for (const [key, previous] of this.#store) {
      if (!seen.has(key)) {
        this.#store.delete(key);
        this.#options.handlers.onDelete?.(previous);
      }
    }
    this.#resourceVersion = result.resourceVersion;
    this.#synced = true;
    this.#options.handlers.onSynced?.();
  }

  #apply(event: WatchEvent): void {
    this.stats.events++;
    if (isStatus(event.object)) {
      if (event.object.code === 410) throw new GoneError(event.object.message ?? 'resourceVersion too old');
      throw new Error(`watch error: ${event.object.reason ?? 'unknown'}: ${event.object.message ?? ''}`);
    }
    const rv = event.object.metadata.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (rv) this.#resourceVersion = rv;
      return;
    }
    const object = this.#transform(event.object);
    const key = objectKey(object.metadata);
    const previous = this.#store.get(key);
    if (event.type === 'DELETED') {
      this.#store.delete(key);
      this.#options.handlers.onDelete?.(previous ?? object);
    } else {
      this.#store.set(key, object);
      if (previous === undefined) this.#options.handlers.onAdd?.(object);
      else if (previous.metadata.resourceVersion !== object.metadata.resourceVersion)
        this.#options.handlers.onUpdate?.(object, previous);
    }
    if (rv) this.#resourceVersion = rv;
  }

  #transform(object: LiveObject): LiveObject {
    return this.#options.transform ? this.#options.transform(object) : object;
  }
}
