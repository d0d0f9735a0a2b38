// Keyless image signatures made with the sigstore fixtures (test/support/image-signing.ts): the
// bundles attached as referrers verify with @sigstore/verify against the fixtures' trusted root and
// only for the identity that signed; and the real cosign, given the same trusted root, accepts the
// referrer and the legacy `.sig` tag forms for that identity and refuses another.

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosignBuildTimeoutMs, ensureCosign, verifyKeyed, verifyKeyless } from '../support/cosign.ts';
import { makeTempDir } from '../support/git-fixtures.ts';
import {
  attachKeylessBundle,
  attachKeylessSigTag,
  COSIGN_SIGN_PREDICATE,
  generateInProcessKey,
  SIGSTORE_BUNDLE_V03,
  signKeyedInProcess,
} from '../support/image-signing.ts';
import {
  getBlob,
  getManifest,
  listReferrers,
  type OciRegistry,
  pushImage,
  startRegistry,
} from '../support/oci-registry.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  OIDC_ISSUER,
  OTHER_ISSUER,
  type SigstoreTestbed,
} from '../support/sigstore-fixtures.ts';

const OTHER_SUBJECT = 'https://github.com/mallory/fork/.github/workflows/release.yml@refs/heads/main';

/** The bundle JSON a referrer manifest stores (its only layer). */
async function referrerBundle(registry: OciRegistry, repository: string, referrer: string) {
  const manifest = JSON.parse((await getManifest(registry, repository, referrer)).bytes.toString('utf8')) as {
    layers: { digest: string; mediaType: string }[];
  };
  expect(manifest.layers.map((layer) => layer.mediaType)).toEqual([SIGSTORE_BUNDLE_V03]);
  return JSON.parse((await getBlob(registry, repository, manifest.layers[0]?.digest ?? '')).toString('utf8'));
}

describe('keyless image bundles from the sigstore fixtures', () => {
  let registry: OciRegistry;
  let testbed: SigstoreTestbed;
  let verifier: Verifier;
  beforeAll(async () => {
    await ensureCosign();
    registry = await startRegistry();
    testbed = await createSigstoreTestbed();
    verifier = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(testbed.trustedRoot)), {
      tlogThreshold: 1,
      ctlogThreshold: 1,
      timestampThreshold: 1,
    });
  }, cosignBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
  });

  it('dsse: verifies with @sigstore/verify for the signing identity only, over the image digest', async () => {
    const image = await pushImage(registry, 'team/keyless', 'dsse');
    const attached = await attachKeylessBundle(registry, image, { testbed, subject: DEFAULT_SUBJECT });
    expect(attached.viaReferrersApi).toBe(true);
    const { manifests } = await listReferrers(registry, 'team/keyless', image.digest, SIGSTORE_BUNDLE_V03);
    expect(manifests.map((m) => m.digest)).toEqual([attached.digest]);
    expect(manifests[0]?.annotations?.['dev.sigstore.bundle.predicateType']).toBe(COSIGN_SIGN_PREDICATE);
    const json = await referrerBundle(registry, 'team/keyless', attached.digest);
    const bundle = bundleFromJSON(json);
    const signer = verifier.verify(toSignedEntity(bundle), {
      subjectAlternativeName: DEFAULT_SUBJECT,
      extensions: { issuer: OIDC_ISSUER },
    });
    expect(signer.identity?.subjectAlternativeName).toBe(DEFAULT_SUBJECT);
    expect(() =>
      verifier.verify(toSignedEntity(bundle), { subjectAlternativeName: OTHER_SUBJECT }),
    ).toThrow();
    expect(() => verifier.verify(toSignedEntity(bundle), { extensions: { issuer: OTHER_ISSUER } })).toThrow();
    const envelope = bundle.content.$case === 'dsseEnvelope' ? bundle.content.dsseEnvelope : undefined;
    const statement = JSON.parse(Buffer.from(envelope?.payload ?? new Uint8Array()).toString('utf8')) as {
      subject: { digest: { sha256: string } }[];
    };
    expect(statement.subject[0]?.digest.sha256).toBe(image.digest.slice('sha256:'.length));
  });

  it('message: a message signature whose digest is the manifest digest verifies over the manifest', async () => {
    const image = await pushImage(registry, 'team/keyless', 'message');
    const attached = await attachKeylessBundle(registry, image, { testbed, kind: 'message' });
    const bundle = bundleFromJSON(await referrerBundle(registry, 'team/keyless', attached.digest));
    const message = bundle.content.$case === 'messageSignature' ? bundle.content.messageSignature : undefined;
    expect(`sha256:${Buffer.from(message?.messageDigest?.digest ?? new Uint8Array()).toString('hex')}`).toBe(
      image.digest,
    );
    expect(verifier.verify(toSignedEntity(bundle, image.manifest)).identity?.subjectAlternativeName).toBe(
      DEFAULT_SUBJECT,
    );
    expect(() => verifier.verify(toSignedEntity(bundle, Buffer.from('another manifest')))).toThrow();
  });

  it('cosign accepts the keyless referrer for its identity and refuses another', async () => {
    const image = await pushImage(registry, 'team/keyless', 'cosign-referrer');
    await attachKeylessBundle(registry, image, { testbed });
    const trust = {
      trustedRoot: testbed.trustedRoot,
      issuer: OIDC_ISSUER,
      format: 'bundle-referrer',
    } as const;
    const output = await verifyKeyless(registry, image.pinned, { ...trust, subject: DEFAULT_SUBJECT });
    expect(output.stdout.toString()).toContain(image.digest);
    await expect(verifyKeyless(registry, image.pinned, { ...trust, subject: OTHER_SUBJECT })).rejects.toThrow(
      /none of the expected identities matched|no matching/,
    );
  });

  it('cosign accepts the legacy keyless .sig tag (certificate, chain and Rekor bundle annotations)', async () => {
    const image = await pushImage(registry, 'team/keyless', 'cosign-legacy');
    const attached = await attachKeylessSigTag(registry, image, { testbed });
    expect(Object.keys(attached.annotations).sort()).toEqual([
      'dev.cosignproject.cosign/signature',
      'dev.sigstore.cosign/bundle',
      'dev.sigstore.cosign/certificate',
      'dev.sigstore.cosign/chain',
    ]);
    const trust = {
      trustedRoot: testbed.trustedRoot,
      issuer: OIDC_ISSUER,
      format: 'legacy-sig-tag',
    } as const;
    await expect(
      verifyKeyless(registry, image.pinned, { ...trust, subject: DEFAULT_SUBJECT }),
    ).resolves.toBeDefined();
    await expect(verifyKeyless(registry, image.pinned, { ...trust, subject: OTHER_SUBJECT })).rejects.toThrow(
      /none of the expected identities matched|no matching/,
    );
  });
});

describe('keyless bundles on a registry without the referrers API', () => {
  let registry: OciRegistry;
  let testbed: SigstoreTestbed;
  beforeAll(async () => {
    await ensureCosign();
    registry = await startRegistry({ referrers: false });
    testbed = await createSigstoreTestbed();
  }, cosignBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
  });

  it('lists the referrer in the sha256-<hex> tag index, where cosign finds it', async () => {
    const image = await pushImage(registry, 'team/keyless', 'fallback');
    const attached = await attachKeylessBundle(registry, image, { testbed });
    expect(attached.viaReferrersApi).toBe(false);
    const index = JSON.parse(
      (await getManifest(registry, 'team/keyless', image.digest.replace(':', '-'))).bytes.toString('utf8'),
    ) as { manifests: { digest: string; artifactType: string }[] };
    expect(index.manifests).toEqual([
      expect.objectContaining({ digest: attached.digest, artifactType: SIGSTORE_BUNDLE_V03 }),
    ]);
    await expect(
      verifyKeyless(registry, image.pinned, {
        trustedRoot: testbed.trustedRoot,
        issuer: OIDC_ISSUER,
        subject: DEFAULT_SUBJECT,
        format: 'bundle-referrer',
      }),
    ).resolves.toBeDefined();
  });
});

describe('keyed signatures made in-process', () => {
  let registry: OciRegistry;
  let dir: string;
  beforeAll(async () => {
    await ensureCosign();
    registry = await startRegistry();
    dir = await makeTempDir('inprocess-key');
  }, cosignBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('are verified by cosign with the public key, in both formats, and refused with another key', async () => {
    const key = generateInProcessKey();
    const other = generateInProcessKey();
    const publicKeyPath = join(dir, 'signer.pub');
    const otherPath = join(dir, 'other.pub');
    await writeFile(publicKeyPath, key.publicKeyPem);
    await writeFile(otherPath, other.publicKeyPem);
    for (const format of ['legacy-sig-tag', 'bundle-referrer'] as const) {
      const image = await pushImage(registry, 'team/inprocess', format);
      await signKeyedInProcess(registry, image, key, { format });
      const output = await verifyKeyed(registry, image.pinned, { publicKeyPath }, { format });
      expect(output.stdout.toString()).toContain(image.digest);
      await expect(
        verifyKeyed(registry, image.pinned, { publicKeyPath: otherPath }, { format }),
      ).rejects.toThrow(/no matching (signatures|attestations)/);
    }
  });
});
