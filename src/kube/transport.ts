import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { backoffDelay } from '../util/backoff.ts';
import { Deadline } from '../util/deadline.ts';
import { Utf8LineSplitter } from '../util/utf8.ts';
import { KubeRequestError } from './errors.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface TransportRequest {
  readonly method: HttpMethod;
  /** Path and query, relative to the server URL (e.g. `/api/v1/namespaces`). */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Per-attempt timeout in ms (default: the transport's). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** `Kind/ns/name` (or a path) for error messages. */
  readonly subject: string;
  /** False for requests that must not be repeated after the server may have acted (POST create). */
  readonly idempotent?: boolean;
}

export interface TransportResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export interface Transport {
  request(request: TransportRequest): Promise<TransportResponse>;
  /**
   * A long-running request whose body is delivered line by line (watch streams). Not retried:
   * the caller (an informer) reconnects from its last resourceVersion. `idleTimeoutMs` ends the
   * stream when no byte arrives for that long (a dead connection), unlike a whole-request timeout.
   */
  stream(request: StreamRequest, onLine: (line: string) => void): Promise<StreamOutcome>;
  close(): Promise<void>;
}

export interface StreamRequest {
  readonly path: string;
  readonly subject: string;
  readonly signal: AbortSignal;
  readonly idleTimeoutMs: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/** How a stream ended: the server closed it, or answered with an error status (body kept). */
export type StreamOutcome =
  | { readonly status: 'closed' }
  | { readonly status: number; readonly body: string };

export interface RetryPolicy {
  /** Attempts in total, first included (default 5). */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Cap on a server's Retry-After (seconds). */
  readonly maxRetryAfterSeconds: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  maxRetryAfterSeconds: 30,
};

/** Counts of requests sent (every attempt, retries included), by method and by status. */
export interface RequestStats {
  total: number;
  retries: number;
  byMethod: Record<string, number>;
  byStatus: Record<string, number>;
}

export function emptyRequestStats(): RequestStats {
  return { total: 0, retries: 0, byMethod: {}, byStatus: {} };
}

export interface UndiciTransportOptions {
  /** Server URL; a path prefix is kept (e.g. `https://host/k8s/clusters/c-1`). */
  readonly server: string;
  readonly dispatcher: Dispatcher;
  /** Credentials headers (Authorization…), re-read for every attempt so rotated tokens apply. */
  readonly authHeaders: () => Promise<Record<string, string>>;
  readonly userAgent: string;
  /** Extra headers on every request (impersonation). Values may repeat (groups). */
  readonly extraHeaders?: Readonly<Record<string, string | readonly string[]>>;
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly stats?: RequestStats;
  /** Injectable for tests. */
  readonly delay?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
}

const retriableErrorCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCodeOf(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; current !== undefined && depth < 4; depth++) {
    if (typeof current !== 'object' || current === null) return undefined;
    if ('code' in current && typeof current.code === 'string') return current.code;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}

export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const seconds = Number(text);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

function defaultDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return sleep(ms, undefined, signal === undefined ? undefined : { signal });
}

/**
 * A raw HTTP transport on an undici dispatcher: bodies go out and come back as strings, untouched.
 * Retries 429 (honouring Retry-After), 5xx on idempotent requests, and connection errors, with
 * bounded exponential backoff (src/util/backoff.ts). No client-side QPS limit: API Priority and
 * Fairness limits on the server. Watch streams are split into lines by one stateful UTF-8 decoder.
 */
export function createUndiciTransport(options: UndiciTransportOptions): Transport {
  const url = new URL(options.server);
  const origin = url.origin;
  const basePath = url.pathname.replace(/\/+$/, '');
  const retry: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  const stats = options.stats;
  const delay = options.delay ?? defaultDelay;
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;

  async function attempt(request: TransportRequest): Promise<TransportResponse> {
    const timeoutMs = request.timeoutMs ?? defaultTimeoutMs;
    const deadline = new Deadline(timeoutMs, request.signal);
    const signal = deadline.signal;
    const headers: Record<string, string | string[]> = {
      accept: 'application/json',
      'user-agent': options.userAgent,
      ...(await options.authHeaders()),
    };
    for (const [name, value] of Object.entries(options.extraHeaders ?? {})) {
      headers[name] = typeof value === 'string' ? value : [...value];
    }
    for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
    if (stats !== undefined) {
      stats.total++;
      stats.byMethod[request.method] = (stats.byMethod[request.method] ?? 0) + 1;
    }
    try {
      const response = await options.dispatcher.request({
        origin,
        path: `${basePath}${request.path}`,
        method: request.method,
        headers,
        body: request.body ?? null,
        signal,
      });
      const body = await response.body.text();
      if (stats !== undefined) {
        const key = String(response.statusCode);
        stats.byStatus[key] = (stats.byStatus[key] ?? 0) + 1;
      }
      return { status: response.statusCode, headers: response.headers, body };
    } catch (error) {
      if (request.signal?.aborted === true) {
        throw new KubeRequestError('Aborted', request.subject, 'request aborted', error);
      }
      if (deadline.timedOut) {
        throw new KubeRequestError('Timeout', request.subject, `no answer within ${timeoutMs} ms`, error);
      }
      throw new KubeRequestError(
        'Connection',
        request.subject,
        `connection failed (${errorCodeOf(error) ?? 'unknown'})`,
        error,
      );
    } finally {
      deadline.dispose();
    }
  }

  const backoffMs = (attemptIndex: number): number =>
    backoffDelay(attemptIndex + 1, { baseMs: retry.baseDelayMs, maxMs: retry.maxDelayMs });

  return {
    async request(request: TransportRequest): Promise<TransportResponse> {
      const idempotent = request.idempotent ?? request.method !== 'POST';
      for (let attemptIndex = 0; ; attemptIndex++) {
        const last = attemptIndex + 1 >= retry.maxAttempts;
        let waitMs: number;
        try {
          const response = await attempt(request);
          if (last) return response;
          if (response.status === 429) {
            const retryAfter = parseRetryAfter(response.headers['retry-after']);
            waitMs =
              retryAfter === undefined
                ? backoffMs(attemptIndex)
                : Math.min(retryAfter, retry.maxRetryAfterSeconds) * 1000;
          } else if (idempotent && response.status >= 500 && response.status !== 501) {
            const retryAfter = parseRetryAfter(response.headers['retry-after']);
            waitMs =
              retryAfter === undefined
                ? backoffMs(attemptIndex)
                : Math.min(retryAfter, retry.maxRetryAfterSeconds) * 1000;
          } else {
            return response;
          }
        } catch (error) {
          const retriable =
            error instanceof KubeRequestError &&
            error.code === 'Connection' &&
            (idempotent || retriableErrorCodes.has(errorCodeOf(error.cause) ?? '')) &&
            (idempotent || errorCodeOf(error.cause) === 'ECONNREFUSED');
          if (last || !retriable) throw error;
          waitMs = backoffMs(attemptIndex);
        }
        if (stats !== undefined) stats.retries++;
        try {
          await delay(waitMs, request.signal);
        } catch (error) {
          throw new KubeRequestError(
            'Aborted',
            request.subject,
            'request aborted while waiting to retry',
            error,
          );
        }
      }
    },
    async stream(request: StreamRequest, onLine: (line: string) => void): Promise<StreamOutcome> {
      const idle = new AbortController();
      const signal = AbortSignal.any([request.signal, idle.signal]);
      let idleTimer: NodeJS.Timeout | undefined;
      const armIdle = () => {
        if (idleTimer !== undefined) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => idle.abort(new Error('watch idle')), request.idleTimeoutMs);
      };
      const headers: Record<string, string | string[]> = {
        accept: 'application/json',
        'user-agent': options.userAgent,
        ...(await options.authHeaders()),
      };
      for (const [name, value] of Object.entries(options.extraHeaders ?? {})) {
        headers[name] = typeof value === 'string' ? value : [...value];
      }
      for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
      if (stats !== undefined) {
        stats.total++;
        stats.byMethod.WATCH = (stats.byMethod.WATCH ?? 0) + 1;
      }
      armIdle();
      try {
        const response = await options.dispatcher.request({
          origin,
          path: `${basePath}${request.path}`,
          method: 'GET',
          headers,
          signal,
          bodyTimeout: 0,
          headersTimeout: request.idleTimeoutMs,
        });
        if (response.statusCode >= 400) {
          return { status: response.statusCode, body: await response.body.text() };
        }
        // One decoder for the whole stream: a character split between two chunks stays whole.
        const lines = new Utf8LineSplitter();
        const deliver = (complete: readonly string[]) => {
          for (const line of complete) if (line.trim() !== '') onLine(line);
        };
        for await (const chunk of response.body as AsyncIterable<Uint8Array | string>) {
          armIdle();
          deliver(lines.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk));
        }
        deliver(lines.end());
        return { status: 'closed' };
      } catch (error) {
        if (request.signal.aborted)
          throw new KubeRequestError('Aborted', request.subject, 'watch aborted', error);
        if (idle.signal.aborted) {
          throw new KubeRequestError(
            'Timeout',
            request.subject,
            `watch idle for ${request.idleTimeoutMs} ms`,
            error,
          );
        }
        if (error instanceof KubeRequestError) throw error;
        throw new KubeRequestError(
          'Connection',
          request.subject,
          `watch connection failed (${errorCodeOf(error) ?? 'unknown'})`,
          error,
        );
      } finally {
        if (idleTimer !== undefined) clearTimeout(idleTimer);
      }
    },
    async close(): Promise<void> {
      // Called once the operator's work is drained. undici's close() destroys its clients in a promise
      // chain of its own whose rejection (ClientDestroyedError) no caller can catch: two clean-clone
      // runs ended with it as an uncaught exception. destroy() is awaited here, and its error kept.
      await options.dispatcher.destroy();
    },
  };
}
