import { describe, expect, it } from 'vitest';
import { RenderError, type RenderErrorCode } from '../../src/render/errors.ts';
import { managedByLabel, ownerNameLabel, ownerNamespaceLabel } from '../../src/render/labels.ts';
import { type RenderInput, renderManifests, type SourceFile } from '../../src/render/render.ts';

const owner = { name: 'repo', namespace: 'flux' };
const encoder = new TextEncoder();

function file(path: string, content: string): SourceFile {
  return { path, content: encoder.encode(content) };
}

function configMap(name: string, extra = ''): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  key: value${extra}\n`;
}

function renderError(input: RenderInput, limits = {}): RenderError {
  try {
    renderManifests(input, { owner, limits });
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
  throw new Error('expected a RenderError');
}

function expectCode(input: RenderInput, code: RenderErrorCode, limits = {}): RenderError {
  const error = renderError(input, limits);
  expect(error.code).toBe(code);
  return error;
}

describe('renderManifests', () => {
  it('reads yaml, yml and json recursively, multi-document, sorted by path, with owner labels', () => {
    const objects = renderManifests(
      {
        files: [
          file('b/two.yml', `${configMap('b1')}---\n${configMap('b2')}\n---\n`),
          file('a.yaml', configMap('a')),
          file(
            'c/deep/x.json',
            JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } }),
          ),
          file('README.md', '# not a manifest'),
        ],
      },
      { owner },
    );
    expect(objects.map((o) => [o.source.file, o.source.documentIndex, o.object.metadata.name])).toEqual([
      ['a.yaml', 0, 'a'],
      ['b/two.yml', 0, 'b1'],
      ['b/two.yml', 1, 'b2'],
      ['c/deep/x.json', 0, 's'],
    ]);
    for (const { object } of objects) {
      expect(object.metadata.labels).toMatchObject({
        [ownerNameLabel]: 'repo',
        [ownerNamespaceLabel]: 'flux',
        [managedByLabel]: 'signet',
      });
    }
  });

  it('keeps existing labels and unknown fields untouched', () => {
    const [rendered] = renderManifests(
      {
        files: [
          file(
            'x.yaml',
            'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  labels: {team: a}\nspec:\n  unknownField: {nested: [1, 2]}\n',
          ),
        ],
      },
      { owner },
    );
    expect(rendered?.object.metadata.labels?.team).toBe('a');
    expect(rendered?.object.spec).toEqual({ unknownField: { nested: [1, 2] } });
  });

  it('unwraps List documents and names the item on errors', () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n- ${configMap('one').replaceAll('\n', '\n  ').trimEnd()}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}\n`;
    const objects = renderManifests({ files: [file('list.yaml', list)] }, { owner });
    expect(objects.map((o) => [o.object.metadata.name, o.source.itemIndex])).toEqual([
      ['one', 0],
      ['two', 1],
    ]);
    const error = expectCode(
      {
        files: [
          file('list.yaml', 'apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n'),
        ],
      },
      'InvalidObject',
    );
    expect(error.itemIndex).toBe(0);
  });

  it('reports every missing field with file and document index', () => {
    const error = expectCode(
      { files: [file('bad.yaml', `${configMap('ok')}---\nmetadata: {labels: {a: 1}}\n`)] },
      'InvalidObject',
    );
    expect(error.file).toBe('bad.yaml');
    expect(error.documentIndex).toBe(1);
    expect(error.fields).toEqual(['apiVersion', 'kind', 'metadata.name', 'metadata.labels.a']);
    expect(error.message).toContain('bad.yaml (document 1)');
  });

  it('refuses non-mapping documents, syntax errors and duplicate keys', () => {
    expectCode({ files: [file('a.yaml', '- just\n- a list\n')] }, 'NotAnObject');
    const syntax = expectCode(
      { files: [file('a.yaml', `${configMap('a')}---\nkey: [unclosed\n`)] },
      'ParseError',
    );
    expect(syntax.documentIndex).toBe(1);
    expectCode({ files: [file('a.yaml', 'apiVersion: v1\napiVersion: v2\nkind: X\n')] }, 'ParseError');
    expectCode({ files: [file('a.json', '{"apiVersion": "v1",')] }, 'ParseError');
  });

  it('refuses invalid UTF-8', () => {
    expectCode(
      { files: [{ path: 'a.yaml', content: new Uint8Array([0xff, 0xfe, 0x00]) }] },
      'InvalidEncoding',
    );
  });

  it('enforces the file size, total size and object count bounds', () => {
    const big = file('big.yaml', configMap('a'));
    expectCode({ files: [big] }, 'FileTooLarge', { maxFileBytes: 10 });
    expectCode(
      { files: [file('a.yaml', configMap('a')), file('b.yaml', configMap('b'))] },
      'TotalSizeExceeded',
      {
        maxTotalBytes: 80,
      },
    );
    const many = Array.from({ length: 4 }, (_, index) => configMap(`cm${index}`)).join('---\n');
    const error = expectCode({ files: [file('many.yaml', many)] }, 'TooManyObjects', { maxObjects: 3 });
    expect(error.documentIndex).toBe(3);
    expect(
      renderManifests({ files: [file('many.yaml', many)] }, { owner, limits: { maxObjects: 4 } }),
    ).toHaveLength(4);
  });

  it('bounds YAML alias expansion (billion laughs)', () => {
    const laughs = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: lol}',
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');
    expectCode({ files: [file('lol.yaml', laughs)] }, 'TooManyAliases', { maxAliasCount: 50 });
  });

  it('bounds nesting depth', () => {
    const deep = `${'['.repeat(70)}${']'.repeat(70)}`;
    expectCode(
      { files: [file('deep.yaml', `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: ${deep}\n`)] },
      'TooDeep',
    );
    const shallow = `${'['.repeat(5)}${']'.repeat(5)}`;
    expect(() =>
      renderManifests(
        { files: [file('ok.yaml', `apiVersion: v1\nkind: X\nmetadata: {name: d}\nspec: ${shallow}\n`)] },
        { owner, limits: { maxDepth: 8 } },
      ),
    ).not.toThrow();
  });

  it('refuses kustomization files in any folder', () => {
    for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
      const error = expectCode({ files: [file(`apps/${name}`, 'resources: []\n')] }, 'KustomizeNotSupported');
      expect(error.message).toContain('a kustomization below spec.path is not built');
      expect(error.file).toBe(`apps/${name}`);
    }
  });

  it('skips .signet files and directories', () => {
    const objects = renderManifests(
      {
        files: [
          file('.signet/bundle.json', '{"not": "an object"}'),
          file('apps/.signet/x.yaml', 'garbage: ['),
          file('apps/cm.yaml', configMap('a')),
        ],
        symlinks: [{ path: '.signet/link', target: '/etc/passwd' }],
      },
      { owner },
    );
    expect(objects).toHaveLength(1);
  });

  it('refuses symlinks that escape the tree and ignores those inside it', () => {
    for (const target of ['/etc/passwd', '../../outside.yaml', '../a/../../x', '../..', '..\\..\\x']) {
      const error = expectCode(
        { files: [file('cm.yaml', configMap('a'))], symlinks: [{ path: 'dir/link.yaml', target }] },
        'SymlinkEscape',
      );
      expect(error.file).toBe('dir/link.yaml');
    }
    const objects = renderManifests(
      {
        files: [file('cm.yaml', configMap('a'))],
        symlinks: [
          { path: 'dir/link.yaml', target: '../cm.yaml' },
          { path: 'self', target: '.' },
        ],
      },
      { owner },
    );
    expect(objects).toHaveLength(1);
  });

  it('refuses absolute or dot-segment paths', () => {
    for (const path of ['/abs.yaml', '../up.yaml', 'a/./b.yaml', 'a//b.yaml', 'a\\b.yaml']) {
      expectCode({ files: [file(path, configMap('a'))] }, 'InvalidPath');
    }
  });

  it('merges identical duplicates and refuses different ones naming both files', () => {
    const same = renderManifests(
      { files: [file('a.yaml', configMap('x')), file('b.yaml', configMap('x'))] },
      { owner },
    );
    expect(same).toHaveLength(1);
    const error = expectCode(
      { files: [file('a.yaml', configMap('x')), file('b.yaml', configMap('x', '\n  other: 1'))] },
      'DuplicateObject',
    );
    expect(error.file).toBe('b.yaml');
    expect(error.otherFile).toBe('a.yaml');
    expect(error.message).toContain('a.yaml');
    expect(error.message).toContain('ConfigMap/x');
  });

  it('treats different versions of one object as duplicates', () => {
    expectCode(
      {
        files: [
          file('a.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n'),
          file('b.yaml', 'apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\n'),
        ],
      },
      'DuplicateObject',
    );
  });

  it('skips empty documents and empty files', () => {
    const objects = renderManifests(
      { files: [file('empty.yaml', ''), file('a.yaml', `---\n# comment\n---\n${configMap('a')}---\n`)] },
      { owner },
    );
    expect(objects).toHaveLength(1);
  });
});
