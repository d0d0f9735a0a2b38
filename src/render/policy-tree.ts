/**
 * Pieces of the pre-render checks (pure) shared by helm-policy.ts and kustomize-policy.ts: path
 * normalisation, symlink resolution inside the repository root, bounded UTF-8 reads of a tree's
 * files and the refusal naming a file and a field.
 */
import { posix } from 'node:path';
import { RenderError, type RenderErrorCode } from './errors.ts';
import type { RenderLimits, SourceFile, SourceSymlink } from './render.ts';

const maxSymlinkHops = 40;

/** `a/b/../c` → `a/c`; undefined when the path climbs above the root. */
export function normalise(path: string): string | undefined {
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else {
      out.push(segment);
    }
  }
  return out.join('/');
}

/**
 * Follows the symlinks (path → target) in every prefix of `path`; undefined when a link is
 * absolute, leaves the root, or more than 40 links are followed.
 */
export function resolveLinks(links: ReadonlyMap<string, string>, path: string): string | undefined {
  let segments = path === '' ? [] : path.split('/');
  let hops = 0;
  for (let i = 0; i < segments.length; i++) {
    const prefix = segments.slice(0, i + 1).join('/');
    const target = links.get(prefix);
    if (target === undefined) continue;
    if (++hops > maxSymlinkHops || target.startsWith('/')) return undefined;
    const joined = normalise(posix.join(posix.dirname(prefix), target));
    if (joined === undefined) return undefined;
    segments = [...(joined === '' ? [] : joined.split('/')), ...segments.slice(i + 1)];
    i = -1;
  }
  return segments.join('/');
}

/** The file's text: `missing` when it is not in the tree, FileTooLarge, InvalidEncoding. */
export function readTreeText(
  files: ReadonlyMap<string, SourceFile>,
  path: string,
  limits: RenderLimits,
  missing: RenderErrorCode,
): string {
  const file = files.get(path);
  if (file === undefined) throw new RenderError(missing, 'file is not in the tree', { file: path });
  if (file.content.byteLength > limits.maxFileBytes) {
    throw new RenderError(
      'FileTooLarge',
      `file is ${file.content.byteLength} bytes, the limit is ${limits.maxFileBytes}`,
      { file: path },
    );
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(file.content);
  } catch (cause) {
    throw new RenderError('InvalidEncoding', 'file is not valid UTF-8', { file: path }, cause);
  }
}

export function refuse(code: RenderErrorCode, file: string, field: string, message: string): never {
  throw new RenderError(code, `${field}: ${message}`, { file, fields: [field] });
}

/** Refuses (SymlinkEscape, naming the link) the first symlink whose target leaves the root. */
export function refuseEscapingLinks(
  links: ReadonlyMap<string, string>,
  symlinks: readonly SourceSymlink[] | undefined,
): void {
  for (const link of symlinks ?? []) {
    if (resolveLinks(links, link.path) === undefined) {
      throw new RenderError(
        'SymlinkEscape',
        `symlink points outside the repository root (target "${link.target}")`,
        { file: link.path },
      );
    }
  }
}
