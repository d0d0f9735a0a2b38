import type { ObjectRef } from '../kube/client.ts';
import { groupByStage } from '../plan/order.ts';
import { isOwnedBy, isPruneDisabled } from '../render/labels.ts';
import type { ObjectIdentity } from '../render/object.ts';
import { type ChangeSet, type ChangeSetEntry, changeEntry } from './changeset.ts';
import { toApplyError } from './errors.ts';
import { mapConcurrent, type ResourceManager } from './manager.ts';

export interface PruneOptions {
  /** Deletes in flight within one stage (default 16). */
  readonly concurrency?: number;
  readonly dryRun?: boolean;
  readonly requestTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

function refOf(identity: ObjectIdentity): ObjectRef {
  const apiVersion = identity.group === '' ? identity.version : `${identity.group}/${identity.version}`;
  return {
    apiVersion,
    kind: identity.kind,
    name: identity.name,
    ...(identity.namespace === '' ? {} : { namespace: identity.namespace }),
  };
}

/**
 * Deletes one stale object after re-reading it: only when its live labels name our owner and
 * `signet.dev/prune: disabled` is absent; the delete carries the live uid as a precondition.
 * Never throws: failures are `failed` entries with reason `prune`.
 */
export async function pruneOne(
  manager: ResourceManager,
  identity: ObjectIdentity,
  options: PruneOptions = {},
): Promise<ChangeSetEntry> {
  const ref = refOf(identity);
  const call = {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
  };
  try {
    const live = await manager.client.get(ref, call);
    if (live === undefined) return changeEntry(identity, 'skipped', { reason: 'not-found' });
    if (!isOwnedBy(live.metadata.labels, manager.owner.owner)) {
      return changeEntry(identity, 'skipped', { reason: 'not-owned' });
    }
    if (isPruneDisabled(live.metadata.annotations)) {
      return changeEntry(identity, 'skipped', { reason: 'prune-disabled' });
    }
    if (live.metadata.deletionTimestamp !== undefined) return changeEntry(identity, 'deleted');
    const uid = live.metadata.uid;
    const outcome = await manager.client.delete(ref, {
      ...call,
      propagationPolicy: 'Background',
      ...(uid === undefined ? {} : { uid }),
      ...(options.dryRun === true ? { dryRun: true } : {}),
    });
    return outcome === 'deleted'
      ? changeEntry(identity, 'deleted')
      : changeEntry(identity, 'skipped', { reason: 'not-found' });
  } catch (error) {
    const subject = changeEntry(identity, 'failed').subject;
    return changeEntry(identity, 'failed', {
      error: toApplyError(error, subject, 'delete'),
      reason: 'prune',
    });
  }
}

/**
 * Prunes stale objects in reverse apply order, stage by stage (webhooks, namespaced objects,
 * cluster-scoped objects, Namespaces, CRDs), in parallel within a stage. Never deletes what is
 * not ours. Returns one entry per object.
 */
export async function prune(
  manager: ResourceManager,
  identities: readonly ObjectIdentity[],
  options: PruneOptions = {},
): Promise<ChangeSet> {
  const stages = groupByStage(identities, (identity) => identity).reverse();
  const entries: ChangeSetEntry[] = [];
  for (const stage of stages) {
    const items = [...stage.items].reverse();
    entries.push(
      ...(await mapConcurrent(items, options.concurrency ?? 16, (identity) =>
        pruneOne(manager, identity, options),
      )),
    );
  }
  return { entries };
}
