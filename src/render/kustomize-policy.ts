/**
 * The check that runs before any Kustomize build (pure): every kustomization reachable from the
 * rendered directory is parsed with the render limits, and the build is refused when it could read
 * anything but the verified tree or run anything but Kustomize's built-ins:
 * - remote resources (URLs, `git::`, `github.com/...`, `ssh://`, or an entry that is not in the
 *   tree, which Kustomize would try to clone) in `resources`, `components`, `bases`, `crds`, and
 *   URLs in any file field (Kustomize's loader fetches `http(s)://` patches);
 * - `helmCharts`, `helmGlobals`, `helmChartInflationGenerator`;
 * - `generators`/`transformers`/`validators` entries that are not built-in plugin configs
 *   (`apiVersion: builtin`, no KRM function annotation), or that name a directory;
 * - any path (including `openapi.path`) that leaves the repository root, and symlinks leaving it.
 * Paths are posix, relative to the repository root.
 */
import { posix } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RenderError } from './errors.ts';
import { isJsonObject, type JsonObject, type JsonValue } from './object.ts';
import { normalise, readTreeText, refuse, refuseEscapingLinks, resolveLinks } from './policy-tree.ts';
import { defaultRenderLimits, type RenderLimits, type SourceFile, type SourceSymlink } from './render.ts';

export const kustomizationFileNames: readonly string[] = [
  'kustomization.yaml',
  'kustomization.yml',
  'Kustomization',
];

export interface KustomizeTree {
  /** Every file of the repository root, paths relative to it. */
  readonly files: readonly SourceFile[];
  readonly symlinks?: readonly SourceSymlink[];
}

export interface KustomizeCheck {
  /** The kustomization files reached, in the order they were checked. */
  readonly kustomizations: readonly string[];
}

const maxKustomizations = 1_000;
const remotePatterns: readonly RegExp[] = [
  /^[a-z][a-z0-9+.-]*:\/\//i, // https://, ssh://, file://, git://, oci:// ...
  /^[a-z][a-z0-9+.-]*::/i, // git::, hg::, s3:: (go-getter forcing)
  /^[^/\s@]+@[^/\s:]+:/, // git@github.com:org/repo
  /^(github\.com|gitlab\.com|bitbucket\.org)\//i,
  /[?&](ref|version|submodules|timeout)=/,
];
const functionAnnotations: readonly string[] = [
  'config.kubernetes.io/function',
  'config.k8s.io/function',
  'run.config.k8s.io/function',
];
const listFields = ['resources', 'components', 'bases'] as const;
const helmFields = ['helmCharts', 'helmGlobals', 'helmChartInflationGenerator'] as const;
const pluginFields = ['generators', 'transformers', 'validators'] as const;

type Entry =
  | { kind: 'file'; path: string }
  | { kind: 'dir'; path: string }
  | { kind: 'missing'; path: string };

class TreeIndex {
  readonly files = new Map<string, SourceFile>();
  readonly dirs = new Set<string>(['']);
  readonly links = new Map<string, string>();

  constructor(tree: KustomizeTree) {
    for (const file of tree.files) {
      this.files.set(file.path, file);
      let dir = posix.dirname(file.path);
      while (dir !== '.' && !this.dirs.has(dir)) {
        this.dirs.add(dir);
        dir = posix.dirname(dir);
      }
    }
    for (const link of tree.symlinks ?? []) this.links.set(link.path, link.target);
  }

  /** Follows symlinks in every prefix of `path`; undefined when a link leaves the root. */
  resolve(path: string): string | undefined {
    return resolveLinks(this.links, path);
  }

  entry(path: string): Entry | undefined {
    const resolved = this.resolve(path);
    if (resolved === undefined) return undefined;
    if (this.files.has(resolved)) return { kind: 'file', path: resolved };
    if (this.dirs.has(resolved)) return { kind: 'dir', path: resolved };
    return { kind: 'missing', path: resolved };
  }
}

/** The kustomization file of `dir` (relative to the root), or undefined when it has none. */
export function kustomizationFileIn(
  files: Iterable<{ readonly path: string }>,
  dir: string,
): string | undefined {
  const wanted = new Set(kustomizationFileNames.map((name) => (dir === '' ? name : `${dir}/${name}`)));
  for (const file of files) if (wanted.has(file.path)) return file.path;
  return undefined;
}

/**
 * Checks the kustomization in `dir` (relative to the repository root) and everything it reaches.
 * Throws RenderError naming the file and the field of the first refusal.
 */
export function checkKustomization(
  tree: KustomizeTree,
  dir: string,
  limits: Partial<RenderLimits> = {},
): KustomizeCheck {
  const bounds: RenderLimits = { ...defaultRenderLimits, ...limits };
  const index = new TreeIndex(tree);
  refuseEscapingLinks(index.links, tree.symlinks);
  const queue = [dir];
  const seen = new Set<string>();
  const reached: string[] = [];
  while (queue.length > 0) {
    const next = queue.shift() as string;
    if (seen.has(next)) continue;
    seen.add(next);
    const file = kustomizationPath(index, next);
    if (reached.length >= maxKustomizations) {
      throw new RenderError('KustomizeInvalid', `more than ${maxKustomizations} kustomizations`, { file });
    }
    reached.push(file);
    const kustomization = parseSingle(index, file, bounds);
    queue.push(...checkOne(index, file, kustomization, bounds));
  }
  return { kustomizations: reached };
}

function kustomizationPath(index: TreeIndex, dir: string): string {
  const found = kustomizationFileNames
    .map((name) => (dir === '' ? name : `${dir}/${name}`))
    .filter((path) => index.files.has(path));
  if (found.length === 0) {
    throw new RenderError('KustomizeInvalid', 'no kustomization.yaml, kustomization.yml or Kustomization', {
      file: dir === '' ? '.' : dir,
    });
  }
  if (found.length > 1) {
    throw new RenderError('KustomizeInvalid', `more than one kustomization file: ${found.join(', ')}`, {
      file: found[0] as string,
    });
  }
  return found[0] as string;
}

function parseDocuments(file: string, text: string, limits: RenderLimits): JsonValue[] {
  const documents = parseAllDocuments(text, { uniqueKeys: true, merge: true });
  if (!Array.isArray(documents)) return [];
  return documents.map((document, documentIndex) => {
    const [firstError] = document.errors;
    if (firstError !== undefined) {
      throw new RenderError('ParseError', firstError.message, { file, documentIndex }, firstError);
    }
    try {
      return document.toJS({ maxAliasCount: limits.maxAliasCount }) as JsonValue;
    } catch (cause) {
      const code =
        cause instanceof ReferenceError && /alias/i.test(cause.message) ? 'TooManyAliases' : 'ParseError';
      throw new RenderError(code, `cannot be read: ${String(cause)}`, { file, documentIndex }, cause);
    }
  });
}

function readText(index: TreeIndex, path: string, limits: RenderLimits): string {
  return readTreeText(index.files, path, limits, 'KustomizeInvalid');
}

function parseSingle(index: TreeIndex, file: string, limits: RenderLimits): JsonObject {
  const documents = parseDocuments(file, readText(index, file, limits), limits).filter((d) => d != null);
  const [only] = documents;
  if (documents.length !== 1 || !isJsonObject(only)) {
    throw new RenderError('KustomizeInvalid', 'a kustomization must be one YAML mapping', { file });
  }
  return only;
}

/** Resolves one path written in a kustomization; refuses URLs, absolute paths and escapes. */
function reference(index: TreeIndex, file: string, field: string, value: JsonValue | undefined): Entry {
  if (typeof value !== 'string' || value === '')
    refuse('KustomizeInvalid', file, field, 'must be a non-empty string');
  if (remotePatterns.some((pattern) => pattern.test(value))) {
    refuse(
      'KustomizeRemote',
      file,
      field,
      `"${value}" is remote: only files of the verified commit can be built`,
    );
  }
  if (value.startsWith('/') || value.includes('\\') || value.includes('\0')) {
    refuse('KustomizePathEscape', file, field, `"${value}" is not a relative path inside the repository`);
  }
  const joined = normalise(posix.join(posix.dirname(file), value));
  if (joined === undefined)
    refuse('KustomizePathEscape', file, field, `"${value}" leaves the repository root`);
  const entry = index.entry(joined);
  if (entry === undefined)
    refuse('SymlinkEscape', file, field, `"${value}" goes through a symlink leaving the root`);
  return entry;
}

function list(file: string, field: string, value: JsonValue | undefined): JsonValue[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) refuse('KustomizeInvalid', file, field, 'must be a list');
  return value;
}

function objectItems(file: string, field: string, value: JsonValue | undefined): [string, JsonObject][] {
  return list(file, field, value).map((item, i) => {
    if (!isJsonObject(item)) refuse('KustomizeInvalid', file, `${field}[${i}]`, 'must be a mapping');
    return [`${field}[${i}]`, item];
  });
}

/** Checks a path field that must name a file (URLs refused; a missing file is Kustomize's to report). */
function fileField(index: TreeIndex, file: string, field: string, value: JsonValue | undefined): void {
  if (value === undefined || value === null) return;
  const entry = reference(index, file, field, value);
  if (entry.kind === 'dir')
    refuse('KustomizeInvalid', file, field, `"${String(value)}" is a directory, not a file`);
}

/** Checks one kustomization; returns the directories of the kustomizations it reaches. */
function checkOne(index: TreeIndex, file: string, k: JsonObject, limits: RenderLimits): string[] {
  for (const field of helmFields) {
    if (k[field] !== undefined)
      refuse(
        'KustomizeHelm',
        file,
        field,
        'Helm charts are not built by Signet: render the chart into the repository',
      );
  }
  const next: string[] = [];
  for (const field of listFields) {
    for (const [i, value] of list(file, field, k[field]).entries()) {
      const entry = reference(index, file, `${field}[${i}]`, value);
      if (entry.kind === 'missing') {
        refuse(
          'KustomizeRemote',
          file,
          `${field}[${i}]`,
          `"${String(value)}" is not in the verified tree (Kustomize would fetch it as a remote base)`,
        );
      }
      if (entry.kind === 'dir') {
        if (kustomizationFileIn(index.files.values(), entry.path) === undefined) {
          refuse(
            'KustomizeInvalid',
            file,
            `${field}[${i}]`,
            `"${String(value)}" is a directory without a kustomization`,
          );
        }
        next.push(entry.path);
      } else if (field === 'components') {
        refuse(
          'KustomizeInvalid',
          file,
          `${field}[${i}]`,
          `"${String(value)}" must be a directory with a kustomization`,
        );
      }
    }
  }
  for (const [i, value] of list(file, 'crds', k.crds).entries()) {
    const entry = reference(index, file, `crds[${i}]`, value);
    if (entry.kind === 'missing')
      refuse('KustomizeRemote', file, `crds[${i}]`, `"${String(value)}" is not in the verified tree`);
  }
  for (const [field, patch] of [
    ...objectItems(file, 'patches', k.patches),
    ...objectItems(file, 'patchesJson6902', k.patchesJson6902),
  ]) {
    fileField(index, file, `${field}.path`, patch.path);
  }
  for (const [i, value] of list(file, 'patchesStrategicMerge', k.patchesStrategicMerge).entries()) {
    if (typeof value === 'string' && !value.includes('\n'))
      fileField(index, file, `patchesStrategicMerge[${i}]`, value);
  }
  for (const field of ['configMapGenerator', 'secretGenerator'] as const) {
    for (const [name, generator] of objectItems(file, field, k[field])) {
      for (const [i, spec] of list(file, `${name}.files`, generator.files).entries()) {
        const path =
          typeof spec === 'string' && spec.includes('=') ? spec.slice(spec.indexOf('=') + 1) : spec;
        fileField(index, file, `${name}.files[${i}]`, path);
      }
      for (const [i, env] of list(file, `${name}.envs`, generator.envs).entries())
        fileField(index, file, `${name}.envs[${i}]`, env);
      fileField(index, file, `${name}.env`, generator.env);
    }
  }
  for (const [field, replacement] of objectItems(file, 'replacements', k.replacements))
    fileField(index, file, `${field}.path`, replacement.path);
  for (const [i, value] of list(file, 'configurations', k.configurations).entries())
    fileField(index, file, `configurations[${i}]`, value);
  if (k.openapi !== undefined && k.openapi !== null) {
    if (!isJsonObject(k.openapi)) refuse('KustomizeInvalid', file, 'openapi', 'must be a mapping');
    fileField(index, file, 'openapi.path', k.openapi.path);
  }
  for (const field of pluginFields) {
    for (const [i, value] of list(file, field, k[field]).entries())
      checkPluginEntry(index, file, `${field}[${i}]`, value, limits);
  }
  return next;
}

function checkPluginEntry(
  index: TreeIndex,
  file: string,
  field: string,
  value: JsonValue,
  limits: RenderLimits,
): void {
  if (typeof value === 'string' && value.includes('\n')) {
    for (const config of parseDocuments(file, value, limits)) checkPluginConfig(file, field, config);
    return;
  }
  const entry = reference(index, file, field, value);
  if (entry.kind === 'dir')
    refuse(
      'KustomizePlugin',
      file,
      field,
      `"${String(value)}" is a directory: name the built-in plugin config files`,
    );
  if (entry.kind === 'missing')
    refuse('KustomizeInvalid', file, field, `"${String(value)}" is not in the verified tree`);
  for (const config of parseDocuments(entry.path, readText(index, entry.path, limits), limits)) {
    checkPluginConfig(file, `${field} (${entry.path})`, config);
  }
}

function checkPluginConfig(file: string, field: string, config: JsonValue): void {
  if (config === null || config === undefined) return;
  if (!isJsonObject(config)) refuse('KustomizeInvalid', file, field, 'a plugin config must be a mapping');
  const metadata = isJsonObject(config.metadata) ? config.metadata : {};
  const annotations = isJsonObject(metadata.annotations) ? metadata.annotations : {};
  const fn = functionAnnotations.find((name) => annotations[name] !== undefined);
  if (fn !== undefined) refuse('KustomizePlugin', file, field, `KRM functions (${fn}) are not run by Signet`);
  if (config.apiVersion !== 'builtin') {
    refuse(
      'KustomizePlugin',
      file,
      field,
      `${String(config.apiVersion)}/${String(config.kind)} is not a built-in plugin (apiVersion: builtin); exec, container and KRM function plugins are not run by Signet`,
    );
  }
  if (config.kind === 'HelmChartInflationGenerator') {
    refuse(
      'KustomizeHelm',
      file,
      field,
      'Helm charts are not built by Signet: render the chart into the repository',
    );
  }
}
