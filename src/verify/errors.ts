/** What went wrong while reading trust material or a signed object. Every code is fail-closed: callers never treat it as success. */
export type VerificationErrorCode =
  | 'MalformedObject'
  | 'MalformedSignature'
  | 'MalformedKey'
  | 'UnsupportedKeyType'
  | 'UnsupportedAlgorithm'
  | 'UnsupportedOption'
  | 'PrivateKeyMaterial'
  | 'InvalidInput';

export interface VerificationErrorContext {
  /** Name of the Secret/ConfigMap key the problem was found in. */
  readonly keyName?: string;
  /** 1-based line number inside that key, for allowed-signers files. */
  readonly line?: number;
  /** Object id of the commit or tag being read. */
  readonly oid?: string;
}

export class VerificationError extends Error {
  readonly code: VerificationErrorCode;
  readonly context: VerificationErrorContext;

  constructor(code: VerificationErrorCode, message: string, context: VerificationErrorContext = {}) {
    super(message);
    this.name = 'VerificationError';
    this.code = code;
    this.context = context;
  }
}

export function isVerificationError(error: unknown): error is VerificationError {
  return error instanceof VerificationError;
}

/** Renders any thrown value as a one-line message (never includes key material). */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
