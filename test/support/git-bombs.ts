/**
 * Hostile Git objects for hardening tests, built without ever holding their inflated content: a zlib
 * stream of a prefix and a 1 MiB chunk repeated (a few hundred KiB that inflate to hundreds of MiB),
 * hand-made packs (entry headers that declare any size, deltas that declare any result) and pack
 * indexes, and `git fast-import` streams of long histories.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDeflate, deflateSync } from 'node:zlib';

export const mebibyte = 1024 * 1024;

/** zlib of `prefix` + `chunk` × `count`, and the SHA-1 of the same bytes (streamed, never whole). */
export async function deflateRepeated(
  prefix: Buffer,
  chunk: Buffer,
  count: number,
): Promise<{ compressed: Buffer; sha1: string }> {
  const hash = createHash('sha1');
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (part: Buffer) => parts.push(part));
  const done = new Promise<void>((resolve, reject) => {
    deflate.once('end', resolve);
    deflate.once('error', reject);
  });
  const write = async (bytes: Buffer) => {
    hash.update(bytes);
    if (!deflate.write(bytes)) await new Promise((resolve) => deflate.once('drain', resolve));
  };
  await write(prefix);
  for (let i = 0; i < count; i++) await write(chunk);
  deflate.end();
  await done;
  return { compressed: Buffer.concat(parts), sha1: hash.digest('hex') };
}

/** A loose object whose content is `prefix` + `fill` repeated up to `size` MiB; returns its oid. */
export async function writeLooseBomb(
  gitdir: string,
  type: 'commit' | 'tree' | 'blob' | 'tag',
  prefix: string,
  mib: number,
): Promise<{ oid: string; size: number; compressedBytes: number }> {
  const head = Buffer.from(prefix);
  const size = head.length + mib * mebibyte;
  const { compressed, sha1 } = await deflateRepeated(
    Buffer.concat([Buffer.from(`${type} ${size}\0`), head]),
    Buffer.alloc(mebibyte, 'x'),
    mib,
  );
  const dir = join(gitdir, 'objects', sha1.slice(0, 2));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, sha1.slice(2)), compressed);
  return { oid: sha1, size, compressedBytes: compressed.length };
}

/** A pack entry header: type and (declared) size. */
export function entryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let byte = (type << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(byte | 0x80);
    byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(byte);
  return Buffer.from(bytes);
}

/** The ofs-delta distance encoding. */
export function ofsDistance(distance: number): Buffer {
  const bytes = [distance & 0x7f];
  let rest = Math.floor(distance / 128);
  while (rest > 0) {
    rest -= 1;
    bytes.unshift(0x80 | (rest & 0x7f));
    rest = Math.floor(rest / 128);
  }
  return Buffer.from(bytes);
}

/** A delta varint. */
export function deltaVarint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return Buffer.from(bytes);
}

/** A version 2 pack of `entries` (each a header plus its zlib data), with its trailing SHA-1. */
export function packOf(entries: readonly Buffer[]): Buffer {
  const header = Buffer.alloc(12);
  header.write('PACK', 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(entries.length, 8);
  const body = Buffer.concat([header, ...entries]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

/** A version 2 pack index naming `objects` (oid → offset); CRCs are zero (nothing here reads them). */
export function indexOf(objects: readonly { oid: string; offset: number }[], pack: Buffer): Buffer {
  const sorted = [...objects].sort((a, b) => a.oid.localeCompare(b.oid));
  const fanout = Buffer.alloc(256 * 4);
  for (let byte = 0; byte < 256; byte++) {
    fanout.writeUInt32BE(
      sorted.filter((o) => Number.parseInt(o.oid.slice(0, 2), 16) <= byte).length,
      byte * 4,
    );
  }
  const ids = Buffer.concat(sorted.map((o) => Buffer.from(o.oid, 'hex')));
  const crcs = Buffer.alloc(sorted.length * 4);
  const offsets = Buffer.alloc(sorted.length * 4);
  sorted.forEach((o, i) => {
    offsets.writeUInt32BE(o.offset, i * 4);
  });
  const head = Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]);
  const body = Buffer.concat([head, fanout, ids, crcs, offsets, pack.subarray(-20)]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

/** Writes `pack` and its index into `gitdir`'s objects/pack. */
export async function installPack(gitdir: string, pack: Buffer, idx: Buffer): Promise<void> {
  const dir = join(gitdir, 'objects', 'pack');
  await mkdir(dir, { recursive: true });
  const name = `pack-${pack.subarray(-20).toString('hex')}`;
  await writeFile(join(dir, `${name}.pack`), pack);
  await writeFile(join(dir, `${name}.idx`), idx);
}

export function deflate(bytes: Buffer): Buffer {
  return deflateSync(bytes);
}

/**
 * A `git fast-import` stream of `count` commits on `ref` (empty trees, one second apart from `start`),
 * the first a root.
 */
export function fastImportHistory(ref: string, count: number, start: number, tag = 'c'): string {
  const lines: string[] = [];
  for (let i = 1; i <= count; i++) {
    lines.push(
      `commit ${ref}`,
      `mark :${i}`,
      `committer Mallory <mallory@example.com> ${start + i} +0000`,
      `data ${tag.length + String(i).length}`,
      `${tag}${i}`,
      ...(i === 1 ? [] : [`from :${i - 1}`]),
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}
