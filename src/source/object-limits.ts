/**
 * Bounds on what one Git object may inflate to, by type. They come from configuration (operator
 * flags), never from the object: a pack entry's or loose object's declared size is checked against
 * them before anything is allocated, and inflation itself is capped at the same bound, so a zlib
 * bomb (a few hundred KiB that inflate to gigabytes) is refused with memory in proportion to the
 * bound, not to the bomb. Pure.
 */
import { SourceError } from './errors.ts';

export type ObjectKind = 'commit' | 'tag' | 'tree' | 'blob';

export interface ObjectLimits {
  /** Largest commit or tag object, bytes (its message and signature included). */
  readonly commitBytes: number;
  /** Largest tree object, bytes (about 40 bytes per entry). */
  readonly treeBytes: number;
  /** Largest blob read, bytes: the render file-size limit. */
  readonly blobBytes: number;
}

const mebibyte = 1024 * 1024;

export const defaultObjectLimits: ObjectLimits = {
  commitBytes: mebibyte,
  treeBytes: 8 * mebibyte,
  blobBytes: 4 * mebibyte,
};

/**
 * The least bound on a blob held only as a delta base or an intermediate delta result (never
 * returned): a file somewhat over the file limit, changed across history, must not make the pack
 * unreadable. What is returned is still bounded by the file limit.
 */
export const deltaBaseFloor = 16 * mebibyte;

/** The bound on a blob or other object held only to resolve a delta. */
export function heldLimit(limits: ObjectLimits, kind: ObjectKind): number {
  const limit = limitOf(limits, kind);
  return kind === 'blob' ? Math.max(limit, deltaBaseFloor) : limit;
}

/** The flag of `signet run` / `verify` / `diff` that raises the bound of `kind`. */
export function limitFlag(kind: ObjectKind): string {
  if (kind === 'commit' || kind === 'tag') return '--max-commit-bytes';
  return kind === 'tree' ? '--max-tree-bytes' : '--max-file-bytes';
}

export function limitOf(limits: ObjectLimits, kind: ObjectKind): number {
  if (kind === 'commit' || kind === 'tag') return limits.commitBytes;
  return kind === 'tree' ? limits.treeBytes : limits.blobBytes;
}

/** The largest of the bounds (a delta's result before its type is known). */
export function largestLimit(limits: ObjectLimits): number {
  return Math.max(limits.commitBytes, limits.treeBytes, limits.blobBytes);
}

/**
 * A delta's instruction stream may be larger than its result (copy opcodes cost up to 8 bytes), but
 * not by more than this: git's deltas copy runs of at least 16 bytes and insert at most 127 per opcode.
 */
export function deltaStreamLimit(resultLimit: number): number {
  return 2 * resultLimit + 1024;
}

function mib(bytes: number): string {
  return bytes >= mebibyte && bytes % mebibyte === 0 ? `${bytes / mebibyte} MiB` : `${bytes} bytes`;
}

/** A SourceError naming an object over its bound. */
export class ObjectTooLargeError extends SourceError {
  readonly kind: ObjectKind;
  /** The size the object declares (or, when it overran its declaration, the bound + 1). */
  readonly size: number;
  readonly limit: number;
  /** Where the object is (pack and offset, or loose file). */
  readonly where: string;
  readonly declared: boolean;
  constructor(where: string, kind: ObjectKind, size: number, limit: number, declared: boolean) {
    super(
      'TooLarge',
      `${where}: ${kind} ${declared ? `declares ${size} bytes` : 'inflates to more than its bound'}, over the ${mib(limit)} ${kind} limit; refused before inflating it (raise the limit with ${limitFlag(kind)} if the object is legitimate)`,
    );
    this.kind = kind;
    this.size = size;
    this.limit = limit;
    this.where = where;
    this.declared = declared;
  }

  /** The same refusal, named by object id. */
  forObject(oid: string): ObjectTooLargeError {
    return new ObjectTooLargeError(
      `object ${oid} (${this.where})`,
      this.kind,
      this.size,
      this.limit,
      this.declared,
    );
  }
}
