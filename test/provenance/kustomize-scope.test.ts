import { describe, expect, it } from 'vitest';
import { kustomizeProvenanceScope } from '../../src/provenance/kustomize-scope.ts';

describe('kustomizeProvenanceScope', () => {
  const tree = {
    files: [
      { path: 'base/cm.yaml' },
      { path: 'apps/prod/kustomization.yaml' },
      { path: 'apps/prod/.signet/provenance.sigstore.json' },
      { path: 'apps/prod/.signet-not/x.yaml' },
      { path: 'apps/other/.signet/provenance.sigstore.json' },
      { path: '.signet/provenance.sigstore.json' },
    ],
    symlinks: [{ path: 'apps/prod/.signet/link' }, { path: 'base/link' }],
  };

  it('keeps the whole root but <spec.path>/.signet/ (the top-level .signet/ is treeDigest’s to leave out)', () => {
    expect(kustomizeProvenanceScope(tree, 'apps/prod')).toEqual({
      files: [
        { path: 'base/cm.yaml' },
        { path: 'apps/prod/kustomization.yaml' },
        { path: 'apps/prod/.signet-not/x.yaml' },
        { path: 'apps/other/.signet/provenance.sigstore.json' },
        { path: '.signet/provenance.sigstore.json' },
      ],
      symlinks: [{ path: 'base/link' }],
    });
  });

  it('is the tree itself for a kustomization at the root', () => {
    expect(kustomizeProvenanceScope(tree, '')).toBe(tree);
  });
});
