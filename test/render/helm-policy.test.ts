import { describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { checkHelmChart, type HelmTree } from '../../src/render/helm-policy.ts';

const enc = new TextEncoder();
function tree(files: Record<string, string>, symlinks: Record<string, string> = {}): HelmTree {
  return {
    files: Object.entries(files).map(([path, text]) => ({ path, content: enc.encode(text) })),
    symlinks: Object.entries(symlinks).map(([path, target]) => ({ path, target })),
  };
}

function refusal(t: HelmTree, chart: string, valuesFiles: string[] = []): RenderError {
  try {
    checkHelmChart(t, { chart, valuesFiles });
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
  throw new Error('not refused');
}

const chartYaml = (name: string, deps = ''): string =>
  `apiVersion: v2\nname: ${name}\nversion: 1.0.0\n${deps}`;
const redisDep =
  'dependencies:\n  - name: redis\n    version: 1.x\n    repository: https://charts.example.com\n';

describe('checkHelmChart', () => {
  it('accepts a chart with vendored directory and archive dependencies, checking nested ones', () => {
    const t = tree({
      'charts/web/Chart.yaml': chartYaml('web', `${redisDep}  - name: common\n    version: 2.0.0\n`),
      'charts/web/templates/cm.yaml': 'kind: ConfigMap\ndata: {a: {{ .Files.Get "files/a.txt" | quote }}}',
      'charts/web/charts/redis/Chart.yaml': chartYaml('redis', 'dependencies:\n  - name: lib\n'),
      'charts/web/charts/redis/charts/lib-0.1.0.tgz': 'archive',
      'charts/web/charts/common-2.0.0.tgz': 'archive',
      'values/prod.yaml': 'a: 1',
    });
    expect(checkHelmChart(t, { chart: 'charts/web', valuesFiles: ['values/prod.yaml'] }).charts).toEqual([
      'charts/web',
      'charts/web/charts/redis',
    ]);
  });

  it('refuses a dependency that is not vendored, naming the chart, the field and the repository', () => {
    const error = refusal(tree({ 'web/Chart.yaml': chartYaml('web', redisDep) }), 'web');
    expect(error.code).toBe('HelmDependencyNotVendored');
    expect(error.message).toBe(
      'web/Chart.yaml: dependencies[0]: "redis" (repository "https://charts.example.com") is not vendored in web/charts/: only files of the verified commit are rendered and no chart repository is contacted; run `helm dependency build` and commit charts/',
    );
  });

  it('refuses a missing dependency of a vendored subchart and a wrongly named directory', () => {
    const nested = tree({
      'Chart.yaml': chartYaml('web', 'dependencies:\n  - name: redis\n'),
      'charts/redis/Chart.yaml': chartYaml('redis', 'dependencies:\n  - name: lib\n'),
    });
    expect(refusal(nested, '').message).toMatch(/^charts\/redis\/Chart.yaml: dependencies\[0\]: "lib"/);
    const misnamed = tree({
      'Chart.yaml': chartYaml('web', 'dependencies:\n  - name: redis\n'),
      'charts/redis/Chart.yaml': chartYaml('valkey'),
    });
    expect(refusal(misnamed, '').code).toBe('HelmDependencyNotVendored');
  });

  it('refuses no Chart.yaml and chart apiVersion v3, naming the field', () => {
    const none = refusal(tree({ 'web/values.yaml': '' }), 'web');
    expect(none.message).toBe('web: spec.helm.chart: no Chart.yaml in web');
    const v3 = refusal(tree({ 'Chart.yaml': 'apiVersion: v3\nname: x\nversion: 1.0.0\n' }), '');
    expect(v3.message).toMatch(/^Chart.yaml: apiVersion: "v3" is not supported/);
  });

  it('refuses values files that are not files of the tree', () => {
    const t = tree({ 'Chart.yaml': chartYaml('web'), 'a.yaml': '' });
    const error = refusal(t, '', ['a.yaml', 'missing.yaml']);
    expect(error.message).toBe(
      'missing.yaml: spec.helm.valuesFiles[1]: is not a file of the verified commit',
    );
  });

  it('refuses .Files reads that leave the chart', () => {
    for (const call of [
      '.Files.Get "../../etc/passwd"',
      '.Files.Glob `/etc/*`',
      '$.Files.Lines "a/../../x"',
    ]) {
      const t = tree({ 'web/Chart.yaml': chartYaml('web'), 'web/templates/cm.yaml': `data: {{ ${call} }}` });
      const error = refusal(t, 'web');
      expect(error.code).toBe('HelmFilesEscape');
      expect(error.file).toBe('web/templates/cm.yaml');
      expect(error.message).toMatch(/is outside the chart web/);
    }
  });

  it('refuses symlinks out of the repository, and follows those inside it', () => {
    const out = tree({ 'Chart.yaml': chartYaml('web') }, { 'templates/x.yaml': '../../../etc/passwd' });
    expect(refusal(out, '').code).toBe('SymlinkEscape');
    const absolute = tree({ 'Chart.yaml': chartYaml('web') }, { 'values.yaml': '/etc/passwd' });
    expect(refusal(absolute, '').code).toBe('SymlinkEscape');
    const inside = tree(
      { 'charts/web/Chart.yaml': chartYaml('web'), 'shared/v.yaml': '' },
      { 'v.yaml': 'shared/v.yaml' },
    );
    expect(checkHelmChart(inside, { chart: 'charts/web', valuesFiles: ['v.yaml'] }).charts).toEqual([
      'charts/web',
    ]);
  });

  it('bounds Chart.yaml by the render limits', () => {
    const t = tree({ 'Chart.yaml': `${chartYaml('web')}# ${'x'.repeat(200)}\n` });
    expect(() => checkHelmChart(t, { chart: '', valuesFiles: [] }, { maxFileBytes: 100 })).toThrow(
      /limit is 100/,
    );
    const bomb = tree({ 'Chart.yaml': `${chartYaml('web')}a: &a [1]\nb: [*a, *a, *a, *a]\n` });
    expect(() => checkHelmChart(bomb, { chart: '', valuesFiles: [] }, { maxAliasCount: 2 })).toThrow(
      RenderError,
    );
  });
});
