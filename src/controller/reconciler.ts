/**
 * Reconciles one GitRepository: resolve → fetch → verify (fail closed) → render → plan → apply
 * → prune → status/events/alerts. It owns the in-memory desired state that drift handling
 * compares live objects with. Every step's outcome is data; side effects go through the
 * KubeClient, the SourcePort and the notifier.
 */
import { findCondition, isConditionTrue, Reason } from '../api/conditions.ts';
import {
  finalizerName,
  type GitRepository,
  apiVersion as gitRepositoryApiVersion,
  gitRepositoryKind,
  objectKeyOf,
  parseGitRepository,
  refName,
  requestedAtAnnotation,
  SpecValidationError,
  type TypedReference,
} from '../api/gitrepository.ts';
import { parseRevision } from '../api/revision.ts';
import { applyPlan } from '../apply/apply.ts';
import {
  type ChangeSet,
  failedPrunes,
  formatSummary,
  hasFailures,
  summariseChangeSet,
} from '../apply/changeset.ts';
import { prune } from '../apply/delete.ts';
import { createResourceManager } from '../apply/manager.ts';
import { VerdictCache } from '../images/cache.ts';
import type { RegistryClientOptions, RegistryPort } from '../images/registry-client.ts';
import type { ImageAudit, ImageVerificationLimits } from '../images/verify-images.ts';
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { buildInventory, type Inventory, mergeInventory, parseInventoryEntry } from '../plan/inventory.ts';
import { type Plan, planChanges } from '../plan/plan.ts';
import { treeFingerprint } from '../render/fingerprint.ts';
import type { OwnerRef } from '../render/labels.ts';
import { identityOf, type JsonValue, jsonEqual, type KubeObject } from '../render/object.ts';
import type { Logger } from '../util/logger.ts';
import type { TrustMaterialCache } from '../verify/trust.ts';
import { buildDenyPolicy, denyPolicyLabel } from '../watch/deny-policy.ts';
import type { Alerter } from './alerter.ts';
import { DriftBaselines } from './baselines.ts';
import type { DenyPolicyIndex } from './deny-policy-index.ts';
import type { EventRecorder } from './events.ts';
import type { LiveCache, WatchScope } from './live-cache.ts';
import type { OperatorMetrics } from './metrics.ts';
import {
  defaultImageCacheEntries,
  fetchAndVerify,
  type PipelineDeps,
  renderDesired,
  resolveRevision,
  verifyDesiredImages,
} from './pipeline.ts';
import type { SourcePort, TreeSnapshot } from './ports.ts';
import type { ReferenceCache } from './reference-cache.ts';
import {
  applyStatusChanges,
  type DriftedObjectStatus,
  type GitRepositoryStatus,
  readStatus,
  type StatusChange,
  statusChanged,
  statusMergePatch,
} from './status.ts';

export interface ReconcilerOptions {
  readonly fieldManager: string;
  readonly applyConcurrency: number;
  /** Tenant mode: impersonate this ServiceAccount (in the GitRepository's namespace) when spec names none. */
  readonly defaultServiceAccount?: string;
  /** The operator's own username (for Deny policies). */
  readonly operatorUsername: string;
  readonly maxObjects: number;
  readonly cacheSyncTimeoutMs: number;
}

export interface ReconcilerDeps {
  readonly admin: KubeClient;
  /** A client that impersonates `system:serviceaccount:<namespace>:<name>`, cached by the caller. */
  readonly clientAs: (namespace: string, serviceAccount: string) => Promise<KubeClient>;
  readonly source: SourcePort;
  readonly liveCache: LiveCache;
  /** Serves referenced Secrets and ConfigMaps from watches; without it each read is a GET. */
  readonly references?: ReferenceCache;
  /** Which Deny policies exist; without it every removal check is a GET of the pair. */
  readonly denyPolicies?: DenyPolicyIndex;
  readonly events: EventRecorder;
  readonly alerter: Alerter;
  readonly metrics: OperatorMetrics;
  readonly logger: Logger;
  readonly trustCache: TrustMaterialCache;
  readonly now: () => Date;
  readonly options: ReconcilerOptions;
  /**
   * Fencing, called right before each write batch (status and inventory writes, the apply, the
   * prune, finalizer patches): false when this replica no longer leads. The operator's check steps
   * a leader past its renew deadline down, which aborts the reconcile's signal; without leader
   * election it is always true.
   */
  readonly fence?: () => boolean;
  /** Image verdicts kept across reconciles (spec.verify.images); one per reconciler when absent. */
  readonly imageCache?: VerdictCache;
  /** The registry client for spec.verify.images (tests count its requests); the HTTPS client when absent. */
  readonly registryFor?: (options: RegistryClientOptions) => RegistryPort;
  /** Bounds of image verification; the defaults when absent. */
  readonly imageLimits?: ImageVerificationLimits;
}

/** What Signet last applied for one GitRepository: drift is measured against it. */
export interface ManagedState {
  readonly key: string;
  readonly generation: number;
  readonly commit: string;
  readonly revision: string;
  readonly signer: string;
  readonly desired: ReadonlyMap<string, KubeObject>;
  /**
   * What drift compares each live object with: the server's form of the desired fields where it
   * differs from `desired` (normalised values), kept current by every apply's answer.
   */
  readonly baselines: DriftBaselines;
  /** treeFingerprint of the manifests `desired` was rendered from. */
  readonly treeFingerprint: string;
  readonly scope: WatchScope;
  readonly driftMode: 'Revert' | 'Report' | 'Deny';
  readonly repo: GitRepository;
  readonly impersonating?: string;
}

export interface ReconcileOutcome {
  /** Requeue after this many ms; undefined: wait for a change. */
  readonly requeueAfterMs?: number;
  /** The step failed and should back off. */
  readonly failed: boolean;
  readonly result:
    | 'applied'
    | 'unchanged'
    | 'rejected'
    | 'failed'
    | 'suspended'
    | 'stalled'
    | 'deleted'
    | 'deferred';
}

export class ReconcileAbortedError extends Error {
  override readonly name = 'ReconcileAbortedError';
}

/** A write refused by the fencing check: this replica no longer leads. */
export class LeadershipFencedError extends Error {
  override readonly name = 'LeadershipFencedError';
  readonly code = 'LEADERSHIP_FENCED';
  /** The write that was not sent, e.g. `status of team-a/platform`. */
  readonly write: string;
  constructor(write: string) {
    super(`${write} not written: this replica no longer leads`);
    this.write = write;
  }
}

function decode(value: unknown): string {
  return typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : '';
}

export function secretData(object: KubeObject | undefined): Record<string, string> {
  const data = object?.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return {};
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, decode(v)]));
}

/** The decoded data of a referenced Secret or ConfigMap. */
export function referenceData(kind: 'Secret' | 'ConfigMap', object: KubeObject): Record<string, string> {
  return kind === 'Secret' ? secretData(object) : configMapData(object);
}

function configMapData(object: KubeObject | undefined): Record<string, string> {
  const data = object?.data;
  const result: Record<string, string> = {};
  if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
    for (const [key, value] of Object.entries(data)) if (typeof value === 'string') result[key] = value;
  }
  const binary = object?.binaryData;
  if (typeof binary === 'object' && binary !== null && !Array.isArray(binary)) {
    for (const [key, value] of Object.entries(binary)) result[key] = decode(value);
  }
  return result;
}

/** One reconcile of one GitRepository: what every step reads, and the status written so far. */
interface Attempt {
  readonly repo: GitRepository;
  readonly key: string;
  readonly owner: OwnerRef;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** The status as last read, or as this reconcile last wrote it. */
  previous: GitRepositoryStatus;
  /** Status changes not written yet (the inventory writes send and clear them). */
  readonly changes: StatusChange[];
}

/** A step that ended the reconcile, with its outcome. */
interface Stop {
  readonly stop: ReconcileOutcome;
}
type Step<T> = Promise<T | Stop>;

function stopped<T extends object>(result: T | Stop): result is Stop {
  return 'stop' in result;
}

type Resolution = Extract<Awaited<ReturnType<typeof resolveRevision>>, { ok: true }>;

/** A verified revision. */
interface Verified {
  readonly revision: string;
  readonly commit: string;
  readonly signer: string;
  readonly files: TreeSnapshot;
  /** What this replica last applied for the GitRepository, if anything. */
  readonly state: ManagedState | undefined;
  /**
   * Nothing is in memory, but the status records this very revision applied at this generation
   * and Ready (a restart, or a new leader): the reconcile rebuilds the desired state and the drift
   * baselines from the live objects and applies only what differs from Git.
   */
  readonly resumed: boolean;
}

/** A verified revision on its way to the cluster. */
interface Candidate extends Verified {
  /** treeFingerprint of `files`. */
  readonly fingerprint: string;
}

interface Rendered extends Candidate {
  readonly scope: WatchScope;
  readonly serviceAccount: string | undefined;
  /** With spec.verify.images, each image pinned to its verified digest. */
  readonly desired: readonly KubeObject[];
  /** The verified images (empty without spec.verify.images). */
  readonly images: readonly ImageAudit[];
}

interface Prepared extends Rendered {
  /** The inventory in status before this reconcile (what the plan prunes against). */
  readonly previousInventory: Inventory | undefined;
  /** The union of that inventory and the desired objects. */
  readonly pending: Inventory;
  /** Whether `pending` names objects the status did not record (it was written with the live cache's sync). */
  readonly inventoryGrows: boolean;
  readonly wasFailing: boolean;
}

interface Planned extends Prepared {
  readonly plan: Plan;
  readonly desiredById: ReadonlyMap<string, KubeObject>;
  readonly baselines: DriftBaselines;
}

/** Where the time of a reconcile goes, logged with "revision applied" (milliseconds). */
class PhaseClock {
  readonly phasesMs: Record<string, number> = {};
  #start = performance.now();

  end(phase: string): void {
    const now = performance.now();
    this.phasesMs[phase] = Math.round(now - this.#start);
    this.#start = now;
  }
}

/** The API types the plan reads live objects of: the desired ones, then the inventoried ones. */
function typesToWatch(
  desired: readonly KubeObject[],
  inventory: Inventory | undefined,
): { apiVersion: string; kind: string }[] {
  const types = new Map<string, { apiVersion: string; kind: string }>();
  for (const object of desired)
    types.set(`${object.apiVersion}|${object.kind}`, { apiVersion: object.apiVersion, kind: object.kind });
  for (const entry of inventory?.entries ?? []) {
    try {
      const identity = parseInventoryEntry(entry);
      const apiVersion = identity.group === '' ? identity.version : `${identity.group}/${identity.version}`;
      types.set(`${apiVersion}|${identity.kind}`, { apiVersion, kind: identity.kind });
    } catch {
      // A malformed entry cannot be pruned; it is dropped from the next inventory.
    }
  }
  return [...types.values()];
}

/**
 * Whether a reconcile with nothing in memory resumes what the status records: the same revision
 * applied at the same generation, Ready, with an inventory (pure: status and spec data only).
 */
export function resumesApplied(
  previous: GitRepositoryStatus,
  revision: string,
  generation: number,
  state: ManagedState | undefined,
): boolean {
  return (
    state === undefined &&
    previous.lastAppliedRevision === revision &&
    previous.observedGeneration === generation &&
    previous.inventory !== undefined &&
    isConditionTrue(previous.conditions, 'Ready')
  );
}

/** Progressing (applying the revision) with the union inventory, recorded before the apply. */
function progressing(c: Candidate, wasFailing: boolean, pending: Inventory): StatusChange[] {
  return [
    { kind: 'progressing', message: `applying ${c.revision} signed by ${c.signer}`, retry: wasFailing },
    { kind: 'inventory', inventory: pending },
  ];
}

/**
 * The baselines drift compares with from the plan on. An unchanged object's baseline is its live
 * object's form of the desired fields; one being applied is pending until the server answers (or
 * the apply fails), keeping the previous baseline meanwhile if its desired form did not change.
 */
function nextBaselines(plan: Plan, state: ManagedState | undefined): DriftBaselines {
  const baselines = new DriftBaselines();
  const applying: string[] = [];
  for (const entry of plan.entries) {
    if (entry.desired === undefined) continue;
    if (entry.action === 'unchanged' && entry.live !== undefined) {
      baselines.record(entry.id, entry.desired, entry.live);
    } else if (entry.action === 'create' || entry.action === 'update') {
      applying.push(entry.id);
      const before = state?.desired.get(entry.id);
      const known = state?.baselines.normalized.get(entry.id);
      if (
        before !== undefined &&
        known !== undefined &&
        jsonEqual(before as unknown as JsonValue, entry.desired as unknown as JsonValue)
      ) {
        baselines.carry(entry.id, known);
      }
    }
  }
  baselines.begin(applying);
  return baselines;
}

/** How soon a reconcile deferred by a busy Git host is tried again (jittered by the queue). */
export const hostBusyRetryMs = 1_000;

/** The Git host is at its limit: nothing is written, the reconcile is retried shortly. */
function deferred(a: Attempt, message: string): ReconcileOutcome {
  a.log.debug({ reason: 'HostBusy' }, message);
  return { failed: false, result: 'deferred', requeueAfterMs: hostBusyRetryMs };
}

/** `applying <revision> signed by <signer>: N object(s) failed: …` naming the first five. */
function applyFailureMessage(c: Candidate, changeSet: ChangeSet): string {
  const failures = changeSet.entries.filter((e) => e.action === 'failed');
  return `applying ${c.revision} signed by ${c.signer}: ${failures.length} object(s) failed: ${failures
    .slice(0, 5)
    .map((e) => `${e.subject}: ${e.error?.detail ?? 'failed'}`)
    .join('; ')}${failures.length > 5 ? '; …' : ''}`;
}
export class Reconciler {
  readonly #deps: ReconcilerDeps;
  readonly #managed = new Map<string, ManagedState>();
  /**
   * The status this replica last wrote, by key (with the object's uid). Only the leader writes
   * status, so it is at least as new as the informer's copy, which can lag behind our own write:
   * a reconcile right after one must not judge rollbacks against an older lastAppliedRevision, nor
   * fetch and verify a commit it has just recorded.
   */
  readonly #written = new Map<string, { readonly uid: string; readonly status: GitRepositoryStatus }>();

  readonly #imageCache: VerdictCache;

  /**
   * GitRepositories this replica saw suspended: their first reconcile after resuming is not a
   * resume of the status's revision (a hotfix made while suspended is a conflict, not drift).
   */
  readonly #suspended = new Set<string>();

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#imageCache =
      deps.imageCache ?? new VerdictCache(deps.imageLimits?.cacheEntries ?? defaultImageCacheEntries);
  }

  managedState(key: string): ManagedState | undefined {
    return this.#managed.get(key);
  }

  /** Forgets everything held for `key` (deleted, or left the shard): desired state, status, Git shares. */
  forget(key: string): void {
    this.#managed.delete(key);
    this.#written.delete(key);
    this.#suspended.delete(key);
    this.#deps.source.release?.(key);
    this.#deps.liveCache.release(key);
    this.#deps.references?.release(key);
    const [namespace = '', name = ''] = key.split('/');
    this.#deps.metrics.managedObjects.remove({ namespace, name });
  }

  /** Entries held per GitRepository (tests prove they go back to zero). */
  get held(): { readonly managed: number; readonly written: number; readonly suspended: number } {
    return { managed: this.#managed.size, written: this.#written.size, suspended: this.#suspended.size };
  }

  /** Drops every remembered desired state (leadership lost: another replica may apply meanwhile). */
  forgetAll(): void {
    this.#managed.clear();
    this.#written.clear();
  }

  /** The identity applies and watches run as: the operator, or an impersonated tenant ServiceAccount. */
  async scopeFor(repo: GitRepository): Promise<{ scope: WatchScope; serviceAccount?: string }> {
    const serviceAccount = repo.spec.serviceAccountName ?? this.#deps.options.defaultServiceAccount;
    if (serviceAccount === undefined) return { scope: { identity: '', client: this.#deps.admin } };
    const client = await this.#deps.clientAs(repo.metadata.namespace, serviceAccount);
    return {
      scope: {
        identity: `system:serviceaccount:${repo.metadata.namespace}:${serviceAccount}`,
        client,
        namespace: repo.spec.targetNamespace ?? repo.metadata.namespace,
      },
      serviceAccount,
    };
  }

  async #readReference(
    repo: GitRepository,
    ref: TypedReference,
    signal: AbortSignal,
  ): Promise<Record<string, string>> {
    const namespace = repo.metadata.namespace;
    const references = this.#deps.references;
    if (references !== undefined) {
      references.use(objectKeyOf(repo), namespace);
      return references.read(namespace, ref.kind, ref.name, signal);
    }
    const object = await this.#deps.admin.get(
      { apiVersion: 'v1', kind: ref.kind, name: ref.name, namespace },
      { signal, timeoutMs: 15_000 },
    );
    if (object === undefined) {
      throw new ReferenceError(`${ref.kind} ${namespace}/${ref.name} not found`);
    }
    return referenceData(ref.kind, object);
  }

  /** Throws (the signal's reason, or a LeadershipFencedError) unless this replica may still write. */
  #fence(signal: AbortSignal, write: string): void {
    const leading = this.#deps.fence?.() ?? true;
    signal.throwIfAborted();
    if (!leading) throw new LeadershipFencedError(write);
  }

  async #writeStatus(
    repo: GitRepository,
    previous: GitRepositoryStatus,
    changes: readonly StatusChange[],
    signal: AbortSignal,
  ): Promise<GitRepositoryStatus> {
    const next = applyStatusChanges(previous, changes, repo.metadata.generation, this.#deps.now());
    if (!statusChanged(previous, next)) return next;
    this.#fence(signal, `status of ${objectKeyOf(repo)}`);
    await this.#deps.admin.patchStatus(
      {
        apiVersion: gitRepositoryApiVersion,
        kind: gitRepositoryKind,
        name: repo.metadata.name,
        namespace: repo.metadata.namespace,
      },
      statusMergePatch(previous, next) as Record<string, never>,
      { signal, timeoutMs: 15_000 },
    );
    if (repo.metadata.uid !== undefined) {
      this.#written.set(objectKeyOf(repo), { uid: repo.metadata.uid, status: next });
    }
    return next;
  }

  /** Reconciles the GitRepository object as read from the informer cache. */
  async reconcile(raw: KubeObject, signal: AbortSignal): Promise<ReconcileOutcome> {
    const started = performance.now();
    const outcome = await this.#reconcile(raw, signal).catch((error: unknown): ReconcileOutcome => {
      if (signal.aborted || error instanceof LeadershipFencedError) {
        const reason: unknown = signal.aborted ? signal.reason : error;
        throw new ReconcileAbortedError(
          `reconcile of ${raw.metadata.namespace ?? ''}/${raw.metadata.name} aborted: ${reason instanceof Error ? reason.message : String(reason)}`,
          { cause: reason },
        );
      }
      this.#deps.logger.error(
        {
          gitrepository: `${raw.metadata.namespace}/${raw.metadata.name}`,
          err: error instanceof Error ? error.message : String(error),
        },
        'reconcile failed unexpectedly',
      );
      return { failed: true, result: 'failed' };
    });
    this.#deps.metrics.reconcileDuration.observe(
      { result: outcome.result },
      (performance.now() - started) / 1_000,
    );
    this.#deps.metrics.reconcilesTotal.inc({ result: outcome.result });
    return outcome;
  }

  async #reconcile(raw: KubeObject, signal: AbortSignal): Promise<ReconcileOutcome> {
    const status = readStatus((raw.status ?? {}) as Record<string, unknown>);
    const repo = await this.#parseOrStall(raw, status, signal);
    if (repo === undefined) return { failed: false, result: 'stalled' };
    const attempt = this.#begin(raw, repo, status, signal);
    return (await this.#lifecycle(attempt)) ?? (await this.#sync(attempt));
  }

  /** The GitRepository, or undefined once an invalid spec has been reported (Stalled). */
  async #parseOrStall(
    raw: KubeObject,
    status: GitRepositoryStatus,
    signal: AbortSignal,
  ): Promise<GitRepository | undefined> {
    try {
      return parseGitRepository(raw);
    } catch (error) {
      if (!(error instanceof SpecValidationError)) throw error;
      const meta = raw.metadata;
      const fallback = {
        metadata: {
          name: meta.name,
          namespace: meta.namespace ?? '',
          generation: Number(meta.generation ?? 0),
        },
      };
      await this.#deps.events.record(fallback, 'Warning', Reason.InvalidSpec, error.message, signal);
      await this.#writeStatusRaw(
        fallback,
        status,
        [{ kind: 'stalled', reason: Reason.InvalidSpec, message: error.message }],
        signal,
      );
      return undefined;
    }
  }

  /** The reconcile's context; its status is the one this replica last wrote when newer than the informer's. */
  #begin(raw: KubeObject, repo: GitRepository, status: GitRepositoryStatus, signal: AbortSignal): Attempt {
    const key = objectKeyOf(repo);
    const written = this.#written.get(key);
    return {
      repo,
      key,
      owner: { name: repo.metadata.name, namespace: repo.metadata.namespace },
      log: this.#deps.logger.child({ gitrepository: key }),
      signal,
      previous: written !== undefined && written.uid === raw.metadata.uid ? written.status : status,
      changes: [],
    };
  }

  /** Deletion, the finalizer and suspension: the outcome when the reconcile ends here. */
  async #lifecycle(a: Attempt): Promise<ReconcileOutcome | undefined> {
    const { repo, signal } = a;
    if (repo.metadata.deletionTimestamp !== undefined) {
      await this.#finalize(repo, a.previous, signal, a.log);
      return { failed: false, result: 'deleted' };
    }
    if (!repo.metadata.finalizers.includes(finalizerName)) {
      this.#fence(signal, `finalizer of ${a.key}`);
      await this.#patchFinalizers(repo, [...repo.metadata.finalizers, finalizerName], signal);
    }
    if (!repo.spec.suspend) return undefined;
    // Suspended: nothing is fetched, applied or pruned, and drift is left alone, so a hotfix made
    // while suspended stays (as with a suspended Flux Kustomization or Argo CD without self-heal).
    // Forgetting the desired state pauses Revert and Report for its objects; a Deny policy is
    // lifted. Resuming reconciles from scratch and brings the objects back to Git.
    this.#managed.delete(a.key);
    this.#suspended.add(a.key);
    this.#fence(signal, `drift policy of ${a.key}`);
    const [policy] = buildDenyPolicy({ gitRepository: a.owner, allowedUsernames: [] });
    await this.#removeDenyPolicy(policy.metadata.name, signal);
    a.log.info('suspended: not reconciling, drift handling paused');
    return { failed: false, result: 'suspended' };
  }

  /**
   * resolve → fetchAndVerify → render → liveCacheAndInventory → plan → apply → driftPolicy →
   * status. Each step ends the reconcile (a refusal, a failure, nothing to do) or hands the next
   * one its revision; the phases' times are logged with "revision applied".
   */
  async #sync(a: Attempt): Promise<ReconcileOutcome> {
    const requestedAt = a.repo.metadata.annotations[requestedAtAnnotation];
    const requested = requestedAt !== undefined && requestedAt !== a.previous.lastHandledReconcileAt;
    if (requested) a.changes.push({ kind: 'requested', at: requestedAt });
    const clock = new PhaseClock();
    const pipeline = this.#pipelineDeps(a.repo);
    const target = await this.#resolve(a, pipeline, requested);
    if (stopped(target)) return target.stop;
    clock.end('resolve');
    const state = this.#managed.get(a.key);
    const unchanged = await this.#skipUnchanged(a, state, target);
    if (unchanged !== undefined) return unchanged;
    const verified = await this.#fetchAndVerify(a, pipeline, target, state);
    if (stopped(verified)) return verified.stop;
    clock.end('fetchAndVerify');
    const candidate: Candidate = { ...verified, fingerprint: treeFingerprint(verified.files) };
    const sameManifests = await this.#skipSameManifests(a, candidate);
    if (sameManifests !== undefined) return sameManifests;
    const rendered = await this.#render(a, candidate);
    if (stopped(rendered)) return rendered.stop;
    clock.end('render');
    const pinned = await this.#verifyImages(a, pipeline, rendered);
    if (stopped(pinned)) return pinned.stop;
    if (a.repo.spec.verify.images !== undefined) clock.end('images');
    const prepared = await this.#liveCacheAndInventory(a, pinned);
    clock.end(prepared.inventoryGrows ? 'liveCacheAndInventory' : 'liveCache');
    const planned = await this.#plan(a, prepared);
    clock.end('plan');
    const changeSet = await this.#apply(a, planned);
    a.signal.throwIfAborted();
    clock.end('apply');
    return this.#conclude(a, planned, changeSet, clock);
  }

  #pipelineDeps(repo: GitRepository): PipelineDeps {
    return {
      source: this.#deps.source,
      readReference: (ref, refSignal) => this.#readReference(repo, ref, refSignal),
      trustCache: this.#deps.trustCache,
      now: this.#deps.now,
      imageCache: this.#imageCache,
      ...(this.#deps.imageLimits === undefined ? {} : { imageLimits: this.#deps.imageLimits }),
      ...(this.#deps.registryFor === undefined ? {} : { registryFor: this.#deps.registryFor }),
    };
  }

  /** 1. Resolve the ref (one round trip) with the repository's credentials. */
  async #resolve(a: Attempt, pipeline: PipelineDeps, requested: boolean): Step<Resolution> {
    // GitRepositories on one remote with the same credentials share one poll per interval; a
    // requested reconcile, or one after a failure, polls now.
    const fresh = requested || findCondition(a.previous.conditions, 'Ready')?.status === 'False';
    const resolution = await resolveRevision(a.repo, pipeline, a.signal, {
      cacheKey: a.key,
      maxAgeMs: fresh ? 0 : a.repo.spec.intervalMs,
    });
    if (!resolution.ok) {
      if (resolution.deferred === true) return { stop: deferred(a, resolution.message) };
      return { stop: await this.#fail(a, resolution.reason, resolution.message) };
    }
    return resolution;
  }

  /** 2. Nothing new: the desired state in memory is still what Git says (no API request). */
  async #skipUnchanged(
    a: Attempt,
    state: ManagedState | undefined,
    target: Resolution,
  ): Promise<ReconcileOutcome | undefined> {
    if (
      state === undefined ||
      state.commit !== target.resolved.commit ||
      state.generation !== a.repo.metadata.generation ||
      a.previous.lastAppliedRevision !== target.revision ||
      !isConditionTrue(a.previous.conditions, 'Ready')
    ) {
      return undefined;
    }
    if (a.changes.length > 0) a.previous = await this.#writeStatus(a.repo, a.previous, a.changes, a.signal);
    return { failed: false, result: 'unchanged', requeueAfterMs: a.repo.spec.intervalMs };
  }

  /** 3. Fetch and verify. Nothing below runs on an unverified revision. */
  async #fetchAndVerify(
    a: Attempt,
    pipeline: PipelineDeps,
    target: Resolution,
    state: ManagedState | undefined,
  ): Step<Verified> {
    const { revision, resolved } = target;
    const lastApplied = parseRevision(a.previous.lastAppliedRevision)?.commit;
    const verified = await fetchAndVerify(
      a.repo,
      a.key,
      target.remote,
      resolved,
      revision,
      lastApplied,
      pipeline,
      a.signal,
    );
    if (!verified.ok) {
      if (verified.deferred === true) return { stop: deferred(a, verified.message) };
      if (verified.stage === 'verify') {
        return { stop: await this.#reject(a, revision, verified.reason, verified.message) };
      }
      return { stop: await this.#fail(a, verified.reason, verified.message, revision) };
    }
    const resumed =
      !this.#suspended.delete(a.key) &&
      resumesApplied(a.previous, revision, a.repo.metadata.generation, state);
    // Resuming, the status already records this commit's verification: it is not rewritten (a
    // new verifiedAt alone would cost a status write per GitRepository after every restart).
    if (!resumed || a.previous.verification?.commit !== resolved.commit) {
      a.changes.push({ kind: 'verified', evidence: verified.evidence });
    }
    return {
      revision,
      commit: resolved.commit,
      signer: verified.signer,
      files: verified.files,
      state,
      resumed,
    };
  }

  /**
   * A new verified commit whose manifests are those already applied (same spec, same files by
   * blob id): the desired state in memory stays right, so nothing is rendered, planned or applied.
   */
  async #skipSameManifests(a: Attempt, c: Candidate): Promise<ReconcileOutcome | undefined> {
    const { previous } = a;
    const { state, revision, signer } = c;
    if (
      state === undefined ||
      state.treeFingerprint !== c.fingerprint ||
      state.generation !== a.repo.metadata.generation ||
      previous.lastAppliedRevision === undefined ||
      previous.inventory === undefined ||
      !isConditionTrue(previous.conditions, 'Ready')
    ) {
      return undefined;
    }
    const message = `Applied revision ${revision} signed by ${signer}: manifests unchanged since ${previous.lastAppliedRevision}`;
    a.changes.push({ kind: 'applied', revision, message, inventory: previous.inventory });
    this.#managed.set(a.key, { ...state, commit: c.commit, revision, signer });
    a.previous = await this.#writeStatus(a.repo, previous, a.changes, a.signal);
    await this.#deps.events.record(a.repo, 'Normal', Reason.Succeeded, message, a.signal);
    a.log.info({ revision, signer }, 'revision applied: manifests unchanged');
    return { failed: false, result: 'applied', requeueAfterMs: a.repo.spec.intervalMs };
  }

  /** 4. Render and scope the manifests. */
  async #render(a: Attempt, c: Candidate): Step<Rendered> {
    const { scope, serviceAccount } = await this.scopeFor(a.repo);
    const rendering = await renderDesired(
      a.repo,
      c.files,
      this.#deps.admin.discovery,
      this.#deps.options.maxObjects,
      a.signal,
    );
    if (!rendering.ok) {
      const message = `building ${c.revision} signed by ${c.signer}: ${rendering.message}`;
      return { stop: await this.#fail(a, Reason.BuildFailed, message, c.revision) };
    }
    return { ...c, scope, serviceAccount, desired: rendering.desired, images: [] };
  }

  /**
   * 4b. spec.verify.images: every image verified (cache first) and pinned to its digest; any image
   * unverified refuses the revision (Verified=False ImageUnverified), nothing applied.
   */
  async #verifyImages(a: Attempt, pipeline: PipelineDeps, r: Rendered): Step<Rendered> {
    const checked = await verifyDesiredImages(a.repo, [...r.desired], pipeline, a.signal);
    if (!checked.ok) return { stop: await this.#reject(a, r.revision, checked.reason, checked.message) };
    return { ...r, desired: checked.desired, images: checked.images };
  }

  /**
   * 5. Plan against the live cache; record the union inventory first so a crash mid-apply never
   * loses an object. The inventory the plan will record is that of the desired objects whatever
   * the live state says, so the union inventory is known now. When it names objects the status
   * does not yet record, it is written while the live cache syncs (two independent requests, one
   * wait).
   */
  async #liveCacheAndInventory(a: Attempt, r: Rendered): Promise<Prepared> {
    const previousInventory: Inventory | undefined = a.previous.inventory;
    const wasFailing = findCondition(a.previous.conditions, 'Ready')?.status === 'False';
    const pending = mergeInventory(
      previousInventory ?? buildInventory([]),
      buildInventory(r.desired.map(identityOf)).entries,
    );
    const inventoryGrows = pending.entries.length !== (previousInventory?.entries.length ?? -1);
    const prepared: Prepared = { ...r, previousInventory, pending, inventoryGrows, wasFailing };
    const cacheSynced = this.#syncLiveCache(a, r, previousInventory);
    if (!inventoryGrows) {
      await cacheSynced;
      return prepared;
    }
    // Recorded before touching the cluster: a crash mid-apply never loses an object.
    const recorded = this.#writeStatus(
      a.repo,
      a.previous,
      [...a.changes, ...progressing(r, wasFailing, pending)],
      a.signal,
    );
    const [written, synced] = await Promise.allSettled([recorded, cacheSynced]);
    if (written.status === 'rejected') throw written.reason;
    if (synced.status === 'rejected') throw synced.reason;
    a.previous = written.value;
    a.changes.length = 0;
    return prepared;
  }

  /**
   * Starts (or reuses) the live cache's watches on the types the plan reads: the desired ones and
   * the inventoried ones. The first apply of this GitRepository (no inventory yet) prunes nothing,
   * so its plan needs no live state: when the cache does not cover the types yet, it lists (for
   * drift) while the objects are applied instead of before. Server-side apply is idempotent; an
   * object that already exists is updated, and the change set tells created from configured by
   * the answer.
   */
  #syncLiveCache(a: Attempt, r: Rendered, previousInventory: Inventory | undefined): Promise<boolean> {
    const { admin, liveCache } = this.#deps;
    const watchedTypes = typesToWatch(r.desired, previousInventory).filter(
      (t) => admin.discovery.scopeOf(t.apiVersion, t.kind) !== undefined,
    );
    liveCache.use(a.key, r.scope, watchedTypes);
    const alreadyCovered = watchedTypes.every((t) => liveCache.covers(r.scope, t.apiVersion, t.kind));
    const cacheSynced = liveCache.ensure(r.scope, watchedTypes, {
      timeoutMs: this.#deps.options.cacheSyncTimeoutMs,
      signal: a.signal,
    });
    if ((previousInventory?.entries.length ?? 0) !== 0 || alreadyCovered) return cacheSynced;
    void cacheSynced.catch((error: unknown) => {
      if (!a.signal.aborted)
        a.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'live cache sync failed');
    });
    return Promise.resolve(false);
  }

  /**
   * The plan against the live cache. When there is work and the inventory was not written above,
   * the status says Progressing first. The new desired state is what drift is measured against
   * from here on (before the apply's own watch events arrive).
   */
  async #plan(a: Attempt, p: Prepared): Promise<Planned> {
    const { state } = p;
    const plan = planChanges({
      desired: p.desired,
      inventory: p.previousInventory,
      live: this.#liveObjects(p.scope, p.desired),
      liveComplete: false,
      owner: a.owner,
      fieldManager: this.#deps.options.fieldManager,
      prune: a.repo.spec.prune,
      ...(state === undefined
        ? {}
        : { previous: { desired: state.desired, baselines: state.baselines.normalized } }),
    });
    const work = plan.entries.some(
      (e) => e.action === 'create' || e.action === 'update' || e.action === 'prune',
    );
    if (work && !p.inventoryGrows) {
      a.changes.push(...progressing(p, p.wasFailing, p.pending));
      a.previous = await this.#writeStatus(a.repo, a.previous, a.changes, a.signal);
      a.changes.length = 0;
    }
    const planned: Planned = {
      ...p,
      plan,
      desiredById: new Map(p.desired.map((o) => [identityKey(o), o])),
      baselines: nextBaselines(plan, state),
    };
    this.#remember(a, planned);
    return planned;
  }

  /** The live objects the cache holds for the desired ones, by inventory id. */
  #liveObjects(scope: WatchScope, desired: readonly KubeObject[]): Map<string, KubeObject> {
    const live = new Map<string, KubeObject>();
    for (const object of desired) {
      const found = this.#deps.liveCache.get(scope, {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: object.metadata.name,
        ...(object.metadata.namespace === undefined ? {} : { namespace: object.metadata.namespace }),
      });
      if (found !== undefined) live.set(identityKey(object), found as unknown as KubeObject);
    }
    return live;
  }

  /** Makes `p` the desired state drift handling compares with. */
  #remember(a: Attempt, p: Planned): void {
    this.#managed.set(a.key, {
      key: a.key,
      generation: a.repo.metadata.generation,
      commit: p.commit,
      revision: p.revision,
      signer: p.signer,
      desired: p.desiredById,
      baselines: p.baselines,
      treeFingerprint: p.fingerprint,
      scope: p.scope,
      driftMode: a.repo.spec.drift.mode,
      repo: a.repo,
      ...(p.serviceAccount === undefined ? {} : { impersonating: p.serviceAccount }),
    });
  }

  /**
   * 6. Apply (server-side, as the tenant when impersonating) and prune. Within the apply the
   * leadership signal is the fence: every request carries it, and an aborted one is not sent.
   */
  async #apply(a: Attempt, p: Planned): Promise<ChangeSet> {
    this.#fence(a.signal, `apply of ${p.revision} (${p.plan.entries.length} objects)`);
    const manager = createResourceManager(p.scope.client, a.owner, this.#deps.options.fieldManager);
    try {
      return await applyPlan(manager, p.plan, {
        force: a.repo.spec.force,
        // Resumed, an object that differs from the revision already applied drifted while no
        // replica watched it: Revert takes it back as a running replica would have (forced).
        forceConflicts: p.resumed && a.repo.spec.drift.mode === 'Revert',
        concurrency: this.#deps.options.applyConcurrency,
        signal: a.signal,
        onApplied: (id, answer) => {
          const object = p.desiredById.get(id);
          if (object !== undefined) p.baselines.record(id, object, answer);
        },
      });
    } finally {
      p.baselines.settleAll();
    }
  }

  /** 7. The change set's outcome: failed objects, or the drift policy and the Ready status. */
  async #conclude(
    a: Attempt,
    p: Planned,
    changeSet: ChangeSet,
    clock: PhaseClock,
  ): Promise<ReconcileOutcome> {
    const { revision, signer } = p;
    const summary = summariseChangeSet(changeSet);
    const inventory = mergeInventory(p.plan.inventory, failedPrunes(changeSet));
    if (hasFailures(changeSet)) {
      a.changes.push({ kind: 'inventory', inventory: mergeInventory(inventory, p.pending.entries) });
      return this.#fail(a, Reason.ApplyFailed, applyFailureMessage(p, changeSet), revision);
    }
    const message = `Applied revision ${revision} signed by ${signer}: ${formatSummary(summary)}`;
    const changed = summary.created + summary.configured + summary.deleted > 0;
    // Resumed with nothing to apply: the status already says so, and the Deny policy (only kept in
    // Deny mode) was synced for this generation before it said so.
    const quiet = p.resumed && !changed;
    if (!quiet) {
      a.changes.push({ kind: 'images', images: p.images });
      a.changes.push({ kind: 'applied', revision, message, inventory });
    }
    a.changes.push({ kind: 'drift', objects: [], mode: a.repo.spec.drift.mode });
    if (!quiet || a.repo.spec.drift.mode === 'Deny') {
      const policyFailed = await this.#driftPolicy(a, p);
      if (policyFailed !== undefined) return policyFailed;
    }
    clock.end('driftPolicy');
    a.previous = await this.#writeStatus(a.repo, a.previous, a.changes, a.signal);
    clock.end('status');
    this.#deps.metrics.managedObjects.set(
      { namespace: a.repo.metadata.namespace, name: a.repo.metadata.name },
      inventory.entries.length,
    );
    const news =
      changed || p.wasFailing || (p.state === undefined ? !p.resumed : p.state.revision !== revision);
    if (a.previous.lastAppliedRevision !== undefined && news) {
      await this.#deps.events.record(a.repo, 'Normal', Reason.Succeeded, message, a.signal);
    }
    if (p.wasFailing) this.#deps.alerter.alert(a.repo, { kind: 'Recovered', message, revision, signer });
    a.log.info({ revision, signer, ...summary, phasesMs: clock.phasesMs }, 'revision applied');
    return { failed: false, result: 'applied', requeueAfterMs: a.repo.spec.intervalMs };
  }

  /** Keeps the Deny policy in step with spec.drift.mode; the failed outcome when that fails. */
  async #driftPolicy(a: Attempt, p: Planned): Promise<ReconcileOutcome | undefined> {
    this.#fence(a.signal, `drift policy of ${a.key}`);
    try {
      await this.#syncDenyPolicy(a.repo, p.scope, a.signal);
      return undefined;
    } catch (error) {
      a.signal.throwIfAborted();
      const reason = error instanceof Error ? error.message : String(error);
      return this.#fail(
        a,
        Reason.ApplyFailed,
        `applying ${p.revision} signed by ${p.signer}: drift mode ${a.repo.spec.drift.mode}: keeping the ValidatingAdmissionPolicy in sync failed: ${reason}`,
        p.revision,
      );
    }
  }

  /** Records a failure (Ready=False); its Event and alert only when the message is new. */
  async #fail(a: Attempt, reason: string, message: string, attempted?: string): Promise<ReconcileOutcome> {
    const wasReady = isConditionTrue(a.previous.conditions, 'Ready');
    const sameFailure = findCondition(a.previous.conditions, 'Ready')?.message === message;
    a.changes.push({
      kind: 'failed',
      reason,
      message,
      ...(attempted === undefined ? {} : { attemptedRevision: attempted }),
    });
    a.previous = await this.#writeStatus(a.repo, a.previous, a.changes, a.signal);
    if (!sameFailure) {
      await this.#deps.events.record(a.repo, 'Warning', reason, message, a.signal);
      this.#deps.alerter.alert(a.repo, {
        kind: 'ReconcileFailed',
        message,
        ...(attempted === undefined ? {} : { revision: attempted }),
      });
    }
    a.log.warn({ reason, wasReady }, message);
    return { failed: true, result: 'failed' };
  }

  /** Report mode: records the current drifted objects (and the Drifted condition) in status. */
  async writeDriftStatus(
    state: ManagedState,
    rawStatus: Readonly<Record<string, unknown>> | undefined,
    objects: readonly DriftedObjectStatus[],
    signal: AbortSignal,
  ): Promise<void> {
    await this.#writeStatus(
      state.repo,
      readStatus(rawStatus ?? {}),
      [{ kind: 'drift', objects, mode: state.driftMode }],
      signal,
    );
  }

  /** Refuses the revision (Verified=False); its Event and alert only the first time. */
  async #reject(a: Attempt, revision: string, reason: string, message: string): Promise<ReconcileOutcome> {
    const { repo, previous } = a;
    const repeated =
      previous.lastAttemptedRevision === revision &&
      findCondition(previous.conditions, 'Verified')?.reason === reason;
    const kept =
      previous.lastAppliedRevision === undefined
        ? 'nothing was applied'
        : `${previous.lastAppliedRevision} stays in force`;
    const full = `revision ${revision} rejected (${reason}): ${message}; ${kept}`;
    a.changes.push({ kind: 'rejected', reason, message: full, attemptedRevision: revision });
    await this.#writeStatus(repo, previous, a.changes, a.signal);
    this.#deps.metrics.verificationFailuresTotal.inc({ reason });
    if (!repeated) {
      await this.#deps.events.record(repo, 'Warning', reason, full, a.signal);
      this.#deps.alerter.alert(repo, { kind: 'VerificationFailed', message: full, revision });
    }
    a.log.warn({ revision, reason }, full);
    return { failed: false, result: 'rejected', requeueAfterMs: repo.spec.intervalMs };
  }

  async #syncDenyPolicy(repo: GitRepository, scope: WatchScope, signal: AbortSignal): Promise<void> {
    const [policy, binding] = buildDenyPolicy({
      gitRepository: { namespace: repo.metadata.namespace, name: repo.metadata.name },
      allowedUsernames: [
        this.#deps.options.operatorUsername,
        ...(scope.identity === '' ? [] : [scope.identity]),
      ],
    });
    const admin = this.#deps.admin;
    if (repo.spec.drift.mode === 'Deny') {
      this.#deps.denyPolicies?.applied(policy.metadata.name);
      for (const object of [policy, binding]) {
        await admin.apply(object as unknown as KubeObject, {
          fieldManager: this.#deps.options.fieldManager,
          force: true,
          signal,
        });
      }
    } else {
      await this.#removeDenyPolicy(policy.metadata.name, signal);
    }
  }

  async #removeDenyPolicy(name: string, signal: AbortSignal): Promise<void> {
    const index = this.#deps.denyPolicies;
    if (index !== undefined && !(await index.mayExist(name, signal))) return;
    // Both are read at once; the binding is deleted before its policy.
    const refs = ['ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicy'].map((kind) => ({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind,
      name,
    }));
    const lives = await Promise.all(
      refs.map((ref) => this.#deps.admin.get(ref, { signal }).catch(() => undefined)),
    );
    for (const [index, ref] of refs.entries()) {
      const live = lives[index];
      if (
        live !== undefined &&
        (live.metadata.labels as Record<string, string> | undefined)?.[denyPolicyLabel] === 'true'
      ) {
        await this.#deps.admin.delete(ref, { signal });
      }
    }
    index?.removed(name);
  }

  async #finalize(
    repo: GitRepository,
    previous: GitRepositoryStatus,
    signal: AbortSignal,
    log: Logger,
  ): Promise<void> {
    if (!repo.metadata.finalizers.includes(finalizerName)) return;
    // Stop drift handling first, or the prune below would be "reverted".
    this.#managed.delete(objectKeyOf(repo));
    this.#fence(signal, `finalization of ${objectKeyOf(repo)}`);
    const owner: OwnerRef = { name: repo.metadata.name, namespace: repo.metadata.namespace };
    const [policy] = buildDenyPolicy({ gitRepository: owner, allowedUsernames: [] });
    await this.#removeDenyPolicy(policy.metadata.name, signal);
    if (repo.spec.prune && previous.inventory !== undefined && previous.inventory.entries.length > 0) {
      await this.#pruneInventory(repo, owner, previous.inventory, signal, log);
    }
    this.#managed.delete(objectKeyOf(repo));
    this.#fence(signal, `finalizer removal of ${objectKeyOf(repo)}`);
    await this.#patchFinalizers(
      repo,
      repo.metadata.finalizers.filter((f) => f !== finalizerName),
      signal,
    );
  }

  /** A deleted GitRepository's objects are pruned; throws (after a PruneFailed Event) when some are not. */
  async #pruneInventory(
    repo: GitRepository,
    owner: OwnerRef,
    inventory: Inventory,
    signal: AbortSignal,
    log: Logger,
  ): Promise<void> {
    this.#fence(signal, `prune of ${objectKeyOf(repo)}`);
    const { scope } = await this.scopeFor(repo).catch(() => ({
      scope: { identity: '', client: this.#deps.admin } as WatchScope,
    }));
    const identities = inventory.entries.flatMap((entry) => {
      try {
        return [parseInventoryEntry(entry)];
      } catch {
        return [];
      }
    });
    const result = await prune(
      createResourceManager(scope.client, owner, this.#deps.options.fieldManager),
      identities,
      { signal },
    );
    const failed = result.entries.filter((e) => e.action === 'failed');
    if (failed.length > 0) {
      const message = `finalizer: ${failed.length} object(s) could not be pruned: ${failed.map((e) => e.subject).join(', ')}`;
      await this.#deps.events.record(repo, 'Warning', Reason.PruneFailed, message, signal);
      throw new Error(message);
    }
    log.info({ pruned: result.entries.length }, 'GitRepository deleted: pruned its objects');
  }

  /** Sets the GitRepository's finalizers (a merge patch guarded by its resourceVersion). */
  async #patchFinalizers(
    repo: GitRepository,
    finalizers: readonly string[],
    signal: AbortSignal,
  ): Promise<void> {
    await this.#deps.admin.request({
      method: 'PATCH',
      path: `/apis/${gitRepositoryApiVersion}/namespaces/${encodeURIComponent(repo.metadata.namespace)}/gitrepositories/${encodeURIComponent(repo.metadata.name)}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({
        metadata: { finalizers, resourceVersion: repo.metadata.resourceVersion },
      }),
      signal,
      timeoutMs: 15_000,
    });
  }
  async #writeStatusRaw(
    fallback: { metadata: { name: string; namespace: string; generation: number } },
    previous: GitRepositoryStatus,
    changes: StatusChange[],
    signal: AbortSignal,
  ): Promise<void> {
    const next = applyStatusChanges(previous, changes, fallback.metadata.generation, this.#deps.now());
    if (!statusChanged(previous, next)) return;
    this.#fence(signal, `status of ${fallback.metadata.namespace}/${fallback.metadata.name}`);
    await this.#deps.admin.patchStatus(
      { apiVersion: gitRepositoryApiVersion, kind: gitRepositoryKind, ...fallback.metadata },
      statusMergePatch(previous, next) as Record<string, never>,
      { signal, timeoutMs: 15_000 },
    );
  }
}

/** Inventory id of an object (same as the plan's). */
export function identityKey(object: KubeObject): string {
  const id = identityOf(object);
  return `${id.namespace}_${id.name}_${id.group}_${id.kind}`;
}

export { KubeApiError, refName };
