/**
 * Benchmark: the operator on a Kustomize overlay, as its own process (`bin/signet run`, as in a pod),
 * on a fresh real API server; one signed Git repository served over HTTPS holds every case.
 *
 * - Cold apply of `largest` ConfigMaps from an overlay (`k<N>/overlay`: `../base` of files of 100
 *   ConfigMaps, a namePrefix and a label): wall time from the GitRepository's creation until
 *   status.lastAppliedRevision is the commit (fetch, verify, the build, plan, apply), once with each
 *   engine (SIGNET_KUSTOMIZE_ENGINE_MODE=native: the native engine confined by Landlock; =wasm),
 *   against `kubectl apply --server-side -k` of the same overlay on the same API server, made just
 *   before it (kubectl's Kustomize is native); the native `kustomize build` of it is timed too.
 * - Operator RSS with the engine loaded: after each cold apply, a fresh process with the objects in
 *   place, one reconcile (the overlay built again), then `idleMs` of idling, VmRSS (and VmHWM, the
 *   peak, the build's linear memory included), as drift.bench.ts measures plain directories. The slope per object
 *   is taken between the overlay of `smallest` and of `largest` ConfigMaps; the engine's fixed cost
 *   is the overlay of `smallest` minus the plain directory of as many ConfigMaps.
 *
 * Run: node bench/kustomize-apply.bench.ts   (or `node bench/run.ts kustomize-apply`)
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ControlPlane, repoRoot } from '../e2e/support/controlplane.ts';
import { createObjects, gitRepositoryObject, trustObjects } from '../e2e/support/fixtures.ts';
import { ensureBuilt, signetRunArgs, startOperatorProcess } from '../e2e/support/operator-process.ts';
import { createSignedRepo, installCrd, type SignedRepo } from '../e2e/support/signet.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { kustomizeCacheDir } from '../src/render/kustomize-engine.ts';
import { type BenchRow, fmt, formatRowLine, mib } from './rows.ts';
import { startBenchPlane, tearDownBench, watchStatusUntil } from './support.ts';

const execFileAsync = promisify(execFile);
const perFile = 100;
const repoName = 'bench';

function configMaps(start: number, end: number): string {
  const docs: string[] = [];
  for (let index = start; index < end; index++) {
    docs.push(
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${index}\ndata:\n  index: "${index}"\n  payload: "${'x'.repeat(64)}"\n`,
    );
  }
  return docs.join('---\n');
}

/** `k<count>/base` (files of 100 ConfigMaps) and `k<count>/overlay` (../base, a prefix, a label). */
export function overlayFiles(count: number): Record<string, string> {
  const files: Record<string, string> = {};
  const names: string[] = [];
  for (let start = 0; start < count; start += perFile) {
    const name = `cm-${String(start).padStart(5, '0')}.yaml`;
    names.push(name);
    files[`k${count}/base/${name}`] = configMaps(start, Math.min(count, start + perFile));
  }
  files[`k${count}/base/kustomization.yaml`] = `resources:\n${names.map((n) => `- ${n}\n`).join('')}`;
  files[`k${count}/overlay/kustomization.yaml`] =
    'resources:\n- ../base\nnamePrefix: prod-\nlabels:\n- pairs:\n    env: prod\n';
  return files;
}

/** `plain<count>/`: the same ConfigMaps as plain files (no kustomization). */
function plainFiles(count: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let start = 0; start < count; start += perFile) {
    files[`plain${count}/cm-${String(start).padStart(5, '0')}.yaml`] = configMaps(
      start,
      Math.min(count, start + perFile),
    );
  }
  return files;
}

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

async function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (kib === undefined) throw new Error(`no ${field} for pid ${pid}`);
  return Number(kib) * 1_024;
}

/** The operator's SIGNET_KUSTOMIZE_ENGINE_MODE in a case ('plain' for a directory of plain files). */
export type CaseEngine = 'native' | 'wasm' | 'plain';

export interface OperatorCase {
  readonly name: string;
  readonly path: string;
  readonly objects: number;
  readonly engine: CaseEngine;
  /** From the GitRepository's creation to status.lastAppliedRevision = the commit. */
  readonly coldApplySeconds: number;
  readonly rssAfterReconcileBytes: number;
  readonly rssIdleBytes: number;
  readonly peakRssBytes: number;
}

export interface KustomizeApplyBenchResult {
  readonly largest: number;
  readonly smallest: number;
  /** kubectl apply --server-side -k just before and just after the operator's cold apply. */
  readonly kubectlSeconds: readonly number[];
  readonly nativeBuildSeconds: number;
  readonly cases: readonly OperatorCase[];
  readonly loadAverage: string;
  readonly idleMs: number;
  readonly engines: readonly ('native' | 'wasm')[];
}

function startSignet(
  signetBin: string,
  plane: ControlPlane,
  namespace: string,
  cacheDir: string,
  engine: CaseEngine,
) {
  return startOperatorProcess(
    signetBin,
    signetRunArgs({
      kubeconfig: plane.kubeconfigPath,
      namespace,
      cacheDir,
      extra: ['--max-objects', '50000'],
    }),
    { env: { SIGNET_LOG_LEVEL: 'info', SIGNET_KUSTOMIZE_ENGINE_MODE: engine === 'plain' ? 'auto' : engine } },
  );
}

/**
 * A fresh `signet run` on the case's namespace creates the GitRepository: the cold apply, timed.
 * Then, as drift.bench.ts measures the operator's RSS, another fresh process with the objects in
 * place (a pod restarted at that size): one reconcile asked for (the render cache is cold, so the
 * overlay is built again), VmRSS right after it and after `idleMs`, and VmHWM.
 */
async function runOperatorCase(
  plane: ControlPlane,
  client: KubeClient,
  repo: SignedRepo,
  commit: string,
  signetBin: string,
  cacheDir: string,
  spec: { name: string; path: string; objects: number; engine: CaseEngine },
  idleMs: number,
): Promise<OperatorCase> {
  const namespace = `bench-${spec.name}`;
  await client.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { fieldManager: 'bench' },
  );
  await createObjects(client, trustObjects(repo, namespace));
  const collection = `/apis/signet.dev/v1alpha1/namespaces/${namespace}/gitrepositories`;
  let coldApplySeconds = Number.NaN;
  const first = startSignet(signetBin, plane, namespace, join(cacheDir, spec.name), spec.engine);
  try {
    await first.metricsPort(120_000);
    const started = performance.now();
    const created = await client.apply(
      gitRepositoryObject(repo, namespace, repoName, { interval: '30m', timeout: '30m', path: spec.path }),
      { fieldManager: 'bench' },
    );
    await watchStatusUntil(
      client,
      collection,
      repoName,
      created.object.metadata.resourceVersion ?? '0',
      (status) => status.lastAppliedRevision === `main@sha1:${commit}`,
      1_800_000,
      `${spec.objects} ConfigMaps of ${spec.path} applied`,
    );
    coldApplySeconds = (performance.now() - started) / 1_000;
  } finally {
    await first.stop('SIGTERM', 30_000);
  }
  const second = startSignet(signetBin, plane, namespace, join(cacheDir, `${spec.name}-2`), spec.engine);
  try {
    await second.metricsPort(120_000);
    const pid = second.child.pid;
    if (pid === undefined) throw new Error('operator process has no pid');
    const value = `${Date.now()}`;
    const patched = await client.request({
      method: 'PATCH',
      path: `${collection}/${repoName}`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ metadata: { annotations: { 'reconcile.signet.dev/requestedAt': value } } }),
      timeoutMs: 10_000,
    });
    if (patched.status !== 200) throw new Error(`requesting a reconcile: HTTP ${patched.status}`);
    const resourceVersion =
      (JSON.parse(patched.body) as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ??
      '0';
    await watchStatusUntil(
      client,
      collection,
      repoName,
      resourceVersion,
      (status) => status.lastHandledReconcileAt === value,
      1_800_000,
      `a fresh operator process to reconcile ${spec.path}`,
    );
    const rssAfterReconcileBytes = await procStatusBytes(pid, 'VmRSS');
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    return {
      ...spec,
      coldApplySeconds,
      rssAfterReconcileBytes,
      rssIdleBytes: await procStatusBytes(pid, 'VmRSS'),
      peakRssBytes: await procStatusBytes(pid, 'VmHWM'),
    };
  } finally {
    await second.stop('SIGTERM', 30_000);
  }
}

export async function runKustomizeApplyBench(
  smallest = Number(process.env.SIGNET_BENCH_KUSTOMIZE_SMALL ?? 1_000),
  largest = Number(process.env.SIGNET_BENCH_KUSTOMIZE_LARGE ?? 5_000),
  idleMs = Number(process.env.SIGNET_BENCH_KUSTOMIZE_IDLE_MS ?? 20_000),
  engines = (process.env.SIGNET_BENCH_KUSTOMIZE_ENGINES ?? 'native,wasm')
    .split(',')
    .filter((engine): engine is 'native' | 'wasm' => engine === 'native' || engine === 'wasm'),
): Promise<KustomizeApplyBenchResult> {
  const stateDir = join(repoRoot, '.signet', `bench-kustomize-apply-${process.pid}`);
  const work = await mkdtemp(join(tmpdir(), 'signet-bench-kustomize-apply-'));
  let loadAverage = '';
  let plane: ControlPlane | undefined;
  let client: KubeClient | undefined;
  let repo: SignedRepo | undefined;
  try {
    const signetBin = await ensureBuilt();
    plane = await startBenchPlane(stateDir);
    client = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: 'signet-bench-user/0.1.0' });
    await installCrd(client);
    repo = await createSignedRepo('kustomize-apply');
    const files = {
      ...overlayFiles(smallest),
      ...overlayFiles(largest),
      ...plainFiles(smallest),
      ...plainFiles(largest),
    };
    const commit = await repo.commit(files, { message: 'overlays\n' });

    // The baselines on the same overlay: native `kustomize build`, then kubectl's -k (native too).
    await writeTree(join(work, 'tree'), files);
    const overlay = join(work, 'tree', `k${largest}`, 'overlay');
    const started = performance.now();
    await execFileAsync(join(kustomizeCacheDir(), 'kustomize'), ['build', overlay], {
      maxBuffer: 256 * 1024 * 1024,
      timeout: 1_800_000,
    });
    const nativeBuildSeconds = (performance.now() - started) / 1_000;
    const kubectl = async (suffix: string): Promise<number> => {
      const ns = `bench-kubectl-${largest}-${suffix}`;
      await kube.apply(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
        { fieldManager: 'bench' },
      );
      const begun = performance.now();
      await execFileAsync(
        join(kubePlane.binDir, 'kubectl'),
        ['--kubeconfig', kubePlane.kubeconfigPath, 'apply', '--server-side', '-n', ns, '-k', overlay],
        { maxBuffer: 256 * 1024 * 1024, timeout: 1_800_000 },
      );
      return (performance.now() - begun) / 1_000;
    };
    const kube = client;
    const kubePlane = plane;
    const cacheDir = join(work, 'cache');
    const cases: OperatorCase[] = [];
    const run = async (name: string, path: string, objects: number, engine: CaseEngine) => {
      cases.push(
        await runOperatorCase(
          kubePlane,
          kube,
          repo as SignedRepo,
          commit,
          signetBin,
          cacheDir,
          { name, path, objects, engine },
          idleMs,
        ),
      );
      process.stderr.write(`${JSON.stringify(cases[cases.length - 1])}\n`);
    };
    // kubectl just before and just after the operator's cold apply (the machine's speed drifts).
    const kubectlSeconds = [await kubectl('before')];
    loadAverage = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
    for (const engine of engines) await run(`k${largest}-${engine}`, `k${largest}/overlay`, largest, engine);
    kubectlSeconds.push(await kubectl('after'));
    for (const engine of engines)
      await run(`k${smallest}-${engine}`, `k${smallest}/overlay`, smallest, engine);
    await run(`plain${smallest}`, `plain${smallest}`, smallest, 'plain');
    await run(`plain${largest}`, `plain${largest}`, largest, 'plain');
    return { largest, smallest, kubectlSeconds, nativeBuildSeconds, cases, loadAverage, idleMs, engines };
  } finally {
    await tearDownBench({ repo, client, plane }, [work, stateDir]);
  }
}

const signedMib = (bytes: number) => `${bytes >= 0 ? '+' : ''}${fmt(mib(bytes), 1)}`;

/** Rows for bench/run.ts: for each engine, the cold apply, the RSS slope and the fixed cost. */
export function benchRows(r: KustomizeApplyBenchResult): BenchRow[] {
  return r.engines.flatMap((engine) => engineRows(r, engine));
}

const fallbackTarget =
  'reported: the fallback where Landlock is missing (the target judges the chosen design)';

const engineLabel = {
  native: 'the native engine confined by Landlock',
  wasm: 'the WebAssembly engine',
} as const;

function engineRows(r: KustomizeApplyBenchResult, engine: 'native' | 'wasm'): BenchRow[] {
  const find = (name: string) => r.cases.find((c) => c.name === name);
  const large = find(`k${r.largest}-${engine}`);
  const small = find(`k${r.smallest}-${engine}`);
  const plain = find(`plain${r.smallest}`);
  const plainLarge = find(`plain${r.largest}`);
  const label = engineLabel[engine];
  // The targets judge the chosen design (the Landlock engine); the WebAssembly fallback is reported.
  const chosen = engine === 'native';
  const rows: BenchRow[] = [];
  if (large !== undefined) {
    const fastest = Math.min(...r.kubectlSeconds);
    const ratio = large.coldApplySeconds / fastest;
    rows.push({
      bench: 'kustomize-apply',
      figure: `cold apply of ${r.largest} ConfigMaps from a Kustomize overlay with ${label} (operator process: fetch, verify, build, plan, apply; 1 round; load average ${r.loadAverage} on ${cpus().length} cores)`,
      value: `${fmt(large.coldApplySeconds)} s`,
      baseline: `kubectl apply --server-side -k ${r.kubectlSeconds.map((k) => `${fmt(k)} s`).join(' before / ')} after (its native kustomize build alone: ${fmt(r.nativeBuildSeconds)} s)`,
      ratio: `${fmt(ratio)}× of the faster kubectl run`,
      target: chosen ? '≤ 0.5× kubectl apply --server-side -k' : fallbackTarget,
      pass: chosen ? ratio <= 0.5 : 'info',
    });
  }
  if (large !== undefined && small !== undefined) {
    const per = (pick: (c: OperatorCase) => number) =>
      (pick(large) - pick(small)) / 1_024 / (large.objects - small.objects);
    const slope = per((c) => c.rssIdleBytes);
    rows.push({
      bench: 'kustomize-apply',
      figure: `operator process RSS with ${label} (fresh process with the objects applied, one reconcile building the overlay, ${r.idleMs / 1_000} s idle) at ${small.objects} / ${large.objects} objects`,
      value: `RSS idle ${fmt(mib(small.rssIdleBytes), 1)} / ${fmt(mib(large.rssIdleBytes), 1)} MiB (right after the reconcile ${fmt(mib(small.rssAfterReconcileBytes), 1)} / ${fmt(mib(large.rssAfterReconcileBytes), 1)}; peak ${fmt(mib(small.peakRssBytes), 1)} / ${fmt(mib(large.peakRssBytes), 1)}); slope idle ${fmt(slope)} KiB/object, right after the reconcile ${fmt(per((c) => c.rssAfterReconcileBytes))}, peak ${fmt(per((c) => c.peakRssBytes))}`,
      baseline:
        plainLarge === undefined || plain === undefined
          ? 'target 10 KiB/object'
          : `the same ConfigMaps as plain files: RSS idle ${fmt(mib(plain.rssIdleBytes), 1)} / ${fmt(mib(plainLarge.rssIdleBytes), 1)} MiB, slope ${fmt((plainLarge.rssIdleBytes - plain.rssIdleBytes) / 1_024 / (plainLarge.objects - plain.objects))} KiB/object`,
      ratio: `${fmt(slope / 10)}× of target`,
      target: chosen ? '≤ 10 KiB/object' : fallbackTarget,
      pass: chosen ? slope <= 10 : 'info',
    });
  }
  if (small !== undefined && plain !== undefined) {
    rows.push({
      bench: 'kustomize-apply',
      figure: `the fixed cost of ${label}: operator RSS for ${r.smallest} ConfigMaps from an overlay minus the same as plain files (fresh processes)`,
      value: `${signedMib(small.rssIdleBytes - plain.rssIdleBytes)} MiB idle (right after the reconcile ${signedMib(small.rssAfterReconcileBytes - plain.rssAfterReconcileBytes)}, peak ${signedMib(small.peakRssBytes - plain.peakRssBytes)}); cold apply ${fmt(small.coldApplySeconds)} s vs ${fmt(plain.coldApplySeconds)} s plain`,
      baseline: `plain directory: RSS idle ${fmt(mib(plain.rssIdleBytes), 1)} MiB`,
      ratio: '–',
      target: 'informational: the engine fixed cost (no target)',
      pass: 'info',
    });
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runKustomizeApplyBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const row of benchRows(result)) process.stdout.write(`${formatRowLine(row)}\n`);
}
