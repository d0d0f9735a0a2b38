/**
 * OpenSSH host certificates (pure): the decision on a `*-cert-v01@openssh.com` host key the server
 * presented, against the `@cert-authority` and `@revoked` lines of known_hosts.
 *
 * The certificate is parsed by the maintained `sshpk` library and its CA signature is verified with
 * sshpk's verifier (Node's crypto; no SSH crypto of our own). sshpk's `isSignedByKey` only compares
 * the CA key the certificate names, so the signature over the certificate body is checked
 * explicitly here. As OpenSSH's client does (sshconnect.c check_host_cert), a certificate is
 * accepted only when all hold:
 * - it is a host certificate (not a user certificate);
 * - its signing key is a CA listed with `@cert-authority` for this host, and neither that CA nor
 *   the certified key is `@revoked`;
 * - the CA signature verifies (ed25519, ECDSA, or RSA with SHA-2; SHA-1 `ssh-rsa` is refused);
 * - now is inside its validity window (valid after <= now < valid before);
 * - one of its principals is exactly the host name (a certificate without principals is refused);
 * - it carries no critical option (none is defined for host certificates).
 * Any parse error refuses (fail closed).
 */
import sshpk from 'sshpk';
import { fingerprintSha256, hostLookupName, hostsMatch, type KnownHostEntry } from './known-hosts.ts';

export const certificateSuffix = '-cert-v01@openssh.com';

/** Why a host certificate was refused; `detail` is safe to show (no secrets in a public cert). */
export type CertificateRefusal =
  | 'cert-invalid'
  | 'cert-not-host'
  | 'cert-unknown-ca'
  | 'cert-revoked-ca'
  | 'cert-revoked-key'
  | 'cert-bad-signature'
  | 'cert-not-yet-valid'
  | 'cert-expired'
  | 'cert-principal'
  | 'cert-critical-option';

export type CertificateDecision =
  | { readonly ok: true; readonly caFingerprint: string; readonly line: number }
  | {
      readonly ok: false;
      readonly cause: CertificateRefusal;
      readonly detail: string;
      /** The certified key's `SHA256:` fingerprint, once the certificate parsed. */
      readonly keyFingerprint?: string;
    };

export function isCertificateType(keyType: string): boolean {
  return keyType.endsWith(certificateSuffix);
}

const allowedCaSignatures = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-256',
  'rsa-sha2-512',
]);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

function sshString(bytes: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** The SSH string at the start of `blob` (the signature's algorithm name), or undefined. */
function leadingName(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  return length > 64 || 4 + length > blob.length ? undefined : blob.toString('latin1', 4, 4 + length);
}

interface ParsedCertificate {
  readonly certificate: sshpk.Certificate;
  readonly signed: Buffer;
  readonly signature: sshpk.Signature;
  readonly signatureName: string;
  readonly caBlob: Buffer;
  readonly keyBlob: Buffer;
}

/** Parses the certificate and splits off its signature; undefined when malformed. */
function parseCertificate(blob: Buffer, keyType: string): ParsedCertificate | string {
  let certificate: sshpk.Certificate;
  try {
    certificate = sshpk.parseCertificate(`${keyType} ${blob.toString('base64')}`, 'openssh');
  } catch (error) {
    return `sshpk could not parse it (${(error as Error).message.slice(0, 120)})`;
  }
  const openssh = certificate.signatures.openssh;
  const caKey = certificate.issuerKey;
  if (openssh === undefined || caKey === undefined) return 'it has no OpenSSH signature';
  const signature = openssh.signature as unknown as sshpk.Signature;
  const signatureBlob = signature.toBuffer('ssh');
  const framed = sshString(signatureBlob);
  // The CA signs every byte before its signature field, which ends the certificate.
  if (framed.length >= blob.length || !sameBytes(blob.subarray(blob.length - framed.length), framed)) {
    return 'its signature field is not canonical';
  }
  const signatureName = leadingName(signatureBlob);
  if (signatureName === undefined) return 'its signature has no algorithm name';
  return {
    certificate,
    signed: blob.subarray(0, blob.length - framed.length),
    signature,
    signatureName,
    caBlob: caKey.toBuffer('rfc4253'),
    keyBlob: certificate.subjectKey.toBuffer('rfc4253'),
  };
}

/** OpenSSH's "forever" (valid before = 2^64-1) parses to an invalid Date. */
function validUntilMs(certificate: sshpk.Certificate): number {
  const time = certificate.validUntil.getTime();
  return Number.isNaN(time) ? Number.POSITIVE_INFINITY : time;
}

function verifyCaSignature(parsed: ParsedCertificate, caKey: sshpk.Key): boolean {
  try {
    const hash = parsed.signature.hashAlgorithm;
    const verifier = hash === undefined ? caKey.createVerify() : caKey.createVerify(hash);
    verifier.update(parsed.signed);
    return verifier.verify(parsed.signature);
  } catch {
    return false;
  }
}

function refuse(cause: CertificateRefusal, detail: string): CertificateDecision {
  return { ok: false, cause, detail };
}

function checkWindowAndNames(
  certificate: sshpk.Certificate,
  host: string,
  now: Date,
): CertificateDecision | undefined {
  const from = certificate.validFrom.getTime();
  const until = validUntilMs(certificate);
  const window = `valid from ${certificate.validFrom.toISOString()} to ${Number.isFinite(until) ? new Date(until).toISOString() : 'forever'}`;
  if (now.getTime() < from)
    return refuse('cert-not-yet-valid', `the certificate is not yet valid (${window})`);
  if (now.getTime() >= until) return refuse('cert-expired', `the certificate expired (${window})`);
  const principals = certificate.subjects.map((s) => s.hostname ?? '');
  const wanted = host.toLowerCase();
  // sshpk turns an empty principal list into "*"; OpenSSH refuses such a host certificate.
  if (!principals.some((p) => p !== '*' && p.toLowerCase() === wanted)) {
    const named = principals.filter((p) => p !== '*').join(', ') || 'no host';
    return refuse('cert-principal', `the certificate names ${named.slice(0, 200)}, not ${host}`);
  }
  return undefined;
}

/**
 * Decides a host certificate for `host:port` at `now`. `blob` is the certificate as the server sent
 * it (the KEX host key), `keyType` its type name.
 */
export function decideHostCertificate(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  blob: Uint8Array,
  keyType: string,
  now: Date,
): CertificateDecision {
  const parsed = parseCertificate(Buffer.from(blob), keyType);
  if (typeof parsed === 'string')
    return refuse('cert-invalid', `the host certificate is malformed: ${parsed}`);
  const decision = decideParsed(entries, host, port, parsed, now);
  return decision.ok ? decision : { ...decision, keyFingerprint: fingerprintSha256(parsed.keyBlob) };
}

function decideParsed(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  parsed: ParsedCertificate,
  now: Date,
): CertificateDecision {
  const { certificate } = parsed;
  if (certificate.subjects.some((s) => s.type !== 'host')) {
    return refuse('cert-not-host', 'the server presented a user certificate, not a host certificate');
  }
  const caFingerprint = fingerprintSha256(parsed.caBlob);
  const revoked = entries.filter((e) => e.marker === 'revoked');
  if (revoked.some((e) => sameBytes(e.key, parsed.caBlob))) {
    return refuse('cert-revoked-ca', `its CA key ${caFingerprint} is revoked (@revoked in known_hosts)`);
  }
  if (revoked.some((e) => sameBytes(e.key, parsed.keyBlob))) {
    return refuse(
      'cert-revoked-key',
      `its certified key ${fingerprintSha256(parsed.keyBlob)} is revoked (@revoked in known_hosts)`,
    );
  }
  const name = hostLookupName(host, port);
  const authority = entries.find(
    (e) => e.marker === 'cert-authority' && hostsMatch(e.hosts, name) && sameBytes(e.key, parsed.caBlob),
  );
  if (authority === undefined) {
    return refuse('cert-unknown-ca', `its CA key ${caFingerprint} is not a @cert-authority for ${name}`);
  }
  if (!allowedCaSignatures.has(parsed.signatureName)) {
    return refuse(
      'cert-bad-signature',
      `its CA signature uses ${parsed.signatureName.slice(0, 40)}, which is refused`,
    );
  }
  if (!verifyCaSignature(parsed, sshpk.parseKey(Buffer.from(authority.key), 'rfc4253'))) {
    return refuse('cert-bad-signature', `its signature does not verify with the CA key ${caFingerprint}`);
  }
  const window = checkWindowAndNames(certificate, host, now);
  if (window !== undefined) return window;
  const critical = (certificate.signatures.openssh?.exts ?? []).filter((e) => e.critical);
  if (critical.length > 0) {
    return refuse('cert-critical-option', `it carries the critical option ${critical[0]?.name.slice(0, 60)}`);
  }
  return { ok: true, caFingerprint, line: authority.line };
}
