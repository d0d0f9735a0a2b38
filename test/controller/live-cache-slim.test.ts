import { describe, expect, it } from 'vitest';
import { StructureInterner, slimLiveObject } from '../../src/controller/live-cache.ts';
import type { LiveObject } from '../../src/watch/informer.ts';

function liveConfigMap(name: string, time: string): LiveObject {
  // As JSON.parse hands it over from a list or watch: fresh objects and strings for every item.
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: 'team-a',
        resourceVersion: '42',
        labels: { 'app.kubernetes.io/managed-by': 'signet', 'signet.dev/name': 'apps' },
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}', keep: 'me' },
        managedFields: [
          {
            manager: 'signet',
            operation: 'Apply',
            apiVersion: 'v1',
            time,
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:data': { 'f:x': {} }, 'f:metadata': { 'f:labels': { 'f:signet.dev/name': {} } } },
          },
        ],
      },
      data: { x: name },
    }),
  ) as LiveObject;
}

describe('slimLiveObject', () => {
  const type = { apiVersion: 'v1', kind: 'ConfigMap' };

  it('shares equal labels and field sets between objects and keeps every value drift and the plan read', () => {
    const interner = new StructureInterner();
    const a = slimLiveObject(liveConfigMap('a', '2026-12-01T10:00:00Z'), type, interner);
    const b = slimLiveObject(liveConfigMap('b', '2026-12-01T10:00:01Z'), type, interner);
    expect(a.metadata.labels).toBe(b.metadata.labels);
    expect(a.metadata.managedFields?.[0]?.fieldsV1).toBe(b.metadata.managedFields?.[0]?.fieldsV1);
    expect(a.apiVersion).toBe(type.apiVersion);
    expect(b.metadata.managedFields?.[0]).toMatchObject({ manager: 'signet', time: '2026-12-01T10:00:01Z' });
    expect(b.data).toEqual({ x: 'b' });
    expect(b.metadata.annotations).toEqual({ keep: 'me' });
    expect(interner.size).toBe(2);
  });

  it('freezes what it shares, so no reader can change another object through it', () => {
    const interner = new StructureInterner();
    const a = slimLiveObject(liveConfigMap('a', 't'), type, interner);
    expect(Object.isFrozen(a.metadata.labels)).toBe(true);
    expect(() => {
      (a.metadata.labels as Record<string, string>)['signet.dev/name'] = 'other';
    }).toThrow(TypeError);
  });

  it('keeps distinct structures apart and starts over when full', () => {
    const interner = new StructureInterner(2);
    const one = interner.intern({ a: 1 });
    expect(interner.intern({ a: 1 })).toBe(one);
    interner.intern({ a: 2 });
    const three = interner.intern({ a: 3 });
    expect(interner.size).toBe(1);
    expect(interner.intern({ a: 3 })).toBe(three);
    expect(interner.intern({ a: 1 })).not.toBe(one);
    expect(interner.intern({ a: 1 })).toEqual(one);
  });
});
