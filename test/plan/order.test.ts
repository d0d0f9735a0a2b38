import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ApplyKey,
  applyKeyOf,
  compareForApply,
  groupByStage,
  hookWeightOf,
  sortForApply,
  sortForDelete,
} from '../../src/plan/order.ts';
import type { KubeObject, ObjectIdentity } from '../../src/render/object.ts';

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

  it('orders Helm hooks by weight within a stage, then kind, then name (Helm: weight, kind, name)', () => {
    const hook = (kind: string, name: string, weight: bigint): ApplyKey => ({
      ...id(kind, name, 'apps'),
      hookWeight: weight,
    });
    const late = hook('ConfigMap', 'a-late', 5n);
    const earlyJob = hook('Job', 'b-early', -3n);
    const earlySecret = hook('Secret', 'z-early', -3n);
    const plain = id('ConfigMap', 'm-plain', 'apps');
    const sorted = sortForApply([late, plain, ns, earlyJob, earlySecret, crd], (item) => item);
    // A weight orders only within its stage: the CRD and the Namespace still come first.
    expect(sorted).toEqual([crd, ns, earlySecret, earlyJob, plain, late]);
    const groups = groupByStage(sorted, (item) => item);
    expect(groups.map((group) => [group.stage, group.hookWeight, group.items])).toEqual([
      ['crds', 0n, [crd]],
      ['namespaces', 0n, [ns]],
      ['namespaced', -3n, [earlySecret, earlyJob]],
      ['namespaced', 0n, [plain]],
      ['namespaced', 5n, [late]],
    ]);
  });

  it('compares weights as 64-bit integers, not as strings or doubles', () => {
    const key = (name: string, weight: bigint): ApplyKey => ({
      ...id('ConfigMap', name, 'a'),
      hookWeight: weight,
    });
    const ten = key('a', 10n);
    const nine = key('b', 9n);
    const big = key('c', 9007199254740993n);
    const bigger = key('d', 9007199254740994n);
    expect(sortForApply([bigger, ten, big, nine], (item) => item)).toEqual([nine, ten, big, bigger]);
  });

  it('reads the weight as Helm does: hooks only, strconv.Atoi, 0 when it does not parse', () => {
    const hook = { 'helm.sh/hook': 'pre-install' };
    expect(hookWeightOf({ ...hook, 'helm.sh/hook-weight': '-5' })).toBe(-5n);
    expect(hookWeightOf({ ...hook, 'helm.sh/hook-weight': '+7' })).toBe(7n);
    expect(hookWeightOf({ ...hook, 'helm.sh/hook-weight': '007' })).toBe(7n);
    expect(hookWeightOf({ ...hook, 'helm.sh/hook-weight': '9223372036854775807' })).toBe(
      9223372036854775807n,
    );
    for (const bad of [
      '',
      ' 1',
      '1.5',
      '1e3',
      'one',
      '0x10',
      '9223372036854775808',
      '-9223372036854775809',
    ]) {
      expect(hookWeightOf({ ...hook, 'helm.sh/hook-weight': bad }), bad).toBe(0n);
    }
    expect(hookWeightOf(hook)).toBe(0n);
    // Not a hook: the annotation alone orders nothing (Helm reads it only on hooks).
    expect(hookWeightOf({ 'helm.sh/hook-weight': '-5' })).toBe(0n);
    expect(hookWeightOf(undefined)).toBe(0n);
  });

  it('applyKeyOf carries the identity and the weight of a rendered object', () => {
    const object: KubeObject = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'migrate',
        namespace: 'apps',
        annotations: { 'helm.sh/hook': 'pre-install,pre-upgrade', 'helm.sh/hook-weight': '-1' },
      },
    };
    expect(applyKeyOf(object)).toEqual({
      group: 'batch',
      version: 'v1',
      kind: 'Job',
      namespace: 'apps',
      name: 'migrate',
      hookWeight: -1n,
    });
  });

  it('groups without hooks stay one group a stage, and deletion reverses the weights too', () => {
    const hookA = { ...cm, name: 'h', hookWeight: 2n };
    expect(groupByStage([cm, deployment, widget], (item) => item).map((group) => group.items.length)).toEqual(
      [3],
    );
    expect(sortForDelete([cm, hookA, ns], (item: ApplyKey) => item)).toEqual([hookA, cm, ns]);
  });
});
