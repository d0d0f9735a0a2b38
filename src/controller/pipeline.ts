/**
 * The steps a revision goes through before anything is applied, shared by the operator and by
 * `signet verify` / `signet diff` so that CI runs exactly the operator's checks:
 * resolve → fetch → verify commits/tags → read the tree → verify provenance → render → scope.
 * Each returns data: a result, or a refusal with a reason a user can act on.
 */
import { createHash } from 'node:crypto';
import type { GitRepository, ImagePolicySpec, TypedReference } from '../api/gitrepository.ts';
import { formatRevision } from '../api/revision.ts';
import { VerdictCache } from '../images/cache.ts';
import { type Credentials, parseDockerConfig } from '../images/registry-auth.ts';
import { RegistryClient, type RegistryClientOptions, type RegistryPort } from '../images/registry-client.ts';
import {
  defaultImageVerificationLimits,
  type ImageAudit,
  type ImageVerificationLimits,
  type ResolvedTrust,
  verifyImages,
} from '../images/verify-images.ts';
import type { Discovery } from '../kube/discovery.ts';
import { kustomizeProvenanceScope } from '../provenance/kustomize-scope.ts';
import { verifyProvenance } from '../provenance/verify.ts';
import { RenderError } from '../render/errors.ts';
import { renderHelmChart } from '../render/helm.ts';
import { type HelmEngine, sharedHelmEngine } from '../render/helm-engine.ts';
import { isKustomization, renderKustomization } from '../render/kustomize.ts';
import type { KustomizeEngine } from '../render/kustomize-engine.ts';
import { sharedKustomizeEngine } from '../render/kustomize-select.ts';
import type { KubeObject } from '../render/object.ts';
import { type RenderedObject, renderManifests } from '../render/render.ts';
import { applyScope, crdScopes } from '../render/scope.ts';
import { SourceError, safeUrl } from '../source/errors.ts';
import { parseTrustedRoot, publicGoodTrustedRoot, type TrustedRootJSON } from '../trust-root/index.ts';
import { withDeadline } from '../util/deadline.ts';
import { keylessX509Checker } from '../verify/keyless-checker.ts';
import type { TrustMaterialCache } from '../verify/trust.ts';
import type { Evidence } from '../verify/types.ts';
import { verifyRevision } from '../verify/verify-revision.ts';
import type {
  FetchedRepository,
  GitCredentials,
  PollShare,
  RemoteSpec,
  ResolvedRevision,
  SourcePort,
  TreeSnapshot,
} from './ports.ts';
import { describeSigner } from './status.ts';

/** Reads a Secret or ConfigMap of the GitRepository's namespace (decoded), or throws naming it. */
export type ReferenceReader = (ref: TypedReference, signal: AbortSignal) => Promise<Record<string, string>>;

export type Refusal = {
  readonly ok: false;
  /** fetch: transient, retried; verify: the revision is refused (fail closed); build: the manifests are invalid. */
  readonly stage: 'fetch' | 'verify' | 'build';
  readonly reason: string;
  /** The Git host is at its concurrency limit: nothing failed, the reconcile is retried shortly. */
  readonly deferred?: boolean;
  readonly message: string;
  readonly revision?: string;
};

export interface PipelineDeps {
  readonly source: SourcePort;
  readonly readReference: ReferenceReader;
  readonly trustCache: TrustMaterialCache;
  readonly now: () => Date;
  /** Image verdicts kept across reconciles (the operator's one cache); a fresh one per call when absent. */
  readonly imageCache?: VerdictCache;
  /** The registry client for spec.verify.images (tests and benchmarks count its requests). */
  readonly registryFor?: (options: RegistryClientOptions) => RegistryPort;
  /** Bounds of image verification (the operator's flags); the defaults when absent. */
  readonly imageLimits?: ImageVerificationLimits;
}

/** How many image verdicts the operator keeps (each a few hundred bytes). */
export const defaultImageCacheEntries = defaultImageVerificationLimits.cacheEntries;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function resolveRevision(
  repo: GitRepository,
  deps: PipelineDeps,
  signal: AbortSignal,
  share?: PollShare,
): Promise<{ ok: true; remote: RemoteSpec; resolved: ResolvedRevision; revision: string } | Refusal> {
  let credentials: GitCredentials = {};
  if (repo.spec.secretRef !== undefined) {
    try {
      const data = await deps.readReference({ kind: 'Secret', name: repo.spec.secretRef.name }, signal);
      credentials = {
        ...(data.username === undefined ? {} : { username: data.username }),
        ...(data.password === undefined ? {} : { password: data.password }),
        ...(data.bearerToken === undefined ? {} : { bearerToken: data.bearerToken }),
        ...(data['ca.crt'] === undefined ? {} : { caPem: data['ca.crt'] }),
        ...(data.identity === undefined ? {} : { identity: data.identity }),
        ...(data.known_hosts === undefined ? {} : { knownHosts: data.known_hosts }),
      };
    } catch (error) {
      return {
        ok: false,
        stage: 'fetch',
        reason: 'FetchFailed',
        message: `fetching ${safeUrl(repo.spec.url)}: spec.secretRef: ${message(error)}`,
      };
    }
  }
  const remote: RemoteSpec = {
    url: repo.spec.url,
    insecure: repo.spec.insecure,
    timeoutMs: repo.spec.timeoutMs,
    credentials,
  };
  try {
    const resolved = await withDeadline(repo.spec.timeoutMs, signal, (resolveSignal) =>
      deps.source.resolve(remote, repo.spec.ref, resolveSignal, share),
    );
    const revision = formatRevision({
      ...(resolved.refName === undefined ? {} : { ref: resolved.refName }),
      commit: resolved.commit,
    });
    return { ok: true, remote, resolved, revision };
  } catch (error) {
    signal.throwIfAborted();
    return {
      ok: false,
      stage: 'fetch',
      reason: 'FetchFailed',
      message: `fetching ${safeUrl(repo.spec.url)}: ${message(error)}`,
      ...(isHostBusy(error) ? { deferred: true } : {}),
    };
  }
}

function isHostBusy(error: unknown): boolean {
  return error instanceof SourceError && error.code === 'HostBusy';
}

export async function trustedRootOf(
  repo: GitRepository,
  deps: PipelineDeps,
  signal: AbortSignal,
): Promise<TrustedRootJSON> {
  const ref = repo.spec.verify.trustedRootRef;
  if (ref === undefined) return publicGoodTrustedRoot();
  const data = await deps.readReference({ kind: 'ConfigMap', name: ref.name }, signal);
  const text = data['trusted_root.json'];
  if (text === undefined) throw new Error(`ConfigMap ${ref.name} has no key trusted_root.json`);
  return parseTrustedRoot(JSON.parse(text));
}

/**
 * The verified tree to render. For a kustomization (spec.path holds kustomization.yaml/.yml or
 * Kustomization) it is the whole repository root, since the build may read any of it, and
 * `kustomizeDir` is spec.path inside it; otherwise it is the tree at spec.path.
 */
export interface VerifiedTree extends TreeSnapshot {
  readonly kustomizeDir?: string;
  /**
   * Set when spec.helm renders a chart: the tree is the whole repository root (the chart, its
   * vendored dependencies and the values files may be anywhere in it) and this is spec.path, where
   * the provenance bundle lives, as for a kustomization (docs/helm.md).
   */
  readonly helmDir?: string;
}

export interface VerifiedRevision {
  readonly ok: true;
  readonly revision: string;
  readonly fetched: FetchedRepository;
  readonly files: VerifiedTree;
  readonly evidence: Evidence;
  readonly signer: string;
}

/**
 * Fetches and verifies; on success the manifest tree of the verified commit is returned. Reading
 * the repository (fetch, verification's history walks, the tree) is bounded by spec.timeout.
 */
export async function fetchAndVerify(
  repo: GitRepository,
  cacheKey: string,
  remote: RemoteSpec,
  resolved: ResolvedRevision,
  revision: string,
  lastAppliedCommit: string | undefined,
  deps: PipelineDeps,
  signal: AbortSignal,
): Promise<VerifiedRevision | Refusal> {
  return withDeadline(repo.spec.timeoutMs, signal, (gitSignal) =>
    fetchAndVerifyWithin({
      repo,
      cacheKey,
      remote,
      resolved,
      revision,
      lastAppliedCommit,
      deps,
      signal,
      gitSignal,
    }),
  );
}

/** fetchAndVerify's arguments, and `gitSignal`: the reconcile's signal bounded by spec.timeout. */
interface FetchAndVerifyCall {
  readonly repo: GitRepository;
  readonly cacheKey: string;
  readonly remote: RemoteSpec;
  readonly resolved: ResolvedRevision;
  readonly revision: string;
  readonly lastAppliedCommit: string | undefined;
  readonly deps: PipelineDeps;
  readonly signal: AbortSignal;
  readonly gitSignal: AbortSignal;
}

async function fetchAndVerifyWithin(call: FetchAndVerifyCall): Promise<VerifiedRevision | Refusal> {
  const { repo, cacheKey, remote, resolved, revision, lastAppliedCommit, deps, signal, gitSignal } = call;
  let fetched: FetchedRepository;
  try {
    fetched = await deps.source.fetch(
      cacheKey,
      remote,
      repo.spec.ref,
      resolved,
      {
        // Ancestry (rollback protection) and Range need history back to the last applied commit.
        depth: repo.spec.verify.mode === 'Range' || lastAppliedCommit !== undefined ? 'full' : 1,
        ...(lastAppliedCommit === undefined ? {} : { since: lastAppliedCommit }),
      },
      gitSignal,
    );
  } catch (error) {
    signal.throwIfAborted();
    return {
      ok: false,
      stage: 'fetch',
      reason: 'FetchFailed',
      message: `fetching ${revision} from ${safeUrl(repo.spec.url)}: ${message(error)}`,
      revision,
      ...(isHostBusy(error) ? { deferred: true } : {}),
    };
  }
  let trustedRoot: TrustedRootJSON | undefined;
  try {
    const signerFiles =
      repo.spec.verify.signersRef === undefined
        ? {}
        : await deps.readReference(repo.spec.verify.signersRef, signal);
    const trust = await deps.trustCache.load(signerFiles);
    if (repo.spec.verify.keyless.length > 0 || repo.spec.verify.provenance !== undefined) {
      trustedRoot = await trustedRootOf(repo, deps, signal);
    }
    const verdict = await verifyRevision({
      reader: fetched,
      mode: repo.spec.verify.mode,
      commit: resolved.commit,
      ...(resolved.tagObject === undefined ? {} : { tagObject: resolved.tagObject }),
      ...(resolved.tagName === undefined ? {} : { tagName: resolved.tagName }),
      ...(lastAppliedCommit === undefined ? {} : { lastAppliedCommit }),
      allowRollback: repo.spec.verify.allowRollback,
      matchCommitter: repo.spec.verify.matchCommitter,
      trust,
      ...(repo.spec.verify.keyless.length === 0 || trustedRoot === undefined
        ? {}
        : {
            x509Checker: keylessX509Checker(
              { identities: [...repo.spec.verify.keyless], trustedRoot },
              { signal },
            ),
          }),
      now: deps.now(),
      signal: gitSignal,
    });
    if (!verdict.verified)
      return { ok: false, stage: 'verify', reason: verdict.reason, message: verdict.message, revision };
    let files: VerifiedTree;
    try {
      if (repo.spec.helm !== undefined) {
        const root = await fetched.readTree(resolved.commit, '', gitSignal);
        files = { ...root, helmDir: repo.spec.path };
      } else files = await fetched.readTree(resolved.commit, repo.spec.path, gitSignal);
      if (files.helmDir === undefined && isKustomization(files, '')) {
        const root = await fetched.readTree(resolved.commit, '', gitSignal);
        files = { ...root, kustomizeDir: repo.spec.path };
      }
    } catch (error) {
      signal.throwIfAborted();
      return {
        ok: false,
        stage: 'build',
        reason: 'BuildFailed',
        message: `reading ${repo.spec.path || '.'} at ${revision}: ${message(error)}`,
        revision,
      };
    }
    const provenance = repo.spec.verify.provenance;
    if (provenance !== undefined && trustedRoot !== undefined) {
      const keys =
        provenance.keysRef === undefined ? undefined : await deps.readReference(provenance.keysRef, signal);
      // A kustomization's bundle covers the repository root (docs/provenance.md) and lives at
      // <spec.path>/<bundlePath>: it is read from there, and <spec.path>/.signet/ is left out.
      const dir = files.kustomizeDir ?? files.helmDir ?? '';
      const scoped = kustomizeProvenanceScope(files, dir);
      const bundleAt = dir === '' ? provenance.bundlePath : `${dir}/${provenance.bundlePath}`;
      const bundle = files.files.find((file) => file.path === bundleAt);
      if (dir !== '' && bundle === undefined) {
        return {
          ok: false,
          stage: 'verify',
          reason: 'ProvenanceFailed',
          message: `provenance of ${revision}: no provenance bundle at ${bundleAt} (a regular file); publish one with the manifests or disable provenance`,
          revision,
        };
      }
      const result = await verifyProvenance({
        files: scoped.files,
        symlinks: scoped.symlinks,
        bundlePath: provenance.bundlePath,
        ...(dir === '' || bundle === undefined ? {} : { bundleJson: bundle.content }),
        policy: {
          trustedRoot,
          identities: [...provenance.keyless],
          ...(keys === undefined ? {} : { keys }),
          predicateTypes: [...provenance.predicateTypes],
          ...(provenance.builderIds.length === 0 ? {} : { builderIds: [...provenance.builderIds] }),
        },
        source: { url: repo.spec.url, commit: resolved.commit },
        signal,
      });
      if (!result.ok) {
        return {
          ok: false,
          stage: 'verify',
          reason: 'ProvenanceFailed',
          message: `provenance of ${revision}: ${result.message}`,
          revision,
        };
      }
    }
    return {
      ok: true,
      revision,
      fetched,
      files,
      evidence: verdict.evidence,
      signer: describeSigner(verdict.evidence),
    };
  } catch (error) {
    signal.throwIfAborted();
    if (gitSignal.aborted) {
      // spec.timeout passed while verification read the repository (e.g. an ancestry walk through a
      // huge unrelated history): nothing was shown verified; retried like any fetch failure.
      return {
        ok: false,
        stage: 'fetch',
        reason: 'FetchFailed',
        message: `verifying ${revision}: spec.timeout (${repo.spec.timeoutMs} ms) passed while reading the repository; refused (${message(error)})`,
        revision,
      };
    }
    // Any error while loading trust material or checking signatures refuses the revision.
    return {
      ok: false,
      stage: 'verify',
      reason: 'UntrustedSigner',
      message: `verifying ${revision}: ${message(error)}`,
      revision,
    };
  }
}

/** The engines a render may use (tests pass their own). */
export interface RenderEngines {
  readonly kustomize: KustomizeEngine;
  readonly helm: HelmEngine;
}

/** What renderDesired needs of discovery; `capabilities` feeds Helm's .Capabilities when present. */
export type RenderDiscovery = Pick<Discovery, 'resolve' | 'scopeOf'> &
  Partial<Pick<Discovery, 'capabilities'>>;

/** Plain manifests, the Helm chart of spec.helm, or the Kustomize build of `files.kustomizeDir`. */
async function renderTree(
  repo: GitRepository,
  files: VerifiedTree,
  maxObjects: number,
  engines: RenderEngines,
  discovery: RenderDiscovery,
  signal: AbortSignal,
): Promise<RenderedObject[]> {
  const owner = { name: repo.metadata.name, namespace: repo.metadata.namespace };
  const tree = { files: files.files, symlinks: files.symlinks };
  if (repo.spec.helm !== undefined && files.helmDir !== undefined) {
    const capabilities = await discovery.capabilities?.(signal);
    return renderHelmChart(tree, repo.spec.helm, {
      owner,
      limits: { maxObjects },
      engine: engines.helm,
      namespace: repo.spec.targetNamespace ?? repo.metadata.namespace,
      ...(capabilities === undefined ? {} : { capabilities }),
      timeoutMs: repo.spec.timeoutMs,
      signal,
    });
  }
  if (files.kustomizeDir === undefined) return renderManifests(tree, { owner, limits: { maxObjects } });
  return renderKustomization(tree, files.kustomizeDir, {
    owner,
    limits: { maxObjects },
    engine: engines.kustomize,
    timeoutMs: repo.spec.timeoutMs,
    signal,
  });
}

/** Renders the verified tree into desired objects, namespaces set through discovery. */
export async function renderDesired(
  repo: GitRepository,
  files: VerifiedTree,
  discovery: RenderDiscovery,
  maxObjects: number,
  signal: AbortSignal,
  engine: KustomizeEngine = sharedKustomizeEngine(),
  helmEngine: HelmEngine = sharedHelmEngine(),
): Promise<{ ok: true; desired: KubeObject[] } | Refusal> {
  try {
    const engines = { kustomize: engine, helm: helmEngine };
    const rendered = await renderTree(repo, files, maxObjects, engines, discovery, signal);
    const kinds = new Map<string, { apiVersion: string; kind: string }>();
    for (const { object } of rendered)
      kinds.set(`${object.apiVersion}/${object.kind}`, { apiVersion: object.apiVersion, kind: object.kind });
    const fromCrds = crdScopes(rendered.map((r) => r.object));
    await Promise.all(
      [...kinds.values()].map(({ apiVersion, kind }) =>
        discovery.resolve(apiVersion, kind, signal).catch(() => undefined),
      ),
    );
    const desired = applyScope(
      rendered,
      {
        ...(repo.spec.targetNamespace === undefined ? {} : { targetNamespace: repo.spec.targetNamespace }),
        defaultNamespace: repo.metadata.namespace,
      },
      (apiVersion, kind) =>
        discovery.scopeOf(apiVersion, kind) ??
        fromCrds.get(`${apiVersion.includes('/') ? apiVersion.split('/')[0] : ''}/${kind}`),
    ).map((r) => r.object);
    return { ok: true, desired };
  } catch (error) {
    if (error instanceof RenderError)
      return { ok: false, stage: 'build', reason: 'BuildFailed', message: error.message };
    signal.throwIfAborted();
    throw error;
  }
}

/** The registry credentials (and CA) of spec.verify.imagePullSecretRef. */
async function registryAccess(
  repo: GitRepository,
  deps: PipelineDeps,
  signal: AbortSignal,
): Promise<{ credentials: Credentials; caPem?: string }> {
  const ref = repo.spec.verify.imagePullSecretRef;
  if (ref === undefined) return { credentials: new Map() };
  const data = await deps.readReference({ kind: 'Secret', name: ref.name }, signal);
  const config = data['.dockerconfigjson'];
  if (config === undefined)
    throw new Error(`spec.verify.imagePullSecretRef: Secret ${ref.name} has no .dockerconfigjson key`);
  const caPem = data['ca.crt'];
  return { credentials: parseDockerConfig(config), ...(caPem === undefined ? {} : { caPem }) };
}

/** The trust of one image policy and the fingerprint its verdicts are cached under. */
async function imageTrustOf(
  repo: GitRepository,
  policy: ImagePolicySpec,
  deps: PipelineDeps,
  signal: AbortSignal,
): Promise<ResolvedTrust> {
  const values = policy.keysRef === undefined ? {} : await deps.readReference(policy.keysRef, signal);
  // Every PEM public key of the Secret/ConfigMap (cosign.pub and any others); other values are ignored.
  const keys = Object.fromEntries(
    Object.entries(values).filter(([, value]) => value.includes('-----BEGIN PUBLIC KEY-----')),
  );
  if (policy.keysRef !== undefined && Object.keys(keys).length === 0)
    throw new Error(`${policy.keysRef.kind} ${policy.keysRef.name} (keysRef) holds no PEM public key`);
  const trustedRoot = await trustedRootOf(repo, deps, signal);
  const attestations = policy.attestations.map((a) => a.predicateType);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ identities: policy.keyless, keys, attestations, trustedRoot }))
    .digest('hex');
  return { trust: { identities: policy.keyless, keys, trustedRoot }, attestations, fingerprint };
}

export type ImageCheck = { ok: true; desired: KubeObject[]; images: ImageAudit[] } | Refusal;

/**
 * spec.verify.images: every image of the rendered objects verified and pinned to its digest
 * (docs/images.md). Without the field the objects pass unchanged. Any image that cannot be
 * verified refuses the revision (stage verify, reason ImageUnverified).
 */
export async function verifyDesiredImages(
  repo: GitRepository,
  desired: KubeObject[],
  deps: PipelineDeps,
  signal: AbortSignal,
): Promise<ImageCheck> {
  const policies = repo.spec.verify.images;
  if (policies === undefined) return { ok: true, desired, images: [] };
  const refuse = (text: string): Refusal => ({
    ok: false,
    stage: 'verify',
    reason: 'ImageUnverified',
    message: text,
  });
  let access: { credentials: Credentials; caPem?: string };
  try {
    access = await registryAccess(repo, deps, signal);
  } catch (error) {
    signal.throwIfAborted();
    return refuse(message(error));
  }
  const limits = deps.imageLimits ?? defaultImageVerificationLimits;
  const options: RegistryClientOptions = {
    ...access,
    timeoutMs: repo.spec.timeoutMs,
    limits: { maxManifestBytes: limits.maxManifestBytes, maxBlobBytes: limits.maxSignatureBytes },
  };
  const trusts = new Map<number, Promise<ResolvedTrust>>();
  const verdict = await verifyImages(
    desired,
    policies,
    {
      registry: deps.registryFor?.(options) ?? new RegistryClient(options),
      cache: deps.imageCache ?? new VerdictCache(limits.cacheEntries),
      limits,
      trustFor: (index, trustSignal) => {
        let pending = trusts.get(index);
        const policy = policies[index];
        if (pending === undefined && policy !== undefined) {
          pending = imageTrustOf(repo, policy, deps, trustSignal);
          trusts.set(index, pending);
        }
        return pending ?? Promise.reject(new Error(`no policy spec.verify.images[${index}]`));
      },
    },
    signal,
  );
  if (!verdict.ok) return refuse(verdict.message);
  return { ok: true, desired: verdict.objects, images: verdict.images };
}
