/**
 * Reads objects straight from the packs of a bare repository with Node's native zlib, as a fast path
 * next to isomorphic-git: isomorphic-git inflates every pack entry with pako (a JavaScript zlib that
 * allocates a fresh 64 KiB inflater per object) and resolves delta chains without a base cache, which
 * makes a 10,000-blob tree read cost seconds. Here a pack index (v2) lookup is a binary search, an
 * entry is inflated with `zlib.inflateSync`, delta bases are kept in a bounded LRU by pack offset,
 * and every object returned is checked against its id (SHA-1 of the object), so a damaged pack or
 * index fails closed. Objects that are not in a pack (loose) return undefined: the caller falls back.
 *
 * Every inflation is bounded by the configured limit of the object's type (object-limits.ts), never by
 * the size the pack declares: an entry declaring more is refused before it is inflated, one that
 * inflates past its declaration is stopped at the declaration, and a delta's declared base and result
 * sizes are checked before its result is allocated.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { SourceError } from './errors.ts';
import {
  defaultObjectLimits,
  deltaStreamLimit,
  heldLimit,
  largestLimit,
  limitOf,
  type ObjectLimits,
  ObjectTooLargeError,
} from './object-limits.ts';

export type PackedObjectType = 'commit' | 'tree' | 'blob' | 'tag';

export interface PackedObject {
  readonly type: PackedObjectType;
  readonly content: Uint8Array;
}

export interface PackStore {
  /**
   * The object, or undefined when no pack holds it. Throws CorruptRepository for a damaged pack,
   * ObjectTooLargeError (TooLarge) for an object over its type's limit.
   */
  read(oid: string): PackedObject | undefined;
  /** True when a pack holds `oid` (nothing is inflated). */
  has(oid: string): boolean;
  readonly stats: { inflated: number; baseHits: number };
}

export const typeNames: Record<number, PackedObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
export const ofsDelta = 6;
export const refDelta = 7;

interface Pack {
  readonly name: string;
  readonly index: Buffer;
  readonly data: Buffer;
  readonly count: number;
  readonly shaStart: number;
  readonly offsetStart: number;
  readonly largeOffsetStart: number;
}

function corrupt(pack: string, message: string): SourceError {
  return new SourceError('CorruptRepository', `pack ${pack}: ${message}`);
}

function parseIndex(name: string, index: Buffer, data: Buffer): Pack {
  if (
    index.length < 8 + 256 * 4 + 40 ||
    index.readUInt32BE(0) !== 0xff744f63 ||
    index.readUInt32BE(4) !== 2
  ) {
    throw corrupt(name, 'the index is not a version 2 pack index');
  }
  if (data.length < 32 || data.toString('latin1', 0, 4) !== 'PACK') throw corrupt(name, 'not a pack file');
  const count = index.readUInt32BE(8 + 255 * 4);
  const shaStart = 8 + 256 * 4;
  const offsetStart = shaStart + count * 20 + count * 4;
  const largeOffsetStart = offsetStart + count * 4;
  if (index.length < largeOffsetStart + 40) throw corrupt(name, 'the index is truncated');
  return { name, index, data, count, shaStart, offsetStart, largeOffsetStart };
}

/** Position of `oid` in the index's sorted id table, or -1. */
function findInIndex(pack: Pack, oid: Buffer): number {
  const first = oid[0] ?? 0;
  let low = first === 0 ? 0 : pack.index.readUInt32BE(8 + (first - 1) * 4);
  let high = pack.index.readUInt32BE(8 + first * 4) - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const at = pack.shaStart + middle * 20;
    const order = pack.index.compare(oid, 0, 20, at, at + 20) * -1;
    if (order === 0) return middle;
    if (order < 0) high = middle - 1;
    else low = middle + 1;
  }
  return -1;
}

function offsetAt(pack: Pack, position: number): number {
  const value = pack.index.readUInt32BE(pack.offsetStart + position * 4);
  if ((value & 0x80000000) === 0) return value;
  const large = pack.largeOffsetStart + (value & 0x7fffffff) * 8;
  if (large + 8 > pack.index.length) throw corrupt(pack.name, 'a 64-bit offset is out of range');
  return Number(pack.index.readBigUInt64BE(large));
}

export interface EntryHeader {
  readonly kind: number;
  readonly size: number;
  readonly dataStart: number;
  /** ofs-delta: the base's pack offset. */
  readonly baseOffset?: number;
  /** ref-delta: the base's object id. */
  readonly baseOid?: Buffer;
}

/** The entry header at `offset` (only the pack's bytes and name are used: pack-index.ts shares it). */
export function readHeader(pack: Pick<Pack, 'name' | 'data'>, offset: number): EntryHeader {
  const data = pack.data;
  if (offset < 12 || offset >= data.length - 20)
    throw corrupt(pack.name, `offset ${offset} is outside the pack`);
  let position = offset;
  let byte = data[position++] ?? 0;
  const kind = (byte >> 4) & 7;
  let size = byte & 15;
  let scale = 16;
  while (byte & 0x80) {
    byte = data[position++] ?? 0;
    size += (byte & 0x7f) * scale;
    scale *= 128;
    if (scale > 2 ** 53) throw corrupt(pack.name, `the size at offset ${offset} does not fit`);
  }
  if (kind === ofsDelta) {
    byte = data[position++] ?? 0;
    let distance = byte & 0x7f;
    while (byte & 0x80) {
      byte = data[position++] ?? 0;
      distance = (distance + 1) * 128 + (byte & 0x7f);
    }
    if (distance <= 0 || distance > offset) throw corrupt(pack.name, `a delta at ${offset} points outside`);
    return { kind, size, dataStart: position, baseOffset: offset - distance };
  }
  if (kind === refDelta) {
    return { kind, size, dataStart: position + 20, baseOid: data.subarray(position, position + 20) };
  }
  if (typeNames[kind] === undefined) throw corrupt(pack.name, `unknown entry type ${kind} at ${offset}`);
  return { kind, size, dataStart: position };
}

/**
 * zlib's output chunk for an object of `size` bytes: the whole object in one chunk (the 16 KiB
 * default makes every small object allocate, and the GC reclaim, 16 KiB; 10,000 small blobs inflate
 * in less than half the time this way), at most 4 MiB. One byte more than the object, not more: the
 * chunk comes from Buffer's shared pool, and a small object kept (a commit in the walk's cache) keeps
 * its whole chunk's slab alive (1 KiB chunks: 100,000 commits of 150 bytes held 120 MiB; exact
 * chunks: 15 MiB, at the same speed).
 */
export function inflateChunkSize(size: number): number {
  return Math.min(Math.max(size + 1, 64), 4 * 1024 * 1024);
}

/**
 * Inflates the entry of `header`, refusing it unless its declared size is within `limit` and stopping
 * zlib at the declared size (a stream that inflates further is corrupt, and never allocated).
 */
function inflateEntry(
  pack: Pack,
  offset: number,
  header: EntryHeader,
  limit: number,
  kind: PackedObjectType,
): Buffer {
  if (header.size > limit) {
    throw new ObjectTooLargeError(
      `pack ${pack.name}: the entry at offset ${offset}`,
      kind,
      header.size,
      limit,
      true,
    );
  }
  // Deflate output never exceeds its input by more than a few bytes per 16 KiB block plus framing:
  // bound the input so zlib does not scan the rest of the pack.
  const end = Math.min(pack.data.length - 20, header.dataStart + header.size + (header.size >> 10) + 64);
  return inflateBounded(
    pack.data.subarray(header.dataStart, end),
    header.size,
    `pack ${pack.name}: the entry at offset ${offset}`,
  );
}

/** `data` inflated to exactly `size` bytes; CorruptRepository when it inflates to more or fewer. */
export function inflateBounded(data: Buffer, size: number, where: string): Buffer {
  let inflated: Buffer;
  try {
    inflated = inflateSync(data, {
      maxOutputLength: Math.max(1, size),
      chunkSize: inflateChunkSize(size),
    });
  } catch (error) {
    const overran = (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    throw new SourceError(
      'CorruptRepository',
      overran
        ? `${where} inflates past the ${size} bytes it declares; refused`
        : `${where} does not inflate (${(error as Error).message})`,
      { cause: error },
    );
  }
  if (inflated.length !== size) {
    throw new SourceError(
      'CorruptRepository',
      `${where} inflated to ${inflated.length} bytes, its header says ${size}`,
    );
  }
  return inflated;
}

function readVarint(delta: Buffer, start: number): [number, number] {
  let value = 0;
  let scale = 1;
  let position = start;
  let byte: number;
  do {
    byte = delta[position++] ?? 0;
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80 && position < delta.length);
  return [value, position];
}

/** The base and result sizes a delta declares (its first two varints). */
export function deltaSizes(delta: Buffer): { baseSize: number; resultSize: number; start: number } {
  const [baseSize, afterBase] = readVarint(delta, 0);
  const [resultSize, start] = readVarint(delta, afterBase);
  return { baseSize, resultSize, start };
}

/**
 * Applies `delta` to `base`. The declared result size is checked against `limit` (the bound of the
 * base's type) before the result is allocated; `where` names the delta in messages.
 */
export function applyDelta(
  name: string,
  base: Buffer,
  delta: Buffer,
  limit: number,
  kind: PackedObjectType,
  where = `pack ${name}: a delta`,
): Buffer {
  const { baseSize, resultSize, start } = deltaSizes(delta);
  if (baseSize !== base.length) throw corrupt(name, 'a delta does not match its base');
  if (resultSize > limit)
    throw new ObjectTooLargeError(`${where} (its result)`, kind, resultSize, limit, true);
  const result = Buffer.allocUnsafe(resultSize);
  let out = 0;
  let position = start;
  while (position < delta.length) {
    const op = delta[position++] ?? 0;
    if (op & 0x80) {
      let copyOffset = 0;
      let copySize = 0;
      for (let bit = 0; bit < 4; bit++)
        if (op & (1 << bit)) copyOffset += (delta[position++] ?? 0) * 2 ** (8 * bit);
      for (let bit = 0; bit < 3; bit++)
        if (op & (0x10 << bit)) copySize += (delta[position++] ?? 0) << (8 * bit);
      if (copySize === 0) copySize = 0x10000;
      if (copyOffset + copySize > base.length || out + copySize > resultSize)
        throw corrupt(name, 'a delta copies outside its base');
      base.copy(result, out, copyOffset, copyOffset + copySize);
      out += copySize;
    } else if (op !== 0) {
      if (position + op > delta.length || out + op > resultSize)
        throw corrupt(name, 'a delta inserts too much');
      delta.copy(result, out, position, position + op);
      position += op;
      out += op;
    } else {
      throw corrupt(name, 'a delta has a reserved opcode');
    }
  }
  if (out !== resultSize) throw corrupt(name, 'a delta is shorter than it says');
  return result;
}

/** An LRU of resolved objects by `<pack>:<offset>` (delta bases are read again and again). */
export class BaseCache {
  readonly #entries = new Map<string, { kind: number; content: Buffer }>();
  #bytes = 0;
  readonly #maxBytes: number;
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }
  get(key: string): { kind: number; content: Buffer } | undefined {
    const found = this.#entries.get(key);
    if (found !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, found);
    }
    return found;
  }
  set(key: string, value: { kind: number; content: Buffer }): void {
    if (value.content.length > this.#maxBytes / 8 || this.#entries.has(key)) return;
    this.#entries.set(key, value);
    this.#bytes += value.content.length;
    for (const [oldKey, old] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(oldKey);
      this.#bytes -= old.content.length;
    }
  }
}

export const maxDeltaChain = 10_000;

function typeOf(name: string, kind: number): PackedObjectType {
  const type = typeNames[kind];
  if (type === undefined) throw corrupt(name, `an object resolves to type ${kind}`);
  return type;
}

/** The bound for an entry of pack type `kind` (a delta: the largest bound, its type is not known yet). */
export function entryLimit(limits: ObjectLimits, kind: number): number {
  const type = typeNames[kind];
  return type === undefined ? deltaStreamLimit(largestLimit(limits)) : limitOf(limits, type);
}

/**
 * Opens every pack of `gitdir` (read into memory, as isomorphic-git does). The repository must not
 * gain packs meanwhile: open a new store after a fetch.
 */
export async function openPackStore(
  gitdir: string,
  options: { baseCacheBytes?: number; limits?: ObjectLimits } = {},
): Promise<PackStore> {
  const limits = options.limits ?? defaultObjectLimits;
  const packDir = join(gitdir, 'objects', 'pack');
  const names = (await readdir(packDir).catch(() => [] as string[])).filter((n) => n.endsWith('.idx')).sort();
  const packs: Pack[] = [];
  for (const name of names) {
    const base = name.slice(0, -'.idx'.length);
    const [index, data] = await Promise.all([
      readFile(join(packDir, name)),
      readFile(join(packDir, `${base}.pack`)),
    ]);
    packs.push(parseIndex(base, index, data));
  }
  const bases = new BaseCache(options.baseCacheBytes ?? 32 * 1024 * 1024);
  const stats = { inflated: 0, baseHits: 0 };

  const locate = (oid: Buffer): { pack: Pack; offset: number } | undefined => {
    for (const pack of packs) {
      const position = findInIndex(pack, oid);
      if (position >= 0) return { pack, offset: offsetAt(pack, position) };
    }
    return undefined;
  };

  const resolveAt = (pack: Pack, offset: number): { kind: number; content: Buffer } => {
    // Walk down the delta chain to a cached object or a whole one, then apply the deltas upwards.
    const chain: { pack: Pack; offset: number; header: EntryHeader }[] = [];
    let current = { pack, offset };
    let resolved: { kind: number; content: Buffer } | undefined;
    while (resolved === undefined) {
      const key = `${current.pack.name}:${current.offset}`;
      const cached = bases.get(key);
      if (cached !== undefined) {
        stats.baseHits++;
        resolved = cached;
        break;
      }
      const header = readHeader(current.pack, current.offset);
      if (header.kind !== ofsDelta && header.kind !== refDelta) {
        stats.inflated++;
        const type = typeOf(current.pack.name, header.kind);
        // A delta base is never returned: it may be somewhat larger than the object asked for.
        const limit = chain.length === 0 ? limitOf(limits, type) : heldLimit(limits, type);
        const content = inflateEntry(current.pack, current.offset, header, limit, type);
        resolved = { kind: header.kind, content };
        bases.set(key, resolved);
        break;
      }
      chain.push({ ...current, header });
      if (chain.length > maxDeltaChain) throw corrupt(pack.name, 'a delta chain is too long (a cycle?)');
      if (header.baseOffset !== undefined) {
        current = { pack: current.pack, offset: header.baseOffset };
      } else {
        const found = locate(header.baseOid ?? Buffer.alloc(0));
        if (found === undefined) {
          throw corrupt(
            current.pack.name,
            `the base ${header.baseOid?.toString('hex')} of a delta is missing`,
          );
        }
        current = found;
      }
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const link = chain[i];
      if (link === undefined) continue;
      stats.inflated++;
      const type = typeOf(link.pack.name, resolved.kind);
      const limit = i === 0 ? limitOf(limits, type) : heldLimit(limits, type);
      const where = `pack ${link.pack.name}: the delta at offset ${link.offset}`;
      const delta = inflateEntry(link.pack, link.offset, link.header, deltaStreamLimit(limit), type);
      const content = applyDelta(link.pack.name, resolved.content, delta, limit, type, where);
      resolved = { kind: resolved.kind, content };
      bases.set(`${link.pack.name}:${link.offset}`, resolved);
    }
    return resolved;
  };

  return {
    stats,
    has(oid) {
      return /^[0-9a-f]{40}$/.test(oid) && locate(Buffer.from(oid, 'hex')) !== undefined;
    },
    read(oid) {
      if (!/^[0-9a-f]{40}$/.test(oid)) return undefined;
      const id = Buffer.from(oid, 'hex');
      const found = locate(id);
      if (found === undefined) return undefined;
      let resolvedObject: { kind: number; content: Buffer };
      try {
        resolvedObject = resolveAt(found.pack, found.offset);
      } catch (error) {
        if (error instanceof ObjectTooLargeError) {
          throw error.forObject(oid);
        }
        throw error;
      }
      const { kind, content } = resolvedObject;
      const type = typeNames[kind];
      if (type === undefined) throw corrupt(found.pack.name, `object ${oid} has type ${kind}`);
      const actual = createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
      if (actual !== oid) throw corrupt(found.pack.name, `object ${oid} reads back as ${actual}`);
      return { type, content };
    },
  };
}
