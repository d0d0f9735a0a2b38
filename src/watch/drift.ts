/**
 * Drift detection, pure: which fields that Signet's desired state sets differ in the live
 * object, and who changed them. Only fields present in the desired object are compared, so
 * server defaults, status, and fields owned by other managers that Signet does not set are
 * never drift. A deleted managed object is drift too.
 */
import type { LiveObject, ManagedFieldsEntry } from './informer.ts';

export interface DesiredObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [field: string]: unknown;
}

export interface DriftFinding {
  readonly deleted: boolean;
  /** Changed field paths in JSONPath-like notation, e.g. `.data.color`, `.spec.ports[name=http].port`. */
  readonly fields: readonly string[];
  /** The field manager that most recently changed a drifted field, when managedFields tell. */
  readonly manager?: string;
}

type Segment = { readonly field: string } | { readonly key: string; readonly value: string };

const ignoredTopLevel = new Set(['apiVersion', 'kind', 'status']);
const comparedMetadata = new Set(['labels', 'annotations']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEmptyContainer(value: unknown): boolean {
  return (Array.isArray(value) && value.length === 0) || (isRecord(value) && Object.keys(value).length === 0);
}

function formatPath(segments: readonly Segment[]): string {
  return segments.map((s) => ('field' in s ? `.${s.field}` : `[${s.key}=${s.value}]`)).join('');
}

/** Lists of objects that all carry a `name` are associative (merge key `name`), as in most core types. */
function mergeKeyOf(list: readonly unknown[]): string | undefined {
  if (list.length === 0) return undefined;
  for (const candidate of ['name', 'containerPort', 'mountPath', 'ip']) {
    if (list.every((item) => isRecord(item) && item[candidate] !== undefined)) return candidate;
  }
  return undefined;
}

function equalLeaf(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (desired === undefined || desired === null) return live === undefined || live === null;
  if (isEmptyContainer(desired) && (live === undefined || isEmptyContainer(live))) return true;
  if (typeof desired === 'number' && typeof live === 'string') return String(desired) === live;
  if (typeof desired === 'string' && typeof live === 'number') return desired === String(live);
  return JSON.stringify(desired) === JSON.stringify(live);
}

function compare(desired: unknown, live: unknown, path: Segment[], out: Segment[][]): void {
  if (isRecord(desired)) {
    if (!isRecord(live)) {
      if (isEmptyContainer(desired) && live === undefined) return;
      out.push([...path]);
      return;
    }
    for (const [field, value] of Object.entries(desired)) {
      compare(value, live[field], [...path, { field }], out);
    }
    return;
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(live)) {
      if (desired.length === 0 && live === undefined) return;
      out.push([...path]);
      return;
    }
    const mergeKey = mergeKeyOf(desired);
    if (mergeKey === undefined) {
      if (!equalLeaf(desired, live)) out.push([...path]);
      return;
    }
    for (const item of desired) {
      const keyValue = (item as Record<string, unknown>)[mergeKey];
      const match = live.find((candidate) => isRecord(candidate) && equalLeaf(keyValue, candidate[mergeKey]));
      const segment: Segment = { key: mergeKey, value: String(keyValue) };
      if (match === undefined) out.push([...path, segment]);
      else compare(item, match, [...path, segment], out);
    }
    return;
  }
  if (!equalLeaf(desired, live)) out.push([...path]);
}

/** Does this managedFields entry own the field at `path` (fieldsV1 `f:`/`k:` keys)? */
function ownsPath(entry: ManagedFieldsEntry, path: readonly Segment[]): boolean {
  let node: unknown = entry.fieldsV1;
  for (const segment of path) {
    if (!isRecord(node)) return false;
    if ('field' in segment) {
      node = node[`f:${segment.field}`];
    } else {
      const wanted = `k:${JSON.stringify({ [segment.key]: segment.value })}`;
      const numeric = `k:${JSON.stringify({ [segment.key]: Number(segment.value) })}`;
      node = node[wanted] ?? node[numeric];
    }
    if (node === undefined) return false;
  }
  return true;
}

function lastChangedBy(
  live: LiveObject,
  paths: readonly (readonly Segment[])[],
  fieldManager: string,
): string | undefined {
  const entries = (live.metadata.managedFields ?? []).filter(
    (entry) => entry.manager !== fieldManager && entry.subresource === undefined,
  );
  const byTime = [...entries].sort((a, b) => (b.time ?? '').localeCompare(a.time ?? ''));
  const owner = byTime.find((entry) => paths.some((path) => ownsPath(entry, path)));
  // A change that removed a field leaves no owner behind: the latest other writer is the best witness.
  return (owner ?? byTime.find((entry) => entry.operation === 'Update'))?.manager;
}

export function detectDrift(
  desired: DesiredObject,
  live: LiveObject | undefined,
  fieldManager = 'signet',
): DriftFinding | undefined {
  if (live === undefined || live.metadata.deletionTimestamp !== undefined) {
    return { deleted: true, fields: [] };
  }
  const differences: Segment[][] = [];
  for (const [field, value] of Object.entries(desired)) {
    if (ignoredTopLevel.has(field)) continue;
    if (field === 'metadata') {
      for (const [metaField, metaValue] of Object.entries(desired.metadata)) {
        if (!comparedMetadata.has(metaField)) continue;
        const liveMeta = live.metadata as unknown as Record<string, unknown>;
        compare(metaValue, liveMeta[metaField], [{ field: 'metadata' }, { field: metaField }], differences);
      }
      continue;
    }
    compare(value, live[field], [{ field }], differences);
  }
  if (differences.length === 0) return undefined;
  const manager = lastChangedBy(live, differences, fieldManager);
  const fields = differences.map(formatPath).sort();
  return manager === undefined ? { deleted: false, fields } : { deleted: false, fields, manager };
}
