/**
 * Coded errors of the notifier. Messages name the configuration key or the failure class and
 * NEVER the webhook URL (it is a credential); no raw transport error is kept as `cause`,
 * because its message may embed the address.
 */
export class NotifyError<Code extends string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

export type SlackConfigErrorCode =
  | 'AddressMissing'
  | 'AddressInvalid'
  | 'AddressInsecure'
  | 'CaInvalid'
  | 'UnknownEvent';

/** A GitRepository's `spec.alerts.slack` (or its Secret) cannot be used. */
export class SlackConfigError extends NotifyError<SlackConfigErrorCode> {}

export type SlackDeliveryErrorCode = 'Timeout' | 'ConnectionFailed' | 'TlsFailed' | 'Aborted';

/** One webhook request failed before an HTTP status was received. */
export class SlackDeliveryError extends NotifyError<SlackDeliveryErrorCode> {
  /** Whether a later attempt can succeed without a configuration change. */
  readonly retryable: boolean;

  constructor(code: SlackDeliveryErrorCode, message: string, retryable: boolean) {
    super(code, message);
    this.retryable = retryable;
  }
}

export type NotifierStateErrorCode = 'FlushAborted' | 'Closed';

/** `flush` gave up (its signal aborted) or the notifier was closed while waiting. */
export class NotifierStateError extends NotifyError<NotifierStateErrorCode> {}
