/**
 * The image step of a revision: every image of the rendered objects is matched to a policy,
 * resolved to a digest, checked against its signatures (cache first) and pinned. Fail closed: the
 * first image that cannot be verified refuses the whole revision, naming the image, the object
 * and the cause. The registry is a port; the rest is data.
 */
import type { ImagePolicySpec } from '../api/gitrepository.ts';
import type { KubeObject } from '../render/object.ts';
import { type ImageEvidence, VerdictCache } from './cache.ts';
import { extractImages, fieldPath, type ImageLocation } from './extract.ts';
import { type Pin, pinImages } from './pin.ts';
import { policyFor } from './policy.ts';
import { canonicalName, type ImageReference, parseImageReference, pinnedReference } from './reference.ts';
import type { Manifest, RegistryPort, Repo } from './registry-client.ts';
import {
  COSIGN_SIGN_PREDICATE,
  type ImageTrust,
  type SignatureCheck,
  verifyImageBundle,
  verifySimpleSigning,
} from './signature.ts';

export const sigstoreBundleMediaPrefix = 'application/vnd.dev.sigstore.bundle';
export const simpleSigningMediaType = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const cosignSignatureAnnotation = 'dev.cosignproject.cosign/signature';

export interface ImageLimits {
  /** Referrers (bundles) and legacy signature layers examined per image. */
  readonly maxSignatures: number;
  readonly maxSignatureBytes: number;
  /** Images verified at once. */
  readonly concurrency: number;
}

export const defaultImageLimits: ImageLimits = {
  maxSignatures: 16,
  maxSignatureBytes: 1024 * 1024,
  concurrency: 8,
};

/** Every bound of image verification, set by the operator's flags (docs/images.md). */
export interface ImageVerificationLimits extends ImageLimits {
  readonly maxManifestBytes: number;
  /** Verdicts the operator keeps. */
  readonly cacheEntries: number;
}

export const defaultImageVerificationLimits: ImageVerificationLimits = {
  ...defaultImageLimits,
  maxManifestBytes: 4 * 1024 * 1024,
  cacheEntries: 10_000,
};

/** One policy's trust, resolved, with the fingerprint verdicts are cached under. */
export interface ResolvedTrust {
  readonly trust: ImageTrust;
  readonly attestations: readonly string[];
  readonly fingerprint: string;
}

export interface ImageCheckDeps {
  readonly registry: RegistryPort;
  readonly cache: VerdictCache;
  /** The trust of spec.verify.images[index] (keys read, root loaded), or throws naming what is missing. */
  readonly trustFor: (policyIndex: number, signal: AbortSignal) => Promise<ResolvedTrust>;
  readonly limits?: ImageLimits;
}

/** An image of the applied revision, recorded in status (the audit trail). */
export interface ImageAudit {
  readonly image: string;
  readonly digest: string;
  readonly signer: string;
  readonly format: ImageEvidence['format'];
  readonly attestations?: readonly string[];
}

export type ImageVerdict =
  | { readonly ok: true; readonly objects: KubeObject[]; readonly images: ImageAudit[] }
  | { readonly ok: false; readonly image: string; readonly subject: string; readonly message: string };

/** A refusal of one image, before it is tied to an object. */
class ImageRefusal extends Error {
  override readonly name = 'ImageRefusal';
}

function describeLocation(location: ImageLocation): string {
  return `${location.subject} (${fieldPath(location)}, container ${location.containerName})`;
}

export function imageRefusalMessage(image: string, location: ImageLocation, cause: string): string {
  return `image ${image} in ${describeLocation(location)}: ${cause}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations: Readonly<Record<string, string>>;
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new ImageRefusal(`${what} is not JSON`);
  }
  if (!isRecord(parsed)) throw new ImageRefusal(`${what} is not a JSON object`);
  return parsed;
}

function descriptors(list: unknown): Descriptor[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry) => {
    if (!isRecord(entry) || typeof entry.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(entry.digest))
      return [];
    const annotations = isRecord(entry.annotations)
      ? Object.fromEntries(
          Object.entries(entry.annotations).filter((e): e is [string, string] => typeof e[1] === 'string'),
        )
      : {};
    return [
      {
        mediaType: typeof entry.mediaType === 'string' ? entry.mediaType : '',
        digest: entry.digest,
        size: typeof entry.size === 'number' ? entry.size : 0,
        ...(typeof entry.artifactType === 'string' ? { artifactType: entry.artifactType } : {}),
        annotations,
      },
    ];
  });
}

/** What the signatures found prove, accumulated until the policy is satisfied. */
interface Findings {
  signer?: string;
  format?: ImageEvidence['format'];
  readonly predicateTypes: Set<string>;
  readonly failures: string[];
}

function record(findings: Findings, check: SignatureCheck, format: ImageEvidence['format']): void {
  if (!check.ok) {
    findings.failures.push(check.message);
    return;
  }
  if (check.predicateType !== undefined && check.predicateType !== COSIGN_SIGN_PREDICATE) {
    findings.predicateTypes.add(check.predicateType);
    return;
  }
  if (findings.signer === undefined) {
    findings.signer = check.signer;
    findings.format = format;
  }
}

function satisfied(findings: Findings, required: readonly string[]): boolean {
  return findings.signer !== undefined && required.every((type) => findings.predicateTypes.has(type));
}

export const bundlePredicateAnnotation = 'dev.sigstore.bundle.predicateType';

/**
 * Whether a referrer may help: its predicate type (the annotation cosign writes, which the
 * referrers list copies) is the signature's or a required attestation's. Without the annotation
 * (the tag-schema fallback has none) it is fetched. The annotation only saves requests: what
 * counts is the verified statement inside.
 */
function wanted(descriptor: Descriptor, attestations: readonly string[]): boolean {
  const type = descriptor.annotations[bundlePredicateAnnotation];
  return type === undefined || type === COSIGN_SIGN_PREDICATE || attestations.includes(type);
}

/** Checks one image digest (cache first); throws ImageRefusal naming the cause. */
class DigestVerifier {
  readonly #deps: ImageCheckDeps;
  readonly #limits: ImageLimits;

  constructor(deps: ImageCheckDeps) {
    this.#deps = deps;
    this.#limits = deps.limits ?? defaultImageLimits;
  }

  /** The cached verdict of `digest`, if any (no request). */
  cached(repo: Repo, digest: string, resolved: ResolvedTrust): ImageEvidence | undefined {
    return this.#deps.cache.get(VerdictCache.key(canonicalName(repo), digest, resolved.fingerprint));
  }

  async verify(
    repo: Repo,
    manifest: Manifest,
    resolved: ResolvedTrust,
    signal: AbortSignal,
  ): Promise<ImageEvidence> {
    const name = canonicalName(repo);
    const key = VerdictCache.key(name, manifest.digest, resolved.fingerprint);
    const cached = this.#deps.cache.get(key);
    if (cached !== undefined) return cached;
    const findings: Findings = { predicateTypes: new Set(), failures: [] };
    // Keyless signatures and attestations are only in bundles; with keys only, where this
    // registry's signatures were found last (one request fewer), else the .sig tag.
    const needsBundles = resolved.trust.identities.length > 0 || resolved.attestations.length > 0;
    const bundlesFirst =
      needsBundles || this.#deps.cache.preferredFormat(repo.registry) === 'bundle-referrer';
    const order = bundlesFirst ? (['referrers', 'legacy'] as const) : (['legacy', 'referrers'] as const);
    for (const way of order) {
      if (way === 'referrers') await this.#fromReferrers(repo, manifest, resolved, findings, signal);
      else await this.#fromLegacyTag(repo, manifest.digest, resolved, findings, signal);
      if (satisfied(findings, resolved.attestations)) break;
    }
    if (findings.signer === undefined || findings.format === undefined) {
      const why =
        findings.failures.length === 0
          ? 'no signature found (no sigstore bundle referrer, no cosign .sig tag)'
          : findings.failures.slice(0, 3).join('; ');
      throw new ImageRefusal(`digest ${manifest.digest} is not signed by a trusted identity or key: ${why}`);
    }
    const missing = resolved.attestations.filter((type) => !findings.predicateTypes.has(type));
    if (missing.length > 0)
      throw new ImageRefusal(
        `digest ${manifest.digest} has no verified attestation of ${missing.join(', ')}`,
      );
    const evidence: ImageEvidence = {
      name,
      digest: manifest.digest,
      signer: findings.signer,
      format: findings.format,
      attestations: [...findings.predicateTypes].sort(),
    };
    this.#deps.cache.set(key, evidence);
    this.#deps.cache.noteFormat(repo.registry, findings.format);
    return evidence;
  }

  /** Bundles attached as referrers: the referrers API, else the `sha256-<hex>` tag schema. */
  async #fromReferrers(
    repo: Repo,
    manifest: Manifest,
    resolved: ResolvedTrust,
    findings: Findings,
    signal: AbortSignal,
  ): Promise<void> {
    const registry = this.#deps.registry;
    const index =
      (await registry.referrers(repo, manifest.digest, signal)) ??
      (await registry.manifest(repo, manifest.digest.replace(':', '-'), signal));
    if (index === undefined) return;
    const bundles = descriptors(parseJson(index.bytes, 'the referrers index').manifests)
      .filter((d) => (d.artifactType ?? '').startsWith(sigstoreBundleMediaPrefix))
      .filter((d) => wanted(d, resolved.attestations))
      .slice(0, this.#limits.maxSignatures);
    for (const referrer of bundles) {
      const artifact = await registry.manifest(repo, referrer.digest, signal);
      if (artifact === undefined) continue;
      const layer = descriptors(parseJson(artifact.bytes, `referrer ${referrer.digest}`).layers).find((d) =>
        d.mediaType.startsWith(sigstoreBundleMediaPrefix),
      );
      if (layer === undefined) continue;
      const bytes = await registry.blob(repo, layer.digest, this.#limits.maxSignatureBytes, signal);
      record(
        findings,
        verifyImageBundle(
          parseJson(bytes, 'the sigstore bundle'),
          manifest.digest,
          manifest.bytes,
          resolved.trust,
        ),
        'bundle-referrer',
      );
      if (satisfied(findings, resolved.attestations)) return;
    }
  }

  /** cosign's `sha256-<hex>.sig` tag: simple-signing payload layers with their signature annotation. */
  async #fromLegacyTag(
    repo: Repo,
    digest: string,
    resolved: ResolvedTrust,
    findings: Findings,
    signal: AbortSignal,
  ): Promise<void> {
    const registry = this.#deps.registry;
    const signatures = await registry.manifest(repo, `${digest.replace(':', '-')}.sig`, signal);
    if (signatures === undefined) return;
    const layers = descriptors(parseJson(signatures.bytes, 'the .sig manifest').layers)
      .filter((d) => d.mediaType === simpleSigningMediaType)
      .slice(0, this.#limits.maxSignatures);
    for (const layer of layers) {
      const signature = layer.annotations[cosignSignatureAnnotation];
      if (signature === undefined) continue;
      if (Object.keys(resolved.trust.keys).length === 0) {
        findings.failures.push(
          'a cosign .sig signature was found, but the policy names no keys (keyless signatures are verified from sigstore bundle referrers)',
        );
        continue;
      }
      const payload = await registry.blob(repo, layer.digest, this.#limits.maxSignatureBytes, signal);
      record(findings, verifySimpleSigning(payload, signature, digest, resolved.trust), 'legacy-sig-tag');
      if (findings.signer !== undefined) return;
    }
  }
}

/** Runs `work` over `items` with at most `limit` at once, in order of the results. */
async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

interface Checked {
  readonly location: ImageLocation;
  readonly image: string;
  readonly result:
    | { ok: true; ref: ImageReference; evidence: ImageEvidence }
    | { ok: false; message: string };
}

/**
 * Verifies and pins every image of `objects` under `policies` (spec.verify.images). Each distinct
 * image is checked once (a tag is resolved once per call); the first refusal, in object order,
 * refuses the revision.
 */
export async function verifyImages(
  objects: readonly KubeObject[],
  policies: readonly ImagePolicySpec[],
  deps: ImageCheckDeps,
  signal: AbortSignal,
): Promise<ImageVerdict> {
  const locations = extractImages(objects);
  const verifier = new DigestVerifier(deps);
  const byImage = new Map<
    string,
    Promise<{ ok: true; ref: ImageReference; evidence: ImageEvidence } | { ok: false; message: string }>
  >();
  // One check per image, however it is spelled (`nginx:1` and `docker.io/library/nginx:1`).
  const checkImage = (image: string) => {
    const parsed = parseImageReference(image);
    const key = parsed.ok
      ? `${canonicalName(parsed.ref)}:${parsed.ref.tag ?? ''}@${parsed.ref.digest ?? ''}`
      : image;
    let pending = byImage.get(key);
    if (pending === undefined) {
      pending = checkOne(image, policies, deps, verifier, signal);
      byImage.set(key, pending);
    }
    return pending;
  };
  await deps.registry.authorize?.(repositoriesToAuthorize(locations, policies), signal);
  const limit = (deps.limits ?? defaultImageLimits).concurrency;
  const checked: Checked[] = await mapBounded(locations, limit, async (location): Promise<Checked> => {
    if (location.image === undefined)
      return { location, image: '(none)', result: { ok: false, message: 'the container names no image' } };
    return { location, image: location.image, result: await checkImage(location.image) };
  });
  const pins: Pin[] = [];
  const audit = new Map<string, ImageAudit>();
  for (const { location, image, result } of checked) {
    if (!result.ok)
      return {
        ok: false,
        image,
        subject: location.subject,
        message: imageRefusalMessage(image, location, result.message),
      };
    const pinned = pinnedReference(result.ref, result.evidence.digest);
    pins.push({ location, pinned });
    audit.set(pinned, {
      image: pinned,
      digest: result.evidence.digest,
      signer: result.evidence.signer,
      format: result.evidence.format,
      ...(result.evidence.attestations.length === 0 ? {} : { attestations: result.evidence.attestations }),
    });
  }
  return { ok: true, objects: pinImages(objects, pins), images: [...audit.values()] };
}

/** The repositories of the images a policy covers (those the checks will read). */
function repositoriesToAuthorize(
  locations: readonly ImageLocation[],
  policies: readonly ImagePolicySpec[],
): Repo[] {
  const repos = new Map<string, Repo>();
  for (const { image } of locations) {
    const parsed = image === undefined ? undefined : parseImageReference(image);
    if (parsed?.ok !== true) continue;
    const name = canonicalName(parsed.ref);
    if (policyFor(policies, name) !== undefined)
      repos.set(name, { registry: parsed.ref.registry, repository: parsed.ref.repository });
  }
  return [...repos.values()];
}

async function checkOne(
  image: string,
  policies: readonly ImagePolicySpec[],
  deps: ImageCheckDeps,
  verifier: DigestVerifier,
  signal: AbortSignal,
): Promise<{ ok: true; ref: ImageReference; evidence: ImageEvidence } | { ok: false; message: string }> {
  const parsed = parseImageReference(image);
  if (!parsed.ok) return { ok: false, message: parsed.message };
  const ref = parsed.ref;
  const name = canonicalName(ref);
  const policyIndex = policyFor(policies, name);
  if (policyIndex === undefined)
    return {
      ok: false,
      message: `${name} matches no policy of spec.verify.images (images not named by a policy are refused)`,
    };
  try {
    const resolved = await deps.trustFor(policyIndex, signal);
    const known = ref.digest === undefined ? undefined : verifier.cached(ref, ref.digest, resolved);
    if (known !== undefined) return { ok: true, ref, evidence: known };
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const manifest = await deps.registry.manifest(ref, reference, signal);
    if (manifest === undefined)
      return { ok: false, message: `${name}:${reference} is not in the registry (HTTP 404)` };
    const evidence = await verifier.verify(ref, manifest, resolved, signal);
    return { ok: true, ref, evidence };
  } catch (error) {
    signal.throwIfAborted();
    const cause = error instanceof Error ? error.message : String(error);
    return { ok: false, message: `spec.verify.images[${policyIndex}]: ${cause}` };
  }
}
