/** Public API of the signature trust core (SSH + OpenPGP; x509/gitsign plugs in through X509Checker). */
export { type CheckOptions, checkSignature, type X509Checker } from './check.ts';
export { VerificationError, type VerificationErrorCode, type VerificationErrorContext } from './errors.ts';
export { type CheckedObject, type CheckedTag, decideVerdict, type PolicyInput } from './policy.ts';
export {
  type EmbeddedSignature,
  type FsckCause,
  MalformedObjectError,
  type ObjectFormat,
  type ParsedCommit,
  type ParsedTag,
  parseCommit,
  parseTag,
  type SignatureFormat,
  type SignedObject,
} from './signed-object.ts';
export {
  createTrustMaterialCache,
  EMPTY_TRUST,
  loadTrustMaterial,
  type TrustMaterial,
  type TrustMaterialCache,
} from './trust.ts';
export type {
  Evidence,
  GitIdentity,
  SignatureCheck,
  SignatureFailureReason,
  Signer,
  Verdict,
  VerdictReason,
  VerifyMode,
} from './types.ts';
export {
  DEFAULT_MAX_RANGE_COMMITS,
  type GitObjectType,
  type RevisionReader,
  type VerifyRevisionInput,
  verifyRevision,
} from './verify-revision.ts';
