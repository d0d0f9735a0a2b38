import { isJsonObject, type JsonObject, splitApiVersion } from '../render/object.ts';
import type { ResourceScope } from '../render/scope.ts';
import { KubeApiError } from './errors.ts';

export interface ResourceInfo {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  /** Plural resource name used in URLs, e.g. `configmaps`. */
  readonly resource: string;
  readonly namespaced: boolean;
}

/** Fetches a discovery document (`/api/v1` or `/apis/<group>/<version>`); undefined on 404. */
export type DiscoveryFetcher = (path: string, signal?: AbortSignal) => Promise<JsonObject | undefined>;

function groupVersionPath(apiVersion: string): string {
  const { group } = splitApiVersion(apiVersion);
  return group === '' ? `/api/${apiVersion}` : `/apis/${apiVersion}`;
}

/**
 * Resolves (apiVersion, kind) → resource with a per-group-version cache. A miss (unknown
 * group-version, or a kind not yet listed) refetches that one group-version document, so CRDs
 * created earlier in the same run resolve; concurrent misses share one request.
 */
export class Discovery {
  readonly #fetch: DiscoveryFetcher;
  readonly #byGroupVersion = new Map<string, Map<string, ResourceInfo>>();
  readonly #inFlight = new Map<string, Promise<Map<string, ResourceInfo>>>();

  constructor(fetcher: DiscoveryFetcher) {
    this.#fetch = fetcher;
  }

  /** Cached answer only (no request): for `applyScope`. */
  scopeOf(apiVersion: string, kind: string): ResourceScope | undefined {
    const info = this.#byGroupVersion.get(apiVersion)?.get(kind);
    if (info === undefined) return undefined;
    return info.namespaced ? 'Namespaced' : 'Cluster';
  }

  /** Loads the group-versions not cached yet (one request each). */
  async prefetch(apiVersions: Iterable<string>, signal?: AbortSignal): Promise<void> {
    const missing = [...new Set(apiVersions)].filter((apiVersion) => !this.#byGroupVersion.has(apiVersion));
    await Promise.all(missing.map((apiVersion) => this.#load(apiVersion, signal)));
  }

  async resolve(apiVersion: string, kind: string, signal?: AbortSignal): Promise<ResourceInfo> {
    const cached = this.#byGroupVersion.get(apiVersion)?.get(kind);
    if (cached !== undefined) return cached;
    const fresh = await this.#load(apiVersion, signal);
    const info = fresh.get(kind);
    if (info === undefined) {
      throw new KubeApiError({
        code: 'NoKindMatch',
        status: 0,
        reason: 'NoKindMatch',
        subject: `${apiVersion} ${kind}`,
        verb: 'discovery',
        serverMessage: `the server does not serve kind ${kind} in ${apiVersion}`,
      });
    }
    return info;
  }

  /**
   * What Helm's `.Capabilities` reflects (docs/helm.md), as Helm's own discovery builds it: the
   * server's gitVersion (/version), every served group-version (/api, /apis, read fresh: CRDs come
   * and go) and `group/version/Kind` for each kind they serve (one document per group-version, cached
   * like every resolve; a group-version that cannot be read is left without kinds, as Helm does).
   */
  async capabilities(signal?: AbortSignal): Promise<ClusterCapabilities> {
    const [version, core, groups] = await Promise.all(
      ['/version', '/api', '/apis'].map((path) => this.#fetch(path, signal)),
    );
    const parsed = parseCapabilities(version, core, groups);
    const kinds = await Promise.all(
      parsed.apiVersions.map(async (apiVersion) => {
        const cached = this.#byGroupVersion.get(apiVersion);
        const resources = cached ?? (await this.#load(apiVersion, signal).catch(() => undefined));
        return [...(resources?.keys() ?? [])].map((kind) => `${apiVersion}/${kind}`);
      }),
    );
    signal?.throwIfAborted();
    return { ...parsed, apiVersions: [...parsed.apiVersions, ...kinds.flat()] };
  }

  /** Drops the cache (e.g. after CRDs were deleted). */
  invalidate(): void {
    this.#byGroupVersion.clear();
  }

  #load(apiVersion: string, signal?: AbortSignal): Promise<Map<string, ResourceInfo>> {
    const pending = this.#inFlight.get(apiVersion);
    if (pending !== undefined) return pending;
    const loading = this.#fetch(groupVersionPath(apiVersion), signal)
      .then((document) => {
        const resources = parseResourceList(apiVersion, document);
        // An unknown group-version is not cached: its CRD may be created later in this run.
        if (document !== undefined) this.#byGroupVersion.set(apiVersion, resources);
        return resources;
      })
      .finally(() => this.#inFlight.delete(apiVersion));
    this.#inFlight.set(apiVersion, loading);
    return loading;
  }
}

export interface ClusterCapabilities {
  /** e.g. v1.36.0 */
  readonly kubeVersion: string;
  /** "v1", "apps/v1", ... */
  readonly apiVersions: readonly string[];
}

/** Parses /version, /api (APIVersions) and /apis (APIGroupList); fails closed on a missing version. */
export function parseCapabilities(
  version: JsonObject | undefined,
  core: JsonObject | undefined,
  groups: JsonObject | undefined,
): ClusterCapabilities {
  const kubeVersion = version?.gitVersion;
  if (typeof kubeVersion !== 'string' || kubeVersion === '')
    throw new Error('the API server did not report its version (/version gitVersion)');
  const apiVersions: string[] = [];
  for (const v of Array.isArray(core?.versions) ? core.versions : [])
    if (typeof v === 'string') apiVersions.push(v);
  for (const group of Array.isArray(groups?.groups) ? groups.groups : []) {
    if (!isJsonObject(group) || !Array.isArray(group.versions)) continue;
    for (const v of group.versions)
      if (isJsonObject(v) && typeof v.groupVersion === 'string') apiVersions.push(v.groupVersion);
  }
  return { kubeVersion, apiVersions };
}

/** Parses an APIResourceList; subresources (`pods/status`) are skipped. */
export function parseResourceList(
  apiVersion: string,
  document: JsonObject | undefined,
): Map<string, ResourceInfo> {
  const resources = new Map<string, ResourceInfo>();
  const { group, version } = splitApiVersion(apiVersion);
  const list = document?.resources;
  if (!Array.isArray(list)) return resources;
  for (const entry of list) {
    if (!isJsonObject(entry)) continue;
    const { name, kind, namespaced } = entry;
    if (typeof name !== 'string' || typeof kind !== 'string' || name.includes('/')) continue;
    resources.set(kind, { group, version, kind, resource: name, namespaced: namespaced === true });
  }
  return resources;
}
