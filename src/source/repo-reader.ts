/**
 * Reading a fetched bare repository (imperative shell over object-store.ts):
 * - `openRepoReader(dir)`: raw objects for verification, commit ranges and ancestry;
 * - `readTree(dir, commit, path, limits)`: the files under spec.path of one commit, bounded, with a
 *   blob cache keyed by oid so a blob already seen (in this or an earlier revision) is never read again.
 *
 * Every object is read with a bound from configuration (object-limits.ts): commits and tags, trees,
 * and blobs (the file-size limit) are refused with TooLarge, before they are inflated, when they
 * declare more. History walks (ranges, ancestry) visit at most `maxWalkCommits` commits (TooLarge
 * past that: fail closed), yield to the event loop every few milliseconds and stop when their
 * AbortSignal fires (spec.timeout), so unrelated or huge histories cannot hold the process.
 *
 * Shallow caches: a commit listed in `shallow` whose parents are absent is a history boundary.
 * A walk that must cross a boundary to answer correctly throws `ShallowHistory`; it never silently
 * answers from a truncated history.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { decodeUtf8Prefix } from '../util/utf8.ts';
import { SourceError } from './errors.ts';
import { defaultObjectLimits, type ObjectLimits, ObjectTooLargeError } from './object-limits.ts';
import { type ObjectStore, openObjectStore } from './object-store.ts';

export type GitObjectType = 'commit' | 'tag' | 'tree' | 'blob';

/** What the verifier consumes (structurally the same as src/verify's RevisionReader). */
export interface RevisionReader {
  /** The raw object content bytes (git.readObject format 'content'). */
  readObject(oid: string, signal?: AbortSignal): Promise<{ type: GitObjectType; raw: Uint8Array }>;
  /** Commits reachable from `head` and not from `since` (all when undefined), merges included, newest first. */
  listRange(head: string, since: string | undefined, signal?: AbortSignal): Promise<string[]>;
  /** True when `ancestor` is `descendant` or one of its ancestors. */
  isAncestor(ancestor: string, descendant: string, signal?: AbortSignal): Promise<boolean>;
}

export interface TreeLimits {
  /** Largest single file, bytes. */
  readonly maxFileBytes: number;
  /** All files under the path together, bytes. */
  readonly maxTotalBytes: number;
  /** Files plus symlinks under the path. */
  readonly maxFiles: number;
  /** Directory nesting below the path. */
  readonly maxDepth: number;
}

export const defaultTreeLimits: TreeLimits = {
  maxFileBytes: 4 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxFiles: 20_000,
  maxDepth: 32,
};

export interface TreeFile {
  /** Relative to the requested path, posix separators. */
  readonly path: string;
  readonly oid: string;
  readonly content: Uint8Array;
}

export interface TreeSymlink {
  /** Relative to the requested path, posix separators. */
  readonly path: string;
  /** The link target as stored (never followed). */
  readonly target: string;
  /** True when the target is absolute or resolves outside the requested path. */
  readonly escapesTree: boolean;
}

export interface RepoTree {
  readonly files: TreeFile[];
  readonly symlinks: TreeSymlink[];
}

/** A bounded LRU of blob contents by oid (blobs are immutable, so an oid hit is always right). */
export class BlobCache {
  readonly #entries = new Map<string, Uint8Array>();
  #bytes = 0;
  readonly #maxBytes: number;
  hits = 0;
  misses = 0;
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }
  get size(): number {
    return this.#entries.size;
  }
  /** Drops every blob (no GitRepository reads through this cache any more). */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
  get(oid: string): Uint8Array | undefined {
    const found = this.#entries.get(oid);
    if (found !== undefined) {
      this.hits++;
      this.#entries.delete(oid);
      this.#entries.set(oid, found);
    }
    return found;
  }
  set(oid: string, content: Uint8Array): void {
    this.misses++;
    if (this.#entries.has(oid) || content.byteLength > this.#maxBytes / 4) return;
    this.#entries.set(oid, content);
    this.#bytes += content.byteLength;
    for (const [key, value] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(key);
      this.#bytes -= value.byteLength;
    }
  }
}

/** Shared by every readTree call that brings no cache of its own. */
export const sharedBlobCache = new BlobCache(64 * 1024 * 1024);

/** Most commits one history walk (a range listing, an ancestry check) reads, by default. */
export const defaultMaxWalkCommits = 100_000;

const oidPattern = /^[0-9a-f]{40}$/;

/** Normalises a path inside the repository; undefined when absolute or containing `..`. */
export function normaliseTreePath(path: string): string | undefined {
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0')) return undefined;
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return undefined;
  return segments.join('/');
}

/** True when a symlink at `linkPath` (relative to the tree root) pointing at `target` leaves the tree. */
export function symlinkEscapes(linkPath: string, target: string): boolean {
  if (target.startsWith('/') || target.includes('\\') || target.includes('\0')) return true;
  const stack = linkPath.split('/').slice(0, -1);
  for (const segment of target.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (stack.length === 0) return true;
      stack.pop();
    } else {
      stack.push(segment);
    }
  }
  return false;
}

/**
 * The links of a commit a walk needs: its tree, parents and committer time (seconds). Pure. The ids
 * are fresh strings (not slices of the header text, which would keep every header of a long walk
 * alive).
 */
export function parseCommitLinks(
  content: Uint8Array,
  oid: string,
): { tree: string; parents: string[]; timestamp: number } {
  const data = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const headerEnd = data.indexOf('\n\n');
  const end = headerEnd < 0 ? data.length : headerEnd;
  let tree: string | undefined;
  const parents: string[] = [];
  let timestamp = 0;
  for (let start = 0; start < end; ) {
    const newline = data.indexOf(10, start);
    const lineEnd = newline < 0 || newline > end ? end : newline;
    if (lineEnd - start === 45 && data.toString('latin1', start, start + 5) === 'tree ') {
      tree ??= data.toString('latin1', start + 5, lineEnd);
    } else if (lineEnd - start === 47 && data.toString('latin1', start, start + 7) === 'parent ') {
      parents.push(data.toString('latin1', start + 7, lineEnd));
    } else if (data.toString('latin1', start, start + 10) === 'committer ') {
      const fields = data.toString('latin1', start, lineEnd).split(' ');
      timestamp = Number(fields[fields.length - 2]);
    }
    start = lineEnd + 1;
  }
  if (tree === undefined || !oidPattern.test(tree) || !parents.every((p) => oidPattern.test(p))) {
    throw new SourceError('CorruptRepository', `commit ${oid} has no valid tree or parent lines`);
  }
  return { tree, parents, timestamp: Number.isFinite(timestamp) ? timestamp : 0 };
}

export interface TreeEntry {
  readonly mode: string;
  readonly path: string;
  readonly oid: string;
  readonly type: 'tree' | 'blob' | 'commit';
}

const modeTypes: Record<string, TreeEntry['type']> = {
  '40000': 'tree',
  '040000': 'tree',
  '100644': 'blob',
  '100755': 'blob',
  '100664': 'blob',
  '120000': 'blob',
  '160000': 'commit',
};

/** A name git's verify_path() refuses (separators, `.`, `..`, `.git` and its NTFS/HFS aliases). */
function unsafeName(name: string): boolean {
  const hfsClean = name.replace(/[\u200C-\u200F\u202A-\u202E\u206A-\u206F\uFEFF]/g, '');
  const normalised = (hfsClean.split(':')[0] ?? '').toLowerCase().replace(/[. ]+$/, '');
  return (
    name === '' ||
    name.includes('/') ||
    name.includes('\\') ||
    hfsClean === '.' ||
    hfsClean === '..' ||
    normalised === '.git' ||
    /^\.?git~[1-9]$/.test(normalised)
  );
}

/** The entries of a tree object, by name in byte order. Pure; CorruptRepository when malformed. */
export function parseTree(content: Uint8Array, oid: string): TreeEntry[] {
  const data = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const entries: { entry: TreeEntry; name: Buffer }[] = [];
  let cursor = 0;
  while (cursor < data.length) {
    const space = data.indexOf(32, cursor);
    const nul = space < 0 ? -1 : data.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > data.length) {
      throw new SourceError('CorruptRepository', `tree ${oid} is malformed at byte ${cursor}`);
    }
    const rawMode = data.toString('latin1', cursor, space);
    const type = modeTypes[rawMode];
    const name = data.subarray(space + 1, nul);
    const path = name.toString('utf8');
    if (type === undefined) {
      throw new SourceError('CorruptRepository', `tree ${oid} has an entry of unknown mode ${rawMode}`);
    }
    if (unsafeName(path)) {
      throw new SourceError(
        'CorruptRepository',
        `tree ${oid} has an unsafe entry name ${JSON.stringify(path.slice(0, 64))}`,
      );
    }
    const mode = rawMode === '40000' ? '040000' : rawMode === '100664' ? '100644' : rawMode;
    entries.push({ entry: { mode, path, oid: data.toString('hex', nul + 1, nul + 21), type }, name });
    cursor = nul + 21;
  }
  return entries.sort((a, b) => Buffer.compare(a.name, b.name)).map((e) => e.entry);
}

interface CommitNode {
  readonly parents: readonly string[];
  /** Committer time, seconds. */
  readonly timestamp: number;
  /** A shallow boundary: its parents are not in the cache. */
  readonly boundary: boolean;
}

async function readShallow(dir: string): Promise<Set<string>> {
  const text = await fs.promises.readFile(join(dir, 'shallow'), 'utf8').catch(() => '');
  return new Set(text.split('\n').filter((line) => /^[0-9a-f]{40}$/.test(line)));
}

/** A max-heap of commits by committer time (newest first), ties in insertion order. */
class DateQueue {
  readonly #items: { oid: string; timestamp: number; seq: number }[] = [];
  #seq = 0;
  get length(): number {
    return this.#items.length;
  }
  push(oid: string, timestamp: number): void {
    const items = this.#items;
    items.push({ oid, timestamp, seq: this.#seq++ });
    let i = items.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.#before(i, up)) break;
      [items[i], items[up]] = [items[up] as (typeof items)[number], items[i] as (typeof items)[number]];
      i = up;
    }
  }
  pop(): string | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined) return undefined;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let best = i;
        if (left < items.length && this.#before(left, best)) best = left;
        if (right < items.length && this.#before(right, best)) best = right;
        if (best === i) break;
        [items[i], items[best]] = [items[best] as (typeof items)[number], items[i] as (typeof items)[number]];
        i = best;
      }
    }
    return top.oid;
  }
  #before(a: number, b: number): boolean {
    const x = this.#items[a];
    const y = this.#items[b];
    if (x === undefined || y === undefined) return false;
    return x.timestamp > y.timestamp || (x.timestamp === y.timestamp && x.seq < y.seq);
  }
}

export interface RepoReaderOptions {
  /** Bounds on objects read (default defaultObjectLimits). */
  readonly limits?: ObjectLimits;
  /** Most commits one walk reads (default defaultMaxWalkCommits); more is TooLarge. */
  readonly maxWalkCommits?: number;
  /** A store already open on the directory (shares its pack cache). */
  readonly store?: ObjectStore;
}

/**
 * The budget of one history walk: counts commits read, yields to the event loop every ~10 ms
 * (timers, lease renewals and other reconciles keep running, and an AbortSignal.timeout can fire)
 * and stops when `signal` fires.
 */
function walkBudget(max: number, signal: AbortSignal | undefined, what: () => string) {
  let read = 0;
  let lastYield = performance.now();
  return async (): Promise<void> => {
    if (++read > max) {
      throw new SourceError(
        'TooLarge',
        `${what()}: more than ${max} commits would have to be read; refused (raise the bound with --max-walk-commits)`,
      );
    }
    if ((read & 31) === 0 && performance.now() - lastYield > 10) {
      await nextTurn();
      lastYield = performance.now();
    }
    signal?.throwIfAborted();
  };
}

/** Opens a bare repository (or a `.git` directory) for verification reads. */
export function openRepoReader(dir: string, options: RepoReaderOptions = {}): RevisionReader {
  const store = options.store ?? openObjectStore(dir, { limits: options.limits ?? defaultObjectLimits });
  const maxWalk = options.maxWalkCommits ?? defaultMaxWalkCommits;
  const nodes = new Map<string, CommitNode>();
  let shallow: Promise<Set<string>> | undefined;

  const nodeOf = async (oid: string): Promise<CommitNode> => {
    const known = nodes.get(oid);
    if (known !== undefined) return known;
    let object: Awaited<ReturnType<ObjectStore['read']>>;
    try {
      object = await store.read(oid);
    } catch (error) {
      if (error instanceof SourceError && error.code !== 'NotFound') throw error;
      throw new SourceError(
        'ShallowHistory',
        `commit ${oid} is not in the fetched history (the cache is shallow or the commit was never fetched)`,
        { cause: error },
      );
    }
    if (object.type !== 'commit') {
      throw new SourceError('CorruptRepository', `object ${oid} is a ${object.type}, expected a commit`);
    }
    const { parents, timestamp } = parseCommitLinks(object.content, oid);
    shallow ??= readShallow(dir);
    let boundary = false;
    if ((await shallow).has(oid)) {
      // Listed as shallow, but a later deeper fetch may have brought the parents after all.
      boundary = !(await Promise.all(parents.map((parent) => store.has(parent)))).every(Boolean);
    }
    const node: CommitNode = { parents, timestamp, boundary };
    nodes.set(oid, node);
    return node;
  };

  const boundaryError = (oid: string) =>
    new SourceError(
      'ShallowHistory',
      `history was cut at commit ${oid} (shallow cache); a deeper fetch is needed to answer`,
    );

  /**
   * Paints history in committer-date order from two sides (as git rev-list and merge-base do): what
   * `head` reaches gets mark 1, what `other` reaches mark 2. A commit reached from `other` (other
   * than `other` itself) cannot lead back to `other`, nor into the range, so the walk stops once
   * every queued commit carries mark 2, or when `stop` says so. Under clock skew it only walks more.
   */
  const paint = async (
    head: string,
    other: string | undefined,
    budget: () => Promise<void>,
    visit: (oid: string, mark: number, marks: ReadonlyMap<string, number>) => boolean,
  ): Promise<Map<string, number>> => {
    const headMark = 1;
    const otherMark = 2;
    const marks = new Map<string, number>();
    const queue = new DateQueue();
    const queued = new Set<string>();
    let active = 0; // queued commits without the other side's mark
    const enqueue = async (oid: string, mark: number) => {
      const before = marks.get(oid) ?? 0;
      const after = before | mark;
      if (after === before && before !== 0) return;
      marks.set(oid, after);
      if (queued.has(oid)) {
        if ((before & otherMark) === 0 && (after & otherMark) !== 0) active--;
        return;
      }
      if (before === 0) await budget();
      const node = await nodeOf(oid);
      queued.add(oid);
      if ((after & otherMark) === 0) active++;
      queue.push(oid, node.timestamp);
    };
    await enqueue(head, headMark);
    if (other !== undefined) {
      try {
        await enqueue(other, otherMark);
      } catch (error) {
        if (error instanceof SourceError && error.code !== 'ShallowHistory') throw error;
        throw new SourceError('ShallowHistory', `commit ${other} is not in the fetched history`, {
          cause: error,
        });
      }
    }
    while (active > 0) {
      const oid = queue.pop();
      if (oid === undefined) break;
      queued.delete(oid);
      const mark = marks.get(oid) ?? 0;
      if ((mark & otherMark) === 0) active--;
      if (visit(oid, mark, marks)) break;
      const node = await nodeOf(oid);
      if (node.boundary) {
        if ((mark & otherMark) !== 0) continue; // the other side may stop at the boundary
        throw boundaryError(oid);
      }
      for (const parent of node.parents) {
        try {
          await enqueue(parent, mark);
        } catch (error) {
          // A missing ancestor of `other` only makes the walk longer.
          if ((mark & otherMark) !== 0 && error instanceof SourceError && error.code === 'ShallowHistory')
            continue;
          throw error;
        }
      }
    }
    return marks;
  };

  return {
    async readObject(oid, signal) {
      signal?.throwIfAborted();
      let object: Awaited<ReturnType<ObjectStore['read']>>;
      try {
        object = await store.read(oid);
      } catch (error) {
        if (error instanceof SourceError && error.code !== 'NotFound') throw error;
        throw new SourceError('NotFound', `object ${oid} is not in the fetched repository`, { cause: error });
      }
      return { type: object.type, raw: object.content };
    },

    async listRange(head, since, signal) {
      const order: string[] = [];
      const budget = walkBudget(
        maxWalk,
        signal,
        () => `listing the commits from ${since ?? 'the root'} to ${head}`,
      );
      const marks = await paint(head, since, budget, (oid, mark) => {
        if (mark === 1) order.push(oid);
        return false;
      });
      return order.filter((oid) => marks.get(oid) === 1);
    },

    async isAncestor(ancestor, descendant, signal) {
      if (ancestor === descendant) return true;
      // A bounded merge-base search: found only when the descendant's side reaches `ancestor`;
      // fails closed (throws) on a boundary, the walk bound or the deadline, never answers true.
      const budget = walkBudget(
        maxWalk,
        signal,
        () => `deciding whether ${descendant} descends from ${ancestor} (rollback protection)`,
      );
      // An ancestor that is not in the repository cannot be reached: walk the descendant's side alone
      // (to a shallow boundary, which throws, or to the roots).
      const other = (await store.has(ancestor)) ? ancestor : undefined;
      const reached = (marks: ReadonlyMap<string, number>) => ((marks.get(ancestor) ?? 0) & 1) !== 0;
      return reached(await paint(descendant, other, budget, (_oid, _mark, marks) => reached(marks)));
    },
  };
}

export interface ReadTreeOptions {
  readonly blobCache?: BlobCache;
  readonly signal?: AbortSignal;
  /**
   * A bounded object store open on the repository (shares its pack cache between calls); its blob
   * bound should be `limits.maxFileBytes`. Default: one opened for this call with that bound.
   */
  readonly store?: ObjectStore;
  /** Bounds on commits and trees when no store is given (default defaultObjectLimits). */
  readonly objectLimits?: ObjectLimits;
}

/** The object `oid`, which must be a `type`: NotFound when absent, TooLarge over its bound. */
async function readTyped(
  store: ObjectStore,
  oid: string,
  type: 'commit' | 'tree',
  what: string,
): Promise<Buffer> {
  let object: Awaited<ReturnType<ObjectStore['read']>>;
  try {
    object = await store.read(oid);
  } catch (error) {
    if (error instanceof SourceError && error.code !== 'NotFound') throw error;
    throw new SourceError('NotFound', `${what} ${oid} is not in the fetched repository`, { cause: error });
  }
  if (object.type !== type) {
    throw new SourceError('CorruptRepository', `${what} ${oid} is a ${object.type}, not a ${type}`);
  }
  return object.content;
}

/** The files under `path` of `commit`: only the blobs under the path are read, each at most once. */
export async function readTree(
  dir: string,
  commit: string,
  path: string,
  limits: TreeLimits = defaultTreeLimits,
  options: ReadTreeOptions = {},
): Promise<RepoTree> {
  const normalised = normaliseTreePath(path);
  if (normalised === undefined) {
    throw new SourceError('InvalidPath', `spec.path "${path}" must be relative and must not contain ".."`);
  }
  const store =
    options.store ??
    openObjectStore(dir, {
      limits: { ...(options.objectLimits ?? defaultObjectLimits), blobBytes: limits.maxFileBytes },
    });
  const blobs = options.blobCache ?? sharedBlobCache;
  const signal = options.signal;
  const treeOf = async (oid: string) => parseTree(await readTyped(store, oid, 'tree', 'tree'), oid);
  let treeOid = parseCommitLinks(await readTyped(store, commit, 'commit', 'commit'), commit).tree;
  for (const segment of normalised === '' ? [] : normalised.split('/')) {
    const entry = (await treeOf(treeOid)).find((e) => e.path === segment);
    if (entry === undefined || entry.type !== 'tree') {
      throw new SourceError(
        'NotFound',
        `spec.path "${normalised}" is not a directory at commit ${commit.slice(0, 12)}`,
      );
    }
    treeOid = entry.oid;
  }

  const files: TreeFile[] = [];
  const symlinks: TreeSymlink[] = [];
  let total = 0;
  const countEntry = (relative: string) => {
    if (files.length + symlinks.length >= limits.maxFiles) {
      throw new SourceError(
        'TooLarge',
        `more than ${limits.maxFiles} files under spec.path "${normalised}" (at ${relative})`,
      );
    }
  };
  const blob = async (oid: string, relative: string): Promise<Uint8Array> => {
    const cached = blobs.get(oid);
    if (cached !== undefined) return cached;
    let object: Awaited<ReturnType<ObjectStore['read']>>;
    try {
      object = await store.read(oid);
    } catch (error) {
      if (error instanceof ObjectTooLargeError && error.kind === 'blob') {
        // Refused from its declared size, before it was inflated.
        throw new SourceError(
          'TooLarge',
          `${relative}: ${error.declared ? `${error.size} bytes` : 'the file'} is over the ${error.limit}-byte file limit`,
          { cause: error },
        );
      }
      throw error;
    }
    if (object.type !== 'blob') {
      throw new SourceError('CorruptRepository', `tree entry ${oid} is a ${object.type}, not a blob`);
    }
    blobs.set(oid, object.content);
    return object.content;
  };
  const walk = async (oid: string, prefix: string, depth: number): Promise<void> => {
    signal?.throwIfAborted();
    for (const entry of await treeOf(oid)) {
      const relative = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
      if (entry.type === 'tree') {
        if (depth + 1 > limits.maxDepth) {
          throw new SourceError('TooLarge', `${relative}: nested deeper than ${limits.maxDepth} directories`);
        }
        await walk(entry.oid, relative, depth + 1);
      } else if (entry.type === 'blob' && entry.mode === '120000') {
        countEntry(relative);
        // At most 4 KiB of the target, cut on a character (a cut one would read as U+FFFD).
        const target = decodeUtf8Prefix([await blob(entry.oid, relative)], 4_096);
        symlinks.push({ path: relative, target, escapesTree: symlinkEscapes(relative, target) });
      } else if (entry.type === 'blob') {
        countEntry(relative);
        const content = await blob(entry.oid, relative);
        if (content.byteLength > limits.maxFileBytes) {
          throw new SourceError(
            'TooLarge',
            `${relative}: ${content.byteLength} bytes is over the ${limits.maxFileBytes}-byte file limit`,
          );
        }
        total += content.byteLength;
        if (total > limits.maxTotalBytes) {
          throw new SourceError(
            'TooLarge',
            `files under spec.path "${normalised}" exceed ${limits.maxTotalBytes} bytes (at ${relative})`,
          );
        }
        files.push({ path: relative, oid: entry.oid, content });
      }
      // Submodule entries (type commit) are skipped: their content is not in this repository.
    }
  };
  await walk(treeOid, '', 0);
  return { files, symlinks };
}
