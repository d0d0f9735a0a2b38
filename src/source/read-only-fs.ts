/**
 * A file system view for isomorphic-git READS of a repository that nobody writes meanwhile (a cache
 * directory after its fetch). isomorphic-git pays per object read a gitdir stat, a listing of
 * objects/pack and a failed open of the loose object path (each failure building a Node error):
 * most of the time of a 10,000-blob tree read. This view memoises stats and directory listings and
 * answers a loose-object miss from the memoised listing of its fan-out directory. Reads of file
 * contents go to disk; writes pass through (and drop the memo).
 */
import * as fs from 'node:fs';
import { basename, dirname } from 'node:path';

type Promises = typeof fs.promises;

function missing(path: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`ENOENT: no such file or directory, ${path}`);
  error.code = 'ENOENT';
  return error;
}

const probeError = missing('(no path)');
/** One shared error for loose-object misses: isomorphic-git only checks its code, and then reads the pack. */
const looseMiss = missing('(loose object)');
const looseObjectPath = /\/objects\/[0-9a-f]{2}\/[0-9a-f]{38}$/;

export interface ReadOnlyFs {
  readonly promises: Pick<
    Promises,
    | 'readFile'
    | 'writeFile'
    | 'mkdir'
    | 'rmdir'
    | 'unlink'
    | 'stat'
    | 'lstat'
    | 'readdir'
    | 'readlink'
    | 'symlink'
  >;
}

export function createReadOnlyFs(): ReadOnlyFs {
  const stats = new Map<string, Promise<fs.Stats>>();
  const listings = new Map<string, Promise<string[]>>();
  const nameSets = new Map<string, Promise<Set<string>>>();
  const forget = () => {
    stats.clear();
    listings.clear();
    nameSets.clear();
  };
  const namesIn = (path: string): Promise<Set<string>> => {
    let found = nameSets.get(path);
    if (found === undefined) {
      found = list(path).then(
        (names) => new Set(names),
        () => new Set<string>(),
      );
      nameSets.set(path, found);
    }
    return found;
  };
  const list = (path: string): Promise<string[]> => {
    let found = listings.get(path);
    if (found === undefined) {
      found = fs.promises.readdir(path);
      found.catch(() => undefined);
      listings.set(path, found);
    }
    return found;
  };
  const stat = (path: string): Promise<fs.Stats> => {
    let found = stats.get(path);
    if (found === undefined) {
      found = fs.promises.stat(path);
      found.catch(() => undefined);
      stats.set(path, found);
    }
    return found;
  };
  const promises: ReadOnlyFs['promises'] = {
    async readFile(...args: Parameters<Promises['readFile']>) {
      // isomorphic-git probes every fs it wraps (once per API call) with a bare readFile().
      if (args[0] === undefined) throw probeError;
      const path = String(args[0]);
      if (looseObjectPath.test(path)) {
        if (!(await namesIn(dirname(path))).has(basename(path))) throw looseMiss;
      }
      return fs.promises.readFile(...args);
    },
    async readdir(...args: Parameters<Promises['readdir']>) {
      if (args.length > 1 && args[1] !== undefined) return fs.promises.readdir(...args);
      return [...(await list(String(args[0])))];
    },
    stat: ((path: fs.PathLike) => stat(String(path))) as Promises['stat'],
    lstat: ((path: fs.PathLike) => stat(String(path))) as Promises['lstat'],
    readlink: fs.promises.readlink,
    async writeFile(...args: Parameters<Promises['writeFile']>) {
      forget();
      return fs.promises.writeFile(...args);
    },
    async mkdir(...args: Parameters<Promises['mkdir']>) {
      forget();
      return fs.promises.mkdir(...args);
    },
    async rmdir(...args: Parameters<Promises['rmdir']>) {
      forget();
      return fs.promises.rmdir(...args);
    },
    async unlink(...args: Parameters<Promises['unlink']>) {
      forget();
      return fs.promises.unlink(...args);
    },
    async symlink(...args: Parameters<Promises['symlink']>) {
      forget();
      return fs.promises.symlink(...args);
    },
  } as ReadOnlyFs['promises'];
  return { promises };
}
