/**
 * The object model shared by render, plan, apply and the kube adapter: a Kubernetes object as
 * plain JSON data, plus its identity and the one formatter for `Kind/namespace/name` subjects.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface KubeMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  managedFields?: ManagedFieldsEntry[];
  deletionTimestamp?: string;
  [key: string]: unknown;
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  apiVersion?: string;
  fieldsType?: string;
  fieldsV1?: JsonObject;
  subresource?: string;
  time?: string;
  [key: string]: unknown;
}

/** A Kubernetes object exactly as rendered or read: every field kept, nothing dropped. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeMetadata;
  [key: string]: JsonValue | KubeMetadata | undefined;
}

export interface ObjectIdentity {
  /** API group; empty string for the core group. */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  /** Empty string for cluster-scoped objects (or not yet known). */
  readonly namespace: string;
  readonly name: string;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  if (slash < 0) return { group: '', version: apiVersion };
  return { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function identityOf(object: KubeObject): ObjectIdentity {
  const { group, version } = splitApiVersion(object.apiVersion);
  return {
    group,
    version,
    kind: object.kind,
    namespace: object.metadata.namespace ?? '',
    name: object.metadata.name,
  };
}

/** `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects. */
export function formatSubject(id: Pick<ObjectIdentity, 'kind' | 'namespace' | 'name'>): string {
  return id.namespace === '' ? `${id.kind}/${id.name}` : `${id.kind}/${id.namespace}/${id.name}`;
}

/** Identity key ignoring the version: two versions of one object are the same object. */
export function objectKey(id: Pick<ObjectIdentity, 'group' | 'kind' | 'namespace' | 'name'>): string {
  return `${id.namespace}_${id.name}_${id.group}_${id.kind}`;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep equality of JSON values; object key order does not matter. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let index = 0; index < a.length; index++) {
      if (!jsonEqual(a[index], b[index])) return false;
    }
    return true;
  }
  if (typeof a === 'object') {
    if (typeof b !== 'object' || Array.isArray(b)) return false;
    const keysA = Object.keys(a);
    if (keysA.length !== Object.keys(b).length) return false;
    for (const key of keysA) {
      if (!Object.hasOwn(b, key) || !jsonEqual(a[key], b[key])) return false;
    }
    return true;
  }
  return false;
}

/** JSON with object keys sorted: a canonical form for comparisons and digests. */
export function canonicalJson(value: JsonValue | KubeObject): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (isJsonObject(inner)) {
      const sorted: JsonObject = {};
      for (const key of Object.keys(inner).sort()) sorted[key] = inner[key] as JsonValue;
      return sorted;
    }
    return inner;
  });
}
