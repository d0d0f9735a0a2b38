import {
  formatSubject,
  identityOf,
  isJsonObject,
  type JsonObject,
  type JsonValue,
  type KubeObject,
  splitApiVersion,
} from '../render/object.ts';
import { Discovery, type ResourceInfo } from './discovery.ts';
import { KubeApiError, KubeRequestError, kubeApiErrorFrom } from './errors.ts';
import {
  type HttpMethod,
  parseRetryAfter,
  type RequestStats,
  type StreamOutcome,
  type StreamRequest,
  type Transport,
  type TransportResponse,
} from './transport.ts';

/** Names one object. `namespace` is ignored for cluster-scoped kinds. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Per-attempt timeout in ms. */
  readonly timeoutMs?: number;
}

export interface ApplyOptions extends CallOptions {
  readonly fieldManager: string;
  readonly force?: boolean;
  readonly dryRun?: boolean;
}

export interface ApplyResult {
  readonly object: KubeObject;
  /** True when the server answered 201 Created. */
  readonly created: boolean;
}

export interface ListOptions extends CallOptions {
  /** Omit for all namespaces (or cluster-scoped kinds). */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly resourceVersion?: string;
  /** Page size; pages are followed until the end (default 500). */
  readonly limit?: number;
  /** Items as PartialObjectMetadata (metadata only; a Secret's data never leaves the server). */
  readonly metadataOnly?: boolean;
}

/** Accept headers asking the API server for metadata only (server-side conversion). */
export const metadataListAccept = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export const metadataWatchAccept = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

export interface ListResult {
  readonly items: KubeObject[];
  readonly resourceVersion: string;
}

export interface DeleteOptions extends CallOptions {
  readonly propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  /** Precondition: delete only if the live object still has this uid. */
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly dryRun?: boolean;
}

export type DeleteOutcome = 'deleted' | 'not-found';

export interface RawRequest extends CallOptions {
  readonly method: HttpMethod;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface KubeClientOptions {
  readonly transport: Transport;
  /** Counters the transport updates; exposed as `client.stats`. */
  readonly stats: RequestStats;
  readonly discovery?: Discovery;
}

function subjectOf(ref: ObjectRef): string {
  return formatSubject({ kind: ref.kind, namespace: ref.namespace ?? '', name: ref.name });
}

function parseJson(body: string, subject: string): JsonValue {
  try {
    return JSON.parse(body) as JsonValue;
  } catch (cause) {
    throw new KubeRequestError('InvalidResponse', subject, 'response body is not JSON', cause);
  }
}

function asKubeObject(value: JsonValue, subject: string): KubeObject {
  if (!isJsonObject(value) || !isJsonObject(value.metadata)) {
    throw new KubeRequestError('InvalidResponse', subject, 'response is not a Kubernetes object');
  }
  return value as unknown as KubeObject;
}

/**
 * A Kubernetes client that sends objects as untouched JSON (no generated models, which drop
 * unknown fields) and maps every refusal to KubeApiError. The only kube API surface Signet uses.
 */
export class KubeClient {
  readonly #transport: Transport;
  readonly discovery: Discovery;
  /** Requests sent by this client, retries included. */
  readonly stats: RequestStats;

  constructor(options: KubeClientOptions) {
    this.#transport = options.transport;
    this.stats = options.stats;
    this.discovery =
      options.discovery ??
      new Discovery(async (path, signal) => {
        const response = await this.#send({
          method: 'GET',
          path,
          subject: path,
          verb: 'discovery',
          signal,
          acceptStatus: [404],
        });
        if (response.status === 404) return undefined;
        const document = parseJson(response.body, path);
        return isJsonObject(document) ? document : undefined;
      });
  }

  async #send(init: {
    method: HttpMethod;
    path: string;
    subject: string;
    verb: string;
    signal?: AbortSignal | undefined;
    timeoutMs?: number | undefined;
    body?: string;
    headers?: Record<string, string>;
    idempotent?: boolean;
    acceptStatus?: readonly number[];
  }): Promise<TransportResponse> {
    const request = {
      method: init.method,
      path: init.path,
      subject: init.subject,
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.headers === undefined ? {} : { headers: init.headers }),
      ...(init.signal === undefined ? {} : { signal: init.signal }),
      ...(init.timeoutMs === undefined ? {} : { timeoutMs: init.timeoutMs }),
      ...(init.idempotent === undefined ? {} : { idempotent: init.idempotent }),
    };
    const response = await this.#transport.request(request);
    if (response.status < 400 || init.acceptStatus?.includes(response.status) === true) return response;
    const retryAfterSeconds = parseRetryAfter(response.headers['retry-after']);
    throw kubeApiErrorFrom({
      status: response.status,
      body: response.body,
      subject: init.subject,
      verb: init.verb,
      ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
    });
  }

  /** URL path of a collection or object; `name` omitted for the collection. */
  async resourcePath(
    ref: { apiVersion: string; kind: string; namespace?: string | undefined; name?: string | undefined },
    signal?: AbortSignal,
  ): Promise<{ path: string; info: ResourceInfo }> {
    const info = await this.discovery.resolve(ref.apiVersion, ref.kind, signal);
    const { group } = splitApiVersion(ref.apiVersion);
    const root = group === '' ? `/api/${ref.apiVersion}` : `/apis/${ref.apiVersion}`;
    const namespacePart =
      info.namespaced && ref.namespace !== undefined && ref.namespace !== ''
        ? `/namespaces/${encodeURIComponent(ref.namespace)}`
        : '';
    const namePart = ref.name === undefined ? '' : `/${encodeURIComponent(ref.name)}`;
    return { path: `${root}${namespacePart}/${info.resource}${namePart}`, info };
  }

  /** Server-side apply: PATCH application/apply-patch+yaml with the object's JSON, fieldValidation=Strict. */
  async apply(object: KubeObject, options: ApplyOptions): Promise<ApplyResult> {
    const identity = identityOf(object);
    const subject = formatSubject(identity);
    const { path, info } = await this.resourcePath(
      {
        apiVersion: object.apiVersion,
        kind: object.kind,
        namespace: identity.namespace,
        name: identity.name,
      },
      options.signal,
    );
    if (info.namespaced && identity.namespace === '') {
      throw new KubeApiError({
        code: 'BadRequest',
        status: 0,
        reason: 'NamespaceRequired',
        subject,
        verb: 'apply',
        serverMessage: `${object.kind} is namespaced but the object names no namespace`,
      });
    }
    const query = new URLSearchParams({ fieldManager: options.fieldManager, fieldValidation: 'Strict' });
    if (options.force === true) query.set('force', 'true');
    if (options.dryRun === true) query.set('dryRun', 'All');
    const response = await this.#send({
      method: 'PATCH',
      path: `${path}?${query}`,
      subject,
      verb: options.dryRun === true ? 'dry-run apply' : 'apply',
      body: JSON.stringify(object),
      headers: { 'content-type': 'application/apply-patch+yaml' },
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    return {
      object: asKubeObject(parseJson(response.body, subject), subject),
      created: response.status === 201,
    };
  }

  /** The live object, or undefined when it does not exist. */
  async get(ref: ObjectRef, options: CallOptions = {}): Promise<KubeObject | undefined> {
    const subject = subjectOf(ref);
    const { path } = await this.resourcePath(ref, options.signal);
    const response = await this.#send({
      method: 'GET',
      path,
      subject,
      verb: 'get',
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      acceptStatus: [404],
    });
    if (response.status === 404) return undefined;
    return asKubeObject(parseJson(response.body, subject), subject);
  }

  /** Lists every page; items get their apiVersion and kind back (the server omits them in lists). */
  async list(apiVersion: string, kind: string, options: ListOptions = {}): Promise<ListResult> {
    const subject = `${kind}List${options.namespace === undefined ? '' : `/${options.namespace}`}`;
    const { path } = await this.resourcePath(
      { apiVersion, kind, namespace: options.namespace },
      options.signal,
    );
    const items: KubeObject[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const query = new URLSearchParams({ limit: String(options.limit ?? 500) });
      if (options.labelSelector !== undefined) query.set('labelSelector', options.labelSelector);
      if (options.fieldSelector !== undefined) query.set('fieldSelector', options.fieldSelector);
      if (continueToken !== undefined) query.set('continue', continueToken);
      else if (options.resourceVersion !== undefined) query.set('resourceVersion', options.resourceVersion);
      const response = await this.#send({
        method: 'GET',
        path: `${path}?${query}`,
        subject,
        verb: 'list',
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        ...(options.metadataOnly === true ? { headers: { accept: metadataListAccept } } : {}),
      });
      const page = parseJson(response.body, subject);
      if (!isJsonObject(page)) {
        throw new KubeRequestError('InvalidResponse', subject, 'list response has no items');
      }
      // An empty PartialObjectMetadataList comes with `items: null`.
      const pageItems = page.items === null && options.metadataOnly === true ? [] : page.items;
      if (!Array.isArray(pageItems)) {
        throw new KubeRequestError('InvalidResponse', subject, 'list response has no items');
      }
      for (const item of pageItems) {
        const object = asKubeObject(item, subject);
        items.push({ ...object, apiVersion, kind });
      }
      const metadata = isJsonObject(page.metadata) ? page.metadata : {};
      resourceVersion =
        typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : resourceVersion;
      continueToken =
        typeof metadata.continue === 'string' && metadata.continue !== '' ? metadata.continue : undefined;
    } while (continueToken !== undefined);
    return { items, resourceVersion };
  }

  /** Deletes with propagation Background by default; 'not-found' when already gone. */
  async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<DeleteOutcome> {
    const subject = subjectOf(ref);
    const { path } = await this.resourcePath(ref, options.signal);
    const body: JsonObject = {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: options.propagationPolicy ?? 'Background',
    };
    const preconditions: JsonObject = {};
    if (options.uid !== undefined) preconditions.uid = options.uid;
    if (options.resourceVersion !== undefined) preconditions.resourceVersion = options.resourceVersion;
    if (Object.keys(preconditions).length > 0) body.preconditions = preconditions;
    if (options.dryRun === true) body.dryRun = ['All'];
    const response = await this.#send({
      method: 'DELETE',
      path,
      subject,
      verb: 'delete',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      acceptStatus: [404],
    });
    return response.status === 404 ? 'not-found' : 'deleted';
  }

  /** JSON merge patch of `{status}` on the object's /status subresource. */
  async patchStatus(ref: ObjectRef, status: JsonObject, options: CallOptions = {}): Promise<KubeObject> {
    const subject = subjectOf(ref);
    const { path } = await this.resourcePath(ref, options.signal);
    const response = await this.#send({
      method: 'PATCH',
      path: `${path}/status`,
      subject,
      verb: 'status patch',
      body: JSON.stringify({ status }),
      headers: { 'content-type': 'application/merge-patch+json' },
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    return asKubeObject(parseJson(response.body, subject), subject);
  }

  /** POSTs a new object (not retried on 5xx: the server may have created it). */
  async create(object: KubeObject, options: CallOptions = {}): Promise<KubeObject> {
    const identity = identityOf(object);
    const subject = formatSubject(identity);
    const { path } = await this.resourcePath(
      { apiVersion: object.apiVersion, kind: object.kind, namespace: identity.namespace },
      options.signal,
    );
    const response = await this.#send({
      method: 'POST',
      path,
      subject,
      verb: 'create',
      body: JSON.stringify(object),
      headers: { 'content-type': 'application/json' },
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      idempotent: false,
    });
    return asKubeObject(parseJson(response.body, subject), subject);
  }

  /** Creates an Event (core `v1` or `events.k8s.io/v1`, whichever the object says). */
  createEvent(event: KubeObject, options: CallOptions = {}): Promise<KubeObject> {
    return this.create(event, options);
  }

  /** A raw request; the response is returned whatever its status. */
  request(request: RawRequest): Promise<TransportResponse> {
    return this.#transport.request({
      method: request.method,
      path: request.path,
      subject: request.path,
      ...(request.headers === undefined ? {} : { headers: request.headers }),
      ...(request.body === undefined ? {} : { body: request.body }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
      ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
    });
  }

  /** A streamed request (watch), delivered line by line; see Transport.stream. */
  stream(request: StreamRequest, onLine: (line: string) => void): Promise<StreamOutcome> {
    return this.#transport.stream(request, onLine);
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }
}
