// Shared pieces of keyless (Fulcio certificate) verification: policy types, identity matching and the
// mapping of @sigstore/verify failures to Signet's three signature-failure reasons.
import { createHash } from 'node:crypto';
import {
  PolicyError,
  type Signer,
  VerificationError,
  Verifier,
  type VerifierOptions,
} from '@sigstore/verify';
import { KeyHintError, type TrustedRootJSON, trustMaterialFor } from '../trust-root/index.ts';
import { excerpt } from '../util/quote.ts';

/** How much of an exception's message (which may echo signature or certificate bytes) a refusal quotes. */
const MAX_DETAIL = 500;

/**
 * One allowed keyless signer: the OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8, falling back to .1.1)
 * must equal `issuer`, and the certificate SAN must equal `subject` or fully match `subjectRegExp`
 * (the pattern is anchored as ^(?:…)$). One of subject/subjectRegExp is required.
 */
export interface KeylessIdentity {
  issuer: string;
  subject?: string;
  subjectRegExp?: string;
}

export interface KeylessPolicy {
  identities: KeylessIdentity[];
  /** Parsed trusted_root.json: Fulcio CAs, Rekor logs, CT logs and TSAs that are trusted. */
  trustedRoot: TrustedRootJSON;
}

export interface KeylessSigner {
  type: 'x509';
  /** Subject alternative name of the Fulcio leaf (email or URI). */
  identity: string;
  /** OIDC issuer recorded in the certificate. */
  issuer: string;
  /** `SHA256:<base64, unpadded>` of the leaf certificate's SubjectPublicKeyInfo (DER). */
  keyFingerprint?: string;
}

export type KeylessFailureReason = 'Unsigned' | 'UntrustedSigner' | 'InvalidSignature';

export type KeylessCheck =
  | { ok: true; signer: KeylessSigner; integratedTime: Date }
  | { ok: false; reason: KeylessFailureReason; message: string };

export class KeylessPolicyError extends Error {
  readonly code = 'InvalidKeylessPolicy' as const;
  constructor(message: string) {
    super(message);
    this.name = 'KeylessPolicyError';
  }
}

const compiledPatterns = new Map<string, RegExp>();

function anchored(pattern: string): RegExp {
  let re = compiledPatterns.get(pattern);
  if (!re) {
    try {
      re = new RegExp(`^(?:${pattern})$`, 'u');
    } catch (error) {
      throw new KeylessPolicyError(
        `subjectRegExp ${JSON.stringify(pattern)} is invalid: ${(error as Error).message}`,
      );
    }
    if (compiledPatterns.size > 256) compiledPatterns.clear();
    compiledPatterns.set(pattern, re);
  }
  return re;
}

/** Throws KeylessPolicyError when an identity is unusable (no issuer, no subject, bad pattern). */
export function assertKeylessIdentities(identities: readonly KeylessIdentity[]): void {
  if (identities.length === 0)
    throw new KeylessPolicyError('no keyless identities are allowed by the policy');
  identities.forEach((identity, index) => {
    if (!identity.issuer) throw new KeylessPolicyError(`keyless identity #${index} has no issuer`);
    if (identity.subject === undefined && identity.subjectRegExp === undefined) {
      throw new KeylessPolicyError(
        `keyless identity #${index} (issuer ${identity.issuer}) needs subject or subjectRegExp; ` +
          'an issuer alone would trust every account of that issuer',
      );
    }
    if (identity.subjectRegExp !== undefined) anchored(identity.subjectRegExp);
  });
}

/** The first allowed identity that the certificate's SAN and issuer satisfy, if any. */
export function matchKeylessIdentity(
  identities: readonly KeylessIdentity[],
  san: string,
  issuer: string,
): KeylessIdentity | undefined {
  return identities.find(
    (identity) =>
      identity.issuer === issuer &&
      (identity.subject !== undefined
        ? identity.subject === san
        : identity.subjectRegExp !== undefined && anchored(identity.subjectRegExp).test(san)),
  );
}

export function describeIdentities(identities: readonly KeylessIdentity[]): string {
  return identities.map((i) => `${i.subject ?? `/${i.subjectRegExp ?? ''}/`} from ${i.issuer}`).join('; ');
}

/** Verifiers are cheap but their trust material is not: both are cached per trusted root and options. */
const verifiers = new WeakMap<object, Map<string, Verifier>>();

export function verifierFor(
  root: TrustedRootJSON,
  options: Required<Pick<VerifierOptions, 'tlogThreshold' | 'ctlogThreshold' | 'timestampThreshold'>>,
  keys?: Readonly<Record<string, string>>,
): Verifier {
  const material = trustMaterialFor(root, keys);
  let perMaterial = verifiers.get(material);
  if (!perMaterial) {
    perMaterial = new Map();
    verifiers.set(material, perMaterial);
  }
  const id = `${options.tlogThreshold}/${options.ctlogThreshold}/${options.timestampThreshold}`;
  let verifier = perMaterial.get(id);
  if (!verifier) {
    verifier = new Verifier(material, options);
    perMaterial.set(id, verifier);
  }
  return verifier;
}

const INVALID_SIGNATURE_CODES = new Set(['SIGNATURE_ERROR', 'TLOG_BODY_ERROR']);

/** Maps an exception from @sigstore/verify (or our own checks) to a failure reason and message. */
export function classifyVerificationFailure(error: unknown): {
  reason: KeylessFailureReason;
  message: string;
} {
  if (error instanceof VerificationError || error instanceof PolicyError) {
    const reason = INVALID_SIGNATURE_CODES.has(error.code) ? 'InvalidSignature' : 'UntrustedSigner';
    const detail = excerpt(error.message, MAX_DETAIL);
    return { reason, message: `${error.code}: ${detail}${hintFor(error.code, error.message)}` };
  }
  if (error instanceof KeyHintError || error instanceof KeylessPolicyError) {
    return { reason: 'UntrustedSigner', message: excerpt(error.message, MAX_DETAIL) };
  }
  return {
    reason: 'InvalidSignature',
    message: excerpt(error instanceof Error ? error.message : String(error), MAX_DETAIL),
  };
}

function hintFor(code: string, message: string): string {
  if (code === 'TLOG_ERROR' || code.startsWith('TLOG_INCLUSION')) {
    return ' (the transparency log that recorded this signature is not in the trusted root, or its proof is invalid)';
  }
  if (code === 'CERTIFICATE_ERROR' && /chain|expired|valid/i.test(message)) {
    return ' (the certificate does not chain to a trusted Fulcio CA, or was not valid at the logged signing time)';
  }
  return '';
}

/** Extracts SAN and issuer of a keyless signer returned by Verifier.verify. */
export function keylessSignerOf(signer: Signer, leafSpki?: Buffer): KeylessSigner | undefined {
  const san = signer.identity?.subjectAlternativeName;
  const issuer = signer.identity?.extensions?.issuer;
  if (!san || !issuer) return undefined;
  const result: KeylessSigner = { type: 'x509', identity: san, issuer };
  const spki = leafSpki ?? signer.key.export({ format: 'der', type: 'spki' });
  result.keyFingerprint = spkiFingerprint(spki);
  return result;
}

export function spkiFingerprint(spkiDer: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(spkiDer).digest('base64').replace(/=+$/, '')}`;
}
