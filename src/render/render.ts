import { posix } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RenderError } from './errors.ts';
import { type OwnerRef, ownerLabels } from './labels.ts';
import {
  canonicalJson,
  formatSubject,
  identityOf,
  isJsonObject,
  type JsonValue,
  type KubeObject,
  objectKey,
} from './object.ts';

export interface SourceFile {
  /** Posix path relative to the rendered root (spec.path). */
  readonly path: string;
  readonly content: Uint8Array;
}

export interface SourceSymlink {
  readonly path: string;
  /** The link target exactly as stored (relative or absolute). */
  readonly target: string;
}

export interface RenderLimits {
  /** Largest manifest file in bytes (default 4 MiB). */
  readonly maxFileBytes: number;
  /** Sum of all manifest file sizes in bytes (default 256 MiB). */
  readonly maxTotalBytes: number;
  /** Objects after List unwrapping (default 10,000). */
  readonly maxObjects: number;
  /** YAML alias expansions per document (default 100). */
  readonly maxAliasCount: number;
  /** Nesting depth of maps and lists in one object (default 64). */
  readonly maxDepth: number;
}

export const defaultRenderLimits: RenderLimits = {
  maxFileBytes: 4 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxObjects: 10_000,
  maxAliasCount: 100,
  maxDepth: 64,
};

export interface RenderInput {
  readonly files: readonly SourceFile[];
  readonly symlinks?: readonly SourceSymlink[];
}

export interface RenderOptions {
  /** Owner labels `signet.dev/name` / `signet.dev/namespace` come from here. */
  readonly owner: OwnerRef;
  readonly limits?: Partial<RenderLimits>;
}

export interface ObjectSource {
  readonly file: string;
  readonly documentIndex: number;
  /** Set when the object came from a `*List` document's `items`. */
  readonly itemIndex?: number;
}

export interface RenderedObject {
  readonly object: KubeObject;
  readonly source: ObjectSource;
}

const manifestExtensions = ['.yaml', '.yml', '.json'];
const kustomizationNames = new Set(['kustomization.yaml', 'kustomization.yml', 'Kustomization']);
const provenanceDirectory = '.signet';

/**
 * Renders a directory of plain manifests into objects, sorted by file path then document.
 *
 * Rules:
 * - `*.yaml`, `*.yml`, `*.json` are read recursively; anything under a `.signet` file or directory is skipped.
 * - A `kustomization.yaml`/`.yml`/`Kustomization` file is refused: a directory holding one at its top is
 *   built with Kustomize instead (src/render/kustomize.ts), one further down is never built.
 * - Symlinks are never followed. A symlink whose target leaves the tree (absolute, or `..` past the
 *   root) is refused with `SymlinkEscape`; a symlink inside the tree is ignored (its target, if it
 *   is a manifest, is rendered once as itself).
 * - Documents of a kind ending in `List` with an `items` array are unwrapped into their items.
 * - Identical duplicates are merged; duplicates with different content are refused.
 * - Owner labels are added to every object. Namespaces are not touched here: see `applyScope`.
 */
export function renderManifests(input: RenderInput, options: RenderOptions): RenderedObject[] {
  const limits: RenderLimits = { ...defaultRenderLimits, ...options.limits };
  for (const link of input.symlinks ?? []) {
    checkPath(link.path);
    if (isUnderProvenance(link.path)) continue;
    if (symlinkEscapes(link.path, link.target)) {
      throw new RenderError('SymlinkEscape', `symlink points outside the tree (target "${link.target}")`, {
        file: link.path,
      });
    }
  }

  const files = [...input.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const rendered: RenderedObject[] = [];
  const seen = new Map<string, { rendered: RenderedObject; canonical: string }>();
  let totalBytes = 0;
  const decoder = new TextDecoder('utf-8', { fatal: true });

  for (const file of files) {
    checkPath(file.path);
    if (isUnderProvenance(file.path)) continue;
    const base = posix.basename(file.path);
    if (kustomizationNames.has(base)) {
      throw new RenderError(
        'KustomizeNotSupported',
        'a kustomization below spec.path is not built: point spec.path at its directory, or remove it',
        { file: file.path },
      );
    }
    if (!manifestExtensions.some((ext) => base.toLowerCase().endsWith(ext))) continue;
    if (file.content.byteLength > limits.maxFileBytes) {
      throw new RenderError(
        'FileTooLarge',
        `file is ${file.content.byteLength} bytes, the limit is ${limits.maxFileBytes}`,
        { file: file.path },
      );
    }
    totalBytes += file.content.byteLength;
    if (totalBytes > limits.maxTotalBytes) {
      throw new RenderError('TotalSizeExceeded', `manifests exceed ${limits.maxTotalBytes} bytes in total`, {
        file: file.path,
      });
    }
    let text: string;
    try {
      text = decoder.decode(file.content);
    } catch (cause) {
      throw new RenderError('InvalidEncoding', 'file is not valid UTF-8', { file: file.path }, cause);
    }
    for (const item of parseFile(file.path, text, limits)) {
      const key = objectKey(identityOf(item.object));
      const canonical = canonicalJson(item.object);
      const previous = seen.get(key);
      if (previous !== undefined) {
        if (previous.canonical === canonical) continue;
        throw new RenderError(
          'DuplicateObject',
          `${formatSubject(identityOf(item.object))} is also defined in ${describeSource(previous.rendered.source)} with different content`,
          { ...item.source, otherFile: previous.rendered.source.file },
        );
      }
      if (rendered.length >= limits.maxObjects) {
        throw new RenderError('TooManyObjects', `more than ${limits.maxObjects} objects`, item.source);
      }
      seen.set(key, { rendered: item, canonical });
      rendered.push(item);
    }
  }

  const labels = ownerLabels(options.owner);
  return rendered.map(({ object, source }) => ({
    source,
    object: { ...object, metadata: { ...object.metadata, labels: { ...object.metadata.labels, ...labels } } },
  }));
}

function describeSource(source: ObjectSource): string {
  const item = source.itemIndex === undefined ? '' : `, item ${source.itemIndex}`;
  return `${source.file} (document ${source.documentIndex}${item})`;
}

function checkPath(path: string): void {
  const segments = path.split('/');
  if (
    path === '' ||
    path.startsWith('/') ||
    path.includes('\\') ||
    path.includes('\0') ||
    segments.some((segment) => segment === '..' || segment === '.' || segment === '')
  ) {
    throw new RenderError('InvalidPath', 'path must be relative, posix, without "." or ".." segments', {
      file: path,
    });
  }
}

function isUnderProvenance(path: string): boolean {
  return path.split('/').includes(provenanceDirectory);
}

function symlinkEscapes(path: string, target: string): boolean {
  if (target.startsWith('/') || target.includes('\\') || target.includes('\0')) return true;
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  return resolved === '..' || resolved.startsWith('../') || resolved.startsWith('/');
}

function* parseFile(file: string, text: string, limits: RenderLimits): Generator<RenderedObject> {
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, merge: true });
  if (!Array.isArray(documents)) return; // an empty stream
  for (const [documentIndex, document] of documents.entries()) {
    const [firstError] = document.errors;
    if (firstError !== undefined) {
      throw new RenderError('ParseError', firstError.message, { file, documentIndex }, firstError);
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (cause) {
      if (cause instanceof ReferenceError && /alias/i.test(cause.message)) {
        throw new RenderError(
          'TooManyAliases',
          `YAML aliases expand more than ${limits.maxAliasCount} times`,
          { file, documentIndex },
          cause,
        );
      }
      throw new RenderError('ParseError', String(cause), { file, documentIndex }, cause);
    }
    if (value === null || value === undefined) continue; // an empty document
    checkDepth(value, limits.maxDepth, { file, documentIndex });
    const source = { file, documentIndex };
    if (!isJsonObject(value)) {
      throw new RenderError('NotAnObject', 'document is not a mapping', source);
    }
    const kind = value.kind;
    if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(value.items)) {
      for (const [itemIndex, item] of value.items.entries()) {
        const itemSource = { file, documentIndex, itemIndex };
        yield { object: validateObject(item, itemSource), source: itemSource };
      }
      continue;
    }
    yield { object: validateObject(value, source), source };
  }
}

function checkDepth(value: unknown, maxDepth: number, source: ObjectSource): void {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (typeof top.value !== 'object' || top.value === null) continue;
    if (top.depth > maxDepth) {
      throw new RenderError('TooDeep', `nesting is deeper than ${maxDepth} levels`, source);
    }
    const children = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const child of children) stack.push({ value: child, depth: top.depth + 1 });
  }
}

const nameLike = /^[^/%\s]+$/;

function validateObject(value: JsonValue, source: ObjectSource): KubeObject {
  if (!isJsonObject(value)) throw new RenderError('NotAnObject', 'list item is not a mapping', source);
  const bad: string[] = [];
  if (typeof value.apiVersion !== 'string' || value.apiVersion === '') bad.push('apiVersion');
  if (typeof value.kind !== 'string' || value.kind === '') bad.push('kind');
  const metadata = value.metadata;
  if (!isJsonObject(metadata)) {
    bad.push('metadata');
  } else {
    if (typeof metadata.name !== 'string' || !nameLike.test(metadata.name)) bad.push('metadata.name');
    if (
      metadata.namespace !== undefined &&
      (typeof metadata.namespace !== 'string' || !nameLike.test(metadata.namespace))
    ) {
      bad.push('metadata.namespace');
    }
    for (const mapField of ['labels', 'annotations'] as const) {
      const map = metadata[mapField];
      if (map === undefined || map === null) continue;
      if (!isJsonObject(map)) {
        bad.push(`metadata.${mapField}`);
        continue;
      }
      for (const [key, entry] of Object.entries(map)) {
        if (typeof entry !== 'string') bad.push(`metadata.${mapField}.${key}`);
      }
    }
  }
  if (bad.length > 0) {
    throw new RenderError('InvalidObject', `missing or invalid fields: ${bad.join(', ')}`, {
      ...source,
      fields: bad,
    });
  }
  return value as unknown as KubeObject;
}
