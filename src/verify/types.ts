/** Shared domain types of the verification core. */

export type VerifyMode = 'HEAD' | 'Tag' | 'TagAndHEAD' | 'Range';

/** Who signed, as recorded in evidence. */
export type Signer =
  | { readonly type: 'ssh'; readonly keyFingerprint: string; readonly principal: string }
  | { readonly type: 'openpgp'; readonly keyFingerprint: string; readonly principal: string }
  | {
      readonly type: 'x509';
      readonly identity: string;
      readonly principal: string;
      readonly issuer?: string;
    };

/** Reasons a single signature check can fail. */
export type SignatureFailureReason = 'Unsigned' | 'UntrustedSigner' | 'InvalidSignature';

export type SignatureCheck =
  | {
      readonly ok: true;
      readonly signer: Signer;
      /** True when the signer's principal (SSH) / a user id email (OpenPGP) / identity (x509) equals the committer (tagger) email. */
      readonly committerMatches: boolean;
      /** Why the signer cannot match any committer, when that is known (e.g. a `*.pub` key has no principal). */
      readonly mismatch?: string;
    }
  | { readonly ok: false; readonly reason: SignatureFailureReason; readonly message: string };

/** All reasons a verdict can carry. `FetchFailed` is produced by the source layer or when the reader fails. */
export type VerdictReason =
  | SignatureFailureReason
  | 'RollbackRejected'
  | 'CommitterMismatch'
  | 'RangeTooLarge'
  | 'FetchFailed';

export interface Evidence {
  readonly commit: string;
  readonly mode: VerifyMode;
  /** Tag mode: the tag's signer; other modes: the head commit's signer. */
  readonly signer: Signer;
  /** ISO-8601 time of the verification. */
  readonly verifiedAt: string;
  /** Tag and TagAndHEAD: the annotated tag that was verified. */
  readonly tag?: { readonly oid: string; readonly name: string; readonly signer: Signer };
  /** Range: how many commits were verified (head included). */
  readonly commitsVerified?: number;
}

export type Verdict =
  | { readonly verified: true; readonly evidence: Evidence }
  | {
      readonly verified: false;
      readonly reason: VerdictReason;
      /** Names the offending commit/tag and says what to do. */
      readonly message: string;
      /** The commit (or tag object) the failure is about. */
      readonly commit: string;
    };

/** A git identity line (author, committer, tagger). */
export interface GitIdentity {
  readonly name: string;
  readonly email: string;
  /** Seconds since the Unix epoch, as written in the object (controlled by the signer). */
  readonly timestamp: number;
  /** Offset as written, e.g. `+0100`. */
  readonly timezone: string;
}
