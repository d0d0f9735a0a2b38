import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { decodeUtf8Prefix } from '../util/utf8.ts';
import { SlackDeliveryError } from './errors.ts';
import type { SlackTarget } from './slack-target.ts';

/** What the notifier needs from an HTTP response. */
export interface WebhookResponse {
  readonly status: number;
  /** Raw `Retry-After` header, if any. */
  readonly retryAfter: string | undefined;
  /**
   * The first bytes of the body as text, decoded once (Slack answers `ok` or an error word such as
   * `invalid_payload`); a character cut by the size bound is left out.
   */
  readonly body: string;
}

export interface WebhookPostOptions {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
}

/** Posts one JSON payload. Throws `SlackDeliveryError` when no HTTP status was received. */
export interface WebhookClient {
  post(payload: string, options: WebhookPostOptions): Promise<WebhookResponse>;
  close(): Promise<void>;
}

const maxBodyBytes = 2048;

const tlsVerificationCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    current = current.cause;
  }
  return undefined;
}

/** Map a transport failure to a coded error whose message holds only our words and an error code. */
export function toDeliveryError(error: unknown, signal: AbortSignal, timedOut: boolean): SlackDeliveryError {
  const code = errorCode(error);
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new SlackDeliveryError('Timeout', 'Slack webhook request timed out', true);
  }
  if (signal.aborted) return new SlackDeliveryError('Aborted', 'Slack webhook request aborted', false);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new SlackDeliveryError('Timeout', 'Slack webhook connection timed out', true);
  }
  if (code !== undefined && (tlsVerificationCodes.has(code) || code.startsWith('ERR_SSL_'))) {
    return new SlackDeliveryError(
      'TlsFailed',
      `Slack webhook TLS verification failed (${code}); check the receiver certificate and the ca.crt key of spec.alerts.slack.secretRef`,
      false,
    );
  }
  return new SlackDeliveryError(
    'ConnectionFailed',
    `Slack webhook connection failed${code ? ` (${code})` : ''}`,
    true,
  );
}

/** undici adapter: one connection pool per target, custom CA appended to the system roots. */
export class UndiciWebhookClient implements WebhookClient {
  readonly #target: SlackTarget;
  readonly #agent: Agent;

  constructor(target: SlackTarget, options: { readonly connectTimeoutMs?: number } = {}) {
    this.#target = target;
    this.#agent = new Agent({
      connect: {
        timeout: options.connectTimeoutMs ?? 10_000,
        ...(target.ca === undefined ? {} : { ca: [...rootCertificates, target.ca] }),
      },
    });
  }

  async post(payload: string, options: WebhookPostOptions): Promise<WebhookResponse> {
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = AbortSignal.any([options.signal, timeout]);
    try {
      const response = await request(this.#target.webhookUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'signet' },
        body: payload,
        dispatcher: this.#agent,
        signal,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        chunks.push(buffer);
        size += buffer.length;
        if (size >= maxBodyBytes) break;
      }
      const retryAfter = response.headers['retry-after'];
      return {
        status: response.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        body: decodeUtf8Prefix(chunks, maxBodyBytes),
      };
    } catch (error) {
      throw toDeliveryError(error, options.signal, timeout.aborted);
    }
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}
