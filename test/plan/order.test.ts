import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareForApply, groupByStage, sortForApply, sortForDelete } from '../../src/plan/order.ts';
import type { ObjectIdentity } from '../../src/render/object.ts';

function id(kind: string, name: string, namespace = '', group = ''): ObjectIdentity {
  return { group, version: 'v1', kind, namespace, name };
}

const crd = id('CustomResourceDefinition', 'widgets.example.com', '', 'apiextensions.k8s.io');
const ns = id('Namespace', 'apps');
const clusterRole = id('ClusterRole', 'reader', '', 'rbac.authorization.k8s.io');
const cm = id('ConfigMap', 'a', 'apps');
const deployment = id('Deployment', 'web', 'apps', 'apps');
const widget = id('Widget', 'w', 'apps', 'example.com');
const webhook = id('ValidatingWebhookConfiguration', 'hook', '', 'admissionregistration.k8s.io');

describe('order', () => {
  it('applies CRDs, namespaces, cluster-scoped, namespaced, then webhooks', () => {
    const sorted = sortForApply([webhook, deployment, widget, cm, clusterRole, ns, crd], (item) => item);
    expect(sorted).toEqual([crd, ns, clusterRole, cm, widget, deployment, webhook]);
    expect(groupByStage(sorted, (item) => item).map((group) => group.stage)).toEqual([
      'crds',
      'namespaces',
      'cluster',
      'namespaced',
      'webhooks',
    ]);
  });

  it('deletes in reverse', () => {
    expect(sortForDelete([crd, ns, cm, webhook], (item) => item)).toEqual([webhook, cm, ns, crd]);
  });

  it('is a deterministic total order (independent of input order)', () => {
    const kinds = ['ConfigMap', 'Namespace', 'ClusterRole', 'Widget', 'Deployment', 'Secret'];
    const identity = fc.record({
      group: fc.constantFrom('', 'apps', 'example.com'),
      version: fc.constant('v1'),
      kind: fc.constantFrom(...kinds),
      namespace: fc.constantFrom('', 'a', 'b'),
      name: fc.constantFrom('x', 'y', 'z'),
    });
    fc.assert(
      fc.property(fc.array(identity, { maxLength: 20 }), (items) => {
        const once = sortForApply(items, (item) => item);
        const twice = sortForApply([...items].reverse(), (item) => item);
        expect(twice).toEqual(once);
        for (let index = 1; index < once.length; index++) {
          expect(compareForApply(once[index - 1]!, once[index]!)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });
});
