/**
 * cosign's legacy keyless signature (a simple-signing layer of the `sha256-<hex>.sig` tag whose
 * annotations carry the signature, the Fulcio certificate and chain, and the Rekor SET) turned into
 * the sigstore bundle v0.1 it is equivalent to, so that it is verified by the same @sigstore/verify
 * path as bundles. Pure: annotations and payload in, bundle JSON or a refusal naming the cause out.
 *
 * The conversion also checks what @sigstore/verify does not for hashedrekord v0.0.1: the Rekor body's
 * public key is this certificate. Its signature and digest are checked here too, for clearer
 * refusals (@sigstore/verify checks them again).
 */
import { createHash, X509Certificate } from 'node:crypto';

export const signatureAnnotation = 'dev.cosignproject.cosign/signature';
export const certificateAnnotation = 'dev.sigstore.cosign/certificate';
export const chainAnnotation = 'dev.sigstore.cosign/chain';
export const rekorBundleAnnotation = 'dev.sigstore.cosign/bundle';

export const BUNDLE_V01_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle+json;version=0.1';

/** Length bounds of each annotation (characters); a longer one is refused unread. */
export interface LegacyKeylessLimits {
  readonly signature: number;
  readonly certificate: number;
  readonly chain: number;
  readonly rekorBundle: number;
  /** Certificates in the chain annotation. */
  readonly chainCertificates: number;
}

export const defaultLegacyKeylessLimits: LegacyKeylessLimits = {
  signature: 4 * 1024,
  certificate: 16 * 1024,
  chain: 64 * 1024,
  rekorBundle: 64 * 1024,
  chainCertificates: 8,
};

export type LegacyConversion =
  | { readonly ok: true; readonly bundle: Record<string, unknown> }
  | { readonly ok: false; readonly message: string };

/** Whether a `.sig` layer is keyless (carries a certificate), whatever else it carries. */
export function isKeylessLayer(annotations: Readonly<Record<string, string>>): boolean {
  return annotations[certificateAnnotation] !== undefined;
}

class Malformed extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function annotation(
  annotations: Readonly<Record<string, string>>,
  key: string,
  limit: number,
): string | undefined {
  const value = annotations[key];
  if (value === undefined) return undefined;
  if (value.length > limit) throw new Malformed(`annotation ${key} is longer than ${limit} characters`);
  return value;
}

function required(annotations: Readonly<Record<string, string>>, key: string, limit: number): string {
  const value = annotation(annotations, key, limit);
  if (value === undefined) throw new Malformed(`annotation ${key} is missing`);
  return value;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function base64(value: string, what: string): Buffer {
  const text = value.replace(/\s+/g, '');
  if (text.length === 0 || text.length % 4 !== 0 || !BASE64.test(text))
    throw new Malformed(`${what} is not base64`);
  return Buffer.from(text, 'base64');
}

/** The DER of each CERTIFICATE block of `pem`, each parsed as X.509. */
function pemCertificates(pem: string, what: string, max: number): Buffer[] {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw new Malformed(`${what} holds no PEM certificate`);
  if (blocks.length > max) throw new Malformed(`${what} holds more than ${max} certificates`);
  return blocks.map((block) => {
    const der = base64(block[1] ?? '', what);
    try {
      new X509Certificate(der);
    } catch {
      throw new Malformed(`${what} is not an X.509 certificate`);
    }
    return der;
  });
}

function parseJson(text: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Malformed(`${what} is not JSON`);
  }
  if (!isRecord(parsed)) throw new Malformed(`${what} is not a JSON object`);
  return parsed;
}

function counter(value: unknown, what: string): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new Malformed(`${what} is not a non-negative integer`);
  return String(value);
}

interface RekorSet {
  readonly signedEntryTimestamp: Buffer;
  readonly body: Buffer;
  readonly integratedTime: string;
  readonly logIndex: string;
  readonly logId: Buffer;
}

/** cosign's `dev.sigstore.cosign/bundle`: {SignedEntryTimestamp, Payload: {body, integratedTime, logIndex, logID}}. */
function rekorSet(text: string): RekorSet {
  const what = `annotation ${rekorBundleAnnotation}`;
  const parsed = parseJson(text, what);
  const payload = parsed.Payload;
  if (typeof parsed.SignedEntryTimestamp !== 'string' || !isRecord(payload))
    throw new Malformed(`${what} has no SignedEntryTimestamp or Payload`);
  if (typeof payload.body !== 'string') throw new Malformed(`${what} has no Payload.body`);
  if (typeof payload.logID !== 'string' || !/^[a-f0-9]{64}$/.test(payload.logID))
    throw new Malformed(`${what}'s Payload.logID is not a 64-digit hex log id`);
  return {
    signedEntryTimestamp: base64(parsed.SignedEntryTimestamp, `${what}'s SignedEntryTimestamp`),
    body: base64(payload.body, `${what}'s Payload.body`),
    integratedTime: counter(payload.integratedTime, `${what}'s Payload.integratedTime`),
    logIndex: counter(payload.logIndex, `${what}'s Payload.logIndex`),
    logId: Buffer.from(payload.logID, 'hex'),
  };
}

function field(value: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>((node, key) => (isRecord(node) ? node[key] : undefined), value);
}

/** The Rekor body must be a hashedrekord v0.0.1 of this payload digest, signature and certificate. */
function checkBody(body: Buffer, digest: Buffer, signature: Buffer, leaf: Buffer): void {
  const entry = parseJson(body.toString('utf8'), 'the Rekor entry body');
  if (entry.kind !== 'hashedrekord' || entry.apiVersion !== '0.0.1')
    throw new Malformed(
      `the Rekor entry is ${String(entry.kind)} ${String(entry.apiVersion)}, not hashedrekord 0.0.1`,
    );
  if (field(entry, ['spec', 'data', 'hash', 'algorithm']) !== 'sha256')
    throw new Malformed('the Rekor entry does not hash with sha256');
  if (field(entry, ['spec', 'data', 'hash', 'value']) !== digest.toString('hex'))
    throw new Malformed('the Rekor entry is for another payload (digest mismatch)');
  const loggedSignature = field(entry, ['spec', 'signature', 'content']);
  if (
    typeof loggedSignature !== 'string' ||
    !base64(loggedSignature, 'the Rekor signature').equals(signature)
  )
    throw new Malformed('the Rekor entry is for another signature');
  const loggedKey = field(entry, ['spec', 'signature', 'publicKey', 'content']);
  if (typeof loggedKey !== 'string') throw new Malformed('the Rekor entry has no public key');
  const loggedPem = base64(loggedKey, 'the Rekor public key').toString('utf8');
  const [loggedLeaf] = pemCertificates(loggedPem, 'the Rekor public key', 1);
  if (loggedLeaf === undefined || !loggedLeaf.equals(leaf))
    throw new Malformed('the Rekor entry is for another certificate');
}

function toBundle(
  payloadDigest: Buffer,
  signature: Buffer,
  certificates: readonly Buffer[],
  set: RekorSet,
): Record<string, unknown> {
  const b64 = (bytes: Buffer) => bytes.toString('base64');
  return {
    mediaType: BUNDLE_V01_MEDIA_TYPE,
    verificationMaterial: {
      x509CertificateChain: { certificates: certificates.map((der) => ({ rawBytes: b64(der) })) },
      tlogEntries: [
        {
          logIndex: set.logIndex,
          logId: { keyId: b64(set.logId) },
          kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
          integratedTime: set.integratedTime,
          inclusionPromise: { signedEntryTimestamp: b64(set.signedEntryTimestamp) },
          canonicalizedBody: b64(set.body),
        },
      ],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: b64(payloadDigest) },
      signature: b64(signature),
    },
  };
}

/**
 * The sigstore bundle v0.1 equivalent to one legacy keyless `.sig` layer: the leaf (then the chain
 * annotation's certificates, if any), one hashedrekord entry whose inclusion promise is the SET, and
 * a message signature over the payload's SHA-256. The signature, certificate and Rekor bundle
 * annotations are required; the chain is optional (the trusted root supplies the CAs).
 */
export function legacyKeylessBundle(
  annotations: Readonly<Record<string, string>>,
  payload: Uint8Array,
  limits: LegacyKeylessLimits = defaultLegacyKeylessLimits,
): LegacyConversion {
  try {
    const signature = base64(
      required(annotations, signatureAnnotation, limits.signature),
      `annotation ${signatureAnnotation}`,
    );
    const certificate = required(annotations, certificateAnnotation, limits.certificate);
    const [leaf] = pemCertificates(certificate, `annotation ${certificateAnnotation}`, 1);
    if (leaf === undefined) throw new Malformed(`annotation ${certificateAnnotation} holds no certificate`);
    const chainPem = annotation(annotations, chainAnnotation, limits.chain);
    const chain =
      chainPem === undefined
        ? []
        : pemCertificates(chainPem, `annotation ${chainAnnotation}`, limits.chainCertificates);
    const set = rekorSet(required(annotations, rekorBundleAnnotation, limits.rekorBundle));
    const digest = createHash('sha256').update(payload).digest();
    checkBody(set.body, digest, signature, leaf);
    return { ok: true, bundle: toBundle(digest, signature, [leaf, ...chain], set) };
  } catch (error) {
    if (error instanceof Malformed) return { ok: false, message: error.message };
    throw error;
  }
}
