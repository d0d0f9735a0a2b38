// Pure parts of the Flux side-by-side bench (bench/flux.bench.ts): the Flux objects for one signed
// repository, the readiness test of a Kustomization, and the tally of API requests per user agent
// from kube-apiserver audit lines. No I/O (test/bench/flux.test.ts).
import type { KubeObject } from '../../src/render/object.ts';

export const fluxSourceApi = 'source.toolkit.fluxcd.io/v1';
export const fluxKustomizeApi = 'kustomize.toolkit.fluxcd.io/v1';
/** Flux's own "reconcile now" annotation (what `flux reconcile` sets). */
export const fluxRequestedAt = 'reconcile.fluxcd.io/requestedAt';
/** The user agents of the two controllers: client-go's default, `<binary name>/<version> (...)`. */
export const fluxUserAgents: readonly string[] = ['source-controller/', 'kustomize-controller/'];

/** The Secret names the Flux objects refer to. */
export const fluxGitSecretName = 'flux-git';
export const fluxSignersSecretName = 'flux-signers';

export interface FluxRepositorySpec {
  readonly namespace: string;
  /** Name of the GitRepository and of its Kustomization. */
  readonly name: string;
  /** HTTPS URL of the repository (git http-backend of test/support/git-server.ts). */
  readonly url: string;
  /** PEM of the CA that signed the Git server's certificate. */
  readonly caPem: string;
  /** `ssh-ed25519 AAAA… comment` of the key the commits are signed with. */
  readonly signerPublicKey: string;
  /** Directory of the manifests inside the repository, e.g. `./deploy`. */
  readonly path: string;
  /** spec.interval of both objects, e.g. `10m`. */
  readonly interval: string;
  /** Kustomization spec.targetNamespace; omitted when the manifests name their namespaces. */
  readonly targetNamespace?: string;
  /** GitRepository (and its Secrets) to use, when several Kustomizations share one; default `name`. */
  readonly sourceName?: string;
}

/**
 * The Secrets a Flux GitRepository needs to fetch over HTTPS with our CA (`ca.crt`) and to verify
 * the HEAD commit's SSH signature (a `.sshpub` key): the same trust as Signet's policy.
 */
export function fluxTrustObjects(spec: FluxRepositorySpec): KubeObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: fluxGitSecretName, namespace: spec.namespace },
      stringData: { 'ca.crt': spec.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: fluxSignersSecretName, namespace: spec.namespace },
      stringData: { 'release.sshpub': `${spec.signerPublicKey.trim()}\n` },
    },
  ];
}

/** A GitRepository on branch main, HEAD commit verified against the signers Secret. */
export function fluxGitRepository(spec: FluxRepositorySpec): KubeObject {
  return {
    apiVersion: fluxSourceApi,
    kind: 'GitRepository',
    metadata: { name: spec.name, namespace: spec.namespace },
    spec: {
      url: spec.url,
      ref: { branch: 'main' },
      interval: spec.interval,
      timeout: '120s',
      secretRef: { name: fluxGitSecretName },
      verify: { mode: 'HEAD', secretRef: { name: fluxSignersSecretName } },
    },
  };
}

/**
 * A Kustomization applying `spec.path` of that GitRepository into its own namespace, with pruning
 * (what Signet does with its inventory) and no health checks (Signet waits for none either).
 */
export function fluxKustomization(spec: FluxRepositorySpec): KubeObject {
  return {
    apiVersion: fluxKustomizeApi,
    kind: 'Kustomization',
    metadata: { name: spec.name, namespace: spec.namespace },
    spec: {
      interval: spec.interval,
      path: spec.path,
      prune: true,
      wait: false,
      timeout: '10m',
      ...(spec.targetNamespace === undefined ? {} : { targetNamespace: spec.targetNamespace }),
      sourceRef: { kind: 'GitRepository', name: spec.sourceName ?? spec.name },
    },
  };
}

interface StatusCondition {
  readonly type?: unknown;
  readonly status?: unknown;
}

/** Whether a Kustomization's status says Ready=True with `revision` applied. */
export function kustomizationApplied(status: Readonly<Record<string, unknown>>, revision: string): boolean {
  if (status.lastAppliedRevision !== revision) return false;
  const conditions = Array.isArray(status.conditions) ? (status.conditions as StatusCondition[]) : [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Requests of a set of user agents counted from audit lines, one per auditID. */
export interface AuditTally {
  readonly total: number;
  /** `verb resource[/subresource]` → requests. */
  readonly byKind: Readonly<Record<string, number>>;
  /** User-agent prefix → requests. */
  readonly byAgent: Readonly<Record<string, number>>;
  /** Answers with HTTP 429. */
  readonly throttled429: number;
}

interface AuditEvent {
  readonly auditID?: string;
  readonly userAgent?: string;
  readonly verb?: string;
  readonly objectRef?: { resource?: string; subresource?: string };
  readonly responseStatus?: { code?: number };
  readonly requestReceivedTimestamp?: string;
}

/**
 * Tallies the requests whose user agent starts with one of `agentPrefixes` and that the API
 * server received in [since, until] (ms since the epoch). A request appears in the audit log once
 * per stage (a watch's ResponseStarted long before its ResponseComplete): counted once per auditID.
 * Lines that are not JSON (a partly written last line) are skipped.
 */
export function tallyAudit(
  lines: Iterable<string>,
  agentPrefixes: readonly string[],
  since: number,
  until: number = Number.POSITIVE_INFINITY,
): AuditTally {
  const seen = new Map<string, { agent: string; kind: string; code: number }>();
  for (const line of lines) {
    if (!agentPrefixes.some((prefix) => line.includes(`"userAgent":"${prefix}`))) continue;
    let event: AuditEvent;
    try {
      event = JSON.parse(line) as AuditEvent;
    } catch {
      continue;
    }
    const agent = agentPrefixes.find((prefix) => event.userAgent?.startsWith(prefix) === true);
    const received = Date.parse(event.requestReceivedTimestamp ?? '');
    if (agent === undefined || event.auditID === undefined) continue;
    if (!(received >= since && received <= until)) continue;
    const ref = event.objectRef;
    const resource =
      ref?.resource === undefined
        ? 'non-resource'
        : `${ref.resource}${ref.subresource === undefined ? '' : `/${ref.subresource}`}`;
    const previous = seen.get(event.auditID);
    seen.set(event.auditID, {
      agent,
      kind: `${event.verb ?? '?'} ${resource}`,
      code: event.responseStatus?.code ?? previous?.code ?? 0,
    });
  }
  const byKind: Record<string, number> = {};
  const byAgent: Record<string, number> = {};
  let throttled429 = 0;
  for (const request of seen.values()) {
    byKind[request.kind] = (byKind[request.kind] ?? 0) + 1;
    byAgent[request.agent] = (byAgent[request.agent] ?? 0) + 1;
    if (request.code === 429) throttled429++;
  }
  return { total: seen.size, byKind, byAgent, throttled429 };
}

/** The median of a non-empty list (the lower middle for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}

/**
 * `count` ConfigMaps as repository files under `dir`, 100 documents a file (as bench/apply.bench.ts
 * writes them): `cm-<i>` with `data.index` = i and a 64-byte payload.
 */
export function configMapFiles(count: number, dir = 'deploy'): Record<string, string> {
  const perFile = 100;
  const files: Record<string, string> = {};
  for (let start = 0; start < count; start += perFile) {
    const docs: string[] = [];
    for (let index = start; index < Math.min(count, start + perFile); index++) {
      docs.push(
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${index}\ndata:\n  index: "${index}"\n  payload: "${'x'.repeat(64)}"\n`,
      );
    }
    files[`${dir}/cm-${String(start).padStart(5, '0')}.yaml`] = docs.join('---\n');
  }
  return files;
}

/**
 * The fleet's monorepo tree for one tool: `apps/<tool>/app-<i>/app.yaml` holding a Namespace
 * `<tool>-app-<i>` and, in it, a ServiceAccount, a ConfigMap and a Deployment (the four objects of
 * Flux's published fleet benchmark). Each tool gets its own names so both can apply in one cluster.
 */
export function fleetFiles(count: number, tool: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let index = 0; index < count; index++) {
    const namespace = `${tool}-app-${index}`;
    files[`apps/${tool}/app-${index}/app.yaml`] = [
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n`,
      `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: ${namespace}\n`,
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: ${namespace}\ndata:\n  index: "${index}"\n`,
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: ${namespace}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: app\n  template:\n    metadata:\n      labels:\n        app: app\n    spec:\n      serviceAccountName: app\n      containers:\n        - name: app\n          image: registry.k8s.io/pause:3.10\n`,
    ].join('---\n');
  }
  return files;
}
