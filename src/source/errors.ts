import { displayGitUrl } from './url.ts';

export type SourceErrorCode =
  | 'FetchFailed'
  | 'AuthFailed'
  | 'HostKeyRejected'
  | 'TLSError'
  | 'Timeout'
  | 'Aborted'
  | 'NotFound'
  | 'TooLarge'
  | 'RefNotFound'
  | 'InsecureURL'
  | 'InvalidPath'
  | 'ShallowHistory'
  | 'CorruptRepository'
  /** The Git host already has --git-host-concurrency requests in flight (host-gate.ts). */
  | 'HostBusy';

/** A Git source failure. Messages never contain credentials or credential-bearing URLs. */
export class SourceError extends Error {
  override readonly name = 'SourceError';
  readonly code: SourceErrorCode;
  constructor(code: SourceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The URL without userinfo, query or fragment (SSH URLs in their `ssh://` form), for messages. */
export function safeUrl(url: string): string {
  return displayGitUrl(url);
}
