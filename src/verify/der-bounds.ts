// A bounded walk over untrusted DER, run before any ASN.1 parser sees the bytes. It costs O(size × depth)
// and refuses what DER forbids and what would make a parser slow: lengths past the end of their container,
// indefinite or non-minimal lengths, multi-byte tags, constructed forms of primitive types, nesting deeper
// than the limit, and OBJECT IDENTIFIERs or INTEGERs longer than any real certificate or CMS structure uses.
// (@sigstore/core turns an OID into a BigInt one 7-bit arc byte at a time, which is quadratic in its length:
// one 200,000-byte OID takes seconds to tens of seconds of synchronous CPU; see docs/reliability.md.)
//
// OCTET STRING contents are probed as DER too, as @sigstore/core does: when they do not parse they are
// opaque bytes, but any OID or INTEGER found inside contents that parse is held to the same bounds.

/** Bounds for a gitsign CMS signature. None of them comes from the signature itself. */
export interface DerLimits {
  /** Largest DER accepted, in bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of constructed elements (and of DER inside OCTET STRINGs), counting the outermost as 1. */
  readonly maxDepth: number;
  /** Longest OBJECT IDENTIFIER content, in bytes. */
  readonly maxOidBytes: number;
  /** Longest INTEGER content, in bytes (serial numbers are at most 20; ECDSA r/s at most 67). */
  readonly maxIntegerBytes: number;
  /**
   * Longest OID or INTEGER content inside OCTET STRING contents that parse as DER. Larger than the two above
   * because opaque bytes there (an RSA signature, a protobuf) can parse as DER by chance and look like a long
   * element (about 1 in 400 random 256-byte strings with a 64-byte bound); no OCTET STRING of a real
   * signature is this long, and @sigstore/core reads a 4 KiB OID in about a millisecond.
   */
  readonly maxOctetStringElementBytes: number;
}

export class DerBoundsError extends Error {
  readonly code = 'MalformedDer' as const;
  /** True when the bytes are not DER at all (a parser refuses them too); false when a bound or a DER rule was hit. */
  readonly structural: boolean;
  constructor(message: string, structural: boolean) {
    super(message);
    this.name = 'DerBoundsError';
    this.structural = structural;
  }
}

const TAG_INTEGER = 0x02;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x10;
const TAG_SET = 0x11;
const CLASS_UNIVERSAL = 0;
/** Largest length-of-length accepted: 4 bytes already exceeds any buffer this walk is given. */
const MAX_LENGTH_BYTES = 4;

interface Header {
  readonly tag: number;
  readonly constructed: boolean;
  readonly universal: boolean;
  readonly start: number;
  readonly contentStart: number;
  readonly contentEnd: number;
}

/** Not DER at all: an ASN.1 parser refuses these bytes too. */
function malformed(message: string): never {
  throw new DerBoundsError(message, true);
}

/** Parseable, but outside DER or a bound: refused here although a lenient parser would accept it. */
function refuse(message: string): never {
  throw new DerBoundsError(message, false);
}

function readLength(buf: Uint8Array, at: number, end: number): { length: number; next: number } {
  if (at >= end) malformed(`the element header at byte ${at} is truncated`);
  const first = buf[at] as number;
  if (first < 0x80) return { length: first, next: at + 1 };
  if (first === 0x80) malformed(`the element at byte ${at - 1} has an indefinite length, which DER forbids`);
  const count = first & 0x7f;
  if (count > MAX_LENGTH_BYTES) malformed(`the element at byte ${at - 1} has a ${count}-byte length field`);
  if (at + 1 + count > end) malformed(`the length of the element at byte ${at - 1} is truncated`);
  if (buf[at + 1] === 0) malformed(`the element at byte ${at - 1} has a non-minimal length`);
  let length = 0;
  for (let i = 1; i <= count; i += 1) length = length * 256 + (buf[at + i] as number);
  if (length < 0x80) malformed(`the element at byte ${at - 1} has a non-minimal length`);
  return { length, next: at + 1 + count };
}

function readHeader(buf: Uint8Array, at: number, end: number): Header {
  const identifier = buf[at] as number;
  const tag = identifier & 0x1f;
  const universal = identifier >> 6 === CLASS_UNIVERSAL;
  if (tag === 0x1f) malformed(`the element at byte ${at} has a multi-byte tag, which CMS never uses`);
  if (universal && tag === 0)
    malformed(`the element at byte ${at} has tag 0 (end-of-contents), which DER forbids`);
  const { length, next } = readLength(buf, at + 1, end);
  if (length > end - next) {
    malformed(
      `the element at byte ${at} claims ${length} content bytes but only ${end - next} remain in its container`,
    );
  }
  return {
    tag,
    constructed: (identifier & 0x20) !== 0,
    universal,
    start: at,
    contentStart: next,
    contentEnd: next + length,
  };
}

/**
 * One walk over a region. `strict` (outside OCTET STRINGs) applies DER's form rules and refuses at the first
 * violation. Inside an OCTET STRING the bytes may be opaque data that merely start like DER (a digest, an RSA
 * signature, a protobuf): there only the bounds apply, and a violation counts only if the whole content
 * parses, since otherwise @sigstore/core keeps the content as opaque bytes and never reads an OID from it.
 */
interface Walk {
  readonly buf: Uint8Array;
  readonly limits: DerLimits;
  readonly strict: boolean;
  /** First bound violated in a non-strict walk; reported only if the walk completes. */
  violation?: string;
}

function violate(walk: Walk, message: string): void {
  if (walk.strict) refuse(message);
  walk.violation ??= message;
}

/** OIDs and INTEGERs are bounded by content length whatever the constructed bit says (parsers ignore it). */
function checkBounds(walk: Walk, header: Header): void {
  const { limits } = walk;
  const length = header.contentEnd - header.contentStart;
  const [oidLimit, integerLimit] = walk.strict
    ? [limits.maxOidBytes, limits.maxIntegerBytes]
    : [limits.maxOctetStringElementBytes, limits.maxOctetStringElementBytes];
  const where = walk.strict ? '' : ' inside an OCTET STRING';
  if (header.tag === TAG_OID && length > oidLimit) {
    violate(
      walk,
      `the OBJECT IDENTIFIER at byte ${header.start}${where} is ${length} bytes long (limit ${oidLimit}; ` +
        'real ones are under 20)',
    );
  }
  if (header.tag === TAG_INTEGER && length > integerLimit) {
    violate(
      walk,
      `the INTEGER at byte ${header.start}${where} is ${length} bytes long (limit ${integerLimit})`,
    );
  }
}

/** DER's form rules: only SEQUENCE and SET are constructed; OIDs and INTEGERs are non-empty, OID arcs end. */
function checkForm(buf: Uint8Array, header: Header): void {
  const container = header.tag === TAG_SEQUENCE || header.tag === TAG_SET;
  if (container !== header.constructed) {
    refuse(
      `the element at byte ${header.start} (universal tag ${header.tag}) is ` +
        `${header.constructed ? 'constructed' : 'primitive'}, which DER forbids`,
    );
  }
  const length = header.contentEnd - header.contentStart;
  if (header.tag === TAG_OID || header.tag === TAG_INTEGER) {
    if (length === 0) refuse(`the element at byte ${header.start} (universal tag ${header.tag}) is empty`);
  }
  if (header.tag === TAG_OID && ((buf[header.contentEnd - 1] as number) & 0x80) !== 0) {
    refuse(`the OBJECT IDENTIFIER at byte ${header.start} ends inside an arc`);
  }
}

/** Walks the elements in [start, end); each must fit exactly. `depth` is the nesting level of these elements. */
function walkElements(walk: Walk, start: number, end: number, depth: number): void {
  if (depth > walk.limits.maxDepth) {
    // Not descending further keeps the cost bounded; in a non-strict walk the rest is taken as parseable.
    violate(walk, `DER nesting is deeper than ${walk.limits.maxDepth} levels`);
    return;
  }
  for (let at = start; at < end; ) {
    const header = readHeader(walk.buf, at, end);
    walkElement(walk, header, depth);
    at = header.contentEnd;
  }
}

function walkElement(walk: Walk, header: Header, depth: number): void {
  if (header.universal) {
    checkBounds(walk, header);
    if (walk.strict) checkForm(walk.buf, header);
    if (header.tag === TAG_OCTET_STRING && !header.constructed) probeOctetString(walk, header, depth);
  }
  if (header.constructed) walkElements(walk, header.contentStart, header.contentEnd, depth + 1);
}

/** OCTET STRING contents that parse as DER are held to the same bounds; contents that do not are opaque. */
function probeOctetString(walk: Walk, header: Header, depth: number): void {
  if (header.contentEnd === header.contentStart) return;
  const inner: Walk = { buf: walk.buf, limits: walk.limits, strict: false };
  try {
    walkElements(inner, header.contentStart, header.contentEnd, depth + 1);
  } catch (error) {
    if (error instanceof DerBoundsError && error.structural) return;
    throw error;
  }
  if (inner.violation !== undefined) violate(walk, inner.violation);
}

/**
 * Checks that `der` is one DER element within `limits`. Throws DerBoundsError (with the byte offset and the
 * bound) otherwise. Never allocates in proportion to the input beyond the call stack of `maxDepth` frames.
 */
export function assertBoundedDer(der: Uint8Array, limits: DerLimits): void {
  if (der.length > limits.maxBytes) {
    refuse(`the DER is ${der.length} bytes (limit ${limits.maxBytes})`);
  }
  if (der.length === 0) malformed('the DER is empty');
  const header = readHeader(der, 0, der.length);
  if (header.contentEnd !== der.length) {
    malformed(`${der.length - header.contentEnd} bytes follow the outermost element`);
  }
  walkElement({ buf: der, limits, strict: true }, header, 1);
}
