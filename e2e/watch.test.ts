// The informer on the real API server: list, watch, bookmarks, and drift seen in a watch event.
import { afterAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { resourceListWatch } from '../src/kube/watch.ts';
import { detectDrift } from '../src/watch/drift.ts';
import { Informer, type LiveObject } from '../src/watch/informer.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';

const testNamespace = useTestNamespace('signet-watch');
const clients: KubeClient[] = [];

async function client(userAgent: string): Promise<KubeClient> {
  const created = await loadKubeClient({ kubeconfig: kubeconfigPath(), userAgent });
  clients.push(created);
  return created;
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

describe('Informer on the API server', () => {
  it('lists, then sees label-selected changes and deletions as watch events, and drift in them', async () => {
    const ns = testNamespace.name;
    const signet = await client('signet-e2e/0.1.0');
    const someoneElse = await client('kubectl-edit/1.0');
    const desired = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'watched', namespace: ns, labels: { 'app.kubernetes.io/managed-by': 'signet' } },
      data: { color: 'blue' },
    };
    await signet.apply(desired, { fieldManager: 'signet' });
    await signet.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'unlabelled', namespace: ns },
        data: { a: 'b' },
      },
      { fieldManager: 'signet' },
    );

    const updates: LiveObject[] = [];
    const deletes: string[] = [];
    const informer = new Informer({
      transport: resourceListWatch(signet, { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns }),
      labelSelector: 'app.kubernetes.io/managed-by=signet',
      handlers: {
        onUpdate: (object) => updates.push(object),
        onDelete: (object) => deletes.push(object.metadata.name),
      },
    });
    informer.start();
    try {
      await informer.waitForSync(15_000);
      expect([...informer.list()].map((o) => o.metadata.name)).toEqual(['watched']);
      expect(detectDrift(desired, informer.get(`${ns}/watched`))).toBeUndefined();

      // An out-of-band edit by another manager (a plain update, as kubectl edit does).
      const live = await someoneElse.get({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'watched',
        namespace: ns,
      });
      if (live === undefined) throw new Error('watched ConfigMap missing');
      await someoneElse.request({
        method: 'PUT',
        path: `/api/v1/namespaces/${ns}/configmaps/watched?fieldManager=kubectl-edit`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...live, data: { color: 'red' } }),
      });
      const edited = await waitFor(
        () => updates.find((o) => (o.data as Record<string, string>).color === 'red'),
        {
          timeoutMs: 10_000,
          description: 'the edit to arrive as a watch event',
        },
      );
      expect(detectDrift(desired, edited)).toEqual({
        deleted: false,
        fields: ['.data.color'],
        manager: 'kubectl-edit',
      });

      await someoneElse.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'watched', namespace: ns });
      await waitFor(() => deletes.includes('watched'), {
        timeoutMs: 10_000,
        description: 'the deletion event',
      });
      expect(informer.get(`${ns}/watched`)).toBeUndefined();
      expect(informer.stats.lists).toBe(1);
    } finally {
      await informer.stop();
    }
  });
});
