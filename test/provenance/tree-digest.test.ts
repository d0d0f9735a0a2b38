import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProvenanceError, treeDigest } from '../../src/provenance/index.ts';

const file = (path: string, content: string) => ({ path, content: Buffer.from(content) });

describe('treeDigest', () => {
  it('matches the documented construction', () => {
    const expected = createHash('sha256')
      .update(Buffer.from('signet-tree-v1\0a.yaml\x000\0b/c.yaml\x003\0abc', 'binary'))
      .digest('hex');
    const result = treeDigest([file('b/c.yaml', 'abc'), file('a.yaml', '')]);
    expect(result).toEqual({ digest: `sha256:${expected}`, sha256: expected, fileCount: 2 });
  });

  it('is independent of input order and sorts by UTF-8 bytes', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-zé😀]{1,6}(\/[a-z]{1,4})?$/u), { minLength: 1, maxLength: 8 }),
        (paths) => {
          const files = paths.map((p) => file(p, p.repeat(2)));
          expect(treeDigest([...files].reverse()).digest).toBe(treeDigest(files).digest);
        },
      ),
      { numRuns: 50 },
    );
    // UTF-16 order would put U+FB01 (ﬁ) after U+1F600 (😀); UTF-8 byte order puts it first.
    const a = treeDigest([file('\u{1F600}', '1'), file('\uFB01', '2')]);
    const manual = createHash('sha256')
      .update('signet-tree-v1\0')
      .update('\uFB01\x001\x002')
      .update('\u{1F600}\x001\x001')
      .digest('hex');
    expect(a.sha256).toBe(manual);
  });

  it('binds path, length and content (no ambiguity between files)', () => {
    const base = treeDigest([file('a', 'xy'), file('b', '')]).digest;
    expect(treeDigest([file('a', 'x'), file('b', 'y')]).digest).not.toBe(base);
    expect(treeDigest([file('a', 'xy'), file('c', '')]).digest).not.toBe(base);
    expect(treeDigest([file('a', 'xy')]).digest).not.toBe(base);
  });

  it('excludes .signet/, the bundle path, and files outside root', () => {
    const plain = treeDigest([file('app/deploy.yaml', 'k: v')], [], { root: 'app' });
    const noisy = treeDigest(
      [
        file('app/deploy.yaml', 'k: v'),
        file('app/.signet/provenance.sigstore.json', '{}'),
        file('app/bundle.json', '{}'),
        file('other/x.yaml', 'y'),
      ],
      [{ path: 'app/.signet/link', target: '../deploy.yaml' }],
      { root: 'app/', exclude: ['bundle.json'] },
    );
    expect(noisy).toEqual(plain);
    expect(plain.fileCount).toBe(1);
    expect(treeDigest([file('deploy.yaml', 'k: v')]).digest).toBe(plain.digest);
  });

  it('refuses symlinks, unnormalized and duplicate paths', () => {
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return error instanceof ProvenanceError ? error.code : 'other';
      }
      return 'none';
    };
    expect(err(() => treeDigest([file('a', '')], [{ path: 'b', target: '/etc/passwd' }]))).toBe(
      'SymlinkRefused',
    );
    for (const bad of ['/abs', 'a/../b', './a', 'a//b', 'a/', 'a\\b']) {
      expect(err(() => treeDigest([file(bad, '')]))).toBe('InvalidPath');
    }
    expect(err(() => treeDigest([file('a', '1'), file('a', '2')]))).toBe('DuplicatePath');
  });
});
