import { describe, expect, it } from 'vitest';
import { RenderError, type RenderErrorCode } from '../../src/render/errors.ts';
import { checkKustomization, type KustomizeTree } from '../../src/render/kustomize-policy.ts';
import type { SourceFile } from '../../src/render/render.ts';

const encoder = new TextEncoder();
function file(path: string, content: string): SourceFile {
  return { path, content: encoder.encode(content) };
}
const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n';
const base = [file('base/kustomization.yaml', 'resources: [cm.yaml]\n'), file('base/cm.yaml', cm)];

function tree(
  kustomization: string,
  extra: SourceFile[] = [],
  symlinks: KustomizeTree['symlinks'] = [],
): KustomizeTree {
  return { files: [...base, file('apps/prod/kustomization.yaml', kustomization), ...extra], symlinks };
}

function refusal(input: KustomizeTree, dir = 'apps/prod'): RenderError {
  try {
    checkKustomization(input, dir);
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
  throw new Error('expected a RenderError');
}

function expectRefused(
  input: KustomizeTree,
  code: RenderErrorCode,
  field: string,
  file = 'apps/prod/kustomization.yaml',
): RenderError {
  const error = refusal(input);
  expect(error.code).toBe(code);
  expect(error.file).toBe(file);
  expect(error.fields).toEqual([field]);
  expect(error.message).toContain(`${file}: ${field}`);
  return error;
}

describe('checkKustomization', () => {
  it('walks bases, components and every file field inside the root', () => {
    const result = checkKustomization(
      tree(
        [
          'resources: [../../base, extra.yaml]',
          'components: [../../components/c]',
          'patches:',
          '- path: patch.yaml',
          '- patch: |-\n    - op: add\n      path: /x\n      value: 1\n  target: {kind: ConfigMap}',
          'patchesStrategicMerge: [smp.yaml]',
          'patchesJson6902:\n- target: {kind: ConfigMap, name: a, version: v1}\n  path: json.yaml',
          'configMapGenerator:\n- name: g\n  files: [k=data/a.txt, data/b.txt]\n  envs: [data/env]',
          'secretGenerator:\n- name: s\n  literals: [a=b]',
          'replacements:\n- path: repl.yaml',
          'configurations: [conf.yaml]',
          'openapi: {path: ../../schema.json}',
          'transformers:\n- |-\n  apiVersion: builtin\n  kind: PrefixSuffixTransformer\n  metadata: {name: p}\n  prefix: x-',
          '',
        ].join('\n'),
        [
          file(
            'components/c/kustomization.yaml',
            'apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n',
          ),
          file('schema.json', '{}'),
          file('apps/prod/extra.yaml', cm),
        ],
      ),
      'apps/prod',
    );
    expect(result.kustomizations).toEqual([
      'apps/prod/kustomization.yaml',
      'base/kustomization.yaml',
      'components/c/kustomization.yaml',
    ]);
  });

  it.each([
    ['https://github.com/org/repo//base?ref=v1'],
    ['git::https://example.com/repo.git'],
    ['github.com/org/repo/base'],
    ['ssh://git@example.com/repo.git'],
    ['git@github.com:org/repo.git'],
    ['../../missing'],
  ])('refuses the remote or absent resource %s', (ref) => {
    expectRefused(tree(`resources:\n- ${JSON.stringify(ref)}\n`), 'KustomizeRemote', 'resources[0]');
  });

  it('refuses remote components, bases and crds', () => {
    expectRefused(tree('components: [https://example.com/c]\n'), 'KustomizeRemote', 'components[0]');
    expectRefused(tree('bases: [../../base, github.com/x/y]\n'), 'KustomizeRemote', 'bases[1]');
    expectRefused(tree('crds: [https://example.com/crd.yaml]\n'), 'KustomizeRemote', 'crds[0]');
  });

  it('refuses a patch fetched over http', () => {
    expectRefused(
      tree('patches:\n- path: https://example.com/p.yaml\n'),
      'KustomizeRemote',
      'patches[0].path',
    );
  });

  it('refuses paths leaving the repository root and absolute paths', () => {
    expectRefused(tree('resources: [../../../outside]\n'), 'KustomizePathEscape', 'resources[0]');
    expectRefused(
      tree('configMapGenerator:\n- name: g\n  files: [k=/etc/passwd]\n'),
      'KustomizePathEscape',
      'configMapGenerator[0].files[0]',
    );
    expectRefused(tree('openapi:\n  path: ../../../schema.json\n'), 'KustomizePathEscape', 'openapi.path');
    expectRefused(
      tree('secretGenerator:\n- name: s\n  envs: [../../../.env]\n'),
      'KustomizePathEscape',
      'secretGenerator[0].envs[0]',
    );
  });

  it('refuses the built-in Helm generator named as a plugin config', () => {
    expectRefused(
      tree(
        'generators:\n- |\n  apiVersion: builtin\n  kind: HelmChartInflationGenerator\n  metadata: {name: h}\n  chartName: redis\n',
      ),
      'KustomizeHelm',
      'generators[0]',
    );
  });

  it('refuses helmCharts and helmGlobals', () => {
    expectRefused(
      tree('helmCharts:\n- name: x\n  repo: https://charts.example.com\n'),
      'KustomizeHelm',
      'helmCharts',
    );
    expectRefused(tree('helmGlobals:\n  chartHome: charts\n'), 'KustomizeHelm', 'helmGlobals');
  });

  it('refuses exec, container and KRM function plugins, inline or from files', () => {
    expectRefused(
      tree('generators: [gen.yaml]\n', [
        file(
          'apps/prod/gen.yaml',
          'apiVersion: example.com/v1\nkind: Exec\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./run.sh\n',
        ),
      ]),
      'KustomizePlugin',
      'generators[0] (apps/prod/gen.yaml)',
    );
    expectRefused(
      tree('transformers:\n- |\n  apiVersion: fn.example.com/v1\n  kind: T\n  metadata:\n    name: t\n'),
      'KustomizePlugin',
      'transformers[0]',
    );
    expectRefused(
      tree('validators: [v.yaml]\n', [
        file(
          'apps/prod/v.yaml',
          'apiVersion: builtin\nkind: X\nmetadata:\n  name: v\n  annotations:\n    config.kubernetes.io/function: "container: {image: x}"\n',
        ),
      ]),
      'KustomizePlugin',
      'validators[0] (apps/prod/v.yaml)',
    );
    expectRefused(tree('transformers: [../../base]\n'), 'KustomizePlugin', 'transformers[0]');
  });

  it('refuses symlinks leaving the root, anywhere in it, and paths through them', () => {
    const error = refusal(tree('resources: [cm.yaml]\n', [], [{ path: 'other/link', target: '../../etc' }]));
    expect(error.code).toBe('SymlinkEscape');
    expect(error.file).toBe('other/link');
  });

  it('follows symlinks inside the root', () => {
    const result = checkKustomization(
      tree('resources: [base-link]\n', [], [{ path: 'apps/prod/base-link', target: '../../base' }]),
      'apps/prod',
    );
    expect(result.kustomizations).toContain('base/kustomization.yaml');
  });

  it('bounds the kustomization file: size and YAML aliases', () => {
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
    expect(refusal(tree(bomb)).code).toBe('TooManyAliases');
    expect(() => checkKustomization(tree('resources: []\n'), 'apps/prod', { maxFileBytes: 4 })).toThrow(
      /limit is 4/,
    );
  });

  it('refuses two kustomization files in one directory and a directory without one', () => {
    expect(refusal(tree('resources: []\n', [file('apps/prod/Kustomization', 'resources: []\n')])).code).toBe(
      'KustomizeInvalid',
    );
    expectRefused(
      tree('resources: [../../components]\n', [file('components/x.yaml', cm)]),
      'KustomizeInvalid',
      'resources[0]',
    );
  });
});
