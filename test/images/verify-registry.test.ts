// The image step (verifyDesiredImages, shared by the operator and the CLI) against the real test
// registry (TLS, token auth) with signatures made by the real cosign, in both of its formats:
// signed images pass and come back pinned to their digests; unsigned, other key, moved tag, no
// policy, missing attestation and an unreachable registry each refuse, naming image, object and
// cause. Requests are counted at the registry's own log.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGitRepository } from '../../src/api/gitrepository.ts';
import { type ImageCheck, type PipelineDeps, verifyDesiredImages } from '../../src/controller/pipeline.ts';
import { VerdictCache } from '../../src/images/cache.ts';
import { extractImages } from '../../src/images/extract.ts';
import { defaultImageVerificationLimits } from '../../src/images/verify-images.ts';
import type { KubeObject } from '../../src/render/object.ts';
import { createTrustMaterialCache } from '../../src/verify/trust.ts';
import {
  attestKeyed,
  type CosignKeyPair,
  cosignBuildTimeoutMs,
  ensureCosign,
  generateKeyPair,
  signKeyed,
  verifyKeyless,
} from '../support/cosign.ts';
import { makeTempDir } from '../support/git-fixtures.ts';
import { rawGitRepository } from '../support/gitrepository.ts';
import {
  attachBundle,
  attachKeylessBundle,
  attachKeylessSigTag,
  COSIGN_SIGN_PREDICATE,
  cosignStatement,
} from '../support/image-signing.ts';
import {
  moveTag,
  type OciRegistry,
  type PushedImage,
  pushImage,
  startRegistry,
} from '../support/oci-registry.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeDsseBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from '../support/sigstore-fixtures.ts';

const SLSA_V1 = 'https://slsa.dev/provenance/v1';
const OTHER_SUBJECT = 'https://github.com/mallory/fork/.github/workflows/release.yml@refs/heads/main';
let registry: OciRegistry;
let noReferrers: OciRegistry;
let dir: string;
let key: CosignKeyPair;
let otherKey: CosignKeyPair;
let bed: SigstoreTestbed;
function repoWith(host: string, extra: Record<string, unknown> = {}) {
  return parseGitRepository(
    rawGitRepository({
      timeout: '10s',
      verify: {
        signersRef: { kind: 'ConfigMap', name: 'signers' },
        imagePullSecretRef: { name: 'pull' },
        images: [{ match: [`${host}/team/**`], keysRef: { kind: 'Secret', name: 'image-keys' } }],
        ...extra,
      },
    }),
  );
}

function depsFor(reg: OciRegistry, cache: VerdictCache, pem = key.publicKeyPem): PipelineDeps {
  const references: Record<string, Record<string, string>> = {
    pull: { '.dockerconfigjson': reg.dockerConfigJson, 'ca.crt': reg.caPem },
    'image-keys': { 'cosign.pub': pem },
    ...(bed === undefined ? {} : { root: { 'trusted_root.json': JSON.stringify(bed.trustedRoot) } }),
  };
  return {
    source: undefined as never,
    trustCache: createTrustMaterialCache(),
    now: () => new Date(),
    imageCache: cache,
    readReference: async (ref) => {
      const data = references[ref.name];
      if (data === undefined) throw new Error(`${ref.kind} ${ref.name} not found`);
      return data;
    },
  };
}

function deployment(name: string, ...images: string[]): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'team-a' },
    spec: {
      template: { spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } },
    },
  } as KubeObject;
}

async function check(
  reg: OciRegistry,
  objects: KubeObject[],
  options: { cache?: VerdictCache; pem?: string; extra?: Record<string, unknown> } = {},
): Promise<ImageCheck> {
  const cache = options.cache ?? new VerdictCache(100);
  return verifyDesiredImages(
    repoWith(reg.host, options.extra),
    objects,
    depsFor(reg, cache, options.pem),
    AbortSignal.timeout(60_000),
  );
}

function refusal(result: ImageCheck): string {
  if (result.ok) throw new Error('accepted');
  expect(result.reason).toBe('ImageUnverified');
  return result.message;
}

/** Registry requests other than token fetches and the /v2/ probe. */
const apiRequests = (reg: OciRegistry) =>
  reg.requests().filter((r) => r.path !== '/token' && r.path !== '/v2/');

async function signed(
  reg: OciRegistry,
  repository: string,
  format: 'legacy-sig-tag' | 'bundle-referrer',
  signer = key,
): Promise<PushedImage> {
  const image = await pushImage(reg, repository, 'v1');
  await signKeyed(reg, image.pinned, signer, { format });
  return image;
}

beforeAll(async () => {
  await ensureCosign();
  registry = await startRegistry();
  noReferrers = await startRegistry({ referrers: false });
  dir = await makeTempDir('signet-image-keys-');
  key = await generateKeyPair(dir);
  const otherDir = await makeTempDir('signet-image-other-');
  otherKey = await generateKeyPair(otherDir);
  bed = await createSigstoreTestbed();
}, cosignBuildTimeoutMs);

afterAll(async () => {
  await registry?.stop();
  await noReferrers?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  if (otherKey !== undefined)
    await rm(otherKey.privateKeyPath.replace(/\/cosign\.key$/, ''), { recursive: true, force: true });
});

describe('image verification against a real registry and cosign', () => {
  it.each(['legacy-sig-tag', 'bundle-referrer'] as const)(
    'accepts a %s signature and pins the verified digest',
    async (format) => {
      const image = await signed(registry, `team/${format}`, format);
      const result = await check(registry, [deployment('web', image.reference)]);
      if (!result.ok) throw new Error(result.message);
      const [location] = extractImages(result.desired);
      expect(location?.image).toBe(`${image.reference}@${image.digest}`);
      expect(result.images).toEqual([
        expect.objectContaining({
          image: `${image.reference}@${image.digest}`,
          digest: image.digest,
          format,
        }),
      ]);
      expect(result.images[0]?.signer).toMatch(/^key SHA256:/);
    },
  );

  it('finds a bundle under the sha256-<hex> tag when the registry has no referrers API', async () => {
    const image = await signed(noReferrers, 'team/fallback', 'bundle-referrer');
    const result = await check(noReferrers, [deployment('web', image.reference)], {
      extra: {
        images: [
          {
            match: [`${noReferrers.host}/team/*`],
            keysRef: { kind: 'Secret', name: 'image-keys' },
            keyless: [],
          },
        ],
      },
    });
    if (!result.ok) throw new Error(result.message);
    expect(result.images[0]?.format).toBe('bundle-referrer');
  });

  it('cold: 3 requests per keyed legacy image and one token for all repositories; warm: 0 by digest, 1 manifest GET by tag', async () => {
    const images = await Promise.all(
      [1, 2, 3].map((n) => signed(registry, `team/counted-${n}`, 'legacy-sig-tag')),
    );
    const cache = new VerdictCache(100);
    registry.resetRequests();
    const byDigest = images.map((i) => i.pinned);
    const cold = await check(registry, [deployment('web', ...byDigest)], { cache });
    expect(cold.ok).toBe(true);
    // The registry's challenge is known from the checks before: one /token request for the three
    // repositories, no 401 round trip; then manifest, .sig manifest and payload blob per image.
    const requests = registry.requests();
    expect(requests.filter((r) => r.path === '/token')).toHaveLength(1);
    expect(requests.filter((r) => r.status === 401)).toEqual([]);
    expect(apiRequests(registry)).toHaveLength(3 * images.length);
    registry.resetRequests();
    expect((await check(registry, [deployment('web', ...byDigest)], { cache })).ok).toBe(true);
    expect(registry.requests()).toEqual([]);
    registry.resetRequests();
    const image = images[0] as PushedImage;
    const warmTag = await check(
      registry,
      [deployment('a', image.reference), deployment('b', image.reference)],
      { cache },
    );
    if (!warmTag.ok) throw new Error(warmTag.message);
    // The tag is resolved once for both objects; the verdict of its digest is cached.
    expect(registry.requests().map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /v2/${image.repository}/manifests/v1`,
    ]);
  });

  it('refuses an unsigned image, naming image, object and cause', async () => {
    const image = await pushImage(registry, 'team/unsigned', 'v1');
    const message = refusal(await check(registry, [deployment('web', image.reference)]));
    expect(message).toContain(
      `image ${image.reference} in Deployment team-a/web (spec.template.spec.containers[0].image, container c0)`,
    );
    expect(message).toContain('no signature found');
  });

  it.each(['legacy-sig-tag', 'bundle-referrer'] as const)(
    'refuses a %s signature by an untrusted key',
    async (format) => {
      const image = await signed(registry, `team/other-${format}`, format, otherKey);
      const message = refusal(await check(registry, [deployment('web', image.reference)]));
      expect(message).toContain(image.digest);
      expect(message).toContain('not signed by a trusted identity or key');
    },
  );

  it('refuses a tag moved to an unsigned digest', async () => {
    const image = await signed(registry, 'team/moved', 'legacy-sig-tag');
    expect((await check(registry, [deployment('web', image.reference)])).ok).toBe(true);
    const unsigned = await pushImage(registry, 'team/moved', 'unsigned');
    await moveTag(registry, 'team/moved', 'v1', unsigned.digest);
    const message = refusal(await check(registry, [deployment('web', image.reference)]));
    expect(message).toContain(unsigned.digest);
  });

  it('refuses an image that matches no policy, without a registry request', async () => {
    registry.resetRequests();
    const message = refusal(await check(registry, [deployment('web', 'quay.io/elsewhere/app:1')]));
    expect(message).toContain('quay.io/elsewhere/app matches no policy of spec.verify.images');
    expect(registry.requests()).toEqual([]);
  });

  it('requires each attestation of the policy, verified with the same key', async () => {
    const policy = (types: string[]) => ({
      images: [
        {
          match: [`${registry.host}/team/**`],
          keysRef: { kind: 'Secret', name: 'image-keys' },
          attestations: types.map((predicateType) => ({ predicateType })),
        },
      ],
    });
    const image = await signed(registry, 'team/attested', 'bundle-referrer');
    const missing = refusal(
      await check(registry, [deployment('web', image.reference)], { extra: policy([SLSA_V1]) }),
    );
    expect(missing).toContain(`no verified attestation of ${SLSA_V1}`);
    await attestKeyed(registry, image.pinned, key, {
      predicateType: SLSA_V1,
      predicate: { buildDefinition: { buildType: 'test' }, runDetails: { builder: { id: 'test' } } },
      format: 'bundle-referrer',
    });
    const result = await check(registry, [deployment('web', image.reference)], { extra: policy([SLSA_V1]) });
    if (!result.ok) throw new Error(result.message);
    expect(result.images[0]?.attestations).toEqual([SLSA_V1]);
  });

  it('refuses a manifest larger than the operator allows, and a signature blob likewise', async () => {
    const image = await signed(registry, 'team/large', 'legacy-sig-tag');
    const cache = new VerdictCache(10);
    const tight = (limits: Partial<typeof defaultImageVerificationLimits>) =>
      verifyDesiredImages(
        repoWith(registry.host),
        [deployment('web', image.reference)],
        { ...depsFor(registry, cache), imageLimits: { ...defaultImageVerificationLimits, ...limits } },
        AbortSignal.timeout(60_000),
      );
    expect(refusal(await tight({ maxManifestBytes: 64 }))).toMatch(
      /more than the limit of 64|larger than 64 bytes/,
    );
    expect(refusal(await tight({ maxSignatureBytes: 16 }))).toMatch(
      /more than the limit of 16|larger than 16 bytes/,
    );
    expect((await tight({})).ok).toBe(true);
  });

  it('refuses when the registry fails or is unreachable', async () => {
    const image = await signed(registry, 'team/faulty', 'legacy-sig-tag');
    await registry.setFault('fail');
    try {
      expect(refusal(await check(registry, [deployment('web', image.reference)]))).toContain('HTTP 503');
    } finally {
      await registry.setFault('none');
    }
    const gone = await check(registry, [deployment('web', '127.0.0.1:1/team/app:v1')], {
      extra: { images: [{ match: ['127.0.0.1:1/team/*'], keysRef: { kind: 'Secret', name: 'image-keys' } }] },
    });
    expect(refusal(gone)).toContain('127.0.0.1:1/v2/team/app/manifests/v1');
  });

  describe('keyless signatures from the sigstore test bed (Fulcio and Rekor), stored as cosign stores them', () => {
    const keyless = (host: string, subject: string) => ({
      trustedRootRef: { name: 'root' },
      images: [{ match: [`${host}/team/**`], keyless: [{ issuer: OIDC_ISSUER, subject }] }],
    });

    it('accepts a DSSE (cosign sign) and a message-signature bundle of the allowed identity', async () => {
      const dsse = await pushImage(registry, 'team/keyless-dsse', 'v1');
      await attachKeylessBundle(registry, dsse, { testbed: bed });
      const message = await pushImage(registry, 'team/keyless-message', 'v1');
      await attachKeylessBundle(registry, message, { testbed: bed, kind: 'message' });
      const result = await check(registry, [deployment('web', dsse.reference, message.reference)], {
        extra: keyless(registry.host, DEFAULT_SUBJECT),
      });
      if (!result.ok) throw new Error(result.message);
      expect(result.images.map((i) => i.signer)).toEqual([
        `${DEFAULT_SUBJECT} (${OIDC_ISSUER})`,
        `${DEFAULT_SUBJECT} (${OIDC_ISSUER})`,
      ]);
    });

    it('finds a keyless bundle under the sha256-<hex> tag index of a registry without referrers', async () => {
      const image = await pushImage(noReferrers, 'team/keyless-fallback', 'v1');
      const attached = await attachKeylessBundle(noReferrers, image, { testbed: bed });
      expect(attached.viaReferrersApi).toBe(false);
      const result = await check(noReferrers, [deployment('web', image.reference)], {
        extra: keyless(noReferrers.host, DEFAULT_SUBJECT),
      });
      if (!result.ok) throw new Error(result.message);
      expect(result.images[0]?.format).toBe('bundle-referrer');
    });

    it('refuses a keyless bundle of another identity, and one over another digest', async () => {
      const image = await pushImage(registry, 'team/keyless-other', 'v1');
      await attachKeylessBundle(registry, image, { testbed: bed });
      const other = refusal(
        await check(registry, [deployment('web', image.reference)], {
          extra: keyless(
            registry.host,
            'https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main',
          ),
        }),
      );
      expect(other).toContain(`signed by "${DEFAULT_SUBJECT}"`);
      const elsewhere = await pushImage(registry, 'team/keyless-elsewhere', 'v1');
      await attachBundle(registry, elsewhere, await makeDsseBundle(bed, cosignStatement(image.digest)), {
        predicateType: COSIGN_SIGN_PREDICATE,
      });
      const wrong = refusal(
        await check(registry, [deployment('web', elsewhere.reference)], {
          extra: keyless(registry.host, DEFAULT_SUBJECT),
        }),
      );
      expect(wrong).toContain(
        `no subject of the in-toto statement is the image's digest ${elsewhere.digest}`,
      );
    });

    it('accepts a keyless signature in the legacy .sig form of the allowed identity, as the real cosign does', async () => {
      const image = await pushImage(registry, 'team/keyless-legacy', 'v1');
      await attachKeylessSigTag(registry, image, { testbed: bed });
      registry.resetRequests();
      const result = await check(registry, [deployment('web', image.reference)], {
        extra: keyless(registry.host, DEFAULT_SUBJECT),
      });
      if (!result.ok) throw new Error(result.message);
      expect(result.images).toEqual([
        expect.objectContaining({
          digest: image.digest,
          signer: `${DEFAULT_SUBJECT} (${OIDC_ISSUER})`,
          format: 'legacy-sig-tag',
        }),
      ]);
      // Referrers first (none), then the .sig manifest and its one payload.
      expect(apiRequests(registry).map((r) => r.path)).toEqual([
        `/v2/team/keyless-legacy/manifests/v1`,
        `/v2/team/keyless-legacy/referrers/${image.digest}`,
        `/v2/team/keyless-legacy/manifests/${image.digest.replace(':', '-')}.sig`,
        expect.stringMatching(/^\/v2\/team\/keyless-legacy\/blobs\/sha256:/),
      ]);
      // The oracle: cosign accepts the same signature for the same identity and trusted root.
      const trust = { trustedRoot: bed.trustedRoot, issuer: OIDC_ISSUER, format: 'legacy-sig-tag' } as const;
      await expect(
        verifyKeyless(registry, image.pinned, { ...trust, subject: DEFAULT_SUBJECT }),
      ).resolves.toBeDefined();
    });

    it('refuses a legacy keyless signature of another identity or an untrusted CA, as cosign does', async () => {
      const image = await pushImage(registry, 'team/keyless-legacy-other', 'v1');
      await attachKeylessSigTag(registry, image, { testbed: bed });
      const other = refusal(
        await check(registry, [deployment('web', image.reference)], {
          extra: keyless(registry.host, OTHER_SUBJECT),
        }),
      );
      expect(other).toContain(
        `signed by "${DEFAULT_SUBJECT}" (issuer "${OIDC_ISSUER}"), not an allowed identity`,
      );
      const trust = { trustedRoot: bed.trustedRoot, issuer: OIDC_ISSUER, format: 'legacy-sig-tag' } as const;
      await expect(
        verifyKeyless(registry, image.pinned, { ...trust, subject: OTHER_SUBJECT }),
      ).rejects.toThrow(/none of the expected identities matched|no matching/);

      const foreignCa = await pushImage(registry, 'team/keyless-legacy-ca', 'v1');
      const otherBed = await createSigstoreTestbed();
      await attachKeylessSigTag(registry, foreignCa, { testbed: otherBed });
      const untrusted = refusal(
        await check(registry, [deployment('web', foreignCa.reference)], {
          extra: keyless(registry.host, DEFAULT_SUBJECT),
        }),
      );
      expect(untrusted).toContain('CERTIFICATE_ERROR');
      await expect(
        verifyKeyless(registry, foreignCa.pinned, { ...trust, subject: DEFAULT_SUBJECT }),
      ).rejects.toThrow();
    });

    it('refuses a legacy keyless signature under a keys-only policy, saying the policy allows no identities', async () => {
      const image = await pushImage(registry, 'team/keyless-legacy-keyed', 'v1');
      await attachKeylessSigTag(registry, image, { testbed: bed });
      expect(refusal(await check(registry, [deployment('web', image.reference)]))).toContain(
        'a keyless cosign .sig signature was found, but the policy allows no identities (keyless)',
      );
    });
  });
});
