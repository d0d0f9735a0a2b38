// The canonical digest of a manifest tree (docs/provenance.md, "Tree digest v1"). Pure.
import { createHash } from 'node:crypto';
import { ProvenanceError } from './errors.ts';

/** A regular file of the tree: posix path (relative to the repository or to `root`) and its bytes. */
export interface TreeFile {
  readonly path: string;
  readonly content: Uint8Array;
}

/** A symbolic link of the tree (only its path matters here). */
export interface TreeSymlink {
  readonly path: string;
  readonly target?: string;
}

export interface TreeDigestOptions {
  /** Only files under this directory count, with paths taken relative to it (spec.path). Default: all. */
  readonly root?: string;
  /** Further paths (relative to root) left out, e.g. a bundle kept outside `.signet/`. */
  readonly exclude?: readonly string[];
}

export interface TreeDigest {
  /** `sha256:<64 hex>`: the form signed by message-signature bundles (as ASCII bytes). */
  readonly digest: string;
  /** The 64 hex characters alone: the form in in-toto `subject[].digest.sha256`. */
  readonly sha256: string;
  readonly fileCount: number;
}

export const TREE_DIGEST_DOMAIN = 'signet-tree-v1\0';
export const SIGNET_DIR = '.signet';

/**
 * Why `path` cannot hold the provenance bundle, or undefined when it can. The bundle must be a file under
 * `.signet/` (relative to spec.path, without `.`, `..` or empty segments): only there is it left out of the
 * rendered manifests (render skips `.signet`) and out of the tree digest. Anywhere else a bundle named
 * `.yaml`/`.yml`/`.json` would be rendered as manifests, and a signed committer could add objects to it.
 */
export function bundlePathProblem(path: string): string | undefined {
  const segments = path.split('/');
  const wellFormed =
    !path.includes('\\') &&
    !path.includes('\0') &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..');
  if (wellFormed && segments.length >= 2 && segments[0] === SIGNET_DIR) return undefined;
  return `must be a file under ${SIGNET_DIR}/ such as ${SIGNET_DIR}/provenance.sigstore.json (no ".", ".." or empty segments): only there is the bundle kept out of the rendered manifests and the tree digest; elsewhere a .yaml/.yml/.json bundle would be applied as manifests`;
}

/** Checks a relative posix path: no leading or trailing `/`, no empty, `.` or `..` segments, no `\` or NUL. */
export function assertRelativePosixPath(path: string, what = 'path'): void {
  const bad =
    path === '' ||
    path.includes('\\') ||
    path.includes('\0') ||
    path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..');
  if (bad) {
    throw new ProvenanceError(
      'InvalidPath',
      `${what} ${JSON.stringify(path)} is not a normalized relative posix path (no leading '/', '.', '..', '\\\\' or empty segments)`,
    );
  }
}

/** Maps a repository path into the tree rooted at `root`; undefined when it lies outside. */
export function relativeTo(root: string | undefined, path: string): string | undefined {
  if (root === undefined || root === '' || root === '.') return path;
  const prefix = `${root.replace(/\/+$/, '')}/`;
  return path.startsWith(prefix) ? path.slice(prefix.length) : undefined;
}

function isExcluded(relative: string, exclude: ReadonlySet<string>): boolean {
  return relative === SIGNET_DIR || relative.startsWith(`${SIGNET_DIR}/`) || exclude.has(relative);
}

/**
 * sha256 over "signet-tree-v1\0" followed by, for each file sorted by the UTF-8 bytes of its path:
 * path, NUL, decimal byte length, NUL, content. `.signet/` and `exclude` are left out; any other
 * symlink is refused (ProvenanceError SymlinkRefused), as are unnormalized or duplicate paths.
 */
export function treeDigest(
  files: readonly TreeFile[],
  symlinks: readonly TreeSymlink[] = [],
  options: TreeDigestOptions = {},
): TreeDigest {
  if (options.root !== undefined && options.root !== '' && options.root !== '.') {
    assertRelativePosixPath(options.root.replace(/\/+$/, ''), 'root');
  }
  const exclude = new Set(options.exclude ?? []);
  for (const link of symlinks) {
    const relative = relativeTo(options.root, link.path);
    if (relative !== undefined && !isExcluded(relative, exclude)) {
      throw new ProvenanceError(
        'SymlinkRefused',
        `${link.path} is a symbolic link; symlinks are refused in a verified manifest tree (replace it with the file it points to)`,
      );
    }
  }
  const entries: { path: Buffer; content: Uint8Array }[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    assertRelativePosixPath(file.path);
    const relative = relativeTo(options.root, file.path);
    if (relative === undefined || isExcluded(relative, exclude)) continue;
    if (seen.has(relative))
      throw new ProvenanceError('DuplicatePath', `${file.path} appears twice in the tree`);
    seen.add(relative);
    entries.push({ path: Buffer.from(relative, 'utf8'), content: file.content });
  }
  entries.sort((a, b) => Buffer.compare(a.path, b.path));
  const hash = createHash('sha256').update(TREE_DIGEST_DOMAIN);
  for (const entry of entries) {
    hash
      .update(entry.path)
      .update('\0')
      .update(String(entry.content.byteLength))
      .update('\0')
      .update(entry.content);
  }
  const hex = hash.digest('hex');
  return { digest: `sha256:${hex}`, sha256: hex, fileCount: entries.length };
}
