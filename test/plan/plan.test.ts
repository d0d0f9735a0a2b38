import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fieldsOf } from '../../src/plan/fieldsv1.ts';
import { buildInventory, inventoryId } from '../../src/plan/inventory.ts';
import { planChanges, summarisePlan } from '../../src/plan/plan.ts';
import { ownerLabels, pruneAnnotation } from '../../src/render/labels.ts';
import { identityOf, type JsonObject, type KubeObject } from '../../src/render/object.ts';

const owner = { name: 'repo', namespace: 'flux' };
const labels = ownerLabels(owner);

function configMap(name: string, data: JsonObject = { key: 'value' }, namespace = 'apps'): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels }, data };
}

/** What the server would hold after our apply: the object plus our Apply managed-fields entry. */
function liveAfterApply(desired: KubeObject, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  const { apiVersion: _a, kind: _k, metadata, ...rest } = desired;
  const { name: _n, namespace: _ns, ...metadataRest } = metadata;
  const fieldsV1 = fieldsOf({ ...(rest as JsonObject), metadata: metadataRest as JsonObject });
  return {
    ...structuredClone(desired),
    metadata: {
      ...structuredClone(desired.metadata),
      uid: `uid-${desired.metadata.name}`,
      resourceVersion: '1',
      managedFields: [{ manager: 'signet', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1 }],
      ...extra,
    },
  };
}

function liveMap(objects: KubeObject[]): Map<string, KubeObject> {
  return new Map(objects.map((object) => [inventoryId(identityOf(object)), object]));
}

describe('planChanges', () => {
  it('classifies create, update, unchanged, prune and skip', () => {
    const same = configMap('same');
    const changed = configMap('changed', { key: 'new' });
    const fresh = configMap('fresh');
    const adopted = configMap('adopted');
    const stale = configMap('stale');
    const foreign = { ...configMap('foreign'), metadata: { name: 'foreign', namespace: 'apps', labels: {} } };
    const kept = configMap('kept');
    const keptLive = liveAfterApply(kept, { annotations: { [pruneAnnotation]: 'disabled' } });
    const inventory = buildInventory(
      [same, changed, stale, foreign, kept, configMap('gone')].map(identityOf),
    );
    const live = liveMap([
      liveAfterApply(same),
      liveAfterApply(configMap('changed')),
      { ...adopted, metadata: { ...adopted.metadata, resourceVersion: '3' } },
      liveAfterApply(stale),
      liveAfterApply(foreign),
      keptLive,
    ]);
    const plan = planChanges({
      desired: [same, changed, fresh, adopted],
      inventory,
      live,
      owner,
      fieldManager: 'signet',
    });
    const byName = Object.fromEntries(
      plan.entries.map((entry) => [entry.identity.name, [entry.action, entry.reason]]),
    );
    expect(byName).toEqual({
      same: ['unchanged', undefined],
      changed: ['update', 'fields-differ'],
      fresh: ['create', undefined],
      adopted: ['update', 'not-managed'],
      stale: ['prune', undefined],
      foreign: ['skip', 'not-owned'],
      kept: ['skip', 'prune-disabled'],
      gone: ['prune', undefined],
    });
    expect(summarisePlan(plan)).toEqual({ create: 1, update: 2, unchanged: 1, prune: 2, skip: 2 });
    expect(plan.inventory.entries.map((entry) => entry.id)).toEqual([
      'apps_adopted__ConfigMap',
      'apps_changed__ConfigMap',
      'apps_fresh__ConfigMap',
      'apps_same__ConfigMap',
    ]);
  });

  it('knows a missing stale object is gone when the live state is complete, and honours prune off', () => {
    const inventory = buildInventory([identityOf(configMap('gone'))]);
    const complete = planChanges({
      desired: [],
      inventory,
      live: new Map(),
      liveComplete: true,
      owner,
      fieldManager: 'signet',
    });
    expect(complete.entries.map((entry) => [entry.action, entry.reason])).toEqual([['skip', 'not-found']]);
    const off = planChanges({
      desired: [],
      inventory,
      live: new Map(),
      prune: false,
      owner,
      fieldManager: 'signet',
    });
    expect(off.entries.map((entry) => [entry.action, entry.reason])).toEqual([['skip', 'prune-off']]);
  });

  it('treats labels another manager added as not ours to compare', () => {
    const desired = configMap('a');
    const live = liveAfterApply(desired);
    live.metadata.labels = { ...live.metadata.labels, extra: 'kubectl' };
    const plan = planChanges({
      desired: [desired],
      inventory: undefined,
      live: liveMap([live]),
      owner,
      fieldManager: 'signet',
    });
    expect(plan.entries[0]?.action).toBe('unchanged');
  });

  it('an object whose values the server normalised is unchanged against its previous baseline', () => {
    const quota = (hard: JsonObject): KubeObject => ({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'q', namespace: 'apps', labels },
      spec: { hard },
    });
    const desired = quota({ cpu: '1000m', memory: '1024Mi', pods: 10 });
    // The server's answer to applying it: quantities in canonical form, our field set owned.
    const baseline = quota({ cpu: '1', memory: '1Gi', pods: '10' });
    const live = liveAfterApply(baseline);
    const id = inventoryId(identityOf(desired));
    const previous = { desired: new Map([[id, desired]]), baselines: new Map([[id, baseline]]) };
    const plan = (object: KubeObject, liveObject: KubeObject, before?: typeof previous) =>
      planChanges({
        desired: [object],
        inventory: buildInventory([identityOf(object)]),
        live: liveMap([liveObject]),
        owner,
        fieldManager: 'signet',
        ...(before === undefined ? {} : { previous: before }),
      }).entries.map((entry) => [entry.action, entry.reason]);

    // Without the previous baseline (first reconcile after a restart) the Git text differs: apply once.
    expect(plan(desired, live)).toEqual([['update', 'fields-differ']]);
    expect(plan(desired, live, previous)).toEqual([['unchanged', undefined]]);
    // A structurally equal desired object from a new render is the same desired object.
    expect(plan(structuredClone(desired), live, previous)).toEqual([['unchanged', undefined]]);
    // A real change in Git, or live, is still an update.
    expect(plan(quota({ cpu: '2', memory: '1024Mi', pods: 10 }), live, previous)).toEqual([
      ['update', 'fields-differ'],
    ]);
    expect(plan(desired, liveAfterApply(quota({ cpu: '3', memory: '1Gi', pods: '10' })), previous)).toEqual([
      ['update', 'fields-differ'],
    ]);
    // The baseline of another object, or a live object we no longer manage, does not count.
    const other = {
      desired: previous.desired,
      baselines: new Map([['apps_other__ResourceQuota', baseline]]),
    };
    expect(plan(desired, live, other)).toEqual([['update', 'fields-differ']]);
    const unmanaged = { ...live, metadata: { ...live.metadata, managedFields: [] } };
    expect(plan(desired, unmanaged, previous)).toEqual([['update', 'not-managed']]);
  });

  it('plans 5,000 unchanged objects quickly', () => {
    const desired = Array.from({ length: 5_000 }, (_, index) =>
      configMap(`cm-${index}`, { a: `${index}`, b: 'x' }),
    );
    const live = liveMap(desired.map((object) => liveAfterApply(object)));
    const started = performance.now();
    const plan = planChanges({
      desired,
      inventory: buildInventory(desired.map(identityOf)),
      live,
      owner,
      fieldManager: 'signet',
    });
    const elapsedMs = performance.now() - started;
    expect(summarisePlan(plan).unchanged).toBe(5_000);
    expect(elapsedMs).toBeLessThan(1_000);
  });

  it('partitions desired ∪ inventory into disjoint actions (property)', () => {
    const names = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
    const liveState = fc.constantFrom('absent', 'applied', 'drifted', 'foreign', 'opted-out', 'unmanaged');
    fc.assert(
      fc.property(
        fc.uniqueArray(names, { maxLength: 8 }),
        fc.uniqueArray(names, { maxLength: 8 }),
        fc.dictionary(names, liveState),
        fc.boolean(),
        fc.boolean(),
        (desiredNames, inventoryNames, states, liveComplete, prune) => {
          const desired = desiredNames.map((name) => configMap(name));
          const live: KubeObject[] = [];
          for (const name of new Set([...desiredNames, ...inventoryNames])) {
            const state = states[name] ?? 'absent';
            const base = configMap(name);
            if (state === 'applied') live.push(liveAfterApply(base));
            if (state === 'drifted') live.push(liveAfterApply(configMap(name, { key: 'drift' })));
            if (state === 'foreign')
              live.push({
                ...liveAfterApply(base),
                metadata: { ...liveAfterApply(base).metadata, labels: {} },
              });
            if (state === 'opted-out')
              live.push(liveAfterApply(base, { annotations: { [pruneAnnotation]: 'disabled' } }));
            if (state === 'unmanaged')
              live.push({ ...base, metadata: { ...base.metadata, managedFields: [] } });
          }
          const inventory = buildInventory(inventoryNames.map((name) => identityOf(configMap(name))));
          const plan = planChanges({
            desired,
            inventory,
            live: liveMap(live),
            liveComplete,
            prune,
            owner,
            fieldManager: 'signet',
          });
          const ids = plan.entries.map((entry) => entry.id);
          const expected = new Set([
            ...desired.map((object) => inventoryId(identityOf(object))),
            ...inventory.entries.map((entry) => entry.id),
          ]);
          expect(new Set(ids).size).toBe(ids.length);
          expect(new Set(ids)).toEqual(expected);
          for (const entry of plan.entries) {
            const isDesired = (desiredNames as string[]).includes(entry.identity.name);
            expect(['create', 'update', 'unchanged'].includes(entry.action)).toBe(isDesired);
            if (entry.action === 'prune' && entry.live !== undefined) {
              expect(entry.live.metadata.labels).toMatchObject(labels);
            }
            if (!prune) expect(entry.action).not.toBe('prune');
            const state = (states as Record<string, string>)[entry.identity.name] ?? 'absent';
            if (state === 'foreign' || state === 'opted-out') expect(entry.action).not.toBe('prune');
            if (isDesired && state === 'applied') expect(entry.action).toBe('unchanged');
          }
        },
      ),
    );
  });
});
