/**
 * Keyless image signatures made with the project's sigstore fixtures (test/support/sigstore-fixtures.ts:
 * mock Fulcio, Rekor and TSA with their trusted root) and stored in the test registry the ways cosign
 * stores them, for identities cosign cannot sign as offline:
 *
 *   attachKeylessBundle(registry, image, { testbed, issuer?, subject?, kind?, predicateType?, predicate?, … })
 *       a sigstore bundle v0.3 over the image manifest, attached as an OCI referrer laid out exactly
 *       like cosign v3's `--new-bundle-format` one (docs/images.md): kind 'dsse' (default) signs the
 *       in-toto statement cosign signs (subject = the manifest digest, predicate type
 *       https://sigstore.dev/cosign/sign/v1, or `predicateType`/`predicate` for an attestation);
 *       kind 'message' is a message signature whose digest is the manifest digest.
 *   attachBundle(registry, image, bundle, { predicateType, content })
 *       attaches any bundle JSON (keyed bundles from the fixtures, tampered ones) the same way.
 *   signKeyedInProcess(registry, image, generateInProcessKey(), { format })
 *       cosign's keyed `sign --tlog-upload=false` output in either format, made in-process (no cosign
 *       run; for benchmarks of many images); cosign verifies it (test/infra/image-signing.test.ts).
 *   attachKeylessSigTag(registry, image, { testbed, issuer?, subject? })
 *       cosign's legacy form: a simple-signing layer under `sha256-<hex>.sig` with the signature,
 *       certificate, chain and Rekor bundle annotations a keyless `cosign sign` writes.
 * Against a registry without the referrers API (no OCI-Subject answer) the referrer is also listed in
 * the `sha256-<hex>` tag index, as go-containerregistry (and so cosign) does.
 * `image` is what pushImage returned, or any { repository, digest }.
 */
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { certificatePEM } from '../../src/verify/gitsign.ts';
import {
  getManifest,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  type OciRegistry,
  putManifest,
  sha256Digest,
  uploadBlob,
} from './oci-registry.ts';
import {
  DEFAULT_SUBJECT,
  type KeylessBundleOptions,
  makeDsseBundle,
  makeMessageBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from './sigstore-fixtures.ts';

export const SIGSTORE_BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';

export interface ImageTarget {
  readonly repository: string;
  /** The image manifest digest, `sha256:<hex>`. */
  readonly digest: string;
}

export interface AttachedReferrer {
  /** The referrer manifest's digest. */
  readonly digest: string;
  readonly bundle: Record<string, unknown>;
  /** True when the registry answered OCI-Subject (else the sha256-<hex> tag index lists it). */
  readonly viaReferrersApi: boolean;
}

/** The in-toto v1 statement cosign v3 signs for `cosign sign` (or `attest`) of an image. */
export function cosignStatement(
  digest: string,
  predicateType = COSIGN_SIGN_PREDICATE,
  predicate: unknown = {},
) {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ digest: { sha256: digest.replace(/^sha256:/, '') }, annotations: {} }],
    predicateType,
    predicate,
  };
}

async function subjectOf(registry: OciRegistry, image: ImageTarget) {
  const { bytes, mediaType } = await getManifest(registry, image.repository, image.digest);
  if (sha256Digest(bytes) !== image.digest)
    throw new Error(`registry served other bytes for ${image.digest}`);
  return { mediaType, size: bytes.byteLength, digest: image.digest, bytes };
}

interface ImageIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: unknown[];
}

/** Adds a descriptor to the `sha256-<hex>` tag index (OCI 1.1's fallback for registries without referrers). */
async function addToFallbackIndex(
  registry: OciRegistry,
  image: ImageTarget,
  descriptor: Record<string, unknown>,
): Promise<void> {
  const tag = image.digest.replace(':', '-');
  const existing = await getManifest(registry, image.repository, tag).catch(() => undefined);
  const index: ImageIndex = existing
    ? (JSON.parse(existing.bytes.toString('utf8')) as ImageIndex)
    : { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  index.manifests.push(descriptor);
  await putManifest(registry, image.repository, tag, Buffer.from(JSON.stringify(index)), OCI_INDEX);
}

/** Attaches `bundle` to the image as a cosign-style bundle referrer. */
export async function attachBundle(
  registry: OciRegistry,
  image: ImageTarget,
  bundle: Record<string, unknown>,
  options: { predicateType?: string; content?: 'dsse-envelope' | 'message-signature' } = {},
): Promise<AttachedReferrer> {
  const subject = await subjectOf(registry, image);
  const empty = await uploadBlob(registry, image.repository, Buffer.from('{}'), OCI_EMPTY);
  const layer = await uploadBlob(
    registry,
    image.repository,
    Buffer.from(JSON.stringify(bundle)),
    SIGSTORE_BUNDLE_V03,
  );
  const annotations = {
    'dev.sigstore.bundle.content':
      options.content ?? ('dsseEnvelope' in bundle ? 'dsse-envelope' : 'message-signature'),
    'dev.sigstore.bundle.predicateType': options.predicateType ?? COSIGN_SIGN_PREDICATE,
    'org.opencontainers.image.created': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...empty, artifactType: SIGSTORE_BUNDLE_V03 },
      layers: [layer],
      annotations,
      subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest },
      artifactType: SIGSTORE_BUNDLE_V03,
    }),
  );
  const digest = sha256Digest(manifest);
  const { subjectHeader } = await putManifest(registry, image.repository, digest, manifest, OCI_MANIFEST);
  const viaReferrersApi = subjectHeader === image.digest;
  if (!viaReferrersApi) {
    const descriptor = {
      mediaType: OCI_MANIFEST,
      size: manifest.byteLength,
      digest,
      artifactType: SIGSTORE_BUNDLE_V03,
    };
    await addToFallbackIndex(registry, image, descriptor);
  }
  return { digest, bundle, viaReferrersApi };
}

export interface KeylessImageOptions extends KeylessBundleOptions {
  readonly testbed: SigstoreTestbed;
  /** 'dsse' (cosign v3's form, default) or 'message' (a message signature over the manifest). */
  readonly kind?: 'dsse' | 'message';
  /** For an attestation: the in-toto predicate type and predicate (dsse only). */
  readonly predicateType?: string;
  readonly predicate?: unknown;
}

/** Signs the image keylessly as `issuer`/`subject` and attaches the bundle as a referrer. */
export async function attachKeylessBundle(
  registry: OciRegistry,
  image: ImageTarget,
  options: KeylessImageOptions,
): Promise<AttachedReferrer> {
  const {
    testbed,
    kind = 'dsse',
    predicateType = COSIGN_SIGN_PREDICATE,
    predicate = {},
    ...signing
  } = options;
  const leaf = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT, ...signing };
  if (kind === 'message') {
    const { bytes } = await subjectOf(registry, image);
    const bundle = await makeMessageBundle(testbed, bytes, leaf);
    return attachBundle(registry, image, bundle, { predicateType, content: 'message-signature' });
  }
  const bundle = await makeDsseBundle(testbed, cosignStatement(image.digest, predicateType, predicate), leaf);
  return attachBundle(registry, image, bundle, { predicateType, content: 'dsse-envelope' });
}

export interface KeylessSigTagOptions extends KeylessBundleOptions {
  readonly testbed: SigstoreTestbed;
  /** The simple-signing payload's docker-reference (default `<host>/<repository>`, as cosign writes it). */
  readonly dockerReference?: string;
}

export interface AttachedSignature {
  /** The `sha256-<hex>.sig` manifest's digest. */
  readonly digest: string;
  readonly payload: Buffer;
  readonly annotations: Readonly<Record<string, string>>;
}

/** Cosign's simple-signing payload for an image digest. */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

function hashedRekord(payload: Buffer, signature: Buffer, certificate: string): object {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
      signature: { content: b64(signature), publicKey: { content: b64(Buffer.from(certificate)) } },
    },
  };
}

/**
 * Signs the image keylessly in cosign's legacy form: a simple-signing layer in the `sha256-<hex>.sig`
 * manifest (added to the layers already there) with the signature, certificate, chain and Rekor
 * bundle (SignedEntryTimestamp and payload) annotations.
 */
export async function attachKeylessSigTag(
  registry: OciRegistry,
  image: ImageTarget,
  options: KeylessSigTagOptions,
): Promise<AttachedSignature> {
  const { testbed, dockerReference, ...signing } = options;
  // cosign checks a legacy signature's chain at the leaf's notBefore, so the leaf must not predate the
  // mock CA (the fixtures' default dates leaves 2 s back, before a testbed made just now).
  const leaf = await testbed.issueLeaf({
    issuer: OIDC_ISSUER,
    subject: DEFAULT_SUBJECT,
    issuedAt: new Date(),
    ...signing,
  });
  const payload = simpleSigningPayload(
    dockerReference ?? `${registry.host}/${image.repository}`,
    image.digest,
  );
  const signature = sign('sha256', payload, leaf.privateKey);
  const certificate = certificatePEM(leaf.certificate);
  const entry = await testbed.logEntry(
    hashedRekord(payload, signature, certificate),
    'hashedrekord',
    signing,
  );
  const annotations: Record<string, string> = {
    'dev.cosignproject.cosign/signature': signature.toString('base64'),
    'dev.sigstore.cosign/certificate': certificate,
    'dev.sigstore.cosign/chain': testbed.fulcioRootPEM,
  };
  if (entry?.inclusionPromise !== undefined) {
    annotations['dev.sigstore.cosign/bundle'] = JSON.stringify({
      SignedEntryTimestamp: entry.inclusionPromise.signedEntryTimestamp.toString('base64'),
      Payload: {
        body: entry.canonicalizedBody.toString('base64'),
        integratedTime: Number(entry.integratedTime),
        logIndex: Number(entry.logIndex),
        logID: entry.logId?.keyId.toString('hex') ?? '',
      },
    });
  }
  return addSigLayer(registry, image, payload, annotations);
}

/** Adds a simple-signing layer to the image's `sha256-<hex>.sig` manifest (creating it when absent). */
export async function addSigLayer(
  registry: OciRegistry,
  image: ImageTarget,
  payload: Buffer,
  annotations: Readonly<Record<string, string>>,
): Promise<AttachedSignature> {
  const tag = `${image.digest.replace(':', '-')}.sig`;
  const existing = await getManifest(registry, image.repository, tag).catch(() => undefined);
  const previous = existing
    ? (JSON.parse(existing.bytes.toString('utf8')) as { layers: Record<string, unknown>[] }).layers
    : [];
  const layer = { ...(await uploadBlob(registry, image.repository, payload, SIMPLE_SIGNING)), annotations };
  const layers = [...previous, layer];
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: layers.map(() => ({ created: '0001-01-01T00:00:00Z' })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
  const configDescriptor = await uploadBlob(registry, image.repository, config, OCI_CONFIG);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDescriptor, layers }),
  );
  const { digest } = await putManifest(registry, image.repository, tag, manifest, OCI_MANIFEST);
  return { digest, payload, annotations };
}

export interface InProcessKey {
  readonly privateKey: KeyObject;
  /** PKIX PEM, the format of cosign.pub. */
  readonly publicKeyPem: string;
  /** What cosign puts in a keyed bundle's `publicKey.hint`: base64 of the SHA-256 of the public key DER. */
  readonly hint: string;
}

/** An ECDSA P-256 key pair like `cosign generate-key-pair` makes, held in memory. */
export function generateInProcessKey(): InProcessKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return {
    privateKey,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    hint: createHash('sha256').update(der).digest('base64'),
  };
}

function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType);
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

/**
 * Signs the image with an in-memory key the way `cosign sign --key --tlog-upload=false` does, byte
 * layout included, without starting cosign (about 1 ms instead of 0.4 s a signature: for benchmarks
 * of many images). 'legacy-sig-tag' adds a simple-signing layer to `sha256-<hex>.sig`;
 * 'bundle-referrer' attaches a keyed bundle v0.3 (DSSE over cosign's statement, no tlog entries).
 * test/infra/image-signing.test.ts has cosign verify both with the public key.
 */
export async function signKeyedInProcess(
  registry: OciRegistry,
  image: ImageTarget,
  key: InProcessKey,
  options: { format: 'legacy-sig-tag' | 'bundle-referrer' },
): Promise<void> {
  if (options.format === 'legacy-sig-tag') {
    const payload = simpleSigningPayload(`${registry.host}/${image.repository}`, image.digest);
    const signature = sign('sha256', payload, key.privateKey).toString('base64');
    await addSigLayer(registry, image, payload, { 'dev.cosignproject.cosign/signature': signature });
    return;
  }
  const payloadType = 'application/vnd.in-toto+json';
  const payload = Buffer.from(JSON.stringify(cosignStatement(image.digest)));
  const signature = sign('sha256', pae(payloadType, payload), key.privateKey);
  const bundle = {
    mediaType: SIGSTORE_BUNDLE_V03,
    verificationMaterial: { publicKey: { hint: key.hint } },
    dsseEnvelope: {
      payload: payload.toString('base64'),
      payloadType,
      signatures: [{ sig: signature.toString('base64') }],
    },
  };
  await attachBundle(registry, image, bundle, { content: 'dsse-envelope' });
}
