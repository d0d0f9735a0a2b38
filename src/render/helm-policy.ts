import { parseAllDocuments } from 'yaml';
import { RenderError } from './errors.ts';
import { isJsonObject, type JsonObject, type JsonValue } from './object.ts';
import { readTreeText, refuse, refuseEscapingLinks, resolveLinks } from './policy-tree.ts';
import { defaultRenderLimits, type RenderLimits, type SourceFile, type SourceSymlink } from './render.ts';

export interface HelmTree {
  /** Every file of the repository root, paths relative to it. */
  readonly files: readonly SourceFile[];
  readonly symlinks?: readonly SourceSymlink[];
}

export interface HelmChartRef {
  /** The chart's directory, relative to the repository root ('' is the root). */
  readonly chart: string;
  readonly valuesFiles: readonly string[];
}

export interface HelmCheck {
  /** The chart directories checked (the chart, then its vendored directory subcharts). */
  readonly charts: readonly string[];
}

const maxCharts = 1_000;
const filesCall = /\.Files\.(Get|GetBytes|Lines|Glob)\s+(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`)/g;
const templateExtensions = /\.(ya?ml|tpl|txt|json)$/;

class TreeIndex {
  readonly files = new Map<string, SourceFile>();
  readonly links = new Map<string, string>();

  constructor(tree: HelmTree) {
    for (const file of tree.files) this.files.set(file.path, file);
    for (const link of tree.symlinks ?? []) this.links.set(link.path, link.target);
  }

  /** Follows symlinks in every prefix of `path`; undefined when a link leaves the root. */
  resolve(path: string): string | undefined {
    return resolveLinks(this.links, path);
  }

  /** The files directly or deeply under `dir` (resolved), paths relative to the root. */
  under(dir: string): SourceFile[] {
    const prefix = dir === '' ? '' : `${dir}/`;
    return [...this.files.values()].filter((file) => file.path.startsWith(prefix));
  }
}

const join = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);

function readText(index: TreeIndex, path: string, limits: RenderLimits): string {
  return readTreeText(index.files, path, limits, 'HelmChartInvalid');
}

function parseChartYaml(index: TreeIndex, file: string, limits: RenderLimits): JsonObject {
  const documents = parseAllDocuments(readText(index, file, limits), { uniqueKeys: true });
  const values = (Array.isArray(documents) ? documents : [documents]).map((document, documentIndex) => {
    const [firstError] = document.errors;
    if (firstError !== undefined)
      throw new RenderError('ParseError', firstError.message, { file, documentIndex }, firstError);
    try {
      return document.toJS({ maxAliasCount: limits.maxAliasCount }) as JsonValue;
    } catch (cause) {
      throw new RenderError('TooManyAliases', `cannot be read: ${String(cause)}`, { file }, cause);
    }
  });
  const [only] = values.filter((value) => value != null);
  if (!isJsonObject(only)) throw new RenderError('HelmChartInvalid', 'must be one YAML mapping', { file });
  return only;
}

/** The vendored subcharts of `chartDir`: directory name → chart name, and the archive names. */
function vendored(
  index: TreeIndex,
  chartDir: string,
  limits: RenderLimits,
): { dirs: Map<string, string>; archives: string[] } {
  const chartsDir = join(chartDir, 'charts');
  const dirs = new Map<string, string>();
  const archives: string[] = [];
  for (const file of index.under(chartsDir)) {
    const rest = file.path.slice(chartsDir.length + 1).split('/');
    if (rest.length === 1 && rest[0]?.endsWith('.tgz')) archives.push(rest[0]);
    if (rest.length === 2 && rest[1] === 'Chart.yaml') {
      const name = parseChartYaml(index, file.path, limits).name;
      dirs.set(join(chartsDir, rest[0] as string), typeof name === 'string' ? name : '');
    }
  }
  return { dirs, archives };
}

function checkDependencies(
  index: TreeIndex,
  chartDir: string,
  chart: JsonObject,
  limits: RenderLimits,
): string[] {
  const file = join(chartDir, 'Chart.yaml');
  const { dirs, archives } = vendored(index, chartDir, limits);
  const dependencies = chart.dependencies ?? [];
  if (!Array.isArray(dependencies)) refuse('HelmChartInvalid', file, 'dependencies', 'must be a list');
  dependencies.forEach((dependency, i) => {
    const field = `dependencies[${i}]`;
    if (!isJsonObject(dependency) || typeof dependency.name !== 'string' || dependency.name === '')
      refuse('HelmChartInvalid', file, field, 'must be a mapping with a name');
    const name = dependency.name;
    const inDir = [...dirs.values()].includes(name);
    const inArchive = archives.some(
      (archive) => archive.startsWith(`${name}-`) && /^\d/.test(archive.slice(name.length + 1)),
    );
    if (!inDir && !inArchive) {
      const from =
        typeof dependency.repository === 'string' && dependency.repository !== ''
          ? ` (repository "${dependency.repository}")`
          : '';
      refuse(
        'HelmDependencyNotVendored',
        file,
        field,
        `"${name}"${from} is not vendored in ${join(chartDir, 'charts')}/: only files of the verified commit are rendered and no chart repository is contacted; run \`helm dependency build\` and commit charts/`,
      );
    }
  });
  return [...dirs.keys()];
}

function checkFilesCalls(index: TreeIndex, chartDir: string, limits: RenderLimits): void {
  for (const file of index.under(join(chartDir, 'templates'))) {
    if (!templateExtensions.test(file.path)) continue;
    const text = readText(index, file.path, limits);
    for (const match of text.matchAll(filesCall)) {
      const path = match[2] ?? match[3] ?? '';
      const leaves = path.startsWith('/') || path.split('/').includes('..');
      if (leaves)
        refuse(
          'HelmFilesEscape',
          file.path,
          `.Files.${match[1]}`,
          `"${path}" is outside the chart ${chartDir || '.'}: a chart reads only its own files`,
        );
    }
  }
}

function checkChart(index: TreeIndex, chartDir: string, limits: RenderLimits): string[] {
  const file = join(chartDir, 'Chart.yaml');
  if (!index.files.has(file))
    refuse(
      'HelmChartInvalid',
      chartDir || '.',
      'spec.helm.chart',
      `no Chart.yaml in ${chartDir || 'the repository root'}`,
    );
  const chart = parseChartYaml(index, file, limits);
  const apiVersion = chart.apiVersion ?? 'v1';
  if (apiVersion !== 'v1' && apiVersion !== 'v2')
    refuse(
      'HelmChartInvalid',
      file,
      'apiVersion',
      `"${String(apiVersion)}" is not supported: charts of apiVersion v1 and v2 are rendered`,
    );
  checkFilesCalls(index, chartDir, limits);
  return checkDependencies(index, chartDir, chart, limits);
}

/**
 * Checks the chart of spec.helm and its values files; throws RenderError naming the chart's file
 * (or spec.helm's field) of the first refusal.
 */
export function checkHelmChart(
  tree: HelmTree,
  ref: HelmChartRef,
  limits: Partial<RenderLimits> = {},
): HelmCheck {
  const bounds: RenderLimits = { ...defaultRenderLimits, ...limits };
  const index = new TreeIndex(tree);
  refuseEscapingLinks(index.links, tree.symlinks);
  ref.valuesFiles.forEach((path, i) => {
    const resolved = index.resolve(path);
    if (resolved === undefined || !index.files.has(resolved))
      refuse('HelmChartInvalid', path, `spec.helm.valuesFiles[${i}]`, 'is not a file of the verified commit');
  });
  const chart = index.resolve(ref.chart);
  if (chart === undefined)
    refuse('SymlinkEscape', ref.chart || '.', 'spec.helm.chart', 'leaves the repository');
  const queue = [chart];
  const checked: string[] = [];
  while (queue.length > 0) {
    const next = queue.shift() as string;
    if (checked.length >= maxCharts)
      throw new RenderError('HelmChartInvalid', `more than ${maxCharts} vendored charts`, { file: next });
    checked.push(next);
    queue.push(...checkChart(index, next, bounds));
  }
  return { charts: checked };
}
