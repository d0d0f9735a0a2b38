import { describe, expect, it } from 'vitest';
import { treeFingerprint } from '../../src/render/fingerprint.ts';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('treeFingerprint', () => {
  const tree = {
    files: [
      { path: 'a.yaml', content: bytes('a'), oid: '1'.repeat(40) },
      { path: 'dir/b.yaml', content: bytes('b'), oid: '2'.repeat(40) },
    ],
    symlinks: [{ path: 'link.yaml', target: 'a.yaml' }],
  };

  it('ignores file order and changes with any path, blob id or symlink target', () => {
    const same = treeFingerprint({ ...tree, files: [...tree.files].reverse() });
    expect(same).toBe(treeFingerprint(tree));
    const variants = [
      { ...tree, files: [tree.files[0]!, { ...tree.files[1]!, path: 'dir/c.yaml' }] },
      { ...tree, files: [tree.files[0]!, { ...tree.files[1]!, oid: '3'.repeat(40) }] },
      { ...tree, files: [tree.files[0]!] },
      { ...tree, symlinks: [{ path: 'link.yaml', target: 'dir/b.yaml' }] },
      { ...tree, symlinks: [] },
    ];
    const prints = new Set([treeFingerprint(tree), ...variants.map(treeFingerprint)]);
    expect(prints.size).toBe(variants.length + 1);
  });

  it('hashes the content when a file has no blob id (local trees)', () => {
    const local = (text: string) => treeFingerprint({ files: [{ path: 'a.yaml', content: bytes(text) }] });
    expect(local('x')).toBe(local('x'));
    expect(local('x')).not.toBe(local('y'));
  });

  it('does not let a path and an id run together', () => {
    const a = treeFingerprint({ files: [{ path: 'ab', content: bytes(''), oid: 'c' }] });
    const b = treeFingerprint({ files: [{ path: 'a', content: bytes(''), oid: 'bc' }] });
    expect(a).not.toBe(b);
  });
});
