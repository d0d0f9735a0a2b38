/**
 * What a provenance bundle covers when spec.path is a kustomization (docs/provenance.md): every file
 * of the repository root, since the build may read any of them, except `.signet/` at the top of the
 * root and at the top of spec.path, where the bundle lives. Pure; shared by the operator's check and
 * `signet digest --path` so that both hash the same files.
 */
import { SIGNET_DIR } from './tree-digest.ts';

export interface ScopedTree<F extends { readonly path: string }, L extends { readonly path: string }> {
  readonly files: readonly F[];
  readonly symlinks: readonly L[];
}

/** The root tree without `<dir>/.signet/` (the top-level `.signet/` is left out by treeDigest). */
export function kustomizeProvenanceScope<
  F extends { readonly path: string },
  L extends { readonly path: string },
>(tree: ScopedTree<F, L>, dir: string): ScopedTree<F, L> {
  if (dir === '') return tree;
  const bundleDir = `${dir}/${SIGNET_DIR}`;
  const outside = (path: string): boolean => path !== bundleDir && !path.startsWith(`${bundleDir}/`);
  return {
    files: tree.files.filter((file) => outside(file.path)),
    symlinks: tree.symlinks.filter((link) => outside(link.path)),
  };
}
