import { RenderError } from './errors.ts';
import { isJsonObject, type KubeObject, splitApiVersion } from './object.ts';
import type { RenderedObject } from './render.ts';

export type ResourceScope = 'Namespaced' | 'Cluster';

/** Answers from discovery (or a fixture): undefined when the kind is unknown to the cluster. */
export type ScopeLookup = (apiVersion: string, kind: string) => ResourceScope | undefined;

export interface ScopeOptions {
  /** When set, every namespaced object is moved into this namespace. */
  readonly targetNamespace?: string;
  /** Namespace for namespaced objects that name none (default `default`). */
  readonly defaultNamespace?: string;
}

/**
 * Sets namespaces once namespaced-ness is known. Pure: discovery is passed in as `scopeOf`.
 * CustomResourceDefinitions in the same set answer for their own kinds, so a CRD and its
 * custom objects can arrive together. Cluster-scoped objects lose any `metadata.namespace`.
 * A kind neither `scopeOf` nor the set's CRDs know is refused with `UnknownScope`.
 */
export function applyScope(
  objects: readonly RenderedObject[],
  options: ScopeOptions,
  scopeOf: ScopeLookup,
): RenderedObject[] {
  const fromCrds = crdScopes(objects.map((rendered) => rendered.object));
  const defaultNamespace = options.defaultNamespace ?? 'default';
  return objects.map((rendered) => {
    const { object } = rendered;
    const scope =
      scopeOf(object.apiVersion, object.kind) ??
      fromCrds.get(`${splitApiVersion(object.apiVersion).group}/${object.kind}`);
    if (scope === undefined) {
      throw new RenderError(
        'UnknownScope',
        `no API resource for ${object.apiVersion} ${object.kind} (is its CustomResourceDefinition installed?)`,
        rendered.source,
      );
    }
    const { namespace: _dropped, ...clusterMetadata } = object.metadata;
    if (scope === 'Cluster') {
      if (object.metadata.namespace === undefined) return rendered;
      return { ...rendered, object: { ...object, metadata: clusterMetadata } };
    }
    const namespace = options.targetNamespace ?? object.metadata.namespace ?? defaultNamespace;
    if (namespace === object.metadata.namespace) return rendered;
    return { ...rendered, object: { ...object, metadata: { ...object.metadata, namespace } } };
  });
}

/** `group/Kind` → scope for every CustomResourceDefinition in the set. */
export function crdScopes(objects: readonly KubeObject[]): Map<string, ResourceScope> {
  const scopes = new Map<string, ResourceScope>();
  for (const object of objects) {
    if (object.kind !== 'CustomResourceDefinition') continue;
    if (splitApiVersion(object.apiVersion).group !== 'apiextensions.k8s.io') continue;
    const spec = object.spec;
    if (!isJsonObject(spec) || !isJsonObject(spec.names)) continue;
    const { group, scope } = spec;
    const kind = spec.names.kind;
    if (typeof group !== 'string' || typeof kind !== 'string') continue;
    if (scope === 'Namespaced' || scope === 'Cluster') scopes.set(`${group}/${kind}`, scope);
  }
  return scopes;
}
