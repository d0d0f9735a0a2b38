/**
 * SSHSIG (OpenSSH PROTOCOL.sshsig) verification with node:crypto.
 * Supported keys: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (signatures rsa-sha2-256/512 only;
 * SHA-1 `ssh-rsa` signatures are refused), sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { quote } from '../util/quote.ts';
import { VerificationError } from './errors.ts';

export type SshKeyType =
  | 'ssh-ed25519'
  | 'ecdsa-sha2-nistp256'
  | 'ecdsa-sha2-nistp384'
  | 'ecdsa-sha2-nistp521'
  | 'ssh-rsa'
  | 'sk-ssh-ed25519@openssh.com'
  | 'sk-ecdsa-sha2-nistp256@openssh.com';

export const SSH_KEY_TYPES: readonly SshKeyType[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
];

export function isSshKeyType(value: string): value is SshKeyType {
  return (SSH_KEY_TYPES as readonly string[]).includes(value);
}

export interface SshPublicKey {
  readonly keyType: SshKeyType;
  /** The wire-format key blob. */
  readonly blob: Uint8Array;
  /** base64 of `blob`, used as the lookup key. */
  readonly blobBase64: string;
  /** `SHA256:...` as printed by `ssh-keygen -l`. */
  readonly fingerprint: string;
  readonly key: KeyObject;
  /** FIDO keys: the application string (usually `ssh:`). */
  readonly application: string | undefined;
}

export interface SshSignature {
  readonly publicKeyBlob: Uint8Array;
  readonly publicKeyBase64: string;
  readonly namespace: string;
  readonly hashAlgorithm: 'sha256' | 'sha512';
  readonly signatureType: string;
  readonly signatureBytes: Uint8Array;
  /** FIDO signatures only. */
  readonly skFlags: number | undefined;
  readonly skCounter: number | undefined;
}

const SK_USER_PRESENT = 0x01;

/** Reader for the SSH wire format (RFC 4251 §5). Throws MalformedSignature/MalformedKey on truncation. */
class SshWireReader {
  private readonly buffer: Buffer;
  private offset = 0;
  private readonly code: 'MalformedSignature' | 'MalformedKey';

  constructor(buffer: Uint8Array, code: 'MalformedSignature' | 'MalformedKey') {
    this.buffer = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.code = code;
  }

  private need(length: number): void {
    if (this.offset + length > this.buffer.length) {
      throw new VerificationError(this.code, 'truncated SSH wire data');
    }
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  byte(): number {
    this.need(1);
    const value = this.buffer[this.offset] ?? 0;
    this.offset += 1;
    return value;
  }

  raw(length: number): Buffer {
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): Buffer {
    return this.raw(this.u32());
  }

  text(): string {
    return this.string().toString('latin1');
  }

  /** Positive mpint with leading zero bytes stripped. */
  mpint(): Buffer {
    const value = this.string();
    if (value.length > 0 && ((value[0] ?? 0) & 0x80) !== 0) {
      throw new VerificationError(this.code, 'negative mpint in SSH data');
    }
    let start = 0;
    while (start < value.length && value[start] === 0) start++;
    return value.subarray(start);
  }

  expectEnd(): void {
    if (this.offset !== this.buffer.length)
      throw new VerificationError(this.code, 'trailing bytes in SSH data');
  }
}

function sshString(value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

const CURVES = {
  nistp256: { jwk: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { jwk: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { jwk: 'P-521', size: 66, hash: 'sha512' },
} as const;
type CurveName = keyof typeof CURVES;

function curveOf(keyType: SshKeyType): CurveName | undefined {
  if (keyType === 'ecdsa-sha2-nistp256' || keyType === 'sk-ecdsa-sha2-nistp256@openssh.com')
    return 'nistp256';
  if (keyType === 'ecdsa-sha2-nistp384') return 'nistp384';
  if (keyType === 'ecdsa-sha2-nistp521') return 'nistp521';
  return undefined;
}

function ecKey(reader: SshWireReader, curve: CurveName): KeyObject {
  const curveName = reader.text();
  if (curveName !== curve) throw new VerificationError('MalformedKey', `ECDSA key names curve ${curveName}`);
  const point = reader.string();
  const size = CURVES[curve].size;
  if (point.length !== 1 + 2 * size || point[0] !== 0x04) {
    throw new VerificationError('MalformedKey', 'ECDSA key is not an uncompressed point of the right size');
  }
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: CURVES[curve].jwk,
      x: point.subarray(1, 1 + size).toString('base64url'),
      y: point.subarray(1 + size).toString('base64url'),
    },
    format: 'jwk',
  });
}

function ed25519Key(reader: SshWireReader): KeyObject {
  const point = reader.string();
  if (point.length !== 32) throw new VerificationError('MalformedKey', 'ed25519 key is not 32 bytes');
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: point.toString('base64url') },
    format: 'jwk',
  });
}

/** Parses an SSH public key blob (the base64 part of a `.pub` line, decoded). */
export function parseSshPublicKeyBlob(blob: Uint8Array): SshPublicKey {
  const reader = new SshWireReader(blob, 'MalformedKey');
  const keyType = reader.text();
  if (!isSshKeyType(keyType)) {
    throw new VerificationError('UnsupportedKeyType', `unsupported SSH key type ${JSON.stringify(keyType)}`);
  }
  let key: KeyObject;
  let application: string | undefined;
  try {
    switch (keyType) {
      case 'ssh-ed25519':
        key = ed25519Key(reader);
        break;
      case 'sk-ssh-ed25519@openssh.com':
        key = ed25519Key(reader);
        application = reader.text();
        break;
      case 'ssh-rsa': {
        const e = reader.mpint();
        const n = reader.mpint();
        if (n.length * 8 < 1024)
          throw new VerificationError('MalformedKey', 'RSA key shorter than 1024 bits');
        key = createPublicKey({
          key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
          format: 'jwk',
        });
        break;
      }
      case 'sk-ecdsa-sha2-nistp256@openssh.com':
        key = ecKey(reader, 'nistp256');
        application = reader.text();
        break;
      default: {
        const curve = curveOf(keyType);
        if (curve === undefined) throw new VerificationError('UnsupportedKeyType', `unsupported ${keyType}`);
        key = ecKey(reader, curve);
      }
    }
    reader.expectEnd();
  } catch (error) {
    if (error instanceof VerificationError) throw error;
    throw new VerificationError('MalformedKey', `invalid ${keyType} key: ${(error as Error).message}`);
  }
  const bytes = Uint8Array.from(blob);
  return {
    keyType,
    blob: bytes,
    blobBase64: Buffer.from(bytes).toString('base64'),
    fingerprint: sshFingerprint(bytes),
    key,
    application,
  };
}

export function sshFingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodeStrictBase64(text: string, code: 'MalformedSignature' | 'MalformedKey'): Buffer {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw new VerificationError(code, 'invalid base64');
  return Buffer.from(text, 'base64');
}

/** Parses an armored SSHSIG. Throws VerificationError('MalformedSignature'). */
export function parseSshSignature(armored: string): SshSignature {
  const text = armored.replace(/\r\n/g, '\n').trim();
  if (!text.startsWith(ARMOR_BEGIN) || !text.endsWith(ARMOR_END)) {
    throw new VerificationError('MalformedSignature', 'SSH signature armor is missing its BEGIN/END lines');
  }
  const body = text.slice(ARMOR_BEGIN.length, text.length - ARMOR_END.length).replace(/\s+/g, '');
  const blob = decodeStrictBase64(body, 'MalformedSignature');
  const reader = new SshWireReader(blob, 'MalformedSignature');
  if (reader.raw(6).toString('latin1') !== 'SSHSIG') {
    throw new VerificationError('MalformedSignature', 'SSH signature lacks the SSHSIG magic');
  }
  const version = reader.u32();
  if (version !== 1)
    throw new VerificationError('MalformedSignature', `unsupported SSHSIG version ${version}`);
  const publicKeyBlob = reader.string();
  const namespace = reader.string().toString('utf8');
  reader.string(); // reserved
  const hashAlgorithm = reader.text();
  const signatureBlob = reader.string();
  reader.expectEnd();
  if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512') {
    throw new VerificationError(
      'UnsupportedAlgorithm',
      `unsupported SSHSIG hash ${JSON.stringify(hashAlgorithm)}`,
    );
  }
  const sig = new SshWireReader(signatureBlob, 'MalformedSignature');
  const signatureType = sig.text();
  const signatureBytes = sig.string();
  let skFlags: number | undefined;
  let skCounter: number | undefined;
  if (signatureType.startsWith('sk-')) {
    skFlags = sig.byte();
    skCounter = sig.u32();
  }
  sig.expectEnd();
  return {
    publicKeyBlob,
    publicKeyBase64: publicKeyBlob.toString('base64'),
    namespace,
    hashAlgorithm,
    signatureType,
    signatureBytes,
    skFlags,
    skCounter,
  };
}

function ecdsaSignatureToP1363(bytes: Uint8Array, size: number): Buffer {
  const reader = new SshWireReader(bytes, 'MalformedSignature');
  const r = reader.mpint();
  const s = reader.mpint();
  reader.expectEnd();
  if (r.length > size || s.length > size)
    throw new VerificationError('MalformedSignature', 'ECDSA r/s too long');
  const out = Buffer.alloc(2 * size);
  r.copy(out, size - r.length);
  s.copy(out, 2 * size - s.length);
  return out;
}

const EXPECTED_SIGNATURE_TYPES: Record<SshKeyType, readonly string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-256', 'rsa-sha2-512'],
  'sk-ssh-ed25519@openssh.com': ['sk-ssh-ed25519@openssh.com'],
  'sk-ecdsa-sha2-nistp256@openssh.com': ['sk-ecdsa-sha2-nistp256@openssh.com'],
};

/** True for a FIDO (sk-*) signature made without touching the key (no user-presence flag). */
export function lacksUserPresence(signature: SshSignature, key: SshPublicKey): boolean {
  return key.application !== undefined && ((signature.skFlags ?? 0) & SK_USER_PRESENT) === 0;
}

export interface SshVerifyOptions {
  /** Required namespace; git uses `git`. */
  readonly namespace: string;
  /** FIDO keys: accept signatures without the user-presence flag (allowed-signers `no-touch-required`). */
  readonly allowNoTouch?: boolean;
}

/**
 * Verifies `signature` over `message` with `key`. Returns true only for a good signature; returns false
 * for a bad one and throws VerificationError for refused algorithms or malformed data.
 */
export function verifySshSignature(
  signature: SshSignature,
  message: Uint8Array,
  key: SshPublicKey,
  options: SshVerifyOptions,
): boolean {
  if (signature.namespace !== options.namespace) {
    throw new VerificationError(
      'MalformedSignature',
      `SSH signature namespace is ${quote(signature.namespace)}, expected ${quote(options.namespace)}`,
    );
  }
  if (signature.publicKeyBase64 !== key.blobBase64) return false;
  if (signature.signatureType === 'ssh-rsa') {
    throw new VerificationError(
      'UnsupportedAlgorithm',
      'SHA-1 ssh-rsa signatures are refused; sign with rsa-sha2-512',
    );
  }
  if (!EXPECTED_SIGNATURE_TYPES[key.keyType].includes(signature.signatureType)) {
    throw new VerificationError(
      'MalformedSignature',
      `signature type ${signature.signatureType} does not match key type ${key.keyType}`,
    );
  }
  const digest = createHash(signature.hashAlgorithm).update(message).digest();
  let signed: Buffer = Buffer.concat([
    Buffer.from('SSHSIG', 'latin1'),
    sshString(signature.namespace),
    sshString(''),
    sshString(signature.hashAlgorithm),
    sshString(digest),
  ]);
  if (key.application !== undefined) {
    const flags = signature.skFlags ?? 0;
    if (lacksUserPresence(signature, key) && options.allowNoTouch !== true) {
      throw new VerificationError('MalformedSignature', 'FIDO signature lacks the user-presence flag');
    }
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(signature.skCounter ?? 0);
    signed = Buffer.concat([
      createHash('sha256').update(key.application).digest(),
      Uint8Array.of(flags),
      counter,
      createHash('sha256').update(signed).digest(),
    ]);
  }
  switch (key.keyType) {
    case 'ssh-ed25519':
    case 'sk-ssh-ed25519@openssh.com':
      return cryptoVerify(null, signed, key.key, signature.signatureBytes);
    case 'ssh-rsa':
      return cryptoVerify(
        signature.signatureType === 'rsa-sha2-256' ? 'sha256' : 'sha512',
        signed,
        key.key,
        signature.signatureBytes,
      );
    default: {
      const curve = curveOf(key.keyType);
      if (curve === undefined)
        throw new VerificationError('UnsupportedKeyType', `unsupported ${key.keyType}`);
      const p1363 = ecdsaSignatureToP1363(signature.signatureBytes, CURVES[curve].size);
      return cryptoVerify(CURVES[curve].hash, signed, { key: key.key, dsaEncoding: 'ieee-p1363' }, p1363);
    }
  }
}
