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
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { buildInventory, type Inventory, mergeInventory, parseInventoryEntry } from '../plan/inventory.ts';
import { planChanges } from '../plan/plan.ts';
import { treeFingerprint } from '../render/fingerprint.ts';
import type { OwnerRef } from '../render/labels.ts';
import { identityOf, type JsonValue, jsonEqual, type KubeObject } from '../render/object.ts';
import type { Logger } from '../util/logger.ts';
import type { TrustMaterialCache } from '../verify/trust.ts';
import { buildDenyPolicy, denyPolicyLabel } from '../watch/deny-policy.ts';
import type { Alerter } from './alerter.ts';
import { DriftBaselines } from './baselines.ts';
import type { EventRecorder } from './events.ts';
import type { LiveCache, WatchScope } from './live-cache.ts';
import type { OperatorMetrics } from './metrics.ts';
import { fetchAndVerify, type PipelineDeps, renderDesired, resolveRevision } from './pipeline.ts';
import type { SourcePort } from './ports.ts';
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
  readonly result: 'applied' | 'unchanged' | 'rejected' | 'failed' | 'suspended' | 'stalled' | 'deleted';
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

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
  }

  managedState(key: string): ManagedState | undefined {
    return this.#managed.get(key);
  }

  forget(key: string): void {
    this.#managed.delete(key);
    this.#written.delete(key);
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
    namespace: string,
    ref: TypedReference,
    signal: AbortSignal,
  ): Promise<Record<string, string>> {
    const object = await this.#deps.admin.get(
      { apiVersion: 'v1', kind: ref.kind, name: ref.name, namespace },
      { signal, timeoutMs: 15_000 },
    );
    if (object === undefined) {
      throw new ReferenceError(`${ref.kind} ${namespace}/${ref.name} not found`);
    }
    return ref.kind === 'Secret' ? secretData(object) : configMapData(object);
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
    const { admin, logger } = this.#deps;
    const rawStatus = (raw.status ?? {}) as Record<string, unknown>;
    let previous = readStatus(rawStatus);
    let repo: GitRepository;
    try {
      repo = parseGitRepository(raw);
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
        previous,
        [{ kind: 'stalled', reason: Reason.InvalidSpec, message: error.message }],
        signal,
      );
      return { failed: false, result: 'stalled' };
    }
    const key = objectKeyOf(repo);
    const log = logger.child({ gitrepository: key });
    const written = this.#written.get(key);
    if (written !== undefined && written.uid === raw.metadata.uid) previous = written.status;
    const owner: OwnerRef = { name: repo.metadata.name, namespace: repo.metadata.namespace };

    if (repo.metadata.deletionTimestamp !== undefined) {
      await this.#finalize(repo, previous, signal, log);
      return { failed: false, result: 'deleted' };
    }
    if (!repo.metadata.finalizers.includes(finalizerName)) {
      this.#fence(signal, `finalizer of ${key}`);
      await admin.request({
        method: 'PATCH',
        path: `/apis/${gitRepositoryApiVersion}/namespaces/${encodeURIComponent(repo.metadata.namespace)}/gitrepositories/${encodeURIComponent(repo.metadata.name)}`,
        headers: { 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify({
          metadata: {
            finalizers: [...repo.metadata.finalizers, finalizerName],
            resourceVersion: repo.metadata.resourceVersion,
          },
        }),
        signal,
        timeoutMs: 15_000,
      });
    }
    if (repo.spec.suspend) {
      // Suspended: nothing is fetched, applied or pruned, and drift is left alone, so a hotfix made
      // while suspended stays (as with a suspended Flux Kustomization or Argo CD without self-heal).
      // Forgetting the desired state pauses Revert and Report for its objects; a Deny policy is
      // lifted. Resuming reconciles from scratch and brings the objects back to Git.
      this.#managed.delete(key);
      this.#fence(signal, `drift policy of ${key}`);
      const [policy] = buildDenyPolicy({ gitRepository: owner, allowedUsernames: [] });
      await this.#removeDenyPolicy(policy.metadata.name, signal);
      log.info('suspended: not reconciling, drift handling paused');
      return { failed: false, result: 'suspended' };
    }

    const changes: StatusChange[] = [];
    const requestedAt = repo.metadata.annotations[requestedAtAnnotation];
    if (requestedAt !== undefined && requestedAt !== previous.lastHandledReconcileAt) {
      changes.push({ kind: 'requested', at: requestedAt });
    }
    const interval = repo.spec.intervalMs;
    const fail = async (reason: string, message: string, attempted?: string): Promise<ReconcileOutcome> => {
      const wasReady = isConditionTrue(previous.conditions, 'Ready');
      const sameFailure = findCondition(previous.conditions, 'Ready')?.message === message;
      changes.push({
        kind: 'failed',
        reason,
        message,
        ...(attempted === undefined ? {} : { attemptedRevision: attempted }),
      });
      previous = await this.#writeStatus(repo, previous, changes, signal);
      if (!sameFailure) {
        await this.#deps.events.record(repo, 'Warning', reason, message, signal);
        this.#deps.alerter.alert(repo, {
          kind: 'ReconcileFailed',
          message,
          ...(attempted === undefined ? {} : { revision: attempted }),
        });
      }
      log.warn({ reason, wasReady }, message);
      return { failed: true, result: 'failed' };
    };

    // Where the time of a reconcile goes, logged with "revision applied" (milliseconds).
    const phasesMs: Record<string, number> = {};
    let phaseStart = performance.now();
    const phaseEnd = (phase: string) => {
      const now = performance.now();
      phasesMs[phase] = Math.round(now - phaseStart);
      phaseStart = now;
    };

    // 1. Resolve the ref (one round trip) with the repository's credentials.
    const pipelineDeps: PipelineDeps = {
      source: this.#deps.source,
      readReference: (ref, refSignal) => this.#readReference(repo.metadata.namespace, ref, refSignal),
      trustCache: this.#deps.trustCache,
      now: this.#deps.now,
    };
    const resolution = await resolveRevision(repo, pipelineDeps, signal);
    if (!resolution.ok) return fail(resolution.reason, resolution.message);
    const { remote, resolved, revision } = resolution;
    phaseEnd('resolve');

    // 2. Nothing new: the desired state in memory is still what Git says (no API request).
    const state = this.#managed.get(key);
    if (
      state !== undefined &&
      state.commit === resolved.commit &&
      state.generation === repo.metadata.generation &&
      previous.lastAppliedRevision === revision &&
      isConditionTrue(previous.conditions, 'Ready')
    ) {
      if (changes.length > 0) previous = await this.#writeStatus(repo, previous, changes, signal);
      return { failed: false, result: 'unchanged', requeueAfterMs: interval };
    }

    // 3. Fetch and verify. Nothing below runs on an unverified revision.
    const lastApplied = parseRevision(previous.lastAppliedRevision)?.commit;
    const verified = await fetchAndVerify(
      repo,
      key,
      remote,
      resolved,
      revision,
      lastApplied,
      pipelineDeps,
      signal,
    );
    if (!verified.ok) {
      if (verified.stage === 'verify') {
        return this.#reject(
          repo,
          previous,
          changes,
          revision,
          verified.reason,
          verified.message,
          signal,
          log,
        );
      }
      return fail(verified.reason, verified.message, revision);
    }
    const { evidence, signer } = verified;
    changes.push({ kind: 'verified', evidence });
    phaseEnd('fetchAndVerify');

    // A new verified commit whose manifests are those already applied (same spec, same files by
    // blob id): the desired state in memory stays right, so nothing is rendered, planned or applied.
    const fingerprint = treeFingerprint(verified.files);
    if (
      state !== undefined &&
      state.treeFingerprint === fingerprint &&
      state.generation === repo.metadata.generation &&
      previous.lastAppliedRevision !== undefined &&
      previous.inventory !== undefined &&
      isConditionTrue(previous.conditions, 'Ready')
    ) {
      const message = `Applied revision ${revision} signed by ${signer}: manifests unchanged since ${previous.lastAppliedRevision}`;
      changes.push({ kind: 'applied', revision, message, inventory: previous.inventory });
      this.#managed.set(key, { ...state, commit: resolved.commit, revision, signer });
      previous = await this.#writeStatus(repo, previous, changes, signal);
      await this.#deps.events.record(repo, 'Normal', Reason.Succeeded, message, signal);
      log.info({ revision, signer }, 'revision applied: manifests unchanged');
      return { failed: false, result: 'applied', requeueAfterMs: interval };
    }

    // 4. Render and scope the manifests.
    const { scope, serviceAccount } = await this.scopeFor(repo);
    const rendering = await renderDesired(
      repo,
      verified.files,
      admin.discovery,
      this.#deps.options.maxObjects,
      signal,
    );
    if (!rendering.ok)
      return fail(
        Reason.BuildFailed,
        `building ${revision} signed by ${signer}: ${rendering.message}`,
        revision,
      );
    const desired = rendering.desired;
    phaseEnd('render');

    // 5. Plan against the live cache; record the union inventory first so a crash mid-apply never loses an object.
    const types = new Map<string, { apiVersion: string; kind: string }>();
    const previousInventory: Inventory | undefined = previous.inventory;
    for (const object of desired)
      types.set(`${object.apiVersion}|${object.kind}`, { apiVersion: object.apiVersion, kind: object.kind });
    for (const entry of previousInventory?.entries ?? []) {
      try {
        const identity = parseInventoryEntry(entry);
        const apiVersion = identity.group === '' ? identity.version : `${identity.group}/${identity.version}`;
        types.set(`${apiVersion}|${identity.kind}`, { apiVersion, kind: identity.kind });
      } catch {
        // A malformed entry cannot be pruned; it is dropped from the next inventory.
      }
    }
    const watchable = [...types.values()];
    // The inventory the plan will record is that of the desired objects whatever the live state
    // says, so the union inventory is known now. When it names objects the status does not yet
    // record, it is written while the live cache syncs (two independent requests, one wait).
    const wasFailing = findCondition(previous.conditions, 'Ready')?.status === 'False';
    const pending = mergeInventory(
      previousInventory ?? buildInventory([]),
      buildInventory(desired.map(identityOf)).entries,
    );
    const inventoryGrows = pending.entries.length !== (previousInventory?.entries.length ?? -1);
    const watchedTypes = watchable.filter((t) => admin.discovery.scopeOf(t.apiVersion, t.kind) !== undefined);
    const alreadyCovered = watchedTypes.every((t) =>
      this.#deps.liveCache.covers(scope, t.apiVersion, t.kind),
    );
    let cacheSynced = this.#deps.liveCache.ensure(scope, watchedTypes, {
      timeoutMs: this.#deps.options.cacheSyncTimeoutMs,
      signal,
    });
    // The first apply of this GitRepository (no inventory yet) prunes nothing, so its plan needs
    // no live state: when the cache does not cover the types yet, it lists (for drift) while the
    // objects are applied instead of before. Server-side apply is idempotent; an object that
    // already exists is updated, and the change set tells created from configured by the answer.
    if ((previousInventory?.entries.length ?? 0) === 0 && !alreadyCovered) {
      void cacheSynced.catch((error: unknown) => {
        if (!signal.aborted)
          log.warn({ err: error instanceof Error ? error.message : String(error) }, 'live cache sync failed');
      });
      cacheSynced = Promise.resolve(false);
    }
    if (inventoryGrows) {
      // Recorded before touching the cluster: a crash mid-apply never loses an object.
      const recorded = this.#writeStatus(
        repo,
        previous,
        [
          ...changes,
          { kind: 'progressing', message: `applying ${revision} signed by ${signer}`, retry: wasFailing },
          { kind: 'inventory', inventory: pending },
        ],
        signal,
      );
      const [written, synced] = await Promise.allSettled([recorded, cacheSynced]);
      if (written.status === 'rejected') throw written.reason;
      if (synced.status === 'rejected') throw synced.reason;
      previous = written.value;
      changes.length = 0;
    } else {
      await cacheSynced;
    }
    phaseEnd(inventoryGrows ? 'liveCacheAndInventory' : 'liveCache');
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
    const plan = planChanges({
      desired,
      inventory: previousInventory,
      live,
      liveComplete: false,
      owner,
      fieldManager: this.#deps.options.fieldManager,
      prune: repo.spec.prune,
      ...(state === undefined
        ? {}
        : { previous: { desired: state.desired, baselines: state.baselines.normalized } }),
    });
    const work = plan.entries.some(
      (e) => e.action === 'create' || e.action === 'update' || e.action === 'prune',
    );
    if (work && !inventoryGrows) {
      changes.push({
        kind: 'progressing',
        message: `applying ${revision} signed by ${signer}`,
        retry: wasFailing,
      });
      changes.push({ kind: 'inventory', inventory: pending });
      previous = await this.#writeStatus(repo, previous, changes, signal);
      changes.length = 0;
    }

    // The new desired state is what drift is measured against from here on (before the apply's
    // own watch events arrive). An unchanged object's baseline is its live object's form of the
    // desired fields; one being applied is pending until the server answers (or the apply fails),
    // keeping the previous baseline meanwhile if its desired form did not change.
    const desiredById = new Map(desired.map((o) => [identityKey(o), o]));
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
    this.#managed.set(key, {
      key,
      generation: repo.metadata.generation,
      commit: resolved.commit,
      revision,
      signer,
      desired: desiredById,
      baselines,
      treeFingerprint: fingerprint,
      scope,
      driftMode: repo.spec.drift.mode,
      repo,
      ...(serviceAccount === undefined ? {} : { impersonating: serviceAccount }),
    });

    phaseEnd('plan');

    // 6. Apply (server-side, as the tenant when impersonating) and prune. Within the apply the
    // leadership signal is the fence: every request carries it, and an aborted one is not sent.
    this.#fence(signal, `apply of ${revision} (${plan.entries.length} objects)`);
    const manager = createResourceManager(scope.client, owner, this.#deps.options.fieldManager);
    let changeSet: ChangeSet;
    try {
      changeSet = await applyPlan(manager, plan, {
        force: repo.spec.force,
        concurrency: this.#deps.options.applyConcurrency,
        signal,
        onApplied: (id, answer) => {
          const object = desiredById.get(id);
          if (object !== undefined) baselines.record(id, object, answer);
        },
      });
    } finally {
      baselines.settleAll();
    }
    signal.throwIfAborted();
    phaseEnd('apply');
    const summary = summariseChangeSet(changeSet);
    const inventory = mergeInventory(plan.inventory, failedPrunes(changeSet));
    if (hasFailures(changeSet)) {
      const failures = changeSet.entries.filter((e) => e.action === 'failed');
      const message = `applying ${revision} signed by ${signer}: ${failures.length} object(s) failed: ${failures
        .slice(0, 5)
        .map((e) => `${e.subject}: ${e.error?.detail ?? 'failed'}`)
        .join('; ')}${failures.length > 5 ? '; …' : ''}`;
      changes.push({ kind: 'inventory', inventory: mergeInventory(inventory, pending.entries) });
      return fail(Reason.ApplyFailed, message, revision);
    }

    const message = `Applied revision ${revision} signed by ${signer}: ${formatSummary(summary)}`;
    changes.push({ kind: 'applied', revision, message, inventory });
    changes.push({ kind: 'drift', objects: [], mode: repo.spec.drift.mode });

    this.#fence(signal, `drift policy of ${key}`);
    try {
      await this.#syncDenyPolicy(repo, scope, signal);
    } catch (error) {
      signal.throwIfAborted();
      const reason = error instanceof Error ? error.message : String(error);
      return fail(
        Reason.ApplyFailed,
        `applying ${revision} signed by ${signer}: drift mode ${repo.spec.drift.mode}: keeping the ValidatingAdmissionPolicy in sync failed: ${reason}`,
        revision,
      );
    }
    phaseEnd('driftPolicy');
    previous = await this.#writeStatus(repo, previous, changes, signal);
    phaseEnd('status');
    this.#deps.metrics.managedObjects.set(
      { namespace: repo.metadata.namespace, name: repo.metadata.name },
      inventory.entries.length,
    );
    if (
      previous.lastAppliedRevision !== undefined &&
      (summary.created + summary.configured + summary.deleted > 0 ||
        wasFailing ||
        state === undefined ||
        state.revision !== revision)
    ) {
      await this.#deps.events.record(repo, 'Normal', Reason.Succeeded, message, signal);
    }
    if (wasFailing) this.#deps.alerter.alert(repo, { kind: 'Recovered', message, revision, signer });
    log.info({ revision, signer, ...summary, phasesMs }, 'revision applied');
    return { failed: false, result: 'applied', requeueAfterMs: interval };
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

  async #reject(
    repo: GitRepository,
    previous: GitRepositoryStatus,
    changes: StatusChange[],
    revision: string,
    reason: string,
    message: string,
    signal: AbortSignal,
    log: Logger,
  ): Promise<ReconcileOutcome> {
    const repeated =
      previous.lastAttemptedRevision === revision &&
      findCondition(previous.conditions, 'Verified')?.reason === reason;
    const kept =
      previous.lastAppliedRevision === undefined
        ? 'nothing was applied'
        : `${previous.lastAppliedRevision} stays in force`;
    const full = `revision ${revision} rejected (${reason}): ${message}; ${kept}`;
    changes.push({ kind: 'rejected', reason, message: full, attemptedRevision: revision });
    await this.#writeStatus(repo, previous, changes, signal);
    this.#deps.metrics.verificationFailuresTotal.inc({ reason });
    if (!repeated) {
      await this.#deps.events.record(repo, 'Warning', reason, full, signal);
      this.#deps.alerter.alert(repo, { kind: 'VerificationFailed', message: full, revision });
    }
    log.warn({ revision, reason }, full);
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
      this.#fence(signal, `prune of ${objectKeyOf(repo)}`);
      const { scope } = await this.scopeFor(repo).catch(() => ({
        scope: { identity: '', client: this.#deps.admin } as WatchScope,
      }));
      const identities = previous.inventory.entries.flatMap((entry) => {
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
    this.#managed.delete(objectKeyOf(repo));
    this.#fence(signal, `finalizer removal of ${objectKeyOf(repo)}`);
    await this.#deps.admin.request({
      method: 'PATCH',
      path: `/apis/${gitRepositoryApiVersion}/namespaces/${encodeURIComponent(repo.metadata.namespace)}/gitrepositories/${encodeURIComponent(repo.metadata.name)}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({
        metadata: {
          finalizers: repo.metadata.finalizers.filter((f) => f !== finalizerName),
          resourceVersion: repo.metadata.resourceVersion,
        },
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
