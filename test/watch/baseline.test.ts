import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { driftBaseline } from '../../src/watch/baseline.ts';
import { type DesiredObject, detectDrift } from '../../src/watch/drift.ts';
import type { LiveObject } from '../../src/watch/informer.ts';

const deployment: DesiredObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'demo', labels: { app: 'web' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        containers: [
          { name: 'app', image: 'web:1', resources: { limits: { cpu: '1000m', memory: '1024Mi' } } },
          { name: 'sidecar', image: 'proxy:1', resources: { requests: { cpu: '100m' } } },
        ],
      },
    },
  },
};

/** What the API server answers to applying `deployment`: defaults added, quantities canonical. */
const answer = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'demo',
    uid: 'u1',
    resourceVersion: '9',
    labels: { app: 'web', 'other.io/added': 'x' },
    managedFields: [{ manager: 'signet', operation: 'Apply', fieldsV1: {} }],
  },
  spec: {
    replicas: 2,
    revisionHistoryLimit: 10,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        restartPolicy: 'Always',
        containers: [
          {
            name: 'sidecar',
            image: 'proxy:1',
            resources: { requests: { cpu: '100m' } },
            imagePullPolicy: 'IfNotPresent',
          },
          {
            name: 'app',
            image: 'web:1',
            imagePullPolicy: 'IfNotPresent',
            resources: { limits: { cpu: '1', memory: '1Gi' } },
          },
          { name: 'injected', image: 'mesh:1' },
        ],
      },
    },
  },
  status: { replicas: 0 },
};

describe('driftBaseline', () => {
  it('is the desired object itself when the server stored every desired value as given', () => {
    const configMap: DesiredObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'demo', labels: { a: '1' } },
      data: { k: 'v' },
    };
    const server = {
      ...configMap,
      metadata: { ...configMap.metadata, uid: 'u', annotations: { x: 'y' } },
      data: { k: 'v', extra: 'z' },
    };
    expect(driftBaseline(configMap, server)).toBe(configMap);
    expect(driftBaseline(deployment, deployment)).toBe(deployment);
  });

  it("takes the server's values at the desired paths only, matching containers by name, sharing the rest", () => {
    const baseline = driftBaseline(deployment, answer);
    expect(baseline).toEqual({
      ...deployment,
      spec: {
        ...(deployment.spec as object),
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              { name: 'app', image: 'web:1', resources: { limits: { cpu: '1', memory: '1Gi' } } },
              { name: 'sidecar', image: 'proxy:1', resources: { requests: { cpu: '100m' } } },
            ],
          },
        },
      },
    });
    type Spec = { selector: unknown; template: { spec: { containers: unknown[] } } };
    const spec = baseline.spec as Spec;
    const desiredSpec = deployment.spec as Spec;
    expect(baseline.metadata).toBe(deployment.metadata);
    expect(spec.selector).toBe(desiredSpec.selector);
    expect(spec.template.spec.containers[1]).toBe(desiredSpec.template.spec.containers[1]);
    // Drift against the baseline: the answer itself is no drift; a real change still is.
    expect(detectDrift(baseline, answer as unknown as LiveObject)).toBeUndefined();
    const edited = structuredClone(answer);
    edited.spec.template.spec.containers[1]!.resources = { limits: { cpu: '2', memory: '1Gi' } };
    expect(detectDrift(baseline, edited as unknown as LiveObject)?.fields).toEqual([
      '.spec.template.spec.containers[name=app].resources.limits.cpu',
    ]);
  });

  it("keeps the server's spelling of scalars, drops write-only fields, keeps identity and status as desired", () => {
    const secret: DesiredObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's', namespace: 'demo', annotations: { n: '1' } },
      stringData: { password: 'p' },
      data: { user: 'dQ==' },
      spec: { port: 80, count: 10, empty: {} },
      status: { x: 1 },
    };
    const server = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's', namespace: 'demo', annotations: { n: '1' } },
      data: { user: 'dQ==', password: 'cA==' },
      spec: { port: 80, count: '10' },
    };
    expect(driftBaseline(secret, server)).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: secret.metadata,
      data: { user: 'dQ==' },
      spec: { port: 80, count: '10', empty: {} },
      status: { x: 1 },
    });
  });

  it('is never drift against the object it was taken from (property)', () => {
    const leaf = fc.oneof(
      fc.constantFrom('1000m', '1', '1Gi', '1024Mi', 'a'),
      fc.integer({ min: 0, max: 9 }),
    );
    const value = fc.letrec<{ node: unknown }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.dictionary(fc.constantFrom('a', 'b', 'limits', 'cpu'), tie('node'), { maxKeys: 3 }),
        // Merge keys are unique within a list, as the API server requires.
        fc.uniqueArray(fc.record({ name: fc.constantFrom('x', 'y'), v: tie('node') }), {
          maxLength: 2,
          selector: (item) => item.name,
        }),
        fc.array(leaf, { maxLength: 3 }),
      ),
    })).node;
    /** The server's version: leaves respelled or changed, keys added, list items reordered. */
    const mutate = (node: unknown, seed: number): unknown => {
      if (Array.isArray(node)) {
        const items = node.map((item, index) => mutate(item, seed + index));
        return seed % 2 === 0 && items.every((item) => typeof item === 'object') ? items.reverse() : items;
      }
      if (typeof node === 'object' && node !== null) {
        const out: Record<string, unknown> = { extra: seed };
        for (const [key, child] of Object.entries(node)) {
          // A merge key keeps its value: a renamed item is another item.
          out[key] = key === 'name' ? child : mutate(child, seed * 31 + key.length);
        }
        return out;
      }
      return seed % 3 === 0 ? `${String(node)}x` : node;
    };
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('spec', 'data'), value, { maxKeys: 2 }),
        fc.nat(),
        (body, seed) => {
          const desired = { apiVersion: 'v1', kind: 'X', metadata: { name: 'n' }, ...body } as DesiredObject;
          const server = { ...desired, ...(mutate(body, seed) as object) } as unknown as LiveObject;
          const baseline = driftBaseline(desired, server as unknown as Record<string, unknown>);
          expect(detectDrift(baseline, server)).toBeUndefined();
          expect(driftBaseline(desired, desired)).toBe(desired);
        },
      ),
    );
  });
});
