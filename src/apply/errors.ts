import { type FieldConflict, KubeApiError, KubeRequestError } from '../kube/errors.ts';

export type ApplyErrorCode =
  | 'ApplyFailed'
  | 'FieldManagerConflict'
  | 'ImmutableField'
  | 'Forbidden'
  | 'NoKindMatch'
  | 'NamespaceNotFound'
  | 'Invalid'
  | 'CrdNotEstablished'
  | 'DeletionTimeout'
  | 'DeleteFailed'
  | 'Timeout'
  | 'Aborted';

/** Why one object could not be applied or deleted; kept in its ChangeSet entry. */
export class ApplyError extends Error {
  override readonly name = 'ApplyError';
  readonly code: ApplyErrorCode;
  /** `Kind/ns/name`. */
  readonly subject: string;
  /** What went wrong, without the subject (for lines that already name the object). */
  readonly detail: string;
  /** For FieldManagerConflict: the fields and the managers holding them. */
  readonly conflicts: readonly FieldConflict[];
  constructor(
    code: ApplyErrorCode,
    subject: string,
    message: string,
    init: { cause?: unknown; conflicts?: readonly FieldConflict[] } = {},
  ) {
    super(`${subject}: ${message}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.subject = subject;
    this.detail = message;
    this.conflicts = init.conflicts ?? [];
  }
}

/** Wraps whatever a verb threw into an ApplyError with the most specific code. */
export function toApplyError(error: unknown, subject: string, verb: 'apply' | 'delete'): ApplyError {
  if (error instanceof ApplyError) return error;
  if (error instanceof KubeApiError) {
    const reason = `${verb} failed (${error.reason}): ${error.serverMessage}`;
    switch (error.code) {
      case 'FieldManagerConflict':
        return new ApplyError('FieldManagerConflict', subject, reason, {
          cause: error,
          conflicts: error.conflicts,
        });
      case 'Forbidden':
        return new ApplyError('Forbidden', subject, reason, { cause: error });
      case 'NoKindMatch':
        return new ApplyError('NoKindMatch', subject, reason, { cause: error });
      case 'NotFound':
        if (verb === 'apply' && /namespaces? "[^"]*" not found/.test(error.serverMessage)) {
          return new ApplyError('NamespaceNotFound', subject, reason, { cause: error });
        }
        break;
      case 'Invalid':
        return new ApplyError(error.isImmutableFieldError ? 'ImmutableField' : 'Invalid', subject, reason, {
          cause: error,
        });
      default:
        break;
    }
    return new ApplyError(verb === 'apply' ? 'ApplyFailed' : 'DeleteFailed', subject, reason, {
      cause: error,
    });
  }
  if (error instanceof KubeRequestError) {
    if (error.code === 'Aborted')
      return new ApplyError('Aborted', subject, `${verb} aborted`, { cause: error });
    if (error.code === 'Timeout') return new ApplyError('Timeout', subject, error.message, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ApplyError(
    verb === 'apply' ? 'ApplyFailed' : 'DeleteFailed',
    subject,
    `${verb} failed: ${message}`,
    {
      cause: error,
    },
  );
}
