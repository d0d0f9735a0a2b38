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
