/**
 * Pure parsers for raw git commit and tag objects (the bytes after the `type size\0` header).
 * The signed payload is cut out of the raw bytes the way git does it (`parse_buffer_signed_by_header`
 * for commits, `parse_signed_buffer` for tags), so CRLF and any header layout are kept verbatim.
 */
import { VerificationError } from './errors.ts';
import type { GitIdentity } from './types.ts';

export type SignatureFormat = 'ssh' | 'openpgp' | 'x509' | 'unknown';
export type SignatureHeaderName = 'gpgsig' | 'gpgsig-sha256';
export type ObjectFormat = 'sha1' | 'sha256';

export interface EmbeddedSignature {
  readonly format: SignatureFormat;
  /** The signature text (continuation-line spaces removed), e.g. `-----BEGIN SSH SIGNATURE-----\n...`. */
  readonly armored: string;
  /** The same signature as the exact bytes stored in the object. */
  readonly bytes: Uint8Array;
  /** Commits: the header it was read from. Tags: undefined (appended to the message). */
  readonly header: SignatureHeaderName | undefined;
  /** Byte offset in `payload` where the signature was cut out. */
  readonly offset: number;
}

export interface ParsedCommit {
  readonly kind: 'commit';
  readonly tree: string;
  readonly parents: readonly string[];
  readonly author: GitIdentity;
  readonly committer: GitIdentity;
  readonly encoding: string | undefined;
  readonly message: string;
  /** The bytes that were signed: the raw object without the signature header. */
  readonly payload: Uint8Array;
  readonly signature: EmbeddedSignature | undefined;
}

export interface ParsedTag {
  readonly kind: 'tag';
  readonly object: string;
  readonly objectType: string;
  readonly tagName: string;
  readonly tagger: GitIdentity | undefined;
  /** The message without the trailing signature block. */
  readonly message: string;
  /** The bytes that were signed: everything before the signature block. */
  readonly payload: Uint8Array;
  readonly signature: EmbeddedSignature | undefined;
}

export type SignedObject = ParsedCommit | ParsedTag;

export interface ParseOptions {
  /** Repository hash algorithm: selects `gpgsig` (sha1, default) or `gpgsig-sha256` as the primary signature header. */
  readonly objectFormat?: ObjectFormat;
  /** Included in error context. */
  readonly oid?: string;
}

const SIGNATURE_MARKERS: ReadonlyArray<readonly [string, SignatureFormat]> = [
  ['-----BEGIN PGP SIGNATURE-----', 'openpgp'],
  ['-----BEGIN PGP MESSAGE-----', 'openpgp'],
  ['-----BEGIN SSH SIGNATURE-----', 'ssh'],
  ['-----BEGIN SIGNED MESSAGE-----', 'x509'],
];

const KNOWN_COMMIT_HEADERS = new Set(['tree', 'parent', 'author', 'committer', 'encoding']);
const NEWLINE = 0x0a;
const SPACE = 0x20;
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');
const OID_PATTERN = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const IDENTITY_PATTERN = /^(.*?) ?<([^<>]*)> (\d+) ([+-]\d{4})$/;

export function detectSignatureFormat(armored: string): SignatureFormat {
  for (const [marker, format] of SIGNATURE_MARKERS) {
    if (armored.startsWith(marker)) return format;
  }
  return 'unknown';
}

export function parseIdentity(value: string, field: string, oid?: string): GitIdentity {
  const match = IDENTITY_PATTERN.exec(value);
  if (match === null) {
    throw new VerificationError('MalformedObject', `malformed ${field} line ${JSON.stringify(value)}`, {
      oid,
    });
  }
  return {
    name: match[1] ?? '',
    email: match[2] ?? '',
    timestamp: Number(match[3]),
    timezone: match[4] ?? '',
  };
}

interface Line {
  readonly start: number;
  readonly end: number; // exclusive, includes the newline when present
}

function nextLine(raw: Uint8Array, start: number): Line {
  const newline = raw.indexOf(NEWLINE, start);
  return { start, end: newline === -1 ? raw.length : newline + 1 };
}

function startsWithAscii(raw: Uint8Array, at: number, prefix: string): boolean {
  if (at + prefix.length > raw.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (raw[at + i] !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Header value without the trailing newline, decoded as UTF-8. */
function headerValue(raw: Uint8Array, line: Line, nameLength: number): string {
  let end = line.end;
  if (end > line.start && raw[end - 1] === NEWLINE) end--;
  return utf8.decode(raw.subarray(line.start + nameLength + 1, end));
}

function headerName(raw: Uint8Array, line: Line): string {
  const space = raw.indexOf(SPACE, line.start);
  const limit = space === -1 || space >= line.end ? line.end : space;
  return latin1.decode(raw.subarray(line.start, limit)).replace(/\n$/, '');
}

function requireOid(value: string, field: string, oid?: string): string {
  if (!OID_PATTERN.test(value)) {
    throw new VerificationError('MalformedObject', `malformed ${field} ${JSON.stringify(value)}`, { oid });
  }
  return value;
}

/** Parses a raw commit object. Throws VerificationError('MalformedObject') on a malformed header. */
export function parseCommit(raw: Uint8Array, options: ParseOptions = {}): ParsedCommit {
  const oid = options.oid;
  const primary: SignatureHeaderName = options.objectFormat === 'sha256' ? 'gpgsig-sha256' : 'gpgsig';
  const secondary: SignatureHeaderName = primary === 'gpgsig' ? 'gpgsig-sha256' : 'gpgsig';
  // First pass: header lines grouped with their continuation lines.
  interface Header {
    readonly name: string;
    readonly first: Line;
    end: number;
    readonly continuations: Line[];
  }
  const headers: Header[] = [];
  let offset = 0;
  let bodyStart = raw.length;
  while (offset < raw.length) {
    const line = nextLine(raw, offset);
    if (raw[offset] === NEWLINE) {
      bodyStart = offset;
      break;
    }
    const last = headers[headers.length - 1];
    if (raw[offset] === SPACE) {
      if (last === undefined) {
        throw new VerificationError('MalformedObject', 'commit starts with a continuation line', { oid });
      }
      last.continuations.push(line);
      last.end = line.end;
    } else {
      headers.push({ name: headerName(raw, line), first: line, end: line.end, continuations: [] });
    }
    offset = line.end;
  }

  let tree: string | undefined;
  const parents: string[] = [];
  let author: GitIdentity | undefined;
  let committer: GitIdentity | undefined;
  let encoding: string | undefined;
  const signatureHeaders = headers.filter((h) => h.name === primary);
  const chosenName = signatureHeaders.length > 0 ? primary : secondary;
  const chosen = headers.filter((h) => h.name === chosenName);
  if (chosen.length > 1) {
    throw new VerificationError('MalformedObject', `commit has ${chosen.length} ${chosenName} headers`, {
      oid,
    });
  }
  const signatureHeader = chosen[0];

  headers.forEach((header, index) => {
    if (!KNOWN_COMMIT_HEADERS.has(header.name)) return;
    const value = headerValue(raw, header.first, header.name.length);
    switch (header.name) {
      case 'tree':
        if (index !== 0) throw new VerificationError('MalformedObject', 'tree header is not first', { oid });
        tree = requireOid(value, 'tree', oid);
        break;
      case 'parent':
        if (author !== undefined || committer !== undefined) {
          throw new VerificationError('MalformedObject', 'parent header after author/committer', { oid });
        }
        parents.push(requireOid(value, 'parent', oid));
        break;
      case 'author':
        if (author !== undefined) throw new VerificationError('MalformedObject', 'duplicate author', { oid });
        author = parseIdentity(value, 'author', oid);
        break;
      case 'committer':
        if (committer !== undefined)
          throw new VerificationError('MalformedObject', 'duplicate committer', { oid });
        committer = parseIdentity(value, 'committer', oid);
        break;
      case 'encoding':
        encoding = value;
        break;
      default:
        break;
    }
  });
  if (tree === undefined)
    throw new VerificationError('MalformedObject', 'commit has no tree header', { oid });
  if (author === undefined) throw new VerificationError('MalformedObject', 'commit has no author', { oid });
  if (committer === undefined)
    throw new VerificationError('MalformedObject', 'commit has no committer', { oid });

  let payload: Uint8Array;
  let signature: EmbeddedSignature | undefined;
  if (signatureHeader === undefined) {
    payload = raw;
  } else {
    const sigParts: Uint8Array[] = [
      raw.subarray(signatureHeader.first.start + chosenName.length + 1, signatureHeader.first.end),
    ];
    for (const line of signatureHeader.continuations) sigParts.push(raw.subarray(line.start + 1, line.end));
    const bytes = concat(sigParts);
    const armored = utf8.decode(bytes);
    payload = concat([raw.subarray(0, signatureHeader.first.start), raw.subarray(signatureHeader.end)]);
    signature = {
      format: detectSignatureFormat(armored),
      armored,
      bytes,
      header: chosenName,
      offset: signatureHeader.first.start,
    };
  }
  const messageStart = bodyStart < raw.length ? bodyStart + 1 : raw.length;
  return {
    kind: 'commit',
    tree,
    parents,
    author,
    committer,
    encoding,
    message: utf8.decode(raw.subarray(messageStart)),
    payload,
    signature,
  };
}

/** Offset of the last line that starts a signature block (git's `parse_signed_buffer`), or raw.length. */
function findTrailingSignature(raw: Uint8Array): number {
  let match = raw.length;
  let offset = 0;
  while (offset < raw.length) {
    if (raw[offset] === 0x2d /* - */) {
      for (const [marker] of SIGNATURE_MARKERS) {
        if (startsWithAscii(raw, offset, marker)) {
          match = offset;
          break;
        }
      }
    }
    offset = nextLine(raw, offset).end;
  }
  return match;
}

/** Parses a raw annotated tag object. Throws VerificationError('MalformedObject') on a malformed header. */
export function parseTag(raw: Uint8Array, options: ParseOptions = {}): ParsedTag {
  const oid = options.oid;
  let object: string | undefined;
  let objectType: string | undefined;
  let tagName: string | undefined;
  let tagger: GitIdentity | undefined;
  let offset = 0;
  let bodyStart = raw.length;
  while (offset < raw.length) {
    const line = nextLine(raw, offset);
    if (raw[offset] === NEWLINE) {
      bodyStart = offset + 1;
      break;
    }
    if (raw[offset] !== SPACE) {
      const name = headerName(raw, line);
      const value = headerValue(raw, line, name.length);
      if (name === 'object') object = requireOid(value, 'object', oid);
      else if (name === 'type') objectType = value;
      else if (name === 'tag') tagName = value;
      else if (name === 'tagger') tagger = parseIdentity(value, 'tagger', oid);
    }
    offset = line.end;
  }
  if (object === undefined || objectType === undefined || tagName === undefined) {
    throw new VerificationError('MalformedObject', 'tag lacks an object, type or tag header', { oid });
  }
  const signatureStart = findTrailingSignature(raw);
  if (signatureStart < bodyStart && signatureStart < raw.length) {
    throw new VerificationError('MalformedObject', 'tag has a signature block inside its headers', { oid });
  }
  let signature: EmbeddedSignature | undefined;
  if (signatureStart < raw.length) {
    const bytes = raw.subarray(signatureStart);
    const armored = utf8.decode(bytes);
    signature = {
      format: detectSignatureFormat(armored),
      armored,
      bytes,
      header: undefined,
      offset: signatureStart,
    };
  }
  return {
    kind: 'tag',
    object,
    objectType,
    tagName,
    tagger,
    message: utf8.decode(raw.subarray(Math.min(bodyStart, signatureStart), signatureStart)),
    payload: raw.subarray(0, signatureStart),
    signature,
  };
}

/** Re-inserts a commit's signature header (inverse of the split): used by tests and tooling. */
export function reinsertCommitSignature(payload: Uint8Array, signature: EmbeddedSignature): Uint8Array {
  if (signature.header === undefined) return concat([payload, signature.bytes]);
  const header = new TextEncoder().encode(`${signature.header} `);
  const parts: Uint8Array[] = [payload.subarray(0, signature.offset), header];
  const bytes = signature.bytes;
  let start = 0;
  while (start < bytes.length) {
    const newline = bytes.indexOf(NEWLINE, start);
    const end = newline === -1 ? bytes.length : newline + 1;
    if (start > 0) parts.push(Uint8Array.of(SPACE));
    parts.push(bytes.subarray(start, end));
    start = end;
  }
  parts.push(payload.subarray(signature.offset));
  return concat(parts);
}

/** The identity whose email `matchCommitter` compares with: committer for commits, tagger for tags. */
export function signingIdentity(obj: SignedObject): GitIdentity | undefined {
  return obj.kind === 'commit' ? obj.committer : obj.tagger;
}
