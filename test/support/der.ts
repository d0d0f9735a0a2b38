// Hand-built DER for hostile-signature tests: TLV encoding, a long OBJECT IDENTIFIER, deep nesting.

export function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** tag ‖ DER length ‖ content. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const value = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(value.length), value]);
}

/**
 * OBJECT IDENTIFIER content of `size` bytes: 1.2 then one arc whose 7-bit groups all continue (0x81) but the
 * last. @sigstore/core accumulates that arc in a BigInt shifted once per byte.
 */
export function longOidContent(size: number): Buffer {
  const content = Buffer.alloc(size, 0x81);
  content[0] = 0x2a;
  content[size - 1] = 0x01;
  return content;
}

/** A ContentInfo whose contentType is a `size`-byte OID, as in the red-team commit. */
export function contentInfoWithLongOid(size: number): Buffer {
  return tlv(0x30, tlv(0x06, longOidContent(size)), tlv(0xa0, tlv(0x30)));
}

/** `depth` SEQUENCEs nested in one another around an empty one. */
export function nestedSequences(depth: number): Buffer {
  // Built from the inside out; lengths grow by 2–4 bytes per level.
  let inner = tlv(0x30);
  for (let level = 1; level < depth; level += 1) inner = tlv(0x30, inner);
  return inner;
}
