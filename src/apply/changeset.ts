import { type InventoryEntry, inventoryId } from '../plan/inventory.ts';
import { formatSubject, type ObjectIdentity } from '../render/object.ts';
import type { ApplyError } from './errors.ts';

export type ChangeAction = 'created' | 'configured' | 'unchanged' | 'deleted' | 'skipped' | 'failed';
export const changeActions: readonly ChangeAction[] = [
  'created',
  'configured',
  'unchanged',
  'deleted',
  'skipped',
  'failed',
];

export interface ChangeSetEntry {
  /** Inventory id `<ns>_<name>_<group>_<kind>`. */
  readonly id: string;
  readonly identity: ObjectIdentity;
  /** `Kind/namespace/name`. */
  readonly subject: string;
  readonly action: ChangeAction;
  /** Set when action is `failed`. */
  readonly error?: ApplyError;
  /** Extra detail: `recreated`, `not-owned`, `prune-disabled`, `not-found`, `forced`… */
  readonly reason?: string;
}

export interface ChangeSet {
  readonly entries: readonly ChangeSetEntry[];
}

export function changeEntry(
  identity: ObjectIdentity,
  action: ChangeAction,
  detail: { error?: ApplyError; reason?: string } = {},
): ChangeSetEntry {
  return {
    id: inventoryId(identity),
    identity,
    subject: formatSubject(identity),
    action,
    ...(detail.error === undefined ? {} : { error: detail.error }),
    ...(detail.reason === undefined ? {} : { reason: detail.reason }),
  };
}

export function mergeChangeSets(...changeSets: readonly ChangeSet[]): ChangeSet {
  return { entries: changeSets.flatMap((changeSet) => changeSet.entries) };
}

export type ChangeSummary = Record<ChangeAction, number>;

export function summariseChangeSet(changeSet: ChangeSet): ChangeSummary {
  const summary: ChangeSummary = {
    created: 0,
    configured: 0,
    unchanged: 0,
    deleted: 0,
    skipped: 0,
    failed: 0,
  };
  for (const entry of changeSet.entries) summary[entry.action]++;
  return summary;
}

export function entriesWithChange(changeSet: ChangeSet, action: ChangeAction): ChangeSetEntry[] {
  return changeSet.entries.filter((entry) => entry.action === action);
}

export function hasFailures(changeSet: ChangeSet): boolean {
  return changeSet.entries.some((entry) => entry.action === 'failed');
}

/** One line per entry that changed or failed: `ConfigMap/ns/name configured`. Unchanged ones are left out. */
export function formatChangeSet(changeSet: ChangeSet): string[] {
  return changeSet.entries
    .filter((entry) => entry.action !== 'unchanged')
    .map((entry) => {
      if (entry.action === 'failed')
        return `${entry.subject} failed: ${entry.error?.detail ?? 'unknown error'}`;
      return entry.reason === undefined
        ? `${entry.subject} ${entry.action}`
        : `${entry.subject} ${entry.action} (${entry.reason})`;
    });
}

/** `3 created, 1 configured, 2 unchanged` (zero counts left out). */
export function formatSummary(summary: ChangeSummary): string {
  const parts = changeActions
    .filter((action) => summary[action] > 0)
    .map((action) => `${summary[action]} ${action}`);
  return parts.length === 0 ? 'no changes' : parts.join(', ');
}

/** Inventory entries of prunes that failed: merge them back so the next reconcile retries. */
export function failedPrunes(changeSet: ChangeSet): InventoryEntry[] {
  return changeSet.entries
    .filter((entry) => entry.action === 'failed' && entry.reason === 'prune')
    .map((entry) => ({ id: entry.id, v: entry.identity.version }));
}
