/**
 * isomorphic-git's HTTP client on node:http(s): TLS always verified (a custom CA is added to the
 * system roots), basic or bearer auth headers, a per-request timeout and an AbortSignal (isomorphic-git
 * has none of its own), and a bound on the response size because isomorphic-git buffers whole packs.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { Deadline } from '../util/deadline.ts';
import { decodeUtf8Prefix } from '../util/utf8.ts';
import { SourceError, safeUrl } from './errors.ts';

export interface HttpClientOptions {
  readonly auth?: { readonly username?: string; readonly password?: string; readonly bearerToken?: string };
  readonly caPem?: string;
  readonly insecure?: boolean;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly signal?: AbortSignal;
  /** Counts requests (tests and benchmarks assert round trips). */
  readonly onRequest?: (method: string, url: string) => void;
}

async function collect(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<Buffer> {
  if (body === undefined) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const tlsErrorCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const ca = options.caPem === undefined ? undefined : [...rootCertificates, options.caPem];
  const authHeader =
    options.auth?.bearerToken !== undefined
      ? `Bearer ${options.auth.bearerToken}`
      : options.auth?.username !== undefined || options.auth?.password !== undefined
        ? `Basic ${Buffer.from(`${options.auth?.username ?? ''}:${options.auth?.password ?? ''}`).toString('base64')}`
        : undefined;
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const url = new URL(req.url);
      if (url.protocol === 'http:' && !options.insecure) {
        throw new SourceError(
          'InsecureURL',
          `${safeUrl(req.url)}: http:// is refused unless spec.insecure is true`,
        );
      }
      const method = req.method ?? 'GET';
      options.onRequest?.(method, safeUrl(req.url));
      const body = await collect(req.body);
      const headers: Record<string, string> = { ...(req.headers ?? {}), 'user-agent': 'signet-git/0.1' };
      if (authHeader !== undefined) headers.authorization = authHeader;
      if (body.length > 0) headers['content-length'] = String(body.length);
      // Disposed by cleanup() once the answer is read, so no timer outlives the request.
      const deadline = new Deadline(options.timeoutMs, options.signal);
      const signal = deadline.signal;
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const where = `${method} ${safeUrl(req.url)}`;
      return new Promise<GitHttpResponse>((resolve, reject) => {
        // `headersDone`: the promise is settled; later failures surface from the body iterator.
        let headersDone = false;
        let bodyError: SourceError | undefined;
        const cleanup = () => {
          signal.removeEventListener('abort', onAbort);
          deadline.dispose();
        };
        const fail = (error: SourceError) => {
          bodyError ??= error;
          outgoing.destroy();
          if (headersDone) return;
          headersDone = true;
          cleanup();
          reject(error);
        };
        const onAbort = () => {
          // The caller's signal may itself be a spec.timeout deadline (AbortSignal.timeout): a timeout too.
          const callerReason: unknown = options.signal?.reason;
          const timedOut =
            options.signal?.aborted !== true ||
            (callerReason instanceof DOMException && callerReason.name === 'TimeoutError');
          fail(
            timedOut
              ? new SourceError(
                  'Timeout',
                  `${where}: no complete answer within ${options.timeoutMs} ms (spec.timeout)`,
                )
              : new SourceError('Aborted', `${where}: aborted`),
          );
        };
        const tooLarge = (detail: string) =>
          new SourceError(
            'TooLarge',
            `${where}: ${detail}, over the ${options.maxResponseBytes}-byte bound; the repository is over the size bound`,
          );
        const outgoing = send(
          url,
          { method, headers, ...(ca === undefined ? {} : { ca }), rejectUnauthorized: true },
          (response) => {
            const announced = Number(response.headers['content-length'] ?? Number.NaN);
            if (announced > options.maxResponseBytes) {
              fail(tooLarge(`the server announced ${announced} bytes`));
              return;
            }
            const status = response.statusCode ?? 0;
            const flatHeaders: Record<string, string> = {};
            for (const [k, v] of Object.entries(response.headers)) {
              if (typeof v === 'string') flatHeaders[k] = v;
              else if (Array.isArray(v)) flatHeaders[k] = v.join(', ');
            }
            if (status >= 300) {
              // Error answers are small and isomorphic-git may never read them: read them here (the
              // first 64 KiB kept) so the connection is released now, not at the timeout. The answer
              // is text (isomorphic-git quotes it): cut on a character, never inside one.
              const kept: Buffer[] = [];
              let size = 0;
              response.on('data', (chunk: Buffer) => {
                if (size < 65_536) kept.push(chunk);
                size += chunk.length;
              });
              response.on('error', (error) =>
                fail(new SourceError('FetchFailed', `${where}: ${error.message}`, { cause: error })),
              );
              response.on('end', () => {
                if (headersDone) return;
                headersDone = true;
                cleanup();
                const data = Buffer.from(decodeUtf8Prefix(kept, 65_536), 'utf8');
                resolve({
                  url: req.url,
                  method,
                  statusCode: status,
                  statusMessage: response.statusMessage ?? '',
                  headers: flatHeaders,
                  body: (async function* () {
                    yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
                  })(),
                });
              });
              return;
            }
            // The body streams (isomorphic-git collects the pack once; buffering here too would
            // double the memory of a fetch), bounded, and a truncated or aborted body throws.
            const body = async function* (): AsyncGenerator<Uint8Array> {
              let size = 0;
              try {
                for await (const chunk of response as AsyncIterable<Buffer>) {
                  size += chunk.length;
                  if (size > options.maxResponseBytes) throw tooLarge('the response is larger');
                  yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
                }
              } catch (error) {
                if (error instanceof SourceError) bodyError ??= error;
                throw (
                  bodyError ??
                  new SourceError(
                    'FetchFailed',
                    `${where}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
                    { cause: error },
                  )
                );
              } finally {
                cleanup();
                response.destroy();
              }
              if (bodyError !== undefined) throw bodyError;
              if (!response.complete) {
                throw new SourceError('FetchFailed', `${where}: the connection closed mid-response`);
              }
            };
            headersDone = true;
            resolve({
              url: req.url,
              method,
              statusCode: status,
              statusMessage: response.statusMessage ?? '',
              headers: flatHeaders,
              body: body(),
            });
          },
        );
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          const code = error.code ?? '';
          if (tlsErrorCodes.has(code)) {
            fail(
              new SourceError(
                'TLSError',
                `${safeUrl(req.url)}: TLS verification failed (${code}); check spec.secretRef ca.crt`,
                { cause: error },
              ),
            );
          } else {
            fail(new SourceError('FetchFailed', `${where}: ${code || error.message}`, { cause: error }));
          }
        });
        outgoing.end(body);
      });
    },
  };
}
