/**
 * Pure parsers for raw git commit and tag objects (the bytes after the `type size\0` header).
 * The signed payload is cut out of the raw bytes the way git does it (`parse_buffer_signed_by_header`
 * for commits, `parse_signed_buffer` for tags), so CRLF and any header layout are kept verbatim.
 * Idents are read as git reads them (`split_ident_line`), and an object `git fsck` would flag
 * (fsck_commit / fsck_tag / fsck_ident) is refused with fsck's message id (MalformedObjectError).
 */

import { quote } from '../util/quote.ts';
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

const NEWLINE = 0x0a;
const SPACE = 0x20;
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');
const OID_PATTERN = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const TAG_TARGET_TYPES = new Set(['commit', 'tree', 'blob', 'tag']);
/** git's time_t is a signed 64-bit integer: fsck's date_overflows() refuses anything from 2^63 on. */
const MAX_GIT_TIMESTAMP = 2n ** 63n - 1n;
/** Longest untrusted value quoted in an error message. */

/**
 * The `git fsck` message ids (fsck.h, in fsck's camelCase) a commit or tag is refused for, plus
 * `multipleCommitters`, `duplicateHeader` and `badHeaderOrder` for repeated or misplaced headers that fsck
 * does not look at but that could make a reader and git disagree on who committed what.
 */
export type FsckCause =
  | 'nulInHeader'
  | 'unterminatedHeader'
  | 'missingTree'
  | 'badTreeSha1'
  | 'badParentSha1'
  | 'missingAuthor'
  | 'multipleAuthors'
  | 'missingCommitter'
  | 'multipleCommitters'
  | 'missingNameBeforeEmail'
  | 'missingEmail'
  | 'badName'
  | 'missingSpaceBeforeEmail'
  | 'badEmail'
  | 'missingSpaceBeforeDate'
  | 'badDate'
  | 'zeroPaddedDate'
  | 'badDateOverflow'
  | 'badTimezone'
  | 'missingObject'
  | 'badObjectSha1'
  | 'missingTypeEntry'
  | 'badType'
  | 'missingTagEntry'
  | 'duplicateHeader'
  | 'badHeaderOrder';

/** A commit or tag that `git fsck` (or the stricter header rules above) would flag. */
export class MalformedObjectError extends VerificationError {
  readonly fsckCause: FsckCause;
  constructor(cause: FsckCause, detail: string, oid: string | undefined) {
    super('MalformedObject', `${cause}: ${detail}`, { oid });
    this.name = 'MalformedObjectError';
    this.fsckCause = cause;
  }
}

export function detectSignatureFormat(armored: string): SignatureFormat {
  for (const [marker, format] of SIGNATURE_MARKERS) {
    if (armored.startsWith(marker)) return format;
  }
  return 'unknown';
}

const isDigit = (char: string | undefined) => char !== undefined && char >= '0' && char <= '9';

/** Where the email's `<` and `>` are, as fsck_ident finds them (the first `<`, then the next `>`). */
function findEmail(value: string): { lt: number; gt: number } | FsckCause {
  if (value.startsWith('<')) return 'missingNameBeforeEmail';
  let lt = 0;
  for (; ; lt++) {
    if (lt >= value.length) return 'missingEmail';
    if (value[lt] === '>') return 'badName';
    if (value[lt] === '<') break;
  }
  if (value[lt - 1] !== ' ') return 'missingSpaceBeforeEmail';
  let gt = lt + 1;
  for (; ; gt++) {
    if (gt >= value.length || value[gt] === '<') return 'badEmail';
    if (value[gt] === '>') break;
  }
  return { lt, gt };
}

/** The date and zone after `> `, checked the way fsck_ident checks them. */
function readDate(value: string, from: number): { timestamp: number; timezone: string } | FsckCause {
  if (value[from] !== ' ') return 'missingSpaceBeforeDate';
  let p = from + 1;
  while (value[p] === ' ' || value[p] === '\t') p++;
  if (!isDigit(value[p])) return 'badDate';
  if (value[p] === '0' && value[p + 1] !== ' ') return 'zeroPaddedDate';
  const start = p;
  while (isDigit(value[p])) p++;
  // Bounded before BigInt: more than 19 digits is past 2^63 whatever they are.
  if (p - start > 19 || BigInt(value.slice(start, p)) > MAX_GIT_TIMESTAMP) return 'badDateOverflow';
  const digits = value.slice(start, p);
  if (value[p] !== ' ') return 'badDate';
  const timezone = value.slice(p + 1);
  if (!/^[+-][0-9]{4}$/.test(timezone)) return 'badTimezone';
  return { timestamp: Number(digits), timezone };
}

/**
 * Parses an ident (`Name <email> seconds +zone`) the way git reads it (split_ident_line: the name runs to
 * the first `<`, the email to the next `>`) and refuses what `git fsck` flags (fsck_ident). Throws
 * MalformedObjectError naming the fsck cause.
 */
export function parseIdentity(value: string, field: string, oid?: string): GitIdentity {
  const fail = (cause: FsckCause): never => {
    throw new MalformedObjectError(cause, `malformed ${field} line ${quote(value)}`, oid);
  };
  const email = findEmail(value);
  if (typeof email === 'string') return fail(email);
  const date = readDate(value, email.gt + 1);
  if (typeof date === 'string') return fail(date);
  return {
    name: value.slice(0, email.lt).replace(/\s+$/, ''),
    email: value.slice(email.lt + 1, email.gt),
    timestamp: date.timestamp,
    timezone: date.timezone,
  };
}

interface Line {
  readonly start: number;
  readonly end: number; // exclusive, includes the newline when present
}

/** A header line with its continuation lines. `name` is the text before the first space. */
interface Header {
  readonly name: string;
  /** False when the line has no space (so it is no `name value` header at all). */
  readonly spaced: boolean;
  readonly first: Line;
  end: number;
  readonly continuations: Line[];
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
function headerValue(raw: Uint8Array, header: Header): string {
  const line = header.first;
  let end = line.end;
  if (end > line.start && raw[end - 1] === NEWLINE) end--;
  return utf8.decode(raw.subarray(Math.min(line.start + header.name.length + 1, end), end));
}

function headerName(raw: Uint8Array, line: Line): { name: string; spaced: boolean } {
  const space = raw.indexOf(SPACE, line.start);
  const spaced = space !== -1 && space < line.end;
  const limit = spaced ? space : line.end;
  return { name: latin1.decode(raw.subarray(line.start, limit)).replace(/\n$/, ''), spaced };
}

/** fsck's verify_headers: no NUL before the blank line, and the last header line ends in a newline. */
function checkHeaderEnd(raw: Uint8Array, oid: string | undefined): void {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) throw new MalformedObjectError('nulInHeader', `NUL at offset ${i} in the headers`, oid);
    if (raw[i] === NEWLINE && raw[i + 1] === NEWLINE) return;
  }
  if (raw.length === 0 || raw[raw.length - 1] !== NEWLINE) {
    throw new MalformedObjectError('unterminatedHeader', 'the headers do not end with a newline', oid);
  }
}

/** Groups the header lines with their continuation lines; `bodyStart` is the blank line (or raw.length). */
function readHeaders(raw: Uint8Array, kind: string, oid: string | undefined) {
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
        throw new MalformedObjectError('badHeaderOrder', `${kind} starts with a continuation line`, oid);
      }
      last.continuations.push(line);
      last.end = line.end;
    } else {
      headers.push({ ...headerName(raw, line), first: line, end: line.end, continuations: [] });
    }
    offset = line.end;
  }
  return { headers, bodyStart };
}

function requireOid(value: string, cause: FsckCause, field: string, oid?: string): string {
  if (!OID_PATTERN.test(value)) {
    throw new MalformedObjectError(cause, `malformed ${field} ${quote(value)}`, oid);
  }
  return value;
}

const is = (header: Header | undefined, name: string): header is Header =>
  header?.spaced === true && header.name === name;

interface CommitIdentity {
  readonly tree: string;
  readonly parents: readonly string[];
  readonly author: GitIdentity;
  readonly committer: GitIdentity;
  /** Index of the first header after `committer`. */
  readonly next: number;
}

/**
 * fsck_commit's order: `tree`, any `parent`s, exactly one `author`, then `committer`. A continuation line
 * inside that prefix is what fsck reads as the next header, so it is refused the way fsck refuses it.
 */
function readCommitIdentity(raw: Uint8Array, headers: readonly Header[], oid?: string): CommitIdentity {
  let i = 0;
  const tree = headers[i];
  if (!is(tree, 'tree')) throw new MalformedObjectError('missingTree', "expected a 'tree' line first", oid);
  const treeOid = requireOid(headerValue(raw, tree), 'badTreeSha1', 'tree', oid);
  let interrupted = tree.continuations.length > 0;
  i++;
  const parents: string[] = [];
  for (let h = headers[i]; !interrupted && is(h, 'parent'); h = headers[++i]) {
    parents.push(requireOid(headerValue(raw, h), 'badParentSha1', 'parent', oid));
    interrupted = h.continuations.length > 0;
  }
  const authors: GitIdentity[] = [];
  for (let h = headers[i]; !interrupted && is(h, 'author'); h = headers[++i]) {
    authors.push(parseIdentity(headerValue(raw, h), 'author', oid));
    interrupted = h.continuations.length > 0;
  }
  const author = authors[0];
  if (author === undefined) throw new MalformedObjectError('missingAuthor', "expected an 'author' line", oid);
  if (authors.length > 1)
    throw new MalformedObjectError('multipleAuthors', `${authors.length} 'author' lines`, oid);
  const committerHeader = headers[i];
  if (interrupted || !is(committerHeader, 'committer')) {
    throw new MalformedObjectError('missingCommitter', "expected a 'committer' line after 'author'", oid);
  }
  const committer = parseIdentity(headerValue(raw, committerHeader), 'committer', oid);
  return { tree: treeOid, parents, author, committer, next: i + 1 };
}

/** Headers after `committer` must not repeat or reorder the identity headers. */
function checkLaterHeaders(headers: readonly Header[], from: number, oid?: string): void {
  for (const header of headers.slice(from)) {
    if (!header.spaced) continue;
    if (header.name === 'tree')
      throw new MalformedObjectError('duplicateHeader', "a second 'tree' line", oid);
    if (header.name === 'parent')
      throw new MalformedObjectError('badHeaderOrder', "a 'parent' line after 'committer'", oid);
    if (header.name === 'author')
      throw new MalformedObjectError('multipleAuthors', "an 'author' line after 'committer'", oid);
    if (header.name === 'committer')
      throw new MalformedObjectError('multipleCommitters', "a second 'committer' line", oid);
  }
}

function cutSignature(
  raw: Uint8Array,
  header: Header,
  name: SignatureHeaderName,
): { payload: Uint8Array; signature: EmbeddedSignature } {
  const parts: Uint8Array[] = [raw.subarray(header.first.start + name.length + 1, header.first.end)];
  for (const line of header.continuations) parts.push(raw.subarray(line.start + 1, line.end));
  const bytes = concat(parts);
  const armored = utf8.decode(bytes);
  return {
    payload: concat([raw.subarray(0, header.first.start), raw.subarray(header.end)]),
    signature: {
      format: detectSignatureFormat(armored),
      armored,
      bytes,
      header: name,
      offset: header.first.start,
    },
  };
}

/**
 * Parses a raw commit object. Throws MalformedObjectError (code MalformedObject) for anything `git fsck`
 * flags in the headers, and for repeated identity or signature headers.
 */
export function parseCommit(raw: Uint8Array, options: ParseOptions = {}): ParsedCommit {
  const oid = options.oid;
  checkHeaderEnd(raw, oid);
  const { headers, bodyStart } = readHeaders(raw, 'commit', oid);
  const identity = readCommitIdentity(raw, headers, oid);
  checkLaterHeaders(headers, identity.next, oid);
  const primary: SignatureHeaderName = options.objectFormat === 'sha256' ? 'gpgsig-sha256' : 'gpgsig';
  const secondary: SignatureHeaderName = primary === 'gpgsig' ? 'gpgsig-sha256' : 'gpgsig';
  const chosenName = headers.some((h) => is(h, primary)) ? primary : secondary;
  const chosen = headers.filter((h) => is(h, chosenName));
  if (chosen.length > 1) {
    throw new MalformedObjectError(
      'duplicateHeader',
      `commit has ${chosen.length} ${chosenName} headers`,
      oid,
    );
  }
  const encodingHeader = headers.find((h) => is(h, 'encoding'));
  const signatureHeader = chosen[0];
  const cut = signatureHeader === undefined ? undefined : cutSignature(raw, signatureHeader, chosenName);
  const messageStart = bodyStart < raw.length ? bodyStart + 1 : raw.length;
  return {
    kind: 'commit',
    tree: identity.tree,
    parents: identity.parents,
    author: identity.author,
    committer: identity.committer,
    encoding: encodingHeader === undefined ? undefined : headerValue(raw, encodingHeader),
    message: utf8.decode(raw.subarray(messageStart)),
    payload: cut?.payload ?? raw,
    signature: cut?.signature,
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

interface TagHeaders {
  readonly object: string;
  readonly objectType: string;
  readonly tagName: string;
  readonly tagger: GitIdentity | undefined;
}

/** fsck_tag's order: `object`, `type`, `tag`, then an optional `tagger`; none of them may repeat. */
function readTagHeaders(raw: Uint8Array, headers: readonly Header[], oid?: string): TagHeaders {
  const [objectHeader, typeHeader, tagHeader, taggerHeader] = headers;
  if (!is(objectHeader, 'object'))
    throw new MalformedObjectError('missingObject', "expected an 'object' line first", oid);
  const object = requireOid(headerValue(raw, objectHeader), 'badObjectSha1', 'object', oid);
  if (!is(typeHeader, 'type'))
    throw new MalformedObjectError('missingTypeEntry', "expected a 'type' line", oid);
  const objectType = headerValue(raw, typeHeader);
  if (!TAG_TARGET_TYPES.has(objectType))
    throw new MalformedObjectError('badType', `invalid 'type' value ${quote(objectType)}`, oid);
  if (!is(tagHeader, 'tag')) throw new MalformedObjectError('missingTagEntry', "expected a 'tag' line", oid);
  const tagName = headerValue(raw, tagHeader);
  const hasTagger = is(taggerHeader, 'tagger');
  const tagger = hasTagger ? parseIdentity(headerValue(raw, taggerHeader), 'tagger', oid) : undefined;
  for (const header of headers.slice(hasTagger ? 4 : 3)) {
    if (header.spaced && ['object', 'type', 'tag', 'tagger'].includes(header.name)) {
      throw new MalformedObjectError('duplicateHeader', `a repeated or misplaced '${header.name}' line`, oid);
    }
  }
  return { object, objectType, tagName, tagger };
}

/**
 * Parses a raw annotated tag object. Throws MalformedObjectError (code MalformedObject) for anything
 * `git fsck` flags in the headers, and for repeated headers.
 */
export function parseTag(raw: Uint8Array, options: ParseOptions = {}): ParsedTag {
  const oid = options.oid;
  checkHeaderEnd(raw, oid);
  const { headers, bodyStart: blank } = readHeaders(raw, 'tag', oid);
  const { object, objectType, tagName, tagger } = readTagHeaders(raw, headers, oid);
  const bodyStart = blank < raw.length ? blank + 1 : raw.length;
  const signatureStart = findTrailingSignature(raw);
  if (signatureStart < bodyStart && signatureStart < raw.length) {
    throw new MalformedObjectError('badHeaderOrder', 'tag has a signature block inside its headers', oid);
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
