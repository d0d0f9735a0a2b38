import { type ObjectIdentity, objectKey } from '../render/object.ts';

/**
 * Flux-format inventory entry: `id` is `<namespace>_<name>_<group>_<kind>` (namespace empty for
 * cluster-scoped objects, group empty for the core group) and `v` is the API version.
 */
export interface InventoryEntry {
  readonly id: string;
  readonly v: string;
}

export interface Inventory {
  readonly entries: readonly InventoryEntry[];
}

export class InventoryError extends Error {
  override readonly name = 'InventoryError';
  readonly code = 'InvalidInventoryId' as const;
  readonly id: string;
  constructor(id: string) {
    super(`inventory id "${id}" is not <namespace>_<name>_<group>_<kind>`);
    this.id = id;
  }
}

export function inventoryId(identity: Pick<ObjectIdentity, 'group' | 'kind' | 'namespace' | 'name'>): string {
  return objectKey(identity);
}

/**
 * Parses an id back into an identity. Namespaces, groups and kinds never contain `_`; names
 * rarely do (RBAC names may), so the name is everything between the first and the last two `_`.
 */
export function parseInventoryEntry(entry: InventoryEntry): ObjectIdentity {
  const parts = entry.id.split('_');
  if (parts.length < 4) throw new InventoryError(entry.id);
  const namespace = parts[0]!;
  const kind = parts[parts.length - 1]!;
  const group = parts[parts.length - 2]!;
  const name = parts.slice(1, -2).join('_');
  if (name === '' || kind === '') throw new InventoryError(entry.id);
  return { namespace, name, group, kind, version: entry.v };
}

function compareIds(a: InventoryEntry, b: InventoryEntry): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Inventory of the given objects (e.g. every entry of a ChangeSet that exists in the cluster), sorted. */
export function buildInventory(identities: Iterable<ObjectIdentity>): Inventory {
  const byId = new Map<string, InventoryEntry>();
  for (const identity of identities) {
    const id = inventoryId(identity);
    byId.set(id, { id, v: identity.version });
  }
  return { entries: [...byId.values()].sort(compareIds) };
}

/** Entries of `previous` that `next` no longer holds: the objects to prune, sorted by id. */
export function staleEntries(previous: Inventory | undefined, next: Inventory): InventoryEntry[] {
  if (previous === undefined) return [];
  const keep = new Set(next.entries.map((entry) => entry.id));
  return previous.entries.filter((entry) => !keep.has(entry.id)).sort(compareIds);
}

/** Adds entries back (e.g. prunes that failed, so the next pass retries them), sorted. */
export function mergeInventory(base: Inventory, extra: Iterable<InventoryEntry>): Inventory {
  const byId = new Map(base.entries.map((entry) => [entry.id, entry]));
  for (const entry of extra) if (!byId.has(entry.id)) byId.set(entry.id, entry);
  return { entries: [...byId.values()].sort(compareIds) };
}
