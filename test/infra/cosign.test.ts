// The real cosign (test/support/cosign.ts, hack/cosign) against the test registry: keyed signatures
// in both of cosign's formats land where docs/images.md says they do, and `cosign verify` (the
// oracle) accepts them with the signing key and refuses another key or an unsigned image. Also an
// attestation, the tag-schema fallback of a registry without the referrers API, and request counts.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attestKeyed,
  type CosignKeyPair,
  cosignBuildTimeoutMs,
  ensureCosign,
  generateKeyPair,
  signKeyed,
  verifyAttestationKeyed,
  verifyKeyed,
} from '../support/cosign.ts';
import { makeTempDir } from '../support/git-fixtures.ts';
import {
  getBlob,
  getManifest,
  listReferrers,
  OCI_INDEX,
  type OciRegistry,
  pushImage,
  startRegistry,
} from '../support/oci-registry.ts';

const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SLSA_V1 = 'https://slsa.dev/provenance/v1';

interface ManifestJson {
  mediaType?: string;
  artifactType?: string;
  config: { mediaType: string };
  layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
  annotations?: Record<string, string>;
  subject?: { digest: string };
}

const tagOf = (digest: string) => digest.replace(':', '-');
const parse = (bytes: Buffer): ManifestJson => JSON.parse(bytes.toString('utf8')) as ManifestJson;

/** The bundle stored by a referrer manifest, and its DSSE statement. */
async function bundleOf(registry: OciRegistry, repository: string, referrer: string) {
  const manifest = parse((await getManifest(registry, repository, referrer)).bytes);
  const layer = manifest.layers[0];
  if (layer === undefined) throw new Error('referrer without layers');
  const bundle = JSON.parse((await getBlob(registry, repository, layer.digest)).toString('utf8')) as {
    mediaType: string;
    dsseEnvelope: { payload: string; payloadType: string };
  };
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8')) as {
    subject: { digest: { sha256: string } }[];
    predicateType: string;
  };
  return { manifest, bundle, statement };
}

describe('cosign against the test registry', () => {
  let registry: OciRegistry;
  let dir: string;
  let otherDir: string;
  let key: CosignKeyPair;
  let otherKey: CosignKeyPair;
  beforeAll(async () => {
    await ensureCosign();
    registry = await startRegistry();
    dir = await makeTempDir('cosign');
    otherDir = await makeTempDir('cosign-other');
    key = await generateKeyPair(dir);
    otherKey = await generateKeyPair(otherDir);
  }, cosignBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    if (otherDir !== undefined) await rm(otherDir, { recursive: true, force: true });
  });

  it('legacy-sig-tag: a simple-signing layer under sha256-<hex>.sig that cosign verifies', async () => {
    const image = await pushImage(registry, 'team/legacy', 'v1');
    await signKeyed(registry, image.pinned, key, { format: 'legacy-sig-tag' });
    const signatures = parse(
      (await getManifest(registry, 'team/legacy', `${tagOf(image.digest)}.sig`)).bytes,
    );
    expect(signatures.layers).toHaveLength(1);
    const [layer] = signatures.layers;
    expect(layer?.mediaType).toBe(SIMPLE_SIGNING);
    expect(Object.keys(layer?.annotations ?? {})).toEqual(['dev.cosignproject.cosign/signature']);
    const payload = JSON.parse((await getBlob(registry, 'team/legacy', layer?.digest ?? '')).toString()) as {
      critical: { image: { 'docker-manifest-digest': string }; type: string };
    };
    expect(payload.critical.image['docker-manifest-digest']).toBe(image.digest);
    expect(payload.critical.type).toBe('cosign container image signature');
    await expect(
      verifyKeyed(registry, image.pinned, key, { format: 'legacy-sig-tag' }),
    ).resolves.toBeDefined();
    await expect(verifyKeyed(registry, image.pinned, otherKey, { format: 'legacy-sig-tag' })).rejects.toThrow(
      /no matching signatures: invalid signature/,
    );
  });

  it('bundle-referrer: a sigstore bundle v0.3 (DSSE) attached as a referrer that cosign verifies', async () => {
    const image = await pushImage(registry, 'team/bundled', 'v1');
    await signKeyed(registry, image.pinned, key, { format: 'bundle-referrer' });
    const { manifests } = await listReferrers(registry, 'team/bundled', image.digest, SIGSTORE_BUNDLE);
    expect(manifests).toHaveLength(1);
    const referrer = manifests[0];
    expect(referrer?.annotations?.['dev.sigstore.bundle.content']).toBe('dsse-envelope');
    expect(referrer?.annotations?.['dev.sigstore.bundle.predicateType']).toBe(
      'https://sigstore.dev/cosign/sign/v1',
    );
    const { manifest, bundle, statement } = await bundleOf(registry, 'team/bundled', referrer?.digest ?? '');
    expect(manifest.artifactType).toBe(SIGSTORE_BUNDLE);
    expect(manifest.config.mediaType).toBe('application/vnd.oci.empty.v1+json');
    expect(manifest.subject?.digest).toBe(image.digest);
    expect(bundle.mediaType).toBe(SIGSTORE_BUNDLE);
    expect(bundle.dsseEnvelope.payloadType).toBe('application/vnd.in-toto+json');
    expect(statement.subject[0]?.digest.sha256).toBe(image.digest.replace('sha256:', ''));
    await expect(
      verifyKeyed(registry, image.pinned, key, { format: 'bundle-referrer' }),
    ).resolves.toBeDefined();
    await expect(
      verifyKeyed(registry, image.pinned, otherKey, { format: 'bundle-referrer' }),
    ).rejects.toThrow();
  });

  it('refuses an unsigned image, in both formats', async () => {
    const image = await pushImage(registry, 'team/unsigned', 'v1');
    for (const format of ['legacy-sig-tag', 'bundle-referrer'] as const) {
      await expect(verifyKeyed(registry, image.pinned, key, { format })).rejects.toThrow(
        /no signatures found/,
      );
    }
  });

  it('attests a SLSA provenance predicate as a bundle referrer that cosign verifies', async () => {
    const image = await pushImage(registry, 'team/attested', 'v1');
    const predicate = { buildDefinition: { buildType: 'https://signet.dev/test/v1' }, runDetails: {} };
    await attestKeyed(registry, image.pinned, key, {
      predicateType: SLSA_V1,
      predicate,
      format: 'bundle-referrer',
    });
    const { manifests } = await listReferrers(registry, 'team/attested', image.digest, SIGSTORE_BUNDLE);
    expect(manifests.map((m) => m.annotations?.['dev.sigstore.bundle.predicateType'])).toEqual([SLSA_V1]);
    const { statement } = await bundleOf(registry, 'team/attested', manifests[0]?.digest ?? '');
    expect(statement.predicateType).toBe(SLSA_V1);
    await expect(
      verifyAttestationKeyed(registry, image.pinned, key, {
        predicateType: SLSA_V1,
        format: 'bundle-referrer',
      }),
    ).resolves.toBeDefined();
  });

  it('counts the requests cosign verify makes', async () => {
    const image = await pushImage(registry, 'team/counted', 'v1');
    await signKeyed(registry, image.pinned, key, { format: 'bundle-referrer' });
    registry.resetRequests();
    await verifyKeyed(registry, image.pinned, key, { format: 'bundle-referrer' });
    const requests = registry.requests();
    expect(requests.length).toBeGreaterThan(0);
    expect(requests).toContainEqual({
      method: 'GET',
      path: `/v2/team/counted/referrers/${image.digest}`,
      query: '',
      status: 200,
    });
    expect(requests.filter((r) => r.status === 401).every((r) => r.path === '/v2/')).toBe(true);
  });
});

describe('cosign against a registry without the referrers API', () => {
  let registry: OciRegistry;
  let dir: string;
  let key: CosignKeyPair;
  beforeAll(async () => {
    await ensureCosign();
    registry = await startRegistry({ referrers: false });
    dir = await makeTempDir('cosign');
    key = await generateKeyPair(dir);
  }, cosignBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('stores the bundle referrer under the sha256-<hex> tag index and still verifies', async () => {
    const image = await pushImage(registry, 'team/fallback', 'v1');
    await signKeyed(registry, image.pinned, key, { format: 'bundle-referrer' });
    expect((await listReferrers(registry, 'team/fallback', image.digest)).status).toBe(404);
    const fallback = await getManifest(registry, 'team/fallback', tagOf(image.digest));
    expect(fallback.mediaType).toBe(OCI_INDEX);
    const index = JSON.parse(fallback.bytes.toString('utf8')) as {
      manifests: { digest: string; artifactType?: string }[];
    };
    expect(index.manifests.map((m) => m.artifactType)).toEqual([SIGSTORE_BUNDLE]);
    const { manifest } = await bundleOf(registry, 'team/fallback', index.manifests[0]?.digest ?? '');
    expect(manifest.subject?.digest).toBe(image.digest);
    await expect(
      verifyKeyed(registry, image.pinned, key, { format: 'bundle-referrer' }),
    ).resolves.toBeDefined();
  });
});
