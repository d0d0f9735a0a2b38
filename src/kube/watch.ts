/**
 * The list-watch transport of an informer (src/watch/informer.ts) on the KubeClient: a paged
 * LIST, then a streamed WATCH with bookmarks from the list's resourceVersion. A 410 Gone (as an
 * HTTP status or a watch ERROR event) surfaces as the informer's GoneError so it relists.
 */
import type { JsonObject } from '../render/object.ts';
import { GoneError, type ListWatchTransport, type LiveObject, type WatchEvent } from '../watch/informer.ts';
import { type KubeClient, metadataWatchAccept } from './client.ts';
import { kubeApiErrorFrom } from './errors.ts';

export interface ResourceWatchOptions {
  readonly apiVersion: string;
  readonly kind: string;
  /** Omit for all namespaces. */
  readonly namespace?: string;
  /** Server-side watch timeout; the stream ends cleanly after it and the informer rewatches. */
  readonly watchTimeoutSeconds?: number;
  /** A connection silent for this long is considered dead (bookmarks arrive about every minute). */
  readonly idleTimeoutMs?: number;
  /** List and watch PartialObjectMetadata: the server sends metadata only (no data, no spec). */
  readonly metadataOnly?: boolean;
}

function parseWatchLine(line: string): WatchEvent {
  const parsed = JSON.parse(line) as { type?: unknown; object?: unknown };
  if (typeof parsed.type !== 'string' || typeof parsed.object !== 'object' || parsed.object === null) {
    throw new Error('malformed watch event');
  }
  return { type: parsed.type as WatchEvent['type'], object: parsed.object as WatchEvent['object'] };
}

export function resourceListWatch(client: KubeClient, options: ResourceWatchOptions): ListWatchTransport {
  const { apiVersion, kind } = options;
  const subject = `${kind}${options.namespace === undefined ? '' : `/${options.namespace}`}`;
  return {
    async list(labelSelector, signal) {
      const result = await client.list(apiVersion, kind, {
        ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        ...(labelSelector === undefined ? {} : { labelSelector }),
        ...(options.metadataOnly === true ? { metadataOnly: true } : {}),
        signal,
      });
      return { items: result.items as unknown as LiveObject[], resourceVersion: result.resourceVersion };
    },
    async watch(labelSelector, resourceVersion, signal, onEvent) {
      const { path } = await client.resourcePath(
        { apiVersion, kind, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) },
        signal,
      );
      const query = new URLSearchParams({
        watch: '1',
        allowWatchBookmarks: 'true',
        resourceVersion,
        timeoutSeconds: String(options.watchTimeoutSeconds ?? 300),
      });
      if (labelSelector !== undefined) query.set('labelSelector', labelSelector);
      let failure: unknown;
      const outcome = await client.stream(
        {
          path: `${path}?${query}`,
          subject,
          signal,
          idleTimeoutMs: options.idleTimeoutMs ?? 90_000,
          ...(options.metadataOnly === true ? { headers: { accept: metadataWatchAccept } } : {}),
        },
        (line) => {
          if (failure !== undefined) return;
          try {
            const event = parseWatchLine(line);
            if (event.type !== 'BOOKMARK' && event.type !== 'ERROR') {
              const object = event.object as unknown as JsonObject;
              if (options.metadataOnly === true) {
                // PartialObjectMetadata: named as the resource it describes, like list() does.
                object.apiVersion = apiVersion;
                object.kind = kind;
              }
              object.apiVersion ??= apiVersion;
              object.kind ??= kind;
            }
            onEvent(event);
          } catch (error) {
            failure = error;
          }
        },
      );
      if (failure !== undefined) throw failure;
      if (outcome.status === 'closed') return;
      if (outcome.status === 410) throw new GoneError('resourceVersion too old');
      throw kubeApiErrorFrom({ status: outcome.status, body: outcome.body, subject, verb: 'watch' });
    },
  };
}
