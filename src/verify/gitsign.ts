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
import { RFC3161Timestamp } from '@sigstore/core';
import { toSignedEntity } from '@sigstore/verify';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
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
const ARMOR = /-----BEGIN (SIGNED MESSAGE|PKCS7)-----\r?\n([\s\S]*?)-----END \1-----/;

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
  leafCertificate: Buffer;
  /** DER(SET OF signedAttrs): the bytes the signature covers. */
  signedAttributes: Buffer<ArrayBuffer>;
  /** Value of the messageDigest signed attribute (sha256 of the signed payload). */
  messageDigest: Buffer;
  /** ECDSA signature (DER) over signedAttributes. */
  signature: Buffer;
  /** The embedded Rekor entry (unsigned attribute 1.3.6.1.4.1.57264.3.1), if any. */
  tlogEntry?: DecodedTransparencyLogEntry;
  /** The embedded RFC 3161 TimeStampToken (ContentInfo DER), if any. */
  timestampToken?: Buffer;
}

function viewBytes(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function findAttribute(
  attributes: pkijs.SignedAndUnsignedAttributes | undefined,
  oid: string,
): pkijs.Attribute | undefined {
  const matches = attributes?.attributes.filter((attribute) => attribute.type === oid) ?? [];
  if (matches.length > 1) throw new GitsignFormatError(`attribute ${oid} appears more than once`);
  const [attribute] = matches;
  if (attribute && attribute.values.length !== 1) {
    throw new GitsignFormatError(`attribute ${oid} must have exactly one value`);
  }
  return attribute;
}

function octets(attribute: pkijs.Attribute, what: string): Buffer {
  const value: unknown = attribute.values[0];
  if (!(value instanceof asn1js.OctetString)) throw new GitsignFormatError(`${what} is not an OCTET STRING`);
  return Buffer.from(value.getValue());
}

function selectLeaf(signedData: pkijs.SignedData, signerInfo: pkijs.SignerInfo): pkijs.Certificate {
  const certificates = (signedData.certificates ?? []).filter(
    (cert): cert is pkijs.Certificate => cert instanceof pkijs.Certificate,
  );
  const sid: unknown = signerInfo.sid;
  const matching = certificates.filter((cert) => {
    if (sid instanceof pkijs.IssuerAndSerialNumber) {
      return cert.serialNumber.isEqual(sid.serialNumber) && cert.issuer.isEqual(sid.issuer);
    }
    if (sid instanceof asn1js.Constructed || sid instanceof asn1js.Primitive) {
      const ski = cert.extensions?.find((ext) => ext.extnID === '2.5.29.14')?.parsedValue;
      const keyId = sid instanceof asn1js.Primitive ? sid.valueBlock.valueHexView : undefined;
      return (
        ski instanceof asn1js.OctetString &&
        keyId !== undefined &&
        viewBytes(keyId).equals(Buffer.from(ski.getValue()))
      );
    }
    return false;
  });
  const [leaf] = matching.length > 0 ? matching : certificates.length === 1 ? certificates : [];
  if (!leaf) throw new GitsignFormatError('the signature contains no certificate matching its signer');
  return leaf;
}

/** Parses an armored gitsign signature. Throws GitsignFormatError (or an ASN.1/protobuf error). */
export function parseGitsignSignature(armoredSignature: string): ParsedGitsignSignature {
  const armor = ARMOR.exec(armoredSignature);
  if (!armor?.[2]) {
    const found = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(armoredSignature)?.[1];
    throw new GitsignFormatError(
      found ? `not a gitsign signature (found a "${found}" block)` : 'no "SIGNED MESSAGE" block found',
    );
  }
  const body = armor[2].replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new GitsignFormatError('signature armor is not base64');
  const der = Buffer.from(body, 'base64');
  const contentInfo = pkijs.ContentInfo.fromBER(der);
  if (contentInfo.contentType !== OID_SIGNED_DATA) {
    throw new GitsignFormatError(`CMS content type is ${contentInfo.contentType}, not SignedData`);
  }
  const signedData = new pkijs.SignedData({ schema: contentInfo.content });
  if (signedData.encapContentInfo.eContent) {
    throw new GitsignFormatError('CMS signature is not detached (it embeds content)');
  }
  if (signedData.encapContentInfo.eContentType !== OID_DATA) {
    throw new GitsignFormatError(
      `CMS encapsulated content type is ${signedData.encapContentInfo.eContentType}`,
    );
  }
  if (signedData.signerInfos.length !== 1) {
    throw new GitsignFormatError(`expected exactly one SignerInfo, found ${signedData.signerInfos.length}`);
  }
  const signerInfo = signedData.signerInfos[0] as pkijs.SignerInfo;
  if (signerInfo.digestAlgorithm.algorithmId !== OID_SHA256) {
    throw new GitsignFormatError(`unsupported digest algorithm ${signerInfo.digestAlgorithm.algorithmId}`);
  }
  const signedAttrs = signerInfo.signedAttrs;
  if (!signedAttrs || signedAttrs.encodedValue.byteLength === 0) {
    throw new GitsignFormatError('SignerInfo has no signed attributes');
  }
  const contentType = findAttribute(signedAttrs, OID_CONTENT_TYPE);
  const contentTypeValue: unknown = contentType?.values[0];
  if (!(contentTypeValue instanceof asn1js.ObjectIdentifier) || contentTypeValue.getValue() !== OID_DATA) {
    throw new GitsignFormatError('signed contentType attribute is missing or not id-data');
  }
  const messageDigestAttribute = findAttribute(signedAttrs, OID_MESSAGE_DIGEST);
  if (!messageDigestAttribute) throw new GitsignFormatError('signed messageDigest attribute is missing');
  const leaf = selectLeaf(signedData, signerInfo);
  const parsed: ParsedGitsignSignature = {
    leafCertificate: Buffer.from(leaf.toSchema().toBER(false)),
    // pkijs keeps the original encoding with the [0] IMPLICIT tag already replaced by SET (0x31).
    signedAttributes: Buffer.from(signedAttrs.encodedValue.slice(0)),
    messageDigest: octets(messageDigestAttribute, 'messageDigest'),
    signature: Buffer.from(signerInfo.signature.getValue()),
  };
  if (parsed.signedAttributes[0] !== 0x31) throw new GitsignFormatError('signed attributes are not a SET');
  const tlog = findAttribute(signerInfo.unsignedAttrs, OID_REKOR_TLOG_ENTRY);
  if (tlog) parsed.tlogEntry = decodeTransparencyLogEntry(octets(tlog, 'Rekor log entry attribute'));
  const timestamp = findAttribute(signerInfo.unsignedAttrs, OID_TIMESTAMP_TOKEN);
  if (timestamp) {
    const token = timestamp.values[0] as asn1js.BaseBlock;
    parsed.timestampToken = Buffer.from(token.toBER(false));
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
  const status = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]);
  return Buffer.from(
    new asn1js.Sequence({
      value: [asn1js.fromBER(status).result, asn1js.fromBER(token).result],
    }).toBER(false),
  );
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

/**
 * Verify a gitsign (CMS "SIGNED MESSAGE") commit/tag signature over the exact signed payload bytes.
 * Entirely offline; never throws. `integratedTime` is the Rekor integrated time proven by the SET (or the
 * RFC 3161 time when the log entry has no SET).
 */
export async function verifyGitsignSignature(
  payload: Uint8Array,
  armoredSignature: string,
  policy: KeylessPolicy,
  opts?: { signal?: AbortSignal },
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
      parsed = parseGitsignSignature(armoredSignature);
    } catch (error) {
      return {
        ok: false,
        reason: 'InvalidSignature',
        message: `malformed gitsign signature: ${error instanceof Error ? error.message : String(error)}`,
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
        message: `signer ${keyless.identity} (issuer ${keyless.issuer}) is not an allowed identity (${describeIdentities(policy.identities)})`,
      };
    }
    return { ok: true, signer: keyless, integratedTime: signingTime(parsed) };
  } catch (error) {
    const { reason, message } = classifyVerificationFailure(error);
    return { ok: false, reason, message };
  }
}
