/**
 * Bounded reads of the objects of a bare repository (imperative shell): packed objects through
 * pack-store.ts, loose objects inflated here. Nothing is inflated past the configured limit of the
 * object's type (object-limits.ts): a loose object's header is read from the first KiB of its file
 * (at most ~1 MiB of output: deflate expands 1032:1 at most) and its declared size checked before
 * the whole file is read or inflated. Every object read is checked against its id. isomorphic-git
 * (pako, no output bound) never inflates an object for these reads.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, inflateSync } from 'node:zlib';
import { SourceError } from './errors.ts';
import {
  defaultObjectLimits,
  limitOf,
  type ObjectKind,
  type ObjectLimits,
  ObjectTooLargeError,
} from './object-limits.ts';
import { inflateBounded, openPackStore, type PackStore } from './pack-store.ts';

export interface GitObject {
  readonly type: ObjectKind;
  readonly content: Buffer;
}

export interface ObjectStore {
  /** The object; NotFound when absent, TooLarge over its limit, CorruptRepository when damaged. */
  read(oid: string): Promise<GitObject>;
  has(oid: string): Promise<boolean>;
  readonly limits: ObjectLimits;
}

const oidPattern = /^[0-9a-f]{40}$/;
const headerPattern = /^(commit|tree|blob|tag) (0|[1-9][0-9]{0,15})$/;

function loosePath(gitdir: string, oid: string): string {
  return join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
}

function corrupt(message: string): SourceError {
  return new SourceError('CorruptRepository', message);
}

/** The loose object `oid`, or undefined when there is no such file. */
export async function readLooseObject(
  gitdir: string,
  oid: string,
  limits: ObjectLimits,
): Promise<GitObject | undefined> {
  const where = `loose object ${oid}`;
  const handle = await open(loosePath(gitdir, oid), 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
    throw error;
  });
  if (handle === undefined) return undefined;
  try {
    const { size: fileSize } = await handle.stat();
    const prefix = Buffer.alloc(Math.min(fileSize, 1024));
    await handle.read(prefix, 0, prefix.length, 0);
    let head: Buffer;
    try {
      head = inflateSync(prefix, { finishFlush: constants.Z_SYNC_FLUSH });
    } catch (error) {
      throw corrupt(`${where} does not inflate (${(error as Error).message})`);
    }
    const nul = head.subarray(0, 32).indexOf(0);
    const match = nul < 0 ? null : headerPattern.exec(head.toString('latin1', 0, nul));
    if (match === null) throw corrupt(`${where} has no valid object header`);
    const type = match[1] as ObjectKind;
    const size = Number(match[2]);
    const limit = limitOf(limits, type);
    if (size > limit) throw new ObjectTooLargeError(`object ${oid} (${where})`, type, size, limit, true);
    // Deflate never grows its input by more than ~0.1% plus framing.
    if (fileSize > size + nul + 1 + ((size + nul) >> 9) + 1024) {
      throw corrupt(`${where} is a ${fileSize}-byte file for a ${size}-byte ${type}`);
    }
    const data = Buffer.alloc(fileSize);
    await handle.read(data, 0, fileSize, 0);
    const whole = inflateBounded(data, nul + 1 + size, where);
    const actual = createHash('sha1').update(whole).digest('hex');
    if (actual !== oid) throw corrupt(`${where} reads back as ${actual}`);
    return { type, content: whole.subarray(nul + 1) };
  } finally {
    await handle.close();
  }
}

/** True when `gitdir` holds `oid`, loose or in a pack (only pack indexes are read; nothing inflated). */
export async function hasObject(gitdir: string, oid: string): Promise<boolean> {
  if (!oidPattern.test(oid)) return false;
  const loose = await open(loosePath(gitdir, oid), 'r').then(
    (handle) => handle.close().then(() => true),
    () => false,
  );
  if (loose) return true;
  const packDir = join(gitdir, 'objects', 'pack');
  const names = await readdir(packDir).catch(() => [] as string[]);
  const id = Buffer.from(oid, 'hex');
  for (const name of names.filter((n) => n.endsWith('.idx'))) {
    const index = await readFile(join(packDir, name)).catch(() => undefined);
    if (index !== undefined && indexHolds(index, id)) return true;
  }
  return false;
}

/** Binary search of a version 2 pack index for `id`. */
function indexHolds(index: Buffer, id: Buffer): boolean {
  if (index.length < 8 + 256 * 4 || index.readUInt32BE(0) !== 0xff744f63) return false;
  const first = id[0] ?? 0;
  let low = first === 0 ? 0 : index.readUInt32BE(8 + (first - 1) * 4);
  let high = index.readUInt32BE(8 + first * 4) - 1;
  const start = 8 + 256 * 4;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const at = start + middle * 20;
    if (at + 20 > index.length) return false;
    const order = id.compare(index, at, at + 20);
    if (order === 0) return true;
    if (order < 0) high = middle - 1;
    else low = middle + 1;
  }
  return false;
}

/**
 * Opens `gitdir` for bounded reads. Its packs are read on the first packed read (the repository must
 * not gain packs meanwhile: open a new store after a fetch).
 */
export function openObjectStore(
  gitdir: string,
  options: { limits?: ObjectLimits; packStore?: Promise<PackStore> } = {},
): ObjectStore {
  const limits = options.limits ?? defaultObjectLimits;
  let packs = options.packStore;
  const packStore = () => {
    packs ??= openPackStore(gitdir, { limits });
    return packs;
  };
  return {
    limits,
    async read(oid) {
      if (!oidPattern.test(oid)) throw new SourceError('NotFound', `"${oid}" is not an object id`);
      const packed = (await packStore()).read(oid);
      if (packed !== undefined)
        return {
          type: packed.type,
          content: Buffer.from(packed.content.buffer, packed.content.byteOffset, packed.content.byteLength),
        };
      const loose = await readLooseObject(gitdir, oid, limits);
      if (loose !== undefined) return loose;
      throw new SourceError('NotFound', `object ${oid} is not in the repository`);
    },
    async has(oid) {
      if (!oidPattern.test(oid)) return false;
      if ((await packStore()).has(oid)) return true;
      return hasObject(gitdir, oid);
    },
  };
}
