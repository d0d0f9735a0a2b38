/**
 * Drift detection, pure: which fields that Signet's desired state sets differ in the live
 * object, and who changed them. Only fields present in the desired object are compared, so
 * server defaults, status, and fields owned by other managers that Signet does not set are
 * never drift. A deleted managed object is drift too.
 */
import type { LiveObject, ManagedFieldsEntry } from './informer.ts';
import { sameQuantity } from './quantity.ts';

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

export type Segment =
  | { readonly field: string }
  | { readonly key: string; readonly value: string }
  | { readonly index: number };

export const ignoredTopLevel: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'status']);
export const comparedMetadata: ReadonlySet<string> = new Set(['labels', 'annotations']);

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isEmptyContainer(value: unknown): boolean {
  return (Array.isArray(value) && value.length === 0) || (isRecord(value) && Object.keys(value).length === 0);
}

function formatPath(segments: readonly Segment[]): string {
  return segments
    .map((s) => ('field' in s ? `.${s.field}` : 'index' in s ? `[${s.index}]` : `[${s.key}=${s.value}]`))
    .join('');
}

/** Lists of objects that all carry a `name` are associative (merge key `name`), as in most core types. */
export function mergeKeyOf(list: readonly unknown[]): string | undefined {
  if (list.length === 0) return undefined;
  for (const candidate of ['name', 'containerPort', 'mountPath', 'ip']) {
    if (list.every((item) => isRecord(item) && item[candidate] !== undefined)) return candidate;
  }
  return undefined;
}

/** The live item of an associative list that a desired item (with merge key `mergeKey`) is compared with. */
export function matchingItem(item: unknown, live: readonly unknown[], mergeKey: string): unknown {
  const keyValue = (item as Record<string, unknown>)[mergeKey];
  return live.find(
    (candidate) => isRecord(candidate) && equalValue(keyValue, candidate[mergeKey], undefined),
  );
}

/** Lists whose items are all objects, compared item by item (by position) when no merge key applies. */
export function isObjectList(list: readonly unknown[]): boolean {
  return list.length > 0 && list.every(isRecord);
}

/** Fields holding resource quantities in built-in types (their keys are resource names). */
const quantityMaps = new Set([
  'limits',
  'requests',
  'hard',
  'capacity',
  'allocatable',
  'podFixed',
  'overhead',
]);
/** LimitRange `spec.limits[]` items: maps of resource name to quantity. */
const limitRangeMaps = new Set(['default', 'defaultRequest', 'max', 'min', 'maxLimitRequestRatio']);
/** Quantity-valued fields by their own name. */
const quantityFields = new Set(['sizeLimit', 'averageValue']);

function fieldName(segment: Segment | undefined): string | undefined {
  return segment !== undefined && 'field' in segment ? segment.field : undefined;
}

/**
 * True at a path where Kubernetes stores a resource quantity, which the API server writes back
 * in canonical form (`1000m` as `1`): `…resources.limits.cpu`, `spec.hard.memory`,
 * `spec.limits[0].default.cpu` (LimitRange), `emptyDir.sizeLimit`, `target.averageValue`.
 */
export function isQuantityPosition(path: readonly Segment[]): boolean {
  const own = fieldName(path.at(-1));
  if (own === undefined) return false;
  if (quantityFields.has(own)) return true;
  const parent = fieldName(path.at(-2));
  if (parent === undefined) return false;
  if (quantityMaps.has(parent)) return true;
  const list = path.at(-3);
  return (
    limitRangeMaps.has(parent) &&
    list !== undefined &&
    !('field' in list) &&
    fieldName(path.at(-4)) === 'limits'
  );
}

/**
 * Equality of a desired value with a live one, as the API server may echo it: a number and its
 * decimal string are equal (int-or-string), two spellings of one quantity are equal at a quantity
 * position (`path` given), an empty container equals an absent one; objects and lists compare
 * deeply (key order does not matter), with exactly the same keys and items.
 */
export function equalValue(desired: unknown, live: unknown, path: readonly Segment[] | undefined): boolean {
  if (desired === live) return true;
  if (desired === undefined || desired === null) return live === undefined || live === null;
  if (isEmptyContainer(desired) && (live === undefined || isEmptyContainer(live))) return true;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return false;
    return desired.every((item, index) =>
      equalValue(item, live[index], path === undefined ? undefined : [...path, { index }]),
    );
  }
  if (isRecord(desired)) {
    if (!isRecord(live)) return false;
    const keys = Object.keys(desired);
    if (keys.length !== Object.keys(live).length) return false;
    return keys.every(
      (key) =>
        Object.hasOwn(live, key) &&
        equalValue(desired[key], live[key], path === undefined ? undefined : [...path, { field: key }]),
    );
  }
  if (typeof desired === 'number' && typeof live === 'string' && String(desired) === live) return true;
  if (typeof desired === 'string' && typeof live === 'number' && desired === String(live)) return true;
  return path !== undefined && isQuantityPosition(path) && sameQuantity(desired, live);
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
      // Objects without a known merge key (Service ports, LimitRange limits) item by item, so
      // fields the server defaults inside an item are not drift; an added or removed item is.
      if (isObjectList(desired) && live.length === desired.length) {
        desired.forEach((item, index) => {
          compare(item, live[index], [...path, { index }], out);
        });
      } else if (!equalValue(desired, live, path)) {
        out.push([...path]);
      }
      return;
    }
    for (const item of desired) {
      const keyValue = (item as Record<string, unknown>)[mergeKey];
      const match = matchingItem(item, live, mergeKey);
      const segment: Segment = { key: mergeKey, value: String(keyValue) };
      if (match === undefined) out.push([...path, segment]);
      else compare(item, match, [...path, segment], out);
    }
    return;
  }
  if (!equalValue(desired, live, path)) out.push([...path]);
}

/** Does this managedFields entry own the field at `path` (fieldsV1 `f:`/`k:` keys)? */
function ownsPath(entry: ManagedFieldsEntry, path: readonly Segment[]): boolean {
  let node: unknown = entry.fieldsV1;
  for (const segment of path) {
    if (!isRecord(node)) return false;
    if ('field' in segment) {
      node = node[`f:${segment.field}`];
    } else if ('index' in segment) {
      // An item of a list without a known merge key: owned with the list (atomic) unless listed by index.
      const item = node[`i:${segment.index}`];
      if (item === undefined) return true;
      node = item;
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
