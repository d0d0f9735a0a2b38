export type ProvenanceErrorCode =
  | 'SymlinkRefused'
  | 'InvalidPath'
  | 'DuplicatePath'
  | 'BundleMissing'
  | 'BundleMalformed'
  | 'StatementMismatch'
  | 'PolicyInvalid';

/** A provenance check that cannot pass; `code` says which rule, the message what to do. */
export class ProvenanceError extends Error {
  readonly code: ProvenanceErrorCode;
  constructor(code: ProvenanceErrorCode, message: string) {
    super(message);
    this.name = 'ProvenanceError';
    this.code = code;
  }
}
