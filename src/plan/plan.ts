import { isOwnedBy, isPruneDisabled, type OwnerRef } from '../render/labels.ts';
import {
  formatSubject,
  identityOf,
  type JsonObject,
  type JsonValue,
  jsonEqual,
  type KubeObject,
  type ObjectIdentity,
} from '../render/object.ts';
import { appliedFieldsOf, ownedFieldsMatch } from './fieldsv1.ts';
import {
  buildInventory,
  type Inventory,
  inventoryId,
  parseInventoryEntry,
  staleEntries,
} from './inventory.ts';
import { type ApplyKey, applyKeyOf, sortForApply, sortForDelete } from './order.ts';

export type PlanAction = 'create' | 'update' | 'unchanged' | 'prune' | 'skip';

export type PlanReason =
  /** update: the live object has no Apply entry for our field manager (new to Signet or migrated). */
  | 'not-managed'
  /** update: owned field set or values differ from the desired object. */
  | 'fields-differ'
  /** skip: the live object lacks our owner labels: never pruned. */
  | 'not-owned'
  /** skip: annotation `signet.dev/prune: disabled`. */
  | 'prune-disabled'
  /** skip: pruning is turned off for this reconcile. */
  | 'prune-off'
  /** skip: the live state is complete and the object is already gone. */
  | 'not-found';

export interface PlanEntry {
  /** Inventory id `<ns>_<name>_<group>_<kind>`. */
  readonly id: string;
  readonly identity: ObjectIdentity;
  /** `Kind/namespace/name`. */
  readonly subject: string;
  readonly action: PlanAction;
  readonly reason?: PlanReason;
  /** For create/update/unchanged. */
  readonly desired?: KubeObject;
  /** The live object when known. */
  readonly live?: KubeObject;
}

export interface PlanInput {
  /** Desired objects after `applyScope` (namespaces final). */
  readonly desired: readonly KubeObject[];
  /** The inventory from the last successful reconcile (undefined on the first one). */
  readonly inventory: Inventory | undefined;
  /** Live objects keyed by inventory id. */
  readonly live: ReadonlyMap<string, KubeObject>;
  /**
   * True when `live` holds every object of the listed kinds (e.g. an informer cache): a missing
   * stale object is then known gone. Otherwise it is planned for prune and checked at delete time.
   */
  readonly liveComplete?: boolean;
  readonly owner: OwnerRef;
  /** Field manager whose Apply entry decides "unchanged" (e.g. `signet`). */
  readonly fieldManager: string;
  /** `spec.prune`; default true. */
  readonly prune?: boolean;
  /**
   * The desired state applied before (the previous revision's), when known. An object whose
   * desired form did not change is also unchanged when its owned live fields equal its drift
   * baseline, i.e. the values the API server stored for them (`cpu: 1000m` stored as `1`).
   */
  readonly previous?: PreviousDesiredState;
}

export interface PreviousDesiredState {
  /** Desired objects by inventory id. */
  readonly desired: ReadonlyMap<string, KubeObject>;
  /** Drift baselines by inventory id, only where they differ from the desired object. */
  readonly baselines: ReadonlyMap<string, KubeObject>;
}

export interface Plan {
  /** Create/update/unchanged in apply order, then prune/skip of stale objects in delete order. */
  readonly entries: readonly PlanEntry[];
  /** The inventory of the desired objects (what the status records once applied). */
  readonly inventory: Inventory;
}

/**
 * Pairs desired objects with the previous inventory and live state. Pure and request-free:
 * "unchanged" comes from comparing the desired object with the live fields our field manager owns
 * (or, for an object whose desired form is the previous one, its drift baseline with them).
 * Every id of desired ∪ inventory appears in exactly one entry.
 */
export function planChanges(input: PlanInput): Plan {
  const desiredEntries: PlanEntry[] = [];
  for (const object of input.desired) {
    const identity = identityOf(object);
    const id = inventoryId(identity);
    const live = input.live.get(id);
    const base = { id, identity, subject: formatSubject(identity), desired: object };
    if (live === undefined) {
      desiredEntries.push({ ...base, action: 'create' });
      continue;
    }
    const owned = appliedFieldsOf(live, input.fieldManager);
    if (owned === undefined) {
      desiredEntries.push({ ...base, live, action: 'update', reason: 'not-managed' });
    } else if (
      ownedFieldsMatch(object, live, owned) ||
      matchesBaseline(id, object, live, owned, input.previous)
    ) {
      desiredEntries.push({ ...base, live, action: 'unchanged' });
    } else {
      desiredEntries.push({ ...base, live, action: 'update', reason: 'fields-differ' });
    }
  }

  const inventory = buildInventory(desiredEntries.map((entry) => entry.identity));
  const staleEntriesPlanned: PlanEntry[] = [];
  for (const stale of staleEntries(input.inventory, inventory)) {
    const identity = parseInventoryEntry(stale);
    const live = input.live.get(stale.id);
    const base = { id: stale.id, identity, subject: formatSubject(identity) };
    const withLive = live === undefined ? base : { ...base, live };
    if (input.prune === false) {
      staleEntriesPlanned.push({ ...withLive, action: 'skip', reason: 'prune-off' });
    } else if (live === undefined) {
      staleEntriesPlanned.push(
        input.liveComplete === true
          ? { ...base, action: 'skip', reason: 'not-found' }
          : { ...base, action: 'prune' },
      );
    } else if (!isOwnedBy(live.metadata.labels, input.owner)) {
      staleEntriesPlanned.push({ ...withLive, action: 'skip', reason: 'not-owned' });
    } else if (isPruneDisabled(live.metadata.annotations)) {
      staleEntriesPlanned.push({ ...withLive, action: 'skip', reason: 'prune-disabled' });
    } else {
      staleEntriesPlanned.push({ ...withLive, action: 'prune' });
    }
  }

  const byIdentity = (entry: PlanEntry): ObjectIdentity => entry.identity;
  const byApplyKey = (entry: PlanEntry): ApplyKey =>
    entry.desired === undefined ? entry.identity : applyKeyOf(entry.desired);
  return {
    entries: [...sortForApply(desiredEntries, byApplyKey), ...sortForDelete(staleEntriesPlanned, byIdentity)],
    inventory,
  };
}

/** The desired object is the one applied before, and the live object holds what the server stored for it then. */
function matchesBaseline(
  id: string,
  desired: KubeObject,
  live: KubeObject,
  owned: JsonObject,
  previous: PreviousDesiredState | undefined,
): boolean {
  const baseline = previous?.baselines.get(id);
  if (baseline === undefined) return false;
  const before = previous?.desired.get(id);
  if (before === undefined || !jsonEqual(before as unknown as JsonValue, desired as unknown as JsonValue)) {
    return false;
  }
  return ownedFieldsMatch(baseline, live, owned);
}

export type PlanSummary = Record<PlanAction, number>;

export function summarisePlan(plan: Plan): PlanSummary {
  const summary: PlanSummary = { create: 0, update: 0, unchanged: 0, prune: 0, skip: 0 };
  for (const entry of plan.entries) summary[entry.action]++;
  return summary;
}

export function entriesWithAction(plan: Plan, action: PlanAction): PlanEntry[] {
  return plan.entries.filter((entry) => entry.action === action);
}
