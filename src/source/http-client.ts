/**
 * isomorphic-git's HTTP client on node:http(s): TLS always verified (a custom CA is added to the
 * system roots), basic or bearer auth headers, a per-request timeout and an AbortSignal (isomorphic-git
 * has none of its own), and a bound on the response size because isomorphic-git buffers whole packs.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
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
      const signal = AbortSignal.any([
        AbortSignal.timeout(options.timeoutMs),
        ...(options.signal === undefined ? [] : [options.signal]),
      ]);
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      return new Promise<GitHttpResponse>((resolve, reject) => {
        let settled = false;
        const fail = (error: SourceError) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          outgoing.destroy();
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
                  `${method} ${safeUrl(req.url)}: no complete answer within ${options.timeoutMs} ms (spec.timeout)`,
                )
              : new SourceError('Aborted', `${method} ${safeUrl(req.url)}: aborted`),
          );
        };
        const outgoing = send(
          url,
          { method, headers, ...(ca === undefined ? {} : { ca }), rejectUnauthorized: true },
          (response) => {
            const chunks: Buffer[] = [];
            let size = 0;
            const announced = Number(response.headers['content-length'] ?? Number.NaN);
            if (announced > options.maxResponseBytes) {
              response.destroy();
              fail(
                new SourceError(
                  'TooLarge',
                  `${method} ${safeUrl(req.url)}: the server announced ${announced} bytes, over the ${options.maxResponseBytes}-byte bound; the repository is over the size bound`,
                ),
              );
              return;
            }
            response.on('data', (chunk: Buffer) => {
              size += chunk.length;
              if (size > options.maxResponseBytes) {
                response.destroy();
                fail(
                  new SourceError(
                    'TooLarge',
                    `${method} ${safeUrl(req.url)}: response larger than the ${options.maxResponseBytes}-byte bound; the repository is over the size bound`,
                  ),
                );
                return;
              }
              chunks.push(chunk);
            });
            response.on('error', (error) =>
              fail(
                new SourceError('FetchFailed', `${method} ${safeUrl(req.url)}: ${error.message}`, {
                  cause: error,
                }),
              ),
            );
            response.on('end', () => {
              if (settled) return;
              if (!response.complete) {
                fail(
                  new SourceError(
                    'FetchFailed',
                    `${method} ${safeUrl(req.url)}: connection closed mid-response`,
                  ),
                );
                return;
              }
              settled = true;
              signal.removeEventListener('abort', onAbort);
              const status = response.statusCode ?? 0;
              const flatHeaders: Record<string, string> = {};
              for (const [k, v] of Object.entries(response.headers)) {
                if (typeof v === 'string') flatHeaders[k] = v;
                else if (Array.isArray(v)) flatHeaders[k] = v.join(', ');
              }
              const data = Buffer.concat(chunks);
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
          },
        );
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          if (settled) return;
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
            fail(
              new SourceError('FetchFailed', `${method} ${safeUrl(req.url)}: ${code || error.message}`, {
                cause: error,
              }),
            );
          }
        });
        outgoing.end(body);
      });
    },
  };
}
