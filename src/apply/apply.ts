import { KubeApiError } from '../kube/errors.ts';
import { inventoryId } from '../plan/inventory.ts';
import { applyKeyOf, groupByStage } from '../plan/order.ts';
import type { Plan } from '../plan/plan.ts';
import { identityOf, type KubeObject } from '../render/object.ts';
import { type ChangeSet, type ChangeSetEntry, changeEntry, mergeChangeSets } from './changeset.ts';
import { prune } from './delete.ts';
import { toApplyError } from './errors.ts';
import { mapConcurrent, type ResourceManager } from './manager.ts';
import { waitForCrdEstablished, waitForDeletion } from './wait.ts';

export interface ApplyOptions {
  /** `spec.force`: take fields from other managers, and delete + recreate on immutable-field errors. */
  readonly force?: boolean;
  /**
   * Take fields from other managers (SSA `force`) without the delete + recreate of `force`: a
   * drift revert of the revision already applied (`src/controller/drift.ts` does the same).
   */
  readonly forceConflicts?: boolean;
  /** Server-side dry-run: nothing is persisted. */
  readonly dryRun?: boolean;
  /** Objects applied in parallel within one stage (default 16). */
  readonly concurrency?: number;
  /** Deadline for each CRD to become Established and each recreate's delete (default 60 s). */
  readonly waitTimeoutMs?: number;
  /** Per-request timeout in ms. */
  readonly requestTimeoutMs?: number;
  /** resourceVersion of live objects by inventory id: an apply that keeps it reports `unchanged`. */
  readonly liveResourceVersions?: ReadonlyMap<string, string>;
  /**
   * Called with the server's answer of each successful apply (not for dry-runs), by inventory id,
   * as soon as it arrives: the object as the API server stored it (e.g. quantities normalised).
   */
  readonly onApplied?: (id: string, answer: KubeObject) => void;
  readonly signal?: AbortSignal;
}

export const defaultApplyOptions = { force: false, dryRun: false, concurrency: 16, waitTimeoutMs: 60_000 };

/**
 * Server-side applies one object: one PATCH on the cold path (no GET, no dry-run).
 * With `force`, an immutable-field refusal deletes the object and applies it again.
 * Never throws: failures come back as a `failed` entry.
 */
export async function applyOne(
  manager: ResourceManager,
  object: KubeObject,
  options: ApplyOptions = {},
): Promise<ChangeSetEntry> {
  const identity = identityOf(object);
  const force = options.force ?? false;
  const callOptions = {
    fieldManager: manager.owner.fieldManager,
    force: force || (options.forceConflicts ?? false),
    dryRun: options.dryRun ?? false,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
  };
  try {
    const result = await manager.client.apply(object, callOptions);
    if (options.dryRun !== true) options.onApplied?.(inventoryId(identity), result.object);
    if (result.created) return changeEntry(identity, 'created');
    const previous = options.liveResourceVersions?.get(changeEntry(identity, 'created').id);
    const unchanged = previous !== undefined && previous === result.object.metadata.resourceVersion;
    return changeEntry(identity, unchanged ? 'unchanged' : 'configured');
  } catch (error) {
    if (force && options.dryRun !== true && error instanceof KubeApiError && error.isImmutableFieldError) {
      return recreate(manager, object, callOptions, options);
    }
    return changeEntry(identity, 'failed', {
      error: toApplyError(error, changeEntry(identity, 'failed').subject, 'apply'),
    });
  }
}

async function recreate(
  manager: ResourceManager,
  object: KubeObject,
  callOptions: Parameters<ResourceManager['client']['apply']>[1],
  options: ApplyOptions,
): Promise<ChangeSetEntry> {
  const identity = identityOf(object);
  const subject = changeEntry(identity, 'created').subject;
  const ref = {
    apiVersion: object.apiVersion,
    kind: object.kind,
    name: identity.name,
    ...(identity.namespace === '' ? {} : { namespace: identity.namespace }),
  };
  try {
    const live = await manager.client.get(ref, callOptions);
    const uid = live?.metadata.uid;
    if (live !== undefined) {
      await manager.client.delete(ref, { ...callOptions, ...(uid === undefined ? {} : { uid }) });
      await waitForDeletion(manager, ref, uid, {
        timeoutMs: options.waitTimeoutMs ?? defaultApplyOptions.waitTimeoutMs,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    }
    const result = await manager.client.apply(object, callOptions);
    options.onApplied?.(inventoryId(identity), result.object);
    return changeEntry(identity, 'created', { reason: 'recreated' });
  } catch (error) {
    return changeEntry(identity, 'failed', { error: toApplyError(error, subject, 'apply') });
  }
}

/**
 * Applies objects in stages: CRDs (then waits for each to be Established), Namespaces, other
 * cluster-scoped objects, namespaced objects, webhook configurations. Within a stage Helm hooks
 * go in ascending `helm.sh/hook-weight` (ordinary objects weigh 0): each weight's objects are
 * applied, and answered, before the next weight's, as each stage's before the next stage's.
 * Within one stage and weight objects go in parallel (bounded by `concurrency`). Returns a ChangeSet in apply order; never throws for
 * a per-object failure.
 */
export async function applyAll(
  manager: ResourceManager,
  objects: readonly KubeObject[],
  options: ApplyOptions = {},
): Promise<ChangeSet> {
  const concurrency = options.concurrency ?? defaultApplyOptions.concurrency;
  const entries: ChangeSetEntry[] = [];
  for (const group of groupByStage(objects, applyKeyOf)) {
    const stageEntries = await mapConcurrent(group.items, concurrency, (object) =>
      applyOne(manager, object, options),
    );
    if (group.stage === 'crds' && options.dryRun !== true) {
      const waited = await mapConcurrent(group.items, concurrency, async (crd, index) => {
        const entry = stageEntries[index]!;
        if (entry.action === 'failed') return entry;
        try {
          await waitForCrdEstablished(manager, crd, {
            timeoutMs: options.waitTimeoutMs ?? defaultApplyOptions.waitTimeoutMs,
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          });
          return entry;
        } catch (error) {
          return changeEntry(entry.identity, 'failed', {
            error: toApplyError(error, entry.subject, 'apply'),
          });
        }
      });
      entries.push(...waited);
    } else {
      entries.push(...stageEntries);
    }
  }
  return { entries };
}

/**
 * Carries out a plan: `unchanged` entries cost no request, create/update go through `applyAll`,
 * stale objects through `prune`, and `skip` entries are reported as skipped.
 */
export async function applyPlan(
  manager: ResourceManager,
  plan: Plan,
  options: ApplyOptions = {},
): Promise<ChangeSet> {
  const toApply: KubeObject[] = [];
  const liveResourceVersions = new Map<string, string>(options.liveResourceVersions ?? []);
  const unchanged: ChangeSetEntry[] = [];
  const skipped: ChangeSetEntry[] = [];
  for (const entry of plan.entries) {
    if ((entry.action === 'create' || entry.action === 'update') && entry.desired !== undefined) {
      toApply.push(entry.desired);
      const resourceVersion = entry.live?.metadata.resourceVersion;
      if (resourceVersion !== undefined) liveResourceVersions.set(entry.id, resourceVersion);
    } else if (entry.action === 'unchanged') {
      unchanged.push(changeEntry(entry.identity, 'unchanged'));
    } else if (entry.action === 'skip') {
      skipped.push(
        changeEntry(entry.identity, 'skipped', entry.reason === undefined ? {} : { reason: entry.reason }),
      );
    }
  }
  const applied = await applyAll(manager, toApply, { ...options, liveResourceVersions });
  const pruned = await prune(
    manager,
    plan.entries.filter((entry) => entry.action === 'prune').map((entry) => entry.identity),
    {
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.dryRun === undefined ? {} : { dryRun: options.dryRun }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
  return mergeChangeSets({ entries: unchanged }, applied, pruned, { entries: skipped });
}
