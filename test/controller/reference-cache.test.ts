import { describe, expect, it } from 'vitest';
import { mayExist } from '../../src/controller/deny-policy-index.ts';
import { currentData, metadataOnly } from '../../src/controller/reference-cache.ts';
import type { LiveObject } from '../../src/watch/informer.ts';

const secret = (resourceVersion: string): LiveObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'git-ca', namespace: 'team-a', uid: 'u1', resourceVersion, labels: { a: 'b' } },
  data: { 'ca.crt': 'c2VjcmV0' },
  type: 'Opaque',
});

describe('metadataOnly', () => {
  it('keeps identity and resourceVersion and drops data, labels and everything else', () => {
    expect(metadataOnly(secret('7'))).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-ca', namespace: 'team-a', uid: 'u1', resourceVersion: '7' },
    });
    expect(JSON.stringify(metadataOnly(secret('7')))).not.toContain('c2VjcmV0');
  });
});

describe('currentData', () => {
  const cached = { resourceVersion: '7', data: { 'ca.crt': 'pem' } };

  it('serves data read at the resourceVersion the watch reports', () => {
    expect(currentData(metadataOnly(secret('7')), cached)).toEqual({ 'ca.crt': 'pem' });
  });

  it('reads again after a change (rotation): the watch reports another resourceVersion', () => {
    expect(currentData(metadataOnly(secret('8')), cached)).toBeUndefined();
  });

  it('reads again when the watch does not hold the object (deleted, or not seen yet)', () => {
    expect(currentData(undefined, cached)).toBeUndefined();
  });

  it('reads when nothing was read before', () => {
    expect(currentData(metadataOnly(secret('7')), undefined)).toBeUndefined();
  });
});

describe('mayExist (Deny policy pairs)', () => {
  const store = (names: string[]) => ({
    get: (key: string) => (names.includes(key) ? metadataOnly(secret('1')) : undefined),
  });

  it('is false only when both synced watches know no object of that name', () => {
    expect(mayExist('signet-deny-a-b', [store([]), store([])], new Set())).toBe(false);
  });

  it('is true when either kind has it (a binding left without its policy is still removed)', () => {
    expect(mayExist('signet-deny-a-b', [store(['signet-deny-a-b']), store([])], new Set())).toBe(true);
    expect(mayExist('signet-deny-a-b', [store([]), store(['signet-deny-a-b'])], new Set())).toBe(true);
  });

  it('is true while a watch has not listed', () => {
    expect(mayExist('signet-deny-a-b', [undefined, store([])], new Set())).toBe(true);
  });

  it('is true for a pair this process applied that the watch has not reported yet', () => {
    expect(mayExist('signet-deny-a-b', [store([]), store([])], new Set(['signet-deny-a-b']))).toBe(true);
  });
});
