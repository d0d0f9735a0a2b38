import { describe, expect, it } from 'vitest';
import type { ImagePolicySpec } from '../../src/api/gitrepository.ts';
import { type ImageEvidence, VerdictCache } from '../../src/images/cache.ts';
import { globMatches, normaliseGlob, policyFor } from '../../src/images/policy.ts';

const policy = (...match: string[]): ImagePolicySpec => ({
  match,
  keyless: [],
  keysRef: { kind: 'Secret', name: 'keys' },
  attestations: [],
});

describe('image policy globs', () => {
  it('matches * within a segment and ** across segments', () => {
    expect(globMatches('registry.example.com/team/*', 'registry.example.com/team/app')).toBe(true);
    expect(globMatches('registry.example.com/team/*', 'registry.example.com/team/sub/app')).toBe(false);
    expect(globMatches('registry.example.com/team/**', 'registry.example.com/team/sub/app')).toBe(true);
    expect(globMatches('registry.example.com/team/*', 'registry.example.com/other/app')).toBe(false);
    expect(globMatches('ghcr.io/org/app', 'ghcr.io/org/app')).toBe(true);
    expect(globMatches('ghcr.io/org/app', 'ghcr.io/org/app2')).toBe(false);
    // A dot is literal, not "any character".
    expect(globMatches('ghcr.io/org/app', 'ghcrxio/org/app')).toBe(false);
  });

  it('normalises Docker Hub globs like references', () => {
    expect(normaliseGlob('nginx')).toBe('docker.io/library/nginx');
    expect(normaliseGlob('team/*')).toBe('docker.io/team/*');
    expect(globMatches('nginx', 'docker.io/library/nginx')).toBe(true);
    expect(globMatches('127.0.0.1:5000/team/*', '127.0.0.1:5000/team/app')).toBe(true);
  });

  it('picks the first policy that matches; none matching is undefined (default deny)', () => {
    const policies = [policy('ghcr.io/org/*'), policy('ghcr.io/**'), policy('nginx')];
    expect(policyFor(policies, 'ghcr.io/org/app')).toBe(0);
    expect(policyFor(policies, 'ghcr.io/other/app')).toBe(1);
    expect(policyFor(policies, 'docker.io/library/nginx')).toBe(2);
    expect(policyFor(policies, 'quay.io/org/app')).toBeUndefined();
  });
});

describe('verdict cache', () => {
  const evidence = (n: number): ImageEvidence => ({
    name: `r/app${n}`,
    digest: `sha256:${n}`,
    signer: 'key SHA256:x',
    format: 'legacy-sig-tag',
    attestations: [],
  });

  it('keys by name, digest and trust fingerprint', () => {
    const cache = new VerdictCache(10);
    cache.set(VerdictCache.key('r/app', 'sha256:1', 'trust-a'), evidence(1));
    expect(cache.get(VerdictCache.key('r/app', 'sha256:1', 'trust-a'))).toEqual(evidence(1));
    expect(cache.get(VerdictCache.key('r/app', 'sha256:1', 'trust-b'))).toBeUndefined();
    expect(cache.get(VerdictCache.key('r/other', 'sha256:1', 'trust-a'))).toBeUndefined();
    expect(cache.stats).toEqual({ hits: 1, misses: 2 });
  });

  it('evicts the least recently used entry beyond its bound', () => {
    const cache = new VerdictCache(3);
    for (const n of [1, 2, 3]) cache.set(`k${n}`, evidence(n));
    expect(cache.get('k1')).toBeDefined(); // k1 is now the most recent
    cache.set('k4', evidence(4));
    expect(cache.size).toBe(3);
    expect(cache.get('k2')).toBeUndefined();
    expect(cache.get('k1')).toBeDefined();
    expect(cache.get('k3')).toBeDefined();
    expect(cache.get('k4')).toBeDefined();
    expect(() => new VerdictCache(0)).toThrow(RangeError);
  });

  it('remembers where a registry keeps its signatures, bounded', () => {
    const cache = new VerdictCache(10);
    expect(cache.preferredFormat('r.example')).toBeUndefined();
    cache.noteFormat('r.example', 'bundle-referrer');
    expect(cache.preferredFormat('r.example')).toBe('bundle-referrer');
    for (let i = 0; i < 300; i++) cache.noteFormat(`r${i}.example`, 'legacy-sig-tag');
    expect(cache.preferredFormat('r.example')).toBeUndefined();
    expect(cache.preferredFormat('r299.example')).toBe('legacy-sig-tag');
  });
});
