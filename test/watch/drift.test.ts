import { describe, expect, it } from 'vitest';
import { type DesiredObject, detectDrift } from '../../src/watch/drift.ts';
import type { LiveObject } from '../../src/watch/informer.ts';

const desired: DesiredObject = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'app', namespace: 'demo', labels: { 'signet.dev/name': 'repo' } },
  data: { color: 'blue', size: 'L' },
};

function live(patch: Partial<LiveObject> & { data?: Record<string, string> }): LiveObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'app',
      namespace: 'demo',
      resourceVersion: '7',
      labels: { 'signet.dev/name': 'repo' },
      annotations: { 'other.io/touched': 'yes' },
      managedFields: [
        {
          manager: 'signet',
          operation: 'Apply',
          time: '2026-01-01T00:00:00Z',
          fieldsV1: { 'f:data': { 'f:size': {} } },
        },
        {
          manager: 'kubectl-edit',
          operation: 'Update',
          time: '2026-01-01T00:01:00Z',
          fieldsV1: { 'f:data': { 'f:color': {} } },
        },
      ],
    },
    data: { color: 'blue', size: 'L' },
    ...patch,
  } as LiveObject;
}

describe('detectDrift', () => {
  it('finds nothing when every desired field matches, ignoring other managers and server fields', () => {
    expect(detectDrift(desired, live({}))).toBeUndefined();
  });

  it('reports the changed field path and the manager that changed it', () => {
    const finding = detectDrift(desired, live({ data: { color: 'red', size: 'L' } }));
    expect(finding).toEqual({ deleted: false, fields: ['.data.color'], manager: 'kubectl-edit' });
  });

  it('reports a removed label and a deleted object', () => {
    const withoutLabel = live({});
    const stripped = { ...withoutLabel, metadata: { ...withoutLabel.metadata, labels: {} } } as LiveObject;
    expect(detectDrift(desired, stripped)?.fields).toEqual(['.metadata.labels.signet.dev/name']);
    expect(detectDrift(desired, undefined)).toEqual({ deleted: true, fields: [] });
  });

  it('matches associative lists by name and ignores server defaults inside items', () => {
    const service: DesiredObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', namespace: 'demo' },
      spec: { ports: [{ name: 'http', port: 80 }] },
    };
    const liveService = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', namespace: 'demo' },
      spec: { clusterIP: '10.0.0.5', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }] },
    } as LiveObject;
    expect(detectDrift(service, liveService)).toBeUndefined();
    const changed = {
      ...liveService,
      spec: { ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
    } as LiveObject;
    expect(detectDrift(service, changed)?.fields).toEqual(['.spec.ports[name=http].port']);
  });
});

describe('detectDrift: values the server normalises', () => {
  const quota = (hard: Record<string, unknown>): DesiredObject => ({
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: 'q', namespace: 'demo' },
    spec: { hard },
  });
  const liveQuota = (hard: Record<string, unknown>) => quota(hard) as unknown as LiveObject;

  it('equates two spellings of one quantity at a quantity position, never different values', () => {
    const desired = quota({ cpu: '1000m', memory: '1024Mi', 'requests.cpu': '0.5', pods: 10 });
    expect(
      detectDrift(desired, liveQuota({ cpu: '1', memory: '1Gi', 'requests.cpu': '500m', pods: '10' })),
    ).toBe(undefined);
    expect(
      detectDrift(desired, liveQuota({ cpu: '2', memory: '1Gi', 'requests.cpu': '500m', pods: '10' }))
        ?.fields,
    ).toEqual(['.spec.hard.cpu']);
    expect(
      detectDrift(desired, liveQuota({ cpu: '1Gi', memory: '1G', 'requests.cpu': '500m', pods: '10' }))
        ?.fields,
    ).toEqual(['.spec.hard.cpu', '.spec.hard.memory']);
  });

  it('compares container resources in associative lists, and LimitRange limits item by item', () => {
    const deployment: DesiredObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'demo' },
      spec: {
        template: {
          spec: {
            containers: [{ name: 'app', resources: { limits: { cpu: '1000m' }, requests: { memory: 0.5 } } }],
          },
        },
      },
    };
    const live = (limits: string) =>
      ({
        ...deployment,
        spec: {
          template: {
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'x',
                  resources: { limits: { cpu: limits }, requests: { memory: '500m' } },
                },
              ],
            },
          },
        },
      }) as unknown as LiveObject;
    expect(detectDrift(deployment, live('1'))).toBeUndefined();
    expect(detectDrift(deployment, live('1500m'))?.fields).toEqual([
      '.spec.template.spec.containers[name=app].resources.limits.cpu',
    ]);
    const limitRange: DesiredObject = {
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: { name: 'l', namespace: 'demo' },
      spec: { limits: [{ type: 'Container', default: { cpu: '1000m' }, max: { memory: '2048Mi' } }] },
    };
    const liveLimits = (cpu: string) =>
      ({
        ...limitRange,
        spec: { limits: [{ type: 'Container', default: { cpu }, max: { memory: '2Gi' } }] },
      }) as unknown as LiveObject;
    expect(detectDrift(limitRange, liveLimits('1'))).toBeUndefined();
    expect(detectDrift(limitRange, liveLimits('2'))?.fields).toEqual(['.spec.limits[0].default.cpu']);
  });

  it('does not treat quantity-like text elsewhere as quantities: a ConfigMap value 1.0 → 1 is drift', () => {
    const changed = live({ data: { color: '1', size: '1000m' } });
    const numeric: DesiredObject = { ...desired, data: { color: '1.0', size: '1' } };
    expect(detectDrift(numeric, changed)?.fields).toEqual(['.data.color', '.data.size']);
  });

  it('compares lists without a merge key item by item: server defaults inside an item are not drift', () => {
    const service: DesiredObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', namespace: 'demo' },
      spec: { ports: [{ port: 80 }], args: ['a', 'b'] },
    };
    const liveService = (ports: unknown[], args = ['a', 'b']) =>
      ({ ...service, spec: { clusterIP: '10.0.0.5', ports, args } }) as unknown as LiveObject;
    expect(
      detectDrift(service, liveService([{ port: 80, protocol: 'TCP', targetPort: 80 }])),
    ).toBeUndefined();
    expect(detectDrift(service, liveService([{ port: 81, protocol: 'TCP' }]))?.fields).toEqual([
      '.spec.ports[0].port',
    ]);
    expect(detectDrift(service, liveService([{ port: 80 }, { port: 443 }]))?.fields).toEqual(['.spec.ports']);
    expect(detectDrift(service, liveService([{ port: 80 }], ['b', 'a']))?.fields).toEqual(['.spec.args']);
  });
});
