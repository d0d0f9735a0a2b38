/**
 * Benchmark: image verification (spec.verify.images) of a revision naming 100 distinct images, each
 * in its own repository of the real test registry (TLS, token auth; test/support/oci-registry.ts)
 * and signed by the real cosign with a key, in cosign's legacy `.sig` format (and a second set in
 * the bundle-as-referrer format). verifyDesiredImages is the step the operator and the CLI share.
 *
 * - Per image, cold (empty verdict cache, tokens warm) and warm (verdict cached): p50 of 100
 *   single-image checks run one after another.
 * - Registry requests per image: the 100-image revision checked cold (fresh process: tokens too),
 *   counted at the registry's own request log, split into API requests (manifest, signature
 *   manifest, blob) and auth (the /v2/ challenge and /token); then warm by digest and by tag.
 * - Baseline, same run: `cosign verify --key` per image (the real CLI) on 10 of the images.
 *
 * Run: node bench/images.bench.ts   (or `node bench/run.ts images`)
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseGitRepository } from '../src/api/gitrepository.ts';
import { type ImageCheck, type PipelineDeps, verifyDesiredImages } from '../src/controller/pipeline.ts';
import { VerdictCache } from '../src/images/cache.ts';
import type { KubeObject } from '../src/render/object.ts';
import { createTrustMaterialCache } from '../src/verify/trust.ts';
import {
  type CosignKeyPair,
  ensureCosign,
  generateKeyPair,
  type SignatureFormat,
  signKeyed,
  verifyKeyed,
} from '../test/support/cosign.ts';
import { makeTempDir } from '../test/support/git-fixtures.ts';
import {
  type OciRegistry,
  type PushedImage,
  pushImage,
  startRegistry,
} from '../test/support/oci-registry.ts';
import { type BenchRow, fmt, formatRowLine } from './rows.ts';

export interface ImagesBenchOptions {
  readonly images?: number;
  readonly cosignSamples?: number;
}

export interface FormatResult {
  readonly format: SignatureFormat;
  readonly images: number;
  /** The whole revision, cold (fresh verdict cache; tokens cold on the first format only). */
  readonly revisionColdMs: number;
  readonly revisionWarmMs: number;
  readonly coldApiRequestsPerImage: number;
  readonly coldAuthRequestsPerImage: number;
  readonly warmRequestsByDigest: number;
  readonly warmRequestsByTag: number;
  readonly perImageColdP50Ms: number;
  readonly perImageWarmP50Ms: number;
}

export interface ImagesBenchResult {
  readonly legacy: FormatResult;
  readonly bundle: FormatResult;
  readonly cosignVerifyP50Ms: number;
  readonly cosignRequestsPerImage: number;
  readonly totalSeconds: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

function deployment(name: string, images: readonly string[]): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'bench' },
    spec: { template: { spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } } },
  } as KubeObject;
}

function harness(registry: OciRegistry, key: CosignKeyPair) {
  const repo = parseGitRepository({
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name: 'bench', namespace: 'bench' },
    spec: {
      url: 'https://git.example.com/bench.git',
      ref: { branch: 'main' },
      verify: {
        signersRef: { kind: 'ConfigMap', name: 'signers' },
        imagePullSecretRef: { name: 'registry' },
        images: [{ match: [`${registry.host}/**`], keysRef: { kind: 'Secret', name: 'keys' } }],
      },
    },
  });
  const references: Record<string, Record<string, string>> = {
    registry: { '.dockerconfigjson': registry.dockerConfigJson, 'ca.crt': registry.caPem },
    keys: { 'cosign.pub': key.publicKeyPem },
  };
  return async (objects: KubeObject[], cache: VerdictCache): Promise<ImageCheck> => {
    const deps: PipelineDeps = {
      source: undefined as never,
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
      imageCache: cache,
      readReference: async (ref) => references[ref.name] ?? {},
    };
    const result = await verifyDesiredImages(repo, objects, deps, AbortSignal.timeout(300_000));
    if (!result.ok) throw new Error(result.message);
    return result;
  };
}

async function pushSigned(
  registry: OciRegistry,
  key: CosignKeyPair,
  prefix: string,
  count: number,
  format: SignatureFormat,
): Promise<PushedImage[]> {
  // Four cosign processes at a time: signing is setup, not measured.
  const images: PushedImage[] = new Array(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const image = await pushImage(registry, `${prefix}/app${i}`, 'v1');
      await signKeyed(registry, image.pinned, key, { format });
      images[i] = image;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return images;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await work();
  return [value, performance.now() - started];
}

async function measureFormat(
  registry: OciRegistry,
  check: ReturnType<typeof harness>,
  images: readonly PushedImage[],
  format: SignatureFormat,
): Promise<FormatResult> {
  const byTag = [
    deployment(
      'by-tag',
      images.map((i) => i.reference),
    ),
  ];
  const byDigest = [
    deployment(
      'by-digest',
      images.map((i) => i.pinned),
    ),
  ];
  const isAuth = (path: string) => path === '/token' || path === '/v2/';
  registry.resetRequests();
  const cache = new VerdictCache(10_000);
  const [, revisionColdMs] = await timed(() => check(byTag, cache));
  const cold = registry.requests();
  registry.resetRequests();
  const [, revisionWarmMs] = await timed(() => check(byDigest, cache));
  const warmRequestsByDigest = registry.requests().length;
  registry.resetRequests();
  await check(byTag, cache);
  const warmRequestsByTag = registry.requests().length;
  const coldTimes: number[] = [];
  const warmTimes: number[] = [];
  const perImageCache = new VerdictCache(10_000);
  for (const image of images) {
    const objects = [deployment('one', [image.reference])];
    coldTimes.push((await timed(() => check(objects, perImageCache)))[1]);
    warmTimes.push((await timed(() => check(objects, perImageCache)))[1]);
  }
  return {
    format,
    images: images.length,
    revisionColdMs,
    revisionWarmMs,
    coldApiRequestsPerImage: cold.filter((r) => !isAuth(r.path)).length / images.length,
    coldAuthRequestsPerImage: cold.filter((r) => isAuth(r.path)).length / images.length,
    warmRequestsByDigest,
    warmRequestsByTag,
    perImageColdP50Ms: median(coldTimes),
    perImageWarmP50Ms: median(warmTimes),
  };
}

export async function runImagesBench(options: ImagesBenchOptions = {}): Promise<ImagesBenchResult> {
  const started = performance.now();
  const count = options.images ?? 100;
  await ensureCosign();
  const registry = await startRegistry();
  const dir = await makeTempDir('bench-images-');
  try {
    const key = await generateKeyPair(dir);
    process.stdout.write(`pushing and signing ${count} + ${count} images...\n`);
    const legacyImages = await pushSigned(registry, key, 'legacy', count, 'legacy-sig-tag');
    const bundleImages = await pushSigned(registry, key, 'bundle', count, 'bundle-referrer');
    const check = harness(registry, key);
    const legacy = await measureFormat(registry, check, legacyImages, 'legacy-sig-tag');
    const bundle = await measureFormat(registry, check, bundleImages, 'bundle-referrer');
    const cosignTimes: number[] = [];
    const samples = legacyImages.slice(0, options.cosignSamples ?? 10);
    registry.resetRequests();
    for (const image of samples)
      cosignTimes.push(
        (await timed(() => verifyKeyed(registry, image.pinned, key, { format: 'legacy-sig-tag' })))[1],
      );
    const cosignRequestsPerImage = registry.requests().length / samples.length;
    return {
      legacy,
      bundle,
      cosignVerifyP50Ms: median(cosignTimes),
      cosignRequestsPerImage,
      totalSeconds: (performance.now() - started) / 1_000,
    };
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function benchRows(raw: unknown): BenchRow[] {
  const r = raw as ImagesBenchResult;
  const rows: BenchRow[] = [];
  for (const f of [r.legacy, r.bundle]) {
    const name = f.format === 'legacy-sig-tag' ? 'cosign .sig tag' : 'sigstore bundle referrer';
    const legacy = f.format === 'legacy-sig-tag';
    rows.push(
      {
        bench: 'images',
        figure: `per image, ${name}, keyed (p50 of ${f.images} single-image checks)`,
        value: `cold ${fmt(f.perImageColdP50Ms)} ms, warm ${fmt(f.perImageWarmP50Ms, 3)} ms`,
        baseline: `cosign verify --key ${fmt(r.cosignVerifyP50Ms, 0)} ms/image (legacy .sig)`,
        ratio: `cold ${fmt(f.perImageColdP50Ms / r.cosignVerifyP50Ms, 3)}×, warm ${fmt(f.perImageWarmP50Ms / r.cosignVerifyP50Ms, 4)}×`,
        target: 'no published anchor: reported against cosign verify',
        pass: 'info',
      },
      {
        bench: 'images',
        figure: `registry requests per image, ${name}, cold (${f.images} distinct images in one revision)`,
        value: `${fmt(f.coldApiRequestsPerImage)} API + ${fmt(f.coldAuthRequestsPerImage)} auth (GET /v2/ once, one /token per 32 repositories); revision ${fmt(f.revisionColdMs, 0)} ms`,
        baseline: `cosign verify ${fmt(r.cosignRequestsPerImage, 1)} requests/image`,
        ratio: `${fmt((f.coldApiRequestsPerImage + f.coldAuthRequestsPerImage) / r.cosignRequestsPerImage)}×`,
        target: legacy
          ? '≤ 3 (manifest, signature tag, signature blob), auth ≤ 0.1'
          : "≤ 3 (the issue's target; a bundle referrer takes a 4th request: manifest, referrers, referrer manifest, bundle; the first 8 in flight also try the .sig tag), auth ≤ 0.1",
        pass: f.coldApiRequestsPerImage <= 3 && f.coldAuthRequestsPerImage <= 0.1,
      },
      {
        bench: 'images',
        figure: `registry requests, ${name}, warm: the same ${f.images} images in a new revision`,
        value: `${f.warmRequestsByDigest} pinned by digest (revision ${fmt(f.revisionWarmMs, 1)} ms); ${f.warmRequestsByTag} by tag (one manifest GET per tag)`,
        baseline: `cold: ${fmt(f.coldApiRequestsPerImage * f.images, 0)} API requests`,
        ratio: `${fmt(f.warmRequestsByDigest / Math.max(1, f.coldApiRequestsPerImage * f.images))}×`,
        target: '0 by digest; 1 per tag',
        pass: f.warmRequestsByDigest === 0 && f.warmRequestsByTag <= f.images,
      },
    );
  }
  return rows;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = await runImagesBench();
  for (const row of benchRows(result)) process.stdout.write(`${formatRowLine(row)}\n`);
  process.stdout.write(`total ${fmt(result.totalSeconds, 0)} s\n`);
}
