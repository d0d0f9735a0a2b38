import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  appliedFieldsOf,
  FieldsV1Error,
  fieldPaths,
  fieldsOf,
  formatPathElement,
  ownedFieldsMatch,
  type PathElement,
  parsePathElement,
} from '../../src/plan/fieldsv1.ts';
import type { JsonObject, JsonValue, KubeObject } from '../../src/render/object.ts';

const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean());
const fieldName = fc.string({ minLength: 1, maxLength: 8 }).filter((name) => name !== '.');
const jsonValue: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fieldName, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const body = fc.dictionary(fieldName, jsonValue, { minKeys: 1, maxKeys: 4 });

function object(extra: JsonObject): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'n', namespace: 'ns' }, ...extra };
}

describe('path elements', () => {
  const element: fc.Arbitrary<PathElement> = fc.oneof(
    fieldName.map((name) => ({ type: 'field' as const, name })),
    fc
      .dictionary(fieldName, scalar, { minKeys: 1, maxKeys: 3 })
      .map((key) => ({ type: 'key' as const, key })),
    jsonValue.map((value) => ({ type: 'value' as const, value })),
    fc.nat(10_000).map((index) => ({ type: 'index' as const, index })),
  );

  it('round-trips format → parse → format', () => {
    fc.assert(
      fc.property(element, (value) => {
        const text = formatPathElement(value);
        expect(formatPathElement(parsePathElement(text))).toBe(text);
      }),
    );
  });

  it('parses the four kinds of keys the API server writes', () => {
    expect(parsePathElement('f:metadata')).toEqual({ type: 'field', name: 'metadata' });
    expect(parsePathElement('k:{"containerPort":80,"protocol":"TCP"}')).toEqual({
      type: 'key',
      key: { containerPort: 80, protocol: 'TCP' },
    });
    expect(parsePathElement('v:"finalizer.example.com"')).toEqual({
      type: 'value',
      value: 'finalizer.example.com',
    });
    expect(parsePathElement('i:3')).toEqual({ type: 'index', index: 3 });
  });

  it('refuses malformed keys with a coded error', () => {
    for (const bad of ['x:1', 'k:[1]', 'k:{', 'v:nope', 'i:-1', 'i:01', 'i:']) {
      expect(() => parsePathElement(bad)).toThrow(FieldsV1Error);
    }
  });
});

describe('fieldPaths', () => {
  it('lists leaves and `.`-marked nodes', () => {
    const paths = fieldPaths({
      'f:data': { 'f:a': {}, 'f:b': {} },
      'f:spec': { 'f:ports': { 'k:{"port":80}': { '.': {}, 'f:port': {} } } },
    });
    expect(paths.map((path) => path.map(formatPathElement).join('/'))).toEqual([
      'f:data/f:a',
      'f:data/f:b',
      'f:spec/f:ports/k:{"port":80}',
      'f:spec/f:ports/k:{"port":80}/f:port',
    ]);
  });

  it('has one path per leaf of the object it was built from', () => {
    fc.assert(
      fc.property(body, (value) => {
        const countLeaves = (node: JsonValue): number =>
          node !== null && typeof node === 'object' && !Array.isArray(node) && Object.keys(node).length > 0
            ? Object.values(node).reduce<number>((sum, child) => sum + countLeaves(child), 0)
            : 1;
        expect(fieldPaths(fieldsOf(value))).toHaveLength(countLeaves(value));
      }),
    );
  });
});

describe('ownedFieldsMatch', () => {
  it('holds for an object and the field set it would own', () => {
    fc.assert(
      fc.property(body, (value) => {
        const desired = object(value);
        expect(ownedFieldsMatch(desired, structuredClone(desired), fieldsOf(value))).toBe(true);
      }),
    );
  });

  it('fails when any owned leaf changes in the live object', () => {
    fc.assert(
      fc.property(body, fc.nat(), (value, pick) => {
        const live = structuredClone(value);
        const leaves: { parent: JsonObject; key: string }[] = [];
        const collect = (node: JsonObject): void => {
          for (const [key, child] of Object.entries(node)) {
            if (
              child !== null &&
              typeof child === 'object' &&
              !Array.isArray(child) &&
              Object.keys(child).length > 0
            )
              collect(child);
            else leaves.push({ parent: node, key });
          }
        };
        collect(live);
        const leaf = leaves[pick % leaves.length]!;
        leaf.parent[leaf.key] = { changed: [leaf.parent[leaf.key] ?? null] };
        expect(ownedFieldsMatch(object(value), object(live), fieldsOf(value))).toBe(false);
      }),
    );
  });

  it('fails when we own a field no longer desired, or desire a field we do not own', () => {
    const desired = object({ data: { a: '1' } });
    expect(
      ownedFieldsMatch(desired, object({ data: { a: '1', b: '2' } }), { 'f:data': { 'f:a': {}, 'f:b': {} } }),
    ).toBe(false);
    expect(
      ownedFieldsMatch(object({ data: { a: '1', b: '2' } }), object({ data: { a: '1', b: '2' } }), {
        'f:data': { 'f:a': {} },
      }),
    ).toBe(false);
  });

  it('ignores fields other managers own and server-set metadata', () => {
    const desired = object({
      metadata: { name: 'n', namespace: 'ns', labels: { a: 'b' } },
      data: { a: '1' },
    });
    const live = object({
      metadata: {
        name: 'n',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '7',
        labels: { a: 'b', other: 'x' },
        annotations: { 'someone.else/x': 'y' },
      },
      data: { a: '1', fromKubectl: 'z' },
    });
    const owned = { 'f:metadata': { 'f:labels': { 'f:a': {} } }, 'f:data': { 'f:a': {} } };
    expect(ownedFieldsMatch(desired, live, owned)).toBe(true);
  });

  it('matches associative lists by key and set lists by value', () => {
    const desired = object({
      spec: {
        ports: [
          { port: 80, name: 'http' },
          { port: 443, name: 'https' },
        ],
        finalizers: ['a', 'b'],
      },
    });
    const live = object({
      spec: {
        ports: [
          { port: 443, name: 'https', protocol: 'TCP' },
          { port: 80, name: 'http', protocol: 'TCP' },
        ],
        finalizers: ['b', 'a', 'c'],
      },
    });
    const owned = {
      'f:spec': {
        'f:ports': {
          'k:{"port":80}': { '.': {}, 'f:port': {}, 'f:name': {} },
          'k:{"port":443}': { '.': {}, 'f:port': {}, 'f:name': {} },
        },
        'f:finalizers': { 'v:"a"': {}, 'v:"b"': {} },
      },
    };
    expect(ownedFieldsMatch(desired, live, owned)).toBe(true);
    const changed = structuredClone(live);
    (changed.spec as { ports: { name: string }[] }).ports[0]!.name = 'tls';
    expect(ownedFieldsMatch(desired, changed, owned)).toBe(false);
  });

  it('matches a list item whose key field the server defaulted (a Service port without protocol)', () => {
    // What the API server records for `ports: [{port: 80}]` applied: the key names the defaulted protocol.
    const desired = object({ spec: { ports: [{ port: 80 }] } });
    const live = object({ spec: { ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] } });
    const owned = {
      'f:spec': { 'f:ports': { 'k:{"port":80,"protocol":"TCP"}': { '.': {}, 'f:port': {} } } },
    };
    expect(ownedFieldsMatch(desired, live, owned)).toBe(true);
    // A key field the item does set must still be the key's value, and the live item must exist.
    expect(ownedFieldsMatch(object({ spec: { ports: [{ port: 80, protocol: 'UDP' }] } }), live, owned)).toBe(
      false,
    );
    expect(ownedFieldsMatch(object({ spec: { ports: [{ port: 81 }] } }), live, owned)).toBe(false);
    const moved = object({ spec: { ports: [{ port: 80, protocol: 'UDP', targetPort: 80 }] } });
    expect(ownedFieldsMatch(desired, moved, owned)).toBe(false);
    // Two keys cannot both be claimed by one item that leaves the protocol out.
    const twoKeys = {
      'f:spec': {
        'f:ports': {
          'k:{"port":80,"protocol":"TCP"}': { '.': {}, 'f:port': {} },
          'k:{"port":80,"protocol":"UDP"}': { '.': {}, 'f:port': {} },
        },
      },
    };
    const both = object({
      spec: {
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 80, protocol: 'UDP' },
        ],
      },
    });
    expect(ownedFieldsMatch(object({ spec: { ports: [{ port: 80 }, { port: 80 }] } }), both, twoKeys)).toBe(
      false,
    );
  });

  it('ignores a status subresource it does not own and a null creationTimestamp', () => {
    const desired = object({
      metadata: { name: 'n', namespace: 'ns', creationTimestamp: null },
      data: { a: '1' },
      status: { phase: 'x' },
    });
    expect(ownedFieldsMatch(desired, object({ data: { a: '1' } }), { 'f:data': { 'f:a': {} } })).toBe(true);
  });
});

describe('appliedFieldsOf', () => {
  it('picks the Apply entry of the manager on the main resource', () => {
    const live = object({});
    live.metadata.managedFields = [
      { manager: 'signet', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:x': {} } },
      {
        manager: 'signet',
        operation: 'Apply',
        subresource: 'status',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:s': {} },
      },
      { manager: 'signet', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': {} } },
    ];
    expect(appliedFieldsOf(live, 'signet')).toEqual({ 'f:data': {} });
    expect(appliedFieldsOf(live, 'kubectl')).toBeUndefined();
  });
});
