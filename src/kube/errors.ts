import { isJsonObject, type JsonValue } from '../render/object.ts';

export type KubeApiErrorCode =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'AlreadyExists'
  | 'Conflict'
  | 'FieldManagerConflict'
  | 'Gone'
  | 'Invalid'
  | 'UnsupportedMediaType'
  | 'TooManyRequests'
  | 'Timeout'
  | 'ServerError'
  | 'NoKindMatch'
  | 'Unknown';

export interface FieldConflict {
  /** The other manager, as the server names it in the message (e.g. `"kubectl" using v1`). */
  readonly manager: string;
  /** The field path, e.g. `.data.key`. */
  readonly field: string;
}

/**
 * A refused API request. Carries the HTTP status, the Kubernetes `reason`, the server's message
 * and the object (`Kind/ns/name`); never request headers or credentials.
 */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly code: KubeApiErrorCode;
  /** HTTP status (0 for errors raised before a request, e.g. NoKindMatch). */
  readonly status: number;
  /** `Status.reason` from the server, or a code-derived reason. */
  readonly reason: string;
  readonly subject: string;
  readonly serverMessage: string;
  readonly conflicts: readonly FieldConflict[];
  /** Seconds the server asked us to wait (429/503 Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: {
    code: KubeApiErrorCode;
    status: number;
    reason: string;
    subject: string;
    serverMessage: string;
    verb: string;
    conflicts?: readonly FieldConflict[];
    retryAfterSeconds?: number;
  }) {
    super(`${init.subject} ${init.verb} failed (${init.reason}): ${init.serverMessage}`);
    this.code = init.code;
    this.status = init.status;
    this.reason = init.reason;
    this.subject = init.subject;
    this.serverMessage = init.serverMessage;
    this.conflicts = init.conflicts ?? [];
    this.retryAfterSeconds = init.retryAfterSeconds;
  }

  /** True for a 422 on an update whose message names an immutable field. */
  get isImmutableFieldError(): boolean {
    return this.code === 'Invalid' && /immutable/i.test(this.serverMessage);
  }
}

export type KubeRequestErrorCode = 'Timeout' | 'Aborted' | 'Connection' | 'InvalidResponse';

/** The request did not get an answer (timeout, abort, connection failure, unparsable body). */
export class KubeRequestError extends Error {
  override readonly name = 'KubeRequestError';
  readonly code: KubeRequestErrorCode;
  readonly subject: string;
  constructor(code: KubeRequestErrorCode, subject: string, detail: string, cause?: unknown) {
    super(`${subject}: ${detail}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.subject = subject;
  }
}

export type KubeConfigErrorCode = 'NoCluster' | 'InvalidKubeconfig';

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
  readonly code: KubeConfigErrorCode;
  constructor(code: KubeConfigErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

const codeByStatus: Record<number, KubeApiErrorCode> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Gone',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  504: 'Timeout',
};

const codeByReason: Record<string, KubeApiErrorCode> = {
  AlreadyExists: 'AlreadyExists',
  Conflict: 'Conflict',
  Invalid: 'Invalid',
  NotFound: 'NotFound',
  Forbidden: 'Forbidden',
  Unauthorized: 'Unauthorized',
  Gone: 'Gone',
  Expired: 'Gone',
  TooManyRequests: 'TooManyRequests',
  Timeout: 'Timeout',
  BadRequest: 'BadRequest',
  MethodNotAllowed: 'MethodNotAllowed',
  UnsupportedMediaType: 'UnsupportedMediaType',
};

const conflictPattern = /conflict with "([^"]+)"([^:]*):\s*(\S+)/g;

/** Maps an error response (a `Status` object, or anything else) to a KubeApiError. */
export function kubeApiErrorFrom(init: {
  status: number;
  body: string;
  subject: string;
  verb: string;
  retryAfterSeconds?: number;
}): KubeApiError {
  let parsed: JsonValue | undefined;
  try {
    parsed = JSON.parse(init.body) as JsonValue;
  } catch {
    parsed = undefined;
  }
  const statusObject = isJsonObject(parsed) && parsed.kind === 'Status' ? parsed : undefined;
  const reason =
    typeof statusObject?.reason === 'string' && statusObject.reason !== ''
      ? statusObject.reason
      : (codeByStatus[init.status] ?? (init.status >= 500 ? 'InternalError' : 'Unknown'));
  const serverMessage =
    typeof statusObject?.message === 'string'
      ? statusObject.message
      : `HTTP ${init.status}${init.body === '' ? '' : `: ${init.body.slice(0, 300)}`}`;
  let code: KubeApiErrorCode =
    codeByReason[reason] ?? codeByStatus[init.status] ?? (init.status >= 500 ? 'ServerError' : 'Unknown');
  const conflicts: FieldConflict[] = [];
  if (init.status === 409) {
    const details = statusObject?.details;
    const causes = isJsonObject(details) && Array.isArray(details.causes) ? details.causes : [];
    const isFieldManagerConflict = causes.some(
      (cause) => isJsonObject(cause) && cause.type === 'FieldManagerConflict',
    );
    if (isFieldManagerConflict || /Apply failed with \d+ conflicts?/.test(serverMessage)) {
      code = 'FieldManagerConflict';
      for (const match of serverMessage.matchAll(conflictPattern)) {
        conflicts.push({ manager: `${match[1]}${match[2]?.trimEnd() ?? ''}`, field: match[3] ?? '' });
      }
    }
  }
  const options: ConstructorParameters<typeof KubeApiError>[0] = {
    code,
    status: init.status,
    reason,
    subject: init.subject,
    serverMessage,
    verb: init.verb,
    conflicts,
  };
  if (init.retryAfterSeconds !== undefined) options.retryAfterSeconds = init.retryAfterSeconds;
  return new KubeApiError(options);
}
