/**
 * A fingerprint of the manifest tree at spec.path: the same for two revisions exactly when they
 * carry the same files (paths and contents, by Git blob id) and the same symlinks. Pure.
 */
import { createHash } from 'node:crypto';

export interface FingerprintInput {
  readonly files: readonly { readonly path: string; readonly content: Uint8Array; readonly oid?: string }[];
  readonly symlinks?: readonly { readonly path: string; readonly target: string }[];
}

export function treeFingerprint(tree: FingerprintInput): string {
  const lines: string[] = [];
  for (const file of tree.files) {
    // A blob id names the content; without one (a local tree) the content itself is hashed.
    const content = file.oid ?? `sha256:${createHash('sha256').update(file.content).digest('hex')}`;
    lines.push(`f\0${file.path}\0${content}`);
  }
  for (const link of tree.symlinks ?? []) lines.push(`l\0${link.path}\0${link.target}`);
  lines.sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}
