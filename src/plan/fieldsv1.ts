import {
  canonicalJson,
  isJsonObject,
  type JsonObject,
  type JsonValue,
  jsonEqual,
  type KubeObject,
} from '../render/object.ts';

/**
 * A pure reader for managedFields `fieldsV1` sets: a trie whose keys are path elements
 * `f:<field>`, `k:<json key object>`, `v:<json value>`, `i:<index>`, and `.` (the node itself).
 */
export type PathElement =
  | { readonly type: 'field'; readonly name: string }
  | { readonly type: 'key'; readonly key: JsonObject }
  | { readonly type: 'value'; readonly value: JsonValue }
  | { readonly type: 'index'; readonly index: number };

export class FieldsV1Error extends Error {
  override readonly name = 'FieldsV1Error';
  readonly code = 'InvalidPathElement' as const;
  readonly element: string;
  constructor(element: string, detail: string) {
    super(`invalid fieldsV1 path element "${element}": ${detail}`);
    this.element = element;
  }
}

export const selfMarker = '.';

export function parsePathElement(element: string): PathElement {
  const prefix = element.slice(0, 2);
  const rest = element.slice(2);
  switch (prefix) {
    case 'f:':
      return { type: 'field', name: rest };
    case 'k:': {
      const key = parseJson(element, rest);
      if (!isJsonObject(key)) throw new FieldsV1Error(element, 'key is not a JSON object');
      return { type: 'key', key };
    }
    case 'v:':
      return { type: 'value', value: parseJson(element, rest) };
    case 'i:': {
      const index = Number(rest);
      if (!/^(0|[1-9][0-9]*)$/.test(rest) || !Number.isSafeInteger(index)) {
        throw new FieldsV1Error(element, 'index is not a non-negative integer');
      }
      return { type: 'index', index };
    }
    default:
      throw new FieldsV1Error(element, 'unknown prefix');
  }
}

function parseJson(element: string, text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new FieldsV1Error(element, 'not valid JSON');
  }
}

export function formatPathElement(element: PathElement): string {
  switch (element.type) {
    case 'field':
      return `f:${element.name}`;
    case 'key':
      return `k:${canonicalJson(element.key)}`;
    case 'value':
      return `v:${canonicalJson(element.value)}`;
    case 'index':
      return `i:${element.index}`;
  }
}

/** Every path in the set, leaves and `.`-marked inner nodes, each as its list of elements. */
export function fieldPaths(fields: JsonObject): PathElement[][] {
  const paths: PathElement[][] = [];
  const walk = (node: JsonObject, prefix: PathElement[]): void => {
    const children = Object.keys(node).filter((key) => key !== selfMarker);
    if (prefix.length > 0 && (children.length === 0 || Object.hasOwn(node, selfMarker))) paths.push(prefix);
    for (const key of children) {
      const child = node[key];
      walk(isJsonObject(child) ? child : {}, [...prefix, parsePathElement(key)]);
    }
  };
  walk(fields, []);
  return paths;
}

/**
 * The fieldsV1 set an object would own if every list were atomic (what the API server records
 * for types without list-type schema). Used by tests and offline tooling.
 */
export function fieldsOf(value: JsonObject): JsonObject {
  const node: JsonObject = {};
  for (const [key, child] of Object.entries(value)) {
    node[`f:${key}`] = isJsonObject(child) && Object.keys(child).length > 0 ? fieldsOf(child) : {};
  }
  return node;
}

/** The fieldsV1 of the `Apply` entry of `manager` on the main resource (not a subresource). */
export function appliedFieldsOf(object: KubeObject, manager: string): JsonObject | undefined {
  const entries = object.metadata.managedFields;
  if (!Array.isArray(entries)) return undefined;
  for (const entry of entries) {
    if (entry.manager !== manager || entry.operation !== 'Apply') continue;
    if (entry.subresource !== undefined && entry.subresource !== '') continue;
    if (entry.fieldsType !== undefined && entry.fieldsType !== 'FieldsV1') return undefined;
    return isJsonObject(entry.fieldsV1) ? entry.fieldsV1 : {};
  }
  return undefined;
}

/**
 * True when `live` already holds what applying `desired` would write: the fields `manager`'s
 * Apply entry owns are exactly the desired fields, and each owned value equals the desired value.
 * Identity fields (apiVersion, kind, metadata.name/namespace) are not compared; a `status` the
 * manager does not own (a status subresource) and a null `creationTimestamp` are ignored.
 * False means "maybe different": the caller applies (a no-op SSA leaves the object untouched).
 */
export function ownedFieldsMatch(desired: KubeObject, live: KubeObject, owned: JsonObject): boolean {
  const comparable = comparableDesired(desired, owned);
  return matchNode(comparable, stripIdentity(live), owned);
}

function stripIdentity(object: KubeObject): JsonObject {
  const { apiVersion: _apiVersion, kind: _kind, metadata, ...rest } = object;
  const { name: _name, namespace: _namespace, ...metadataRest } = metadata;
  return { ...(rest as JsonObject), metadata: metadataRest as JsonObject };
}

function comparableDesired(desired: KubeObject, owned: JsonObject): JsonObject {
  const result = stripIdentity(desired);
  const metadata = result.metadata as JsonObject;
  if (metadata.creationTimestamp === null) delete metadata.creationTimestamp;
  if (Object.keys(metadata).length === 0) delete result.metadata;
  if (result.status !== undefined && !Object.hasOwn(owned, 'f:status')) delete result.status;
  return result;
}

function childKeys(node: JsonObject): string[] {
  return Object.keys(node).filter((key) => key !== selfMarker);
}

function childNode(node: JsonObject, key: string): JsonObject {
  const child = node[key];
  return isJsonObject(child) ? child : {};
}

function matchNode(desired: JsonValue, live: JsonValue | undefined, node: JsonObject): boolean {
  const keys = childKeys(node);
  if (keys.length === 0) return jsonEqual(desired, live);
  if (Array.isArray(desired)) return Array.isArray(live) && matchList(desired, live, node, keys);
  if (!isJsonObject(desired) || !isJsonObject(live)) return false;
  const desiredKeys = Object.keys(desired);
  if (desiredKeys.length !== keys.length) return false;
  for (const key of desiredKeys) {
    const fieldKey = `f:${key}`;
    if (!Object.hasOwn(node, fieldKey)) return false;
    if (!matchNode(desired[key] as JsonValue, live[key], childNode(node, fieldKey))) return false;
  }
  return true;
}

function matchList(desired: JsonValue[], live: JsonValue[], node: JsonObject, keys: string[]): boolean {
  if (desired.length !== keys.length) return false;
  const elements = keys.map(parsePathElement);
  const kinds = new Set(elements.map((element) => element.type));
  if (kinds.size !== 1) return false;
  const [kind] = kinds;
  if (kind === 'value') {
    const desiredValues = new Set(desired.map((value) => canonicalJson(value)));
    const liveValues = new Set(live.map((value) => canonicalJson(value)));
    return (
      elements.every((element) => {
        if (element.type !== 'value') return false;
        const canonical = canonicalJson(element.value);
        return desiredValues.has(canonical) && liveValues.has(canonical);
      }) && desiredValues.size === desired.length
    );
  }
  if (kind === 'index') {
    return elements.every((element, position) => {
      if (element.type !== 'index' || element.index >= desired.length) return false;
      return matchNode(desired[element.index]!, live[element.index], childNode(node, keys[position]!));
    });
  }
  if (kind === 'key') {
    const matched = new Set<number>();
    for (const [position, element] of elements.entries()) {
      if (element.type !== 'key') return false;
      let desiredIndex = desired.findIndex((item) => hasKey(item, element.key));
      // A key field the desired item leaves out is one the server defaulted (a Service port's
      // `protocol: TCP`): the item is still that key's, as long as no other item claims it.
      if (desiredIndex < 0) desiredIndex = desired.findIndex((item) => hasKeyDefaulted(item, element.key));
      const liveItem = live.find((item) => hasKey(item, element.key));
      if (desiredIndex < 0 || liveItem === undefined || matched.has(desiredIndex)) return false;
      matched.add(desiredIndex);
      if (!matchNode(desired[desiredIndex]!, liveItem, childNode(node, keys[position]!))) return false;
    }
    return matched.size === desired.length;
  }
  return false;
}

function hasKey(item: JsonValue, key: JsonObject): boolean {
  if (!isJsonObject(item)) return false;
  return Object.entries(key).every(([field, value]) => jsonEqual(item[field], value));
}

/** The item sets some of the key's fields, with the key's values, and leaves the others out. */
function hasKeyDefaulted(item: JsonValue, key: JsonObject): boolean {
  if (!isJsonObject(item)) return false;
  const fields = Object.entries(key);
  return (
    fields.some(([field]) => Object.hasOwn(item, field)) &&
    fields.every(([field, value]) => !Object.hasOwn(item, field) || jsonEqual(item[field], value))
  );
}
