// applyAll's waves: within a stage, Helm hooks go in ascending helm.sh/hook-weight, and no object
// of a weight is sent before every object of the weight before it has been answered. A client
// whose answers the test releases one by one shows what was in flight at each point.
import { describe, expect, it } from 'vitest';
import { applyAll } from '../../src/apply/apply.ts';
import { createResourceManager } from '../../src/apply/manager.ts';
import type { ApplyResult, KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/render/object.ts';

function configMap(name: string, weight?: string): KubeObject {
  const annotations: Record<string, string> =
    weight === undefined ? {} : { 'helm.sh/hook': 'post-install', 'helm.sh/hook-weight': weight };
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'apps', annotations } };
}

/** A client that records each apply and answers only when the test calls `answer(name)`. */
function heldClient() {
  const inFlight = new Map<string, (result: ApplyResult) => void>();
  const sent: string[] = [];
  let onSent: (() => void) | undefined;
  const client = {
    apply(object: KubeObject): Promise<ApplyResult> {
      sent.push(object.metadata.name);
      onSent?.();
      return new Promise((resolve) => inFlight.set(object.metadata.name, resolve));
    },
  } as unknown as KubeClient;
  return {
    client,
    sent,
    inFlight: () => [...inFlight.keys()].sort(),
    answer(name: string): void {
      const resolve = inFlight.get(name);
      if (resolve === undefined) throw new Error(`${name} is not in flight`);
      inFlight.delete(name);
      resolve({ object: configMap(name), created: true });
    },
    /** Resolves once `count` applies have been sent in total. */
    sentCount(count: number): Promise<void> {
      return new Promise((resolve) => {
        const check = (): void => {
          if (sent.length >= count) resolve();
        };
        onSent = check;
        check();
      });
    },
  };
}

describe('applyAll with Helm hook weights', () => {
  it('applies one weight at a time, each after the one before it has been answered', async () => {
    const held = heldClient();
    const manager = createResourceManager(held.client, { name: 'apps', namespace: 'apps' });
    const objects = [
      configMap('a-late', '5'),
      configMap('b-plain'),
      configMap('c-plain'),
      configMap('y-early', '-3'),
      configMap('z-early', '-3'),
      configMap('d-unweighted-hook', undefined),
    ];
    const done = applyAll(manager, objects);
    await held.sentCount(2);
    expect(held.inFlight()).toEqual(['y-early', 'z-early']);
    held.answer('z-early');
    // Every pending promise continuation runs before the next macrotask: nothing more was sent.
    await new Promise((resolve) => setImmediate(resolve));
    expect(held.sent).toHaveLength(2);
    expect(held.inFlight()).toEqual(['y-early']);
    held.answer('y-early');
    await held.sentCount(5);
    expect(held.inFlight()).toEqual(['b-plain', 'c-plain', 'd-unweighted-hook']);
    for (const name of ['b-plain', 'c-plain', 'd-unweighted-hook']) held.answer(name);
    await held.sentCount(6);
    expect(held.inFlight()).toEqual(['a-late']);
    held.answer('a-late');
    const changes = await done;
    expect(changes.entries.map((entry) => entry.identity.name)).toEqual([
      'y-early',
      'z-early',
      'b-plain',
      'c-plain',
      'd-unweighted-hook',
      'a-late',
    ]);
    expect(changes.entries.every((entry) => entry.action === 'created')).toBe(true);
  });
});
