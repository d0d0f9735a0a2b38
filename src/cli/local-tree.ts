/**
 * Reads a manifest directory from the local filesystem the way the Git source reads a tree:
 * regular files as bytes, symlinks as data (never followed), bounded in count and size.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { TreeSnapshot } from '../controller/ports.ts';

export interface LocalTreeLimits {
  readonly maxFiles: number;
  readonly maxFileBytes: number;
  readonly maxDepth: number;
}

export const defaultLocalTreeLimits: LocalTreeLimits = {
  maxFiles: 20_000,
  maxFileBytes: 8 * 1024 * 1024,
  maxDepth: 32,
};

export async function readLocalTree(
  root: string,
  limits: LocalTreeLimits = defaultLocalTreeLimits,
): Promise<TreeSnapshot> {
  const files: { path: string; content: Uint8Array }[] = [];
  const symlinks: { path: string; target: string }[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > limits.maxDepth) throw new Error(`${dir}: deeper than ${limits.maxDepth} directories`);
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (entry.name === '.git') continue;
      const full = join(dir, entry.name);
      const path = relative(root, full).split(sep).join('/');
      if (entry.isSymbolicLink()) {
        symlinks.push({ path, target: await readlink(full) });
      } else if (entry.isDirectory()) {
        await walk(full, depth + 1);
      } else if (entry.isFile()) {
        if (files.length >= limits.maxFiles) throw new Error(`${root}: more than ${limits.maxFiles} files`);
        const info = await lstat(full);
        if (info.size > limits.maxFileBytes)
          throw new Error(`${path}: ${info.size} bytes is over the ${limits.maxFileBytes}-byte limit`);
        files.push({ path, content: await readFile(full) });
      }
    }
  };
  await walk(root, 0);
  return { files, symlinks };
}
