/**
 * Checks one signature of an image digest, offline: cosign's simple-signing payload signed with a
 * key (the legacy `sha256-<hex>.sig` tag), and sigstore bundles (keyless or keyed; a message
 * signature over the manifest, or a DSSE in-toto statement whose subject is the digest). Crypto
 * only, no I/O; every failure is a value naming the cause.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { type Bundle, bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import { IN_TOTO_PAYLOAD_TYPE } from '../provenance/statement.ts';
import type { TrustedRootJSON } from '../trust-root/index.ts';
import { quote } from '../util/quote.ts';
import {
  classifyVerificationFailure,
  describeIdentities,
  type KeylessIdentity,
  keylessSignerOf,
  matchKeylessIdentity,
  spkiFingerprint,
  verifierFor,
} from '../verify/keyless.ts';

/** The predicate type cosign gives the statement it signs for `cosign sign` in the bundle format. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
export const SIMPLE_SIGNING_TYPE = 'cosign container image signature';

/** What one image policy trusts, resolved (keys read, trusted root loaded). */
export interface ImageTrust {
  readonly identities: readonly KeylessIdentity[];
  /** Name → PEM public key (every value of keysRef). */
  readonly keys: Readonly<Record<string, string>>;
  readonly trustedRoot: TrustedRootJSON;
}

export type SignatureCheck =
  | { readonly ok: true; readonly signer: string; readonly predicateType?: string }
  | { readonly ok: false; readonly message: string };

function refused(message: string): SignatureCheck {
  return { ok: false, message };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function keyObjects(keys: Readonly<Record<string, string>>): { name: string; key: KeyObject }[] {
  return Object.entries(keys).flatMap(([name, pem]) => {
    try {
      return [{ name, key: createPublicKey(pem) }];
    } catch {
      return [];
    }
  });
}

/** The digest cosign's simple-signing payload claims (critical.image.docker-manifest-digest). */
export function simpleSigningDigest(payload: Uint8Array): string | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return { error: 'the simple-signing payload is not JSON' };
  }
  const critical = isRecord(parsed) ? parsed.critical : undefined;
  if (!isRecord(critical)) return { error: 'the simple-signing payload has no critical section' };
  if (critical.type !== SIMPLE_SIGNING_TYPE)
    return {
      error: `the simple-signing payload's type is ${quote(String(critical.type))}, not ${quote(SIMPLE_SIGNING_TYPE)}`,
    };
  const image = isRecord(critical.image) ? critical.image : {};
  const digest = image['docker-manifest-digest'];
  return typeof digest === 'string'
    ? digest
    : { error: 'the simple-signing payload names no docker-manifest-digest' };
}

/**
 * A keyed cosign signature (legacy `.sig` tag layer): the payload names `digest` and its signature
 * verifies with one of the policy's keys.
 */
export function verifySimpleSigning(
  payload: Uint8Array,
  signatureBase64: string,
  digest: string,
  trust: Pick<ImageTrust, 'keys'>,
): SignatureCheck {
  const claimed = simpleSigningDigest(payload);
  if (typeof claimed !== 'string') return refused(claimed.error);
  if (claimed !== digest) return refused(`the signature covers ${claimed}, not the image's digest ${digest}`);
  const keys = keyObjects(trust.keys);
  if (keys.length === 0)
    return refused('the signature is keyed, but the policy names no usable keys (keysRef)');
  const signature = Buffer.from(signatureBase64, 'base64');
  for (const { key } of keys) {
    let valid = false;
    try {
      valid = cryptoVerify('sha256', payload, key, signature);
    } catch {
      valid = false;
    }
    if (valid)
      return { ok: true, signer: `key ${spkiFingerprint(key.export({ type: 'spki', format: 'der' }))}` };
  }
  return refused(
    `the signature does not verify with any key of keysRef (${keys.map((k) => k.name).join(', ')})`,
  );
}

function parseBundle(json: unknown): Bundle | { error: string } {
  try {
    return bundleFromJSON(json);
  } catch (error) {
    return {
      error: `not a valid sigstore bundle: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

/** The statement's predicate type when one of its subjects is `digest`, else a refusal. */
function statementFor(payloadType: string, payload: Uint8Array, digest: string): string | { error: string } {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE)
    return { error: `DSSE payloadType ${quote(payloadType)} is not in-toto` };
  let statement: unknown;
  try {
    statement = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return { error: 'the DSSE payload is not JSON' };
  }
  if (!isRecord(statement)) return { error: 'the in-toto statement is not an object' };
  const hex = digest.slice('sha256:'.length);
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const covers = subjects.some(
    (subject) => isRecord(subject) && isRecord(subject.digest) && subject.digest.sha256 === hex,
  );
  if (!covers) return { error: `no subject of the in-toto statement is the image's digest ${digest}` };
  return typeof statement.predicateType === 'string'
    ? statement.predicateType
    : { error: 'the statement has no predicateType' };
}

/**
 * A sigstore bundle attached to the image: verified against the trusted root (keyless: Fulcio
 * chain, SCT, Rekor entry and an allowed identity; keyed: a policy key, a Rekor entry only if
 * present) and bound to `digest` (`manifest` is the image manifest whose sha256 is `digest`).
 */
export function verifyImageBundle(
  json: unknown,
  digest: string,
  manifest: Uint8Array,
  trust: ImageTrust,
): SignatureCheck {
  const bundle = parseBundle(json);
  if ('error' in bundle) return refused(bundle.error);
  let predicateType: string | undefined;
  let artifact: Buffer | undefined;
  if (bundle.content.$case === 'dsseEnvelope') {
    const envelope = bundle.content.dsseEnvelope;
    const type = statementFor(envelope.payloadType, envelope.payload, digest);
    if (typeof type !== 'string') return refused(type.error);
    predicateType = type;
  } else {
    artifact = Buffer.from(manifest);
    const signed = bundle.content.messageSignature.messageDigest?.digest;
    const expected = createHash('sha256').update(artifact).digest();
    if (signed === undefined || !expected.equals(signed))
      return refused(`the bundle's message signature does not cover the image's digest ${digest}`);
  }
  const keyed = bundle.verificationMaterial.content.$case === 'publicKey';
  try {
    if (keyed) {
      if (Object.keys(trust.keys).length === 0)
        return refused('the bundle is keyed, but the policy names no keys (keysRef)');
      const tlog = bundle.verificationMaterial.tlogEntries.length > 0 ? 1 : 0;
      const verifier = verifierFor(
        trust.trustedRoot,
        { tlogThreshold: tlog, ctlogThreshold: 0, timestampThreshold: 0 },
        trust.keys,
      );
      const verified = verifier.verify(toSignedEntity(bundle, artifact));
      const fingerprint = spkiFingerprint(verified.key.export({ format: 'der', type: 'spki' }));
      return {
        ok: true,
        signer: `key ${fingerprint}`,
        ...(predicateType === undefined ? {} : { predicateType }),
      };
    }
    if (trust.identities.length === 0)
      return refused('the bundle is keyless, but the policy allows no identities (keyless)');
    const verifier = verifierFor(trust.trustedRoot, {
      tlogThreshold: 1,
      ctlogThreshold: 1,
      timestampThreshold: 1,
    });
    const verified = verifier.verify(toSignedEntity(bundle, artifact));
    const signer = keylessSignerOf(verified);
    if (signer === undefined) return refused('the signing certificate has no SAN or OIDC issuer extension');
    if (!matchKeylessIdentity([...trust.identities], signer.identity, signer.issuer))
      return refused(
        `signed by ${quote(signer.identity)} (issuer ${quote(signer.issuer)}), not an allowed identity (${describeIdentities([...trust.identities])})`,
      );
    return {
      ok: true,
      signer: `${signer.identity} (${signer.issuer})`,
      ...(predicateType === undefined ? {} : { predicateType }),
    };
  } catch (error) {
    return refused(classifyVerificationFailure(error).message);
  }
}
