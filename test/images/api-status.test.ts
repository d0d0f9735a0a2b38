import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseGitRepository, SpecValidationError } from '../../src/api/gitrepository.ts';
import { applyStatusChanges, readStatus, statusMergePatch } from '../../src/controller/status.ts';
import { rawGitRepository } from '../support/gitrepository.ts';

function repo(verify: Record<string, unknown>) {
  return rawGitRepository({ verify: { signersRef: { kind: 'ConfigMap', name: 'signers' }, ...verify } });
}

function fieldErrors(verify: Record<string, unknown>): { field: string; message: string }[] {
  try {
    parseGitRepository(repo(verify));
  } catch (error) {
    if (error instanceof SpecValidationError) return [...error.fields];
    throw error;
  }
  return [];
}

describe('spec.verify.images', () => {
  it('parses policies with defaults and the pull Secret', () => {
    const parsed = parseGitRepository(
      repo({
        imagePullSecretRef: { name: 'registry' },
        images: [
          { match: ['ghcr.io/acme/*'], keysRef: { name: 'keys' } },
          {
            match: ['registry.example.com/**'],
            keyless: [{ issuer: 'https://issuer', subject: 'me' }],
            attestations: [{ predicateType: 'https://slsa.dev/provenance/v1' }],
          },
        ],
      }),
    );
    expect(parsed.spec.verify.imagePullSecretRef).toEqual({ name: 'registry' });
    expect(parsed.spec.verify.images).toEqual([
      { match: ['ghcr.io/acme/*'], keyless: [], attestations: [], keysRef: { kind: 'Secret', name: 'keys' } },
      {
        match: ['registry.example.com/**'],
        keyless: [{ issuer: 'https://issuer', subject: 'me' }],
        attestations: [{ predicateType: 'https://slsa.dev/provenance/v1' }],
      },
    ]);
    expect(parseGitRepository(repo({})).spec.verify.images).toBeUndefined();
  });

  it('names each invalid field', () => {
    expect(fieldErrors({ images: [{ keysRef: { name: 'keys' } }] })).toEqual([
      { field: 'spec.verify.images[0].match', message: 'must list at least one image glob' },
    ]);
    expect(fieldErrors({ images: [{ match: ['ghcr.io/a/*'] }] })).toEqual([
      { field: 'spec.verify.images[0]', message: 'at least one of keyless or keysRef must be set' },
    ]);
    expect(fieldErrors({ images: [{ match: ['Ghcr.io/A b'], keysRef: { name: 'k' } }] })[0]?.field).toBe(
      'spec.verify.images[0].match[0]',
    );
    expect(fieldErrors({ images: [{ match: ['a/b'], keysRef: { name: 'k', namespace: 'other' } }] })).toEqual(
      [
        {
          field: 'spec.verify.images[0].keysRef.namespace',
          message: expect.stringContaining('references are namespace-local'),
        },
      ],
    );
    expect(fieldErrors({ images: 'all' })[0]?.field).toBe('spec.verify.images');
  });

  it('agrees with the CRD on the policy fields and their CEL rules', () => {
    const crd = parse(
      readFileSync(new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url), 'utf8'),
    );
    const verify = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.verify;
    const item = verify.properties.images.items;
    expect(Object.keys(item.properties).sort()).toEqual(['attestations', 'keyless', 'keysRef', 'match']);
    expect(item.required).toEqual(['match']);
    expect(item['x-kubernetes-validations'][0].rule).toBe(
      'has(self.keysRef) || (has(self.keyless) && size(self.keyless) > 0)',
    );
    expect(verify.properties.imagePullSecretRef.required).toEqual(['name']);
  });
});

describe('status.images', () => {
  const entry = {
    image: 'r/app:v1@sha256:1',
    digest: 'sha256:1',
    signer: 'key SHA256:x',
    format: 'legacy-sig-tag' as const,
  };

  it('records the images of the applied revision, bounded, and clears them when none are checked', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const many = Array.from({ length: 250 }, (_, i) => ({ ...entry, image: `r/app${i}` }));
    const withImages = applyStatusChanges(readStatus({}), [{ kind: 'images', images: many }], 1, now);
    expect(withImages.images?.total).toBe(250);
    expect(withImages.images?.entries).toHaveLength(200);
    // Read back from the object, an unchanged list is not sent again.
    const roundTrip = readStatus(JSON.parse(JSON.stringify(withImages)) as Record<string, unknown>);
    expect(statusMergePatch(roundTrip, withImages)).toEqual({});
    const cleared = applyStatusChanges(withImages, [{ kind: 'images', images: [] }], 1, now);
    expect(cleared.images).toBeUndefined();
    expect(statusMergePatch(withImages, cleared)).toEqual({ images: null });
  });
});
