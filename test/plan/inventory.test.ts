import { describe, expect, it } from 'vitest';
import {
  buildInventory,
  InventoryError,
  inventoryId,
  mergeInventory,
  parseInventoryEntry,
  staleEntries,
} from '../../src/plan/inventory.ts';

const cm = { group: '', version: 'v1', kind: 'ConfigMap', namespace: 'apps', name: 'settings' };
const role = {
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  kind: 'ClusterRole',
  namespace: '',
  name: 'a_b',
};

describe('inventory', () => {
  it('uses the Flux id format', () => {
    expect(inventoryId(cm)).toBe('apps_settings__ConfigMap');
    expect(inventoryId(role)).toBe('_a_b_rbac.authorization.k8s.io_ClusterRole');
  });

  it('parses ids back, names with underscores included', () => {
    expect(parseInventoryEntry({ id: inventoryId(cm), v: 'v1' })).toEqual(cm);
    expect(parseInventoryEntry({ id: inventoryId(role), v: 'v1' })).toEqual(role);
    expect(() => parseInventoryEntry({ id: 'a_b_c', v: 'v1' })).toThrow(InventoryError);
  });

  it('builds sorted, deduplicated entries and finds stale ones', () => {
    const next = buildInventory([role, cm, cm]);
    expect(next.entries).toEqual([
      { id: '_a_b_rbac.authorization.k8s.io_ClusterRole', v: 'v1' },
      { id: 'apps_settings__ConfigMap', v: 'v1' },
    ]);
    const previous = buildInventory([cm, { ...cm, name: 'old' }, { ...cm, namespace: 'x', name: 'gone' }]);
    expect(staleEntries(previous, next).map((entry) => entry.id)).toEqual([
      'apps_old__ConfigMap',
      'x_gone__ConfigMap',
    ]);
    expect(staleEntries(undefined, next)).toEqual([]);
    expect(
      mergeInventory(next, [{ id: 'apps_old__ConfigMap', v: 'v1' }]).entries.map((entry) => entry.id),
    ).toEqual([
      '_a_b_rbac.authorization.k8s.io_ClusterRole',
      'apps_old__ConfigMap',
      'apps_settings__ConfigMap',
    ]);
  });
});
