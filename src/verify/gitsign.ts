// Offline verification of gitsign (Sigstore keyless, CMS "SIGNED MESSAGE") commit and tag signatures.
//
// The CMS SignedData is projected onto a Sigstore message-signature bundle whose artifact is the DER
// SET OF signed attributes, then checked by @sigstore/verify against a pinned trusted root: Fulcio chain
// at the logged time, SCT, Rekor SET and/or inclusion proof, tlog body, signature. This module adds what
// sigstore cannot see: the CMS messageDigest must equal sha256 of the exact signed payload bytes, and
// SAN/issuer are matched against the allowed identities.
import {
  createHash,
  X509Certificate as NodeX509Certificate,
  verify as verifySignatureBytes,
} from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { ASN1Obj, RFC3161Timestamp, X509Certificate } from '@sigstore/core';
import { toSignedEntity } from '@sigstore/verify';
import { excerpt, quote } from '../util/quote.ts';
import { assertBoundedDer, DerBoundsError, type DerLimits } from './der-bounds.ts';
import {
  assertKeylessIdentities,
  classifyVerificationFailure,
  describeIdentities,
  type KeylessCheck,
  type KeylessPolicy,
  keylessSignerOf,
  matchKeylessIdentity,
  verifierFor,
} from './keyless.ts';
import { type DecodedTransparencyLogEntry, decodeTransparencyLogEntry } from './keyless-proto.ts';

export type { KeylessCheck, KeylessIdentity, KeylessPolicy, KeylessSigner } from './keyless.ts';

export const OID_REKOR_TLOG_ENTRY = '1.3.6.1.4.1.57264.3.1';
export const OID_TIMESTAMP_TOKEN = '1.2.840.113549.1.9.16.2.14';
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_DATA = '1.2.840.113549.1.7.1';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const ARMOR_LABELS = ['SIGNED MESSAGE', 'PKCS7'] as const;

/** Bounds on a gitsign signature, checked before any ASN.1 parser sees it (see der-bounds.ts). */
export type GitsignLimits = DerLimits;

/**
 * A gitsign signature (Fulcio leaf, embedded Rekor entry, optional RFC 3161 token with its TSA certificate)
 * is a few KiB of DER. The test bed's are 1.5–2.5 KiB, nest 12 levels deep (26 with a timestamp token,
 * counting DER inside OCTET STRINGs as @sigstore/core parses it), and hold no OID over 11 bytes or INTEGER
 * over 33 bytes. These bounds leave ample room above that and keep any refusal in the low milliseconds.
 */
export const DEFAULT_GITSIGN_LIMITS: GitsignLimits = Object.freeze({
  maxBytes: 64 * 1024,
  maxDepth: 64,
  maxOidBytes: 64,
  maxIntegerBytes: 128,
  maxOctetStringElementBytes: 4096,
});

export const ONLINE_MODE_MESSAGE =
  'the gitsign signature carries no embedded Rekor transparency-log entry and no RFC 3161 timestamp ' +
  "(gitsign's default rekorMode=online keeps that proof only in Rekor, which Signet does not query); " +
  're-sign the commit after `git config gitsign.rekorMode offline` so the log entry is embedded in the signature';

export class GitsignFormatError extends Error {
  readonly code = 'MalformedGitsignSignature' as const;
  constructor(message: string) {
    super(message);
    this.name = 'GitsignFormatError';
  }
}

/** The parts of a gitsign CMS signature that verification needs. */
export interface ParsedGitsignSignature {
  /** DER of the Fulcio leaf certificate named by the SignerInfo. */
  leafCertificate: Buffer<ArrayBuffer>;
  /** DER(SET OF signedAttrs): the bytes the signature covers. */
  signedAttributes: Buffer<ArrayBuffer>;
  /** Value of the messageDigest signed attribute (sha256 of the signed payload). */
  messageDigest: Buffer;
  /** ECDSA signature (DER) over signedAttributes. */
  signature: Buffer;
  /** The embedded Rekor entry (unsigned attribute 1.3.6.1.4.1.57264.3.1), if any. */
  tlogEntry?: DecodedTransparencyLogEntry;
  /** The embedded RFC 3161 TimeStampToken (ContentInfo DER), if any. */
  timestampToken?: Buffer<ArrayBuffer>;
}

function fail(message: string): never {
  throw new GitsignFormatError(message);
}

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** The element's encoding with its original content bytes (optionally under another tag). */
function encodingOf(obj: ASN1Obj, tag = obj.tag.toDER()): Buffer<ArrayBuffer> {
  return Buffer.concat([Buffer.from([tag]), derLength(obj.value.length), obj.value]);
}

const UNIVERSAL_SEQUENCE = 0x30;
const UNIVERSAL_SET = 0x31;

function child(obj: ASN1Obj | undefined, index: number, what: string): ASN1Obj {
  const sub = obj?.subs[index];
  if (!sub) fail(`CMS structure is missing ${what}`);
  return sub;
}

function oidOf(obj: ASN1Obj, what: string): string {
  if (!obj.tag.isOID()) fail(`${what} is not an OBJECT IDENTIFIER`);
  return obj.toOID();
}

/** Attributes ::= SET OF SEQUENCE { attrType OID, attrValues SET OF ANY }, keyed by OID (each at most once). */
function attributesOf(set: ASN1Obj | undefined): Map<string, ASN1Obj> {
  const attributes = new Map<string, ASN1Obj>();
  for (const attribute of set?.subs ?? []) {
    if (attribute.tag.toDER() !== UNIVERSAL_SEQUENCE) fail('CMS attribute is not a SEQUENCE');
    const type = oidOf(child(attribute, 0, 'an attribute type'), 'attribute type');
    const values = child(attribute, 1, `the values of attribute ${quote(type)}`);
    if (values.tag.toDER() !== UNIVERSAL_SET || values.subs.length !== 1) {
      fail(`attribute ${quote(type)} must have exactly one value`);
    }
    if (attributes.has(type)) fail(`attribute ${quote(type)} appears more than once`);
    attributes.set(type, values.subs[0] as ASN1Obj);
  }
  return attributes;
}

function octetsOf(obj: ASN1Obj | undefined, what: string): Buffer {
  if (!obj?.tag.isOctetString() || obj.tag.constructed) fail(`${what} is not an OCTET STRING`);
  return Buffer.from(obj.value);
}

/** The certificate that the SignerInfo's sid names (IssuerAndSerialNumber or [0] SubjectKeyIdentifier). */
function selectLeaf(certificates: ASN1Obj[], sid: ASN1Obj): Buffer<ArrayBuffer> {
  const encodings = certificates
    .filter((c) => c.tag.toDER() === UNIVERSAL_SEQUENCE)
    .map((c) => encodingOf(c));
  const matches = encodings.filter((der) => {
    const cert = X509Certificate.parse(der);
    if (sid.tag.toDER() === UNIVERSAL_SEQUENCE) {
      const issuer = child(sid, 0, 'the signer issuer');
      const serial = child(sid, 1, 'the signer serial number');
      return cert.issuer.equals(issuer.value) && cert.serialNumber.equals(serial.value);
    }
    if (sid.tag.isContextSpecific(0)) return cert.extSubjectKeyID?.keyIdentifier?.equals(sid.value) === true;
    return false;
  });
  const [leaf] = matches;
  if (!leaf) fail('the signature contains no certificate matching its signer');
  return leaf;
}

/** Characters of armored base64 (64-column lines, CRLF allowed, plus BEGIN/END lines) that `bytes` of DER need. */
export function armoredLengthLimit(bytes: number): number {
  return Math.ceil((Math.ceil(bytes / 3) * 4 * 66) / 64) + 256;
}

/** The base64 between the BEGIN and END lines, found with indexOf (no backtracking over untrusted text). */
function armorBody(armored: string): string {
  for (const label of ARMOR_LABELS) {
    const begin = `-----BEGIN ${label}-----`;
    const start = armored.indexOf(begin);
    if (start < 0) continue;
    let bodyStart = start + begin.length;
    if (armored[bodyStart] === '\r') bodyStart += 1;
    if (armored[bodyStart] !== '\n') fail(`the "${label}" BEGIN line is not followed by a line break`);
    const end = armored.indexOf(`-----END ${label}-----`, bodyStart);
    if (end < 0) fail(`the "${label}" block has no END line`);
    return armored.slice(bodyStart + 1, end);
  }
  const found = /-----BEGIN ([A-Z0-9 ]{1,40})-----/.exec(armored)?.[1];
  return fail(
    found ? `not a gitsign signature (found a ${quote(found)} block)` : 'no "SIGNED MESSAGE" block found',
  );
}

/** Base64-decodes the armor body after checking its size, so an oversized signature is never decoded. */
function decodeBody(armored: string, limits: GitsignLimits): Buffer<ArrayBuffer> {
  const limit = armoredLengthLimit(limits.maxBytes);
  if (armored.length > limit) {
    fail(
      `the signature is ${armored.length} characters long; at most ${limits.maxBytes} bytes of DER ` +
        `(${limit} characters armored) are accepted, and a real gitsign signature is a few KiB`,
    );
  }
  const body = armorBody(armored).replace(/\s+/g, '');
  if (body === '') fail('the "SIGNED MESSAGE" block is empty');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 === 1) fail('signature armor is not base64');
  const padding = body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0;
  const bytes = Math.floor((body.length * 3) / 4) - padding;
  if (bytes > limits.maxBytes) {
    fail(
      `the signature is ${bytes} bytes of DER (limit ${limits.maxBytes}; a real gitsign signature is a few KiB)`,
    );
  }
  return Buffer.from(body, 'base64');
}

/**
 * Parses an armored gitsign signature within `limits`. Throws GitsignFormatError (or an ASN.1/protobuf
 * error). The DER is walked and bounded (size, every length, nesting, OID and INTEGER sizes) before
 * @sigstore/core parses it.
 */
export function parseGitsignSignature(
  armoredSignature: string,
  limits: GitsignLimits = DEFAULT_GITSIGN_LIMITS,
): ParsedGitsignSignature {
  const der = decodeBody(armoredSignature, limits);
  try {
    assertBoundedDer(der, limits);
  } catch (error) {
    if (error instanceof DerBoundsError) fail(`refused before parsing: ${error.message}`);
    throw error;
  }
  // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
  const contentInfo = ASN1Obj.parseBuffer(der);
  const contentType = oidOf(child(contentInfo, 0, 'a content type'), 'content type');
  if (contentType !== OID_SIGNED_DATA) fail(`CMS content type is ${quote(contentType)}, not SignedData`);
  const explicit = child(contentInfo, 1, 'the SignedData');
  if (!explicit.tag.isContextSpecific(0)) fail('CMS content is not [0] EXPLICIT');
  // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo, [0] certificates OPTIONAL,
  //   [1] crls OPTIONAL, signerInfos SET }
  const signedData = child(explicit, 0, 'the SignedData');
  const encap = child(signedData, 2, 'the encapsulated content info');
  const eContentType = oidOf(child(encap, 0, 'the encapsulated content type'), 'encapsulated content type');
  if (eContentType !== OID_DATA) fail(`CMS encapsulated content type is ${quote(eContentType)}`);
  if (encap.subs.length > 1) fail('CMS signature is not detached (it embeds content)');
  const certificates = signedData.subs.find((sub, i) => i > 2 && sub.tag.isContextSpecific(0))?.subs ?? [];
  const signerInfos = child(signedData, signedData.subs.length - 1, 'the SignerInfos');
  if (signerInfos.tag.toDER() !== UNIVERSAL_SET || signerInfos.subs.length !== 1) {
    fail(`expected exactly one SignerInfo, found ${signerInfos.subs.length}`);
  }
  // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, signatureAlgorithm,
  //   signature OCTET STRING, [1] unsignedAttrs OPTIONAL }
  const signerInfo = signerInfos.subs[0] as ASN1Obj;
  const sid = child(signerInfo, 1, 'the signer identifier');
  const digestAlgorithm = oidOf(
    child(child(signerInfo, 2, 'the digest algorithm'), 0, 'the digest algorithm'),
    'digest algorithm',
  );
  if (digestAlgorithm !== OID_SHA256) fail(`unsupported digest algorithm ${quote(digestAlgorithm)}`);
  const signedAttrs = child(signerInfo, 3, 'the signed attributes');
  if (!signedAttrs.tag.isContextSpecific(0)) fail('SignerInfo has no signed attributes');
  const signatureValue = child(signerInfo, 5, 'the signature value');
  const unsignedAttrs = signerInfo.subs[6];
  if (unsignedAttrs && !unsignedAttrs.tag.isContextSpecific(1))
    fail('unexpected element after the signature');
  const signed = attributesOf(signedAttrs);
  const contentTypeValue = signed.get(OID_CONTENT_TYPE);
  if (!contentTypeValue || oidOf(contentTypeValue, 'contentType attribute') !== OID_DATA) {
    fail('signed contentType attribute is missing or not id-data');
  }
  const parsed: ParsedGitsignSignature = {
    leafCertificate: selectLeaf(certificates, sid),
    // The signature covers DER(SET OF attributes): the [0] IMPLICIT content under a SET tag.
    signedAttributes: encodingOf(signedAttrs, UNIVERSAL_SET),
    messageDigest: octetsOf(signed.get(OID_MESSAGE_DIGEST), 'signed messageDigest attribute'),
    signature: octetsOf(signatureValue, 'signature value'),
  };
  const unsigned = attributesOf(unsignedAttrs);
  const tlog = unsigned.get(OID_REKOR_TLOG_ENTRY);
  if (tlog) parsed.tlogEntry = decodeTransparencyLogEntry(octetsOf(tlog, 'Rekor log entry attribute'));
  const timestamp = unsigned.get(OID_TIMESTAMP_TOKEN);
  if (timestamp) {
    if (timestamp.tag.toDER() !== UNIVERSAL_SEQUENCE) fail('timestamp token attribute is not a ContentInfo');
    parsed.timestampToken = encodingOf(timestamp);
  }
  return parsed;
}

/** PEM exactly as Go's pem.EncodeToMemory writes it (64-column lines, trailing newline). */
export function certificatePEM(der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * The canonical hashedrekord v0.0.1 body Rekor stored for a gitsign signature (gitsign clears it from the
 * embedded entry). Key order follows RFC 8785, as Rekor canonicalizes.
 */
export function gitsignHashedRekordBody(
  parsed: Pick<ParsedGitsignSignature, 'leafCertificate' | 'signedAttributes' | 'signature'>,
): Buffer {
  const body = {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: {
        hash: {
          algorithm: 'sha256',
          value: createHash('sha256').update(parsed.signedAttributes).digest('hex'),
        },
      },
      signature: {
        content: parsed.signature.toString('base64'),
        publicKey: { content: Buffer.from(certificatePEM(parsed.leafCertificate)).toString('base64') },
      },
    },
  };
  return Buffer.from(JSON.stringify(body));
}

/** Wraps a TimeStampToken into the TimeStampResp shape (status granted) that sigstore bundles carry. */
function timestampResponse(token: Buffer): Buffer<ArrayBuffer> {
  const content = Buffer.concat([Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), token]);
  return Buffer.concat([Buffer.from([UNIVERSAL_SEQUENCE]), derLength(content.length), content]);
}

function tlogEntryJSON(entry: DecodedTransparencyLogEntry, body: Buffer): Record<string, unknown> {
  const json: Record<string, unknown> = {
    logIndex: entry.logIndex,
    logId: { keyId: (entry.logId?.keyId ?? Buffer.alloc(0)).toString('base64') },
    kindVersion: entry.kindVersion ?? { kind: 'hashedrekord', version: '0.0.1' },
    integratedTime: entry.integratedTime,
    canonicalizedBody: body.toString('base64'),
  };
  if (entry.inclusionPromise) {
    json.inclusionPromise = {
      signedEntryTimestamp: entry.inclusionPromise.signedEntryTimestamp.toString('base64'),
    };
  }
  if (entry.inclusionProof) {
    const proof = entry.inclusionProof;
    json.inclusionProof = {
      logIndex: proof.logIndex,
      rootHash: proof.rootHash.toString('base64'),
      treeSize: proof.treeSize,
      hashes: proof.hashes.map((hash) => hash.toString('base64')),
      checkpoint: proof.checkpoint ?? { envelope: '' },
    };
  }
  return json;
}

/** Projects a parsed gitsign signature onto a Sigstore bundle (JSON) whose artifact is the signed attributes. */
export function gitsignToBundleJSON(parsed: ParsedGitsignSignature): Record<string, unknown> {
  const entries = parsed.tlogEntry
    ? [
        tlogEntryJSON(
          parsed.tlogEntry,
          parsed.tlogEntry.canonicalizedBody.length > 0
            ? parsed.tlogEntry.canonicalizedBody
            : gitsignHashedRekordBody(parsed),
        ),
      ]
    : [];
  const withProof = parsed.tlogEntry?.inclusionProof !== undefined;
  return {
    // v0.3 requires inclusion proofs; an entry with only a SET is expressed as a v0.1 bundle.
    mediaType:
      parsed.tlogEntry && !withProof
        ? 'application/vnd.dev.sigstore.bundle+json;version=0.1'
        : 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: {
      ...(parsed.tlogEntry && !withProof
        ? {
            x509CertificateChain: { certificates: [{ rawBytes: parsed.leafCertificate.toString('base64') }] },
          }
        : { certificate: { rawBytes: parsed.leafCertificate.toString('base64') } }),
      tlogEntries: entries,
      timestampVerificationData: {
        rfc3161Timestamps: parsed.timestampToken
          ? [{ signedTimestamp: timestampResponse(parsed.timestampToken).toString('base64') }]
          : [],
      },
    },
    messageSignature: {
      messageDigest: {
        algorithm: 'SHA2_256',
        digest: createHash('sha256').update(parsed.signedAttributes).digest('base64'),
      },
      signature: parsed.signature.toString('base64'),
    },
  };
}

function abortedCheck(signal: AbortSignal | undefined): KeylessCheck | undefined {
  if (!signal?.aborted) return undefined;
  return {
    ok: false,
    reason: 'UntrustedSigner',
    message: 'gitsign verification was aborted before it completed',
  };
}

function signingTime(parsed: ParsedGitsignSignature): Date {
  if (parsed.tlogEntry?.inclusionPromise) return new Date(Number(parsed.tlogEntry.integratedTime) * 1000);
  if (parsed.timestampToken) {
    return RFC3161Timestamp.parse(timestampResponse(parsed.timestampToken)).signingTime;
  }
  return new Date(Number(parsed.tlogEntry?.integratedTime ?? 0) * 1000);
}

export interface GitsignVerifyOptions {
  signal?: AbortSignal;
  /** Bounds on the signature; DEFAULT_GITSIGN_LIMITS unless given. */
  limits?: GitsignLimits;
}

/**
 * Verify a gitsign (CMS "SIGNED MESSAGE") commit/tag signature over the exact signed payload bytes.
 * Entirely offline; never throws. `integratedTime` is the Rekor integrated time proven by the SET (or the
 * RFC 3161 time when the log entry has no SET).
 */
export async function verifyGitsignSignature(
  payload: Uint8Array,
  armoredSignature: string,
  policy: KeylessPolicy,
  opts?: GitsignVerifyOptions,
): Promise<KeylessCheck> {
  const aborted = abortedCheck(opts?.signal);
  if (aborted) return aborted;
  if (armoredSignature.trim() === '') {
    return { ok: false, reason: 'Unsigned', message: 'the object carries no signature' };
  }
  try {
    assertKeylessIdentities(policy.identities);
    let parsed: ParsedGitsignSignature;
    try {
      parsed = parseGitsignSignature(armoredSignature, opts?.limits ?? DEFAULT_GITSIGN_LIMITS);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      return {
        ok: false,
        reason: 'InvalidSignature',
        message: `malformed gitsign signature: ${excerpt(detail, 500)}`,
      };
    }
    const payloadDigest = createHash('sha256').update(payload).digest();
    if (!payloadDigest.equals(parsed.messageDigest)) {
      return {
        ok: false,
        reason: 'InvalidSignature',
        message:
          'the signed messageDigest does not match sha256 of the commit/tag payload (content was altered)',
      };
    }
    // Checked here too (sigstore checks it again) so a bad signature is reported as such rather than as a
    // transparency-log mismatch.
    const leafKey = new NodeX509Certificate(parsed.leafCertificate).publicKey;
    if (!verifySignatureBytes('sha256', parsed.signedAttributes, leafKey, parsed.signature)) {
      return {
        ok: false,
        reason: 'InvalidSignature',
        message: 'the CMS signature does not verify over the signed attributes with the certificate key',
      };
    }
    if (!parsed.tlogEntry && !parsed.timestampToken) {
      return { ok: false, reason: 'UntrustedSigner', message: ONLINE_MODE_MESSAGE };
    }
    const verifier = verifierFor(policy.trustedRoot, {
      tlogThreshold: parsed.tlogEntry ? 1 : 0,
      ctlogThreshold: 1,
      timestampThreshold: 1,
    });
    const bundle = bundleFromJSON(gitsignToBundleJSON(parsed));
    const signer = verifier.verify(toSignedEntity(bundle, parsed.signedAttributes));
    const keyless = keylessSignerOf(signer);
    if (!keyless) {
      return {
        ok: false,
        reason: 'UntrustedSigner',
        message: 'the certificate has no SAN or OIDC issuer extension',
      };
    }
    if (!matchKeylessIdentity(policy.identities, keyless.identity, keyless.issuer)) {
      return {
        ok: false,
        reason: 'UntrustedSigner',
        message: `signer ${quote(keyless.identity)} (issuer ${quote(keyless.issuer)}) is not an allowed identity (${describeIdentities(policy.identities)})`,
      };
    }
    return { ok: true, signer: keyless, integratedTime: signingTime(parsed) };
  } catch (error) {
    const { reason, message } = classifyVerificationFailure(error);
    return { ok: false, reason, message };
  }
}
