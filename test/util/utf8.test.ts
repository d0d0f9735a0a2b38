import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeUtf8Prefix, Utf8LineSplitter } from '../../src/util/utf8.ts';

/** Accented letters (2 bytes), CJK (3 bytes) and emoji (4 bytes, a surrogate pair in JS). */
const text = 'Grüße, café, ñandú — 漢字かな交じり文 — 🙂🚀👩🏽‍💻';

function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

function linesOf(chunks: readonly Uint8Array[]): string[] {
  const splitter = new Utf8LineSplitter();
  return [...chunks.flatMap((chunk) => splitter.push(chunk)), ...splitter.end()];
}

describe('Utf8LineSplitter', () => {
  const events = [
    JSON.stringify({ type: 'MODIFIED', object: { data: { t: text } } }),
    JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '7' } } }),
    JSON.stringify({ type: 'ADDED', object: { data: { t: `${text}\n${text}` } } }),
  ];
  const stream = Buffer.from(`${events.join('\n')}\n`, 'utf8');

  it('keeps every character whole when a chunk ends at any byte, including inside a character', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(linesOf(splitAt(stream, [cut]))).toEqual(events);
    }
  });

  it('keeps every character whole with one byte per chunk', () => {
    const chunks = [...stream].map((byte) => Uint8Array.of(byte));
    expect(linesOf(chunks)).toEqual(events);
  });

  it('keeps every character whole for any chunking (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), (cuts) => {
        expect(linesOf(splitAt(stream, cuts))).toEqual(events);
      }),
    );
  });

  it('what decoding each chunk on its own does to the same stream (the bug this replaces)', () => {
    const cut = stream.indexOf(Buffer.from('漢')) + 1;
    const perChunk = splitAt(stream, [cut])
      .map((chunk) => Buffer.from(chunk).toString('utf8'))
      .join('');
    expect(perChunk).toContain('\uFFFD');
    expect(linesOf(splitAt(stream, [cut])).join('\n')).not.toContain('\uFFFD');
  });

  it('returns the unterminated last line at the end, and nothing for an empty stream', () => {
    const splitter = new Utf8LineSplitter();
    expect(splitter.push(Buffer.from('a\nb'))).toEqual(['a']);
    expect(splitter.push(Buffer.from('c'))).toEqual([]);
    expect(splitter.end()).toEqual(['bc']);
    expect(new Utf8LineSplitter().end()).toEqual([]);
  });

  it('decodes malformed bytes (not a split character) to U+FFFD, as before', () => {
    const splitter = new Utf8LineSplitter();
    expect(splitter.push(Uint8Array.of(0x61, 0xff, 0x62, 0x0a))).toEqual(['a\uFFFDb']);
    // A truncated character at the very end of the stream is malformed too.
    expect(splitter.push(Uint8Array.of(0x63, 0xe6, 0xbc))).toEqual([]);
    expect(splitter.end()).toEqual(['c\uFFFD']);
  });
});

describe('decodeUtf8Prefix', () => {
  const bytes = Buffer.from(text, 'utf8');

  it('decodes whole chunks once, whatever the chunking', () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(decodeUtf8Prefix(splitAt(bytes, [cut]), 1_000)).toBe(text);
    }
  });

  it('leaves out a character the byte bound cuts in two, never U+FFFD', () => {
    for (let max = 0; max <= bytes.length; max++) {
      const decoded = decodeUtf8Prefix(splitAt(bytes, [7, 19, 33]), max);
      expect(decoded).not.toContain('\uFFFD');
      expect(text.startsWith(decoded)).toBe(true);
      expect(Buffer.byteLength(decoded)).toBeLessThanOrEqual(max);
      // Only an incomplete character is left out: at most 3 bytes short.
      expect(max - Buffer.byteLength(decoded)).toBeLessThan(4);
    }
  });
});
