/**
 * Reading a fetched bare repository (imperative shell over isomorphic-git):
 * - `openRepoReader(dir)`: raw objects for verification, commit ranges and ancestry;
 * - `readTree(dir, commit, path, limits)`: the files under spec.path of one commit, bounded, with a
 *   blob cache keyed by oid so a blob already seen (in this or an earlier revision) is never read again.
 *
 * Shallow caches: a commit listed in `shallow` whose parents are absent is a history boundary.
 * A walk that must cross a boundary to answer correctly throws `ShallowHistory`; it never silently
 * answers from a truncated history.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import { SourceError } from './errors.ts';
import type { PackStore } from './pack-store.ts';
import { createReadOnlyFs, type ReadOnlyFs } from './read-only-fs.ts';

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

const objectTypes = new Set<string>(['commit', 'tag', 'tree', 'blob']);
const maxWalkCommits = 1_000_000;

/** isomorphic-git's per-repository cache (pack indexes); one per open repository. */
export type GitCache = Record<string, unknown>;

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

/** Opens a bare repository (or a `.git` directory) for verification reads. */
export function openRepoReader(
  dir: string,
  options: { fs?: ReadOnlyFs; gitCache?: GitCache } = {},
): RevisionReader {
  const cache: GitCache = options.gitCache ?? {};
  const gfs = options.fs ?? createReadOnlyFs();
  const nodes = new Map<string, CommitNode>();
  let shallow: Promise<Set<string>> | undefined;

  const has = async (oid: string): Promise<boolean> =>
    git.readObject({ fs: gfs, gitdir: dir, oid, format: 'deflated', cache }).then(
      () => true,
      () => false,
    );

  const nodeOf = async (oid: string): Promise<CommitNode> => {
    const known = nodes.get(oid);
    if (known !== undefined) return known;
    let parsed: Awaited<ReturnType<typeof git.readCommit>>;
    try {
      parsed = await git.readCommit({ fs: gfs, gitdir: dir, oid, cache });
    } catch (error) {
      throw new SourceError(
        'ShallowHistory',
        `commit ${oid} is not in the fetched history (the cache is shallow or the commit was never fetched)`,
        { cause: error },
      );
    }
    const parents = parsed.commit.parent;
    shallow ??= readShallow(dir);
    let boundary = false;
    if ((await shallow).has(oid)) {
      // Listed as shallow, but a later deeper fetch may have brought the parents after all.
      boundary = !(await Promise.all(parents.map(has))).every(Boolean);
    }
    const node: CommitNode = { parents, timestamp: parsed.commit.committer.timestamp, boundary };
    nodes.set(oid, node);
    return node;
  };

  const boundaryError = (oid: string) =>
    new SourceError(
      'ShallowHistory',
      `history was cut at commit ${oid} (shallow cache); a deeper fetch is needed to answer`,
    );

  return {
    async readObject(oid, signal) {
      signal?.throwIfAborted();
      let result: Awaited<ReturnType<typeof git.readObject>>;
      try {
        result = await git.readObject({ fs: gfs, gitdir: dir, oid, format: 'content', cache });
      } catch (error) {
        throw new SourceError('NotFound', `object ${oid} is not in the fetched repository`, { cause: error });
      }
      if (!objectTypes.has(result.type) || !(result.object instanceof Uint8Array)) {
        throw new SourceError('CorruptRepository', `object ${oid} has an unexpected type ${result.type}`);
      }
      return { type: result.type as GitObjectType, raw: result.object };
    },

    async listRange(head, since, signal) {
      // Paint walk in committer-date order (as git rev-list does): HEAD-side and SINCE-side marks
      // spread to parents; the walk stops once every queued commit is reachable from `since`.
      // Under clock skew it can only include extra commits, never miss one of the range.
      const headMark = 1;
      const sinceMark = 2;
      const marks = new Map<string, number>();
      const queue = new DateQueue();
      let active = 0; // queued commits without the SINCE mark
      const queued = new Set<string>();
      const enqueue = async (oid: string, mark: number) => {
        const before = marks.get(oid) ?? 0;
        const after = before | mark;
        if (after === before && before !== 0) return;
        marks.set(oid, after);
        if (queued.has(oid)) {
          if ((before & sinceMark) === 0 && (after & sinceMark) !== 0) active--;
          return;
        }
        const node = await nodeOf(oid);
        queued.add(oid);
        if ((after & sinceMark) === 0) active++;
        queue.push(oid, node.timestamp);
      };
      const order: string[] = [];
      await enqueue(head, headMark);
      if (since !== undefined) {
        try {
          await enqueue(since, sinceMark);
        } catch (error) {
          throw new SourceError(
            'ShallowHistory',
            `the last applied commit ${since} is not in the fetched history`,
            { cause: error },
          );
        }
      }
      let visited = 0;
      while (active > 0) {
        signal?.throwIfAborted();
        const oid = queue.pop();
        if (oid === undefined) break;
        queued.delete(oid);
        const mark = marks.get(oid) ?? 0;
        if ((mark & sinceMark) === 0) active--;
        if (++visited > maxWalkCommits)
          throw new SourceError(
            'TooLarge',
            `more than ${maxWalkCommits} commits between ${head} and ${since}`,
          );
        if (mark === headMark) order.push(oid);
        const node = await nodeOf(oid);
        if (node.boundary) {
          if ((mark & sinceMark) !== 0) continue; // the since side may stop at the boundary
          throw boundaryError(oid);
        }
        for (const parent of node.parents) {
          try {
            await enqueue(parent, mark);
          } catch (error) {
            if ((mark & sinceMark) !== 0) continue; // a missing ancestor of `since` only over-includes
            throw error;
          }
        }
      }
      return order.filter((oid) => marks.get(oid) === headMark);
    },

    async isAncestor(ancestor, descendant, signal) {
      if (ancestor === descendant) return true;
      // Fails closed: a boundary crossed before finding `ancestor` throws rather than answering false.
      const seen = new Set<string>([descendant]);
      const queue = new DateQueue();
      queue.push(descendant, (await nodeOf(descendant)).timestamp);
      for (let oid = queue.pop(); oid !== undefined; oid = queue.pop()) {
        signal?.throwIfAborted();
        const node = await nodeOf(oid);
        if (node.boundary) throw boundaryError(oid);
        for (const parent of node.parents) {
          if (parent === ancestor) return true;
          if (seen.has(parent)) continue;
          seen.add(parent);
          if (seen.size > maxWalkCommits)
            throw new SourceError(
              'TooLarge',
              `history of ${descendant} has more than ${maxWalkCommits} commits`,
            );
          queue.push(parent, (await nodeOf(parent)).timestamp);
        }
      }
      return false;
    },
  };
}

export interface ReadTreeOptions {
  readonly blobCache?: BlobCache;
  readonly signal?: AbortSignal;
  /** isomorphic-git cache object to share pack indexes between calls on the same repository. */
  readonly gitCache?: GitCache;
  /** A memoising read view of the repository (see read-only-fs.ts), shared between calls. */
  readonly fs?: ReadOnlyFs;
  /**
   * Native-zlib reads of packed blobs (see pack-store.ts): isomorphic-git inflates each pack entry
   * with pako and resolves delta chains uncached, seconds for a 10,000-blob tree. Blobs it does
   * not hold (loose objects) are read with isomorphic-git.
   */
  readonly packStore?: PackStore;
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
  const cache = options.gitCache ?? {};
  const gfs = options.fs ?? createReadOnlyFs();
  const blobs = options.blobCache ?? sharedBlobCache;
  const signal = options.signal;
  let parsed: Awaited<ReturnType<typeof git.readCommit>>;
  try {
    parsed = await git.readCommit({ fs: gfs, gitdir: dir, oid: commit, cache });
  } catch (error) {
    throw new SourceError('NotFound', `commit ${commit} is not in the fetched repository`, { cause: error });
  }
  let treeOid = parsed.commit.tree;
  for (const segment of normalised === '' ? [] : normalised.split('/')) {
    const { tree } = await git.readTree({ fs: gfs, gitdir: dir, oid: treeOid, cache });
    const entry = tree.find((e) => e.path === segment);
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
  const blob = async (oid: string): Promise<Uint8Array> => {
    const cached = blobs.get(oid);
    if (cached !== undefined) return cached;
    const packed = options.packStore?.read(oid);
    if (packed !== undefined && packed.type !== 'blob') {
      throw new SourceError('CorruptRepository', `tree entry ${oid} is a ${packed.type}, not a blob`);
    }
    const content = packed?.content ?? (await git.readBlob({ fs: gfs, gitdir: dir, oid, cache })).blob;
    blobs.set(oid, content);
    return content;
  };
  const walk = async (oid: string, prefix: string, depth: number): Promise<void> => {
    signal?.throwIfAborted();
    const { tree } = await git.readTree({ fs: gfs, gitdir: dir, oid, cache });
    for (const entry of tree) {
      const relative = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
      if (entry.type === 'tree') {
        if (depth + 1 > limits.maxDepth) {
          throw new SourceError('TooLarge', `${relative}: nested deeper than ${limits.maxDepth} directories`);
        }
        await walk(entry.oid, relative, depth + 1);
      } else if (entry.type === 'blob' && entry.mode === '120000') {
        countEntry(relative);
        const target = Buffer.from(await blob(entry.oid))
          .subarray(0, 4_096)
          .toString('utf8');
        symlinks.push({ path: relative, target, escapesTree: symlinkEscapes(relative, target) });
      } else if (entry.type === 'blob') {
        countEntry(relative);
        const content = await blob(entry.oid);
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
