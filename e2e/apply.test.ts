// Real-cluster tests of the render → plan → server-side apply → prune pipeline.
import { describe, expect, it } from 'vitest';
import { applyPlan } from '../src/apply/apply.ts';
import { entriesWithChange, summariseChangeSet } from '../src/apply/changeset.ts';
import { createResourceManager, type ResourceManager } from '../src/apply/manager.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient, serviceAccountImpersonation } from '../src/kube/load.ts';
import { buildInventory, type Inventory, inventoryId } from '../src/plan/inventory.ts';
import { type Plan, planChanges, summarisePlan } from '../src/plan/plan.ts';
import { ownerLabels, pruneAnnotation } from '../src/render/labels.ts';
import { identityOf, type KubeObject } from '../src/render/object.ts';
import { renderManifests, type SourceFile } from '../src/render/render.ts';
import { applyScope } from '../src/render/scope.ts';
import { kubeconfigPath } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';

const testNamespace = useTestNamespace('signet-apply');
const owner = { name: 'e2e-repo', namespace: 'signet-e2e' };
const group = 'e2e.signet.dev';
const encoder = new TextEncoder();

function file(path: string, content: string): SourceFile {
  return { path, content: encoder.encode(content) };
}

function client(
  options: { impersonate?: ReturnType<typeof serviceAccountImpersonation> } = {},
): Promise<KubeClient> {
  return loadKubeClient({ kubeconfig: kubeconfigPath(), userAgent: 'signet-e2e/0.1.0', ...options });
}

function manifests(extraNamespace: string, data: Record<string, string>): SourceFile[] {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `widgets.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
            },
          },
        },
      ],
    },
  };
  const configMaps = Object.entries(data)
    .map(
      ([name, value]) =>
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  key: "${value}"\n`,
    )
    .join('---\n');
  return [
    file('crds/widget.json', JSON.stringify(crd)),
    file('widget.yaml', `apiVersion: ${group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n`),
    file('namespace.yaml', `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${extraNamespace}\n`),
    file('apps/configmaps.yaml', configMaps),
  ];
}

/** Render → scope (with discovery) → list live → plan; the whole pipeline minus the controller. */
async function planFor(
  manager: ResourceManager,
  files: SourceFile[],
  namespace: string,
  inventory: Inventory | undefined,
): Promise<{ plan: Plan; desired: KubeObject[] }> {
  const rendered = renderManifests({ files }, { owner });
  await manager.client.discovery.prefetch(rendered.map((item) => item.object.apiVersion));
  const scoped = applyScope(rendered, { targetNamespace: namespace }, (apiVersion, kind) =>
    manager.client.discovery.scopeOf(apiVersion, kind),
  );
  const desired = scoped.map((item) => item.object);
  const live = new Map<string, KubeObject>();
  const kinds = new Map<string, { apiVersion: string; kind: string }>();
  for (const object of desired) kinds.set(`${object.apiVersion}/${object.kind}`, object);
  for (const entry of inventory?.entries ?? []) {
    const [, , entryGroup, kind] = entry.id.split('_');
    const apiVersion = entryGroup === '' ? entry.v : `${entryGroup}/${entry.v}`;
    kinds.set(`${apiVersion}/${kind}`, { apiVersion, kind: kind! });
  }
  for (const { apiVersion, kind } of kinds.values()) {
    try {
      const listed = await manager.client.list(apiVersion, kind, {
        labelSelector: `signet.dev/name=${owner.name}`,
      });
      for (const item of listed.items) live.set(inventoryId(identityOf(item)), item);
    } catch {
      // A kind not served yet (its CRD is in this change set): nothing live.
    }
  }
  return {
    plan: planChanges({ desired, inventory, live, owner, fieldManager: 'signet' }),
    desired,
  };
}

function configMapData(count: number, value: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, index) => [`cm-${index}`, value]));
}

describe('apply pipeline against a real API server', () => {
  const extraNamespace = `${testNamespace.name}-extra`;

  it('cold-applies a CRD, a custom object, a namespace and configmaps, updates one, then is a zero-write no-op', async () => {
    const kube = await client();
    const manager = createResourceManager(kube, owner);
    try {
      const files = manifests(extraNamespace, configMapData(5, 'one'));
      const cold = await planFor(manager, files, testNamespace.name, undefined);
      expect(summarisePlan(cold.plan)).toMatchObject({ create: 8 });
      const before = kube.stats.total;
      const applied = await applyPlan(manager, cold.plan, { concurrency: 8 });
      expect(entriesWithChange(applied, 'failed')).toEqual([]);
      expect(summariseChangeSet(applied)).toMatchObject({ created: 8 });
      // One SSA per object, plus discovery for the new group and the CRD Established polls.
      expect(kube.stats.byMethod.PATCH).toBe(8);
      expect(kube.stats.total - before).toBeLessThanOrEqual(8 + 12);
      const widget = await kube.get({
        apiVersion: `${group}/v1`,
        kind: 'Widget',
        namespace: testNamespace.name,
        name: 'w1',
      });
      expect(widget?.spec).toEqual({ size: 3 });
      expect(widget?.metadata.labels).toMatchObject(ownerLabels(owner));

      // Update: one configmap changes, everything else is unchanged without a request.
      const inventory = cold.plan.inventory;
      const changedData = { ...configMapData(5, 'one'), 'cm-2': 'two' };
      const update = await planFor(
        manager,
        manifests(extraNamespace, changedData),
        testNamespace.name,
        inventory,
      );
      expect(summarisePlan(update.plan)).toEqual({ create: 0, update: 1, unchanged: 7, prune: 0, skip: 0 });
      const patchesBefore = kube.stats.byMethod.PATCH ?? 0;
      const updated = await applyPlan(manager, update.plan);
      expect(summariseChangeSet(updated)).toMatchObject({ configured: 1, unchanged: 7 });
      expect((kube.stats.byMethod.PATCH ?? 0) - patchesBefore).toBe(1);
      const cm2 = await kube.get({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        namespace: testNamespace.name,
        name: 'cm-2',
      });
      expect(cm2?.data).toEqual({ key: 'two' });

      // No-op: planning reads live state; applying costs zero requests.
      const noop = await planFor(
        manager,
        manifests(extraNamespace, changedData),
        testNamespace.name,
        inventory,
      );
      expect(summarisePlan(noop.plan)).toEqual({ create: 0, update: 0, unchanged: 8, prune: 0, skip: 0 });
      const requestsBefore = kube.stats.total;
      const noopResult = await applyPlan(manager, noop.plan);
      expect(summariseChangeSet(noopResult)).toMatchObject({ unchanged: 8 });
      expect(kube.stats.total - requestsBefore).toBe(0);
    } finally {
      await kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: extraNamespace }).catch(() => undefined);
      await kube
        .delete({
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          name: `widgets.${group}`,
        })
        .catch(() => undefined);
      await kube.close();
    }
  });

  it('prunes only objects labelled as ours and respects the opt-out annotation', async () => {
    const kube = await client();
    const manager = createResourceManager(kube, owner);
    const ns = testNamespace.name;
    try {
      const labels = ownerLabels(owner);
      const make = (name: string, extra: Partial<KubeObject['metadata']> = {}): KubeObject => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: ns, labels, ...extra },
        data: { a: '1' },
      });
      const stale = make('prune-stale');
      const optOut = make('prune-optout', { annotations: { [pruneAnnotation]: 'disabled' } });
      const foreign = make('prune-foreign', { labels: { team: 'other' } });
      const otherOwner = make('prune-other-owner', {
        labels: { ...labels, 'signet.dev/name': 'someone-else' },
      });
      for (const object of [stale, optOut, foreign, otherOwner]) {
        await kube.apply(object, { fieldManager: 'e2e-setup' });
      }
      const inventory = buildInventory([stale, optOut, foreign, otherOwner].map(identityOf));
      const live = new Map<string, KubeObject>();
      const listed = await kube.list('v1', 'ConfigMap', { namespace: ns });
      for (const item of listed.items) live.set(inventoryId(identityOf(item)), item);
      const plan = planChanges({ desired: [], inventory, live, owner, fieldManager: 'signet' });
      expect(Object.fromEntries(plan.entries.map((entry) => [entry.identity.name, entry.action]))).toEqual({
        'prune-stale': 'prune',
        'prune-optout': 'skip',
        'prune-foreign': 'skip',
        'prune-other-owner': 'skip',
      });
      const result = await applyPlan(manager, plan);
      expect(Object.fromEntries(result.entries.map((entry) => [entry.identity.name, entry.action]))).toEqual({
        'prune-stale': 'deleted',
        'prune-optout': 'skipped',
        'prune-foreign': 'skipped',
        'prune-other-owner': 'skipped',
      });
      // The delete path re-checks labels on the live object even when the plan said prune.
      const forged = planChanges({ desired: [], inventory, live: new Map(), owner, fieldManager: 'signet' });
      const second = await applyPlan(manager, forged);
      expect(entriesWithChange(second, 'deleted')).toEqual([]);
      for (const name of ['prune-optout', 'prune-foreign', 'prune-other-owner']) {
        expect(await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name })).toBeDefined();
      }
    } finally {
      await kube.close();
    }
  });

  it('recreates an object on an immutable-field change only with force', async () => {
    const kube = await client();
    const manager = createResourceManager(kube, owner);
    const ns = testNamespace.name;
    try {
      const immutable = (value: string): KubeObject => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'frozen', namespace: ns, labels: ownerLabels(owner) },
        immutable: true,
        data: { key: value },
      });
      const first = await applyPlan(
        manager,
        planChanges({
          desired: [immutable('a')],
          inventory: undefined,
          live: new Map(),
          owner,
          fieldManager: 'signet',
        }),
      );
      expect(first.entries[0]?.action).toBe('created');
      const uidBefore = (
        await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'frozen' })
      )?.metadata.uid;
      const plan = planChanges({
        desired: [immutable('b')],
        inventory: undefined,
        live: new Map(),
        owner,
        fieldManager: 'signet',
      });
      const refused = await applyPlan(manager, plan);
      expect(refused.entries[0]).toMatchObject({ action: 'failed', error: { code: 'ImmutableField' } });
      const forced = await applyPlan(manager, plan, { force: true });
      expect(forced.entries[0]).toMatchObject({ action: 'created', reason: 'recreated' });
      const after = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'frozen' });
      expect(after?.data).toEqual({ key: 'b' });
      expect(after?.metadata.uid).not.toBe(uidBefore);
    } finally {
      await kube.close();
    }
  });

  it('reports a field-manager conflict as data and resolves it with force', async () => {
    const kube = await client();
    const manager = createResourceManager(kube, owner);
    const ns = testNamespace.name;
    try {
      const desired = (value: string): KubeObject => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'contested', namespace: ns, labels: ownerLabels(owner) },
        data: { key: value },
      });
      await applyPlan(
        manager,
        planChanges({
          desired: [desired('ours')],
          inventory: undefined,
          live: new Map(),
          owner,
          fieldManager: 'signet',
        }),
      );
      await kube.apply(
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'contested', namespace: ns },
          data: { key: 'theirs' },
        },
        { fieldManager: 'kubectl-edit', force: true },
      );
      const live = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'contested' });
      const plan = planChanges({
        desired: [desired('ours-again')],
        inventory: undefined,
        live: new Map([[inventoryId(identityOf(live!)), live!]]),
        owner,
        fieldManager: 'signet',
      });
      expect(plan.entries[0]?.action).toBe('update');
      const refused = await applyPlan(manager, plan);
      expect(refused.entries[0]).toMatchObject({ action: 'failed', error: { code: 'FieldManagerConflict' } });
      expect(refused.entries[0]?.error?.conflicts).toEqual([
        expect.objectContaining({ manager: expect.stringContaining('kubectl-edit'), field: '.data.key' }),
      ]);
      const forced = await applyPlan(manager, plan, { force: true });
      expect(forced.entries[0]?.action).toBe('configured');
      const after = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'contested' });
      expect(after?.data).toEqual({ key: 'ours-again' });
    } finally {
      await kube.close();
    }
  });

  it('reports Forbidden when impersonating a ServiceAccount without rights', async () => {
    const kube = await client({ impersonate: serviceAccountImpersonation(testNamespace.name, 'no-rights') });
    const manager = createResourceManager(kube, owner);
    try {
      const object: KubeObject = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'forbidden', namespace: testNamespace.name, labels: ownerLabels(owner) },
        data: { a: '1' },
      };
      const result = await applyPlan(
        manager,
        planChanges({
          desired: [object],
          inventory: undefined,
          live: new Map(),
          owner,
          fieldManager: 'signet',
        }),
      );
      expect(result.entries[0]).toMatchObject({ action: 'failed', error: { code: 'Forbidden' } });
      expect(result.entries[0]?.error?.message).toContain('system:serviceaccount');
    } finally {
      await kube.close();
    }
  });
});
