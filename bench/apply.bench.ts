/**
 * Benchmark: cold server-side apply of 1,000 and 5,000 ConfigMaps from files, Signet against
 * `kubectl apply --server-side -f <dir>` on the same fresh API server, each into a fresh namespace;
 * then the no-op re-plan of the 5,000 applied objects over a listed snapshot.
 *
 * Requests are counted in the client and cross-checked with the API server audit log (by user
 * agent) and `apiserver_request_total` (APPLY on configmaps, and 429s).
 *
 * Run: node bench/apply.bench.ts   (prints one JSON line, then human lines)
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { repoRoot, startControlPlane } from '../e2e/support/controlplane.ts';
import { applyPlan } from '../src/apply/apply.ts';
import { summariseChangeSet } from '../src/apply/changeset.ts';
import { createResourceManager } from '../src/apply/manager.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { inventoryId } from '../src/plan/inventory.ts';
import { planChanges, summarisePlan } from '../src/plan/plan.ts';
import { identityOf, type KubeObject } from '../src/render/object.ts';
import { renderManifests, type SourceFile } from '../src/render/render.ts';
import { applyScope } from '../src/render/scope.ts';

const execFileAsync = promisify(execFile);
const owner = { name: 'bench', namespace: 'signet-system' };
const userAgent = 'signet-bench/0.1.0';

export interface ApplyBenchCase {
  readonly objects: number;
  readonly signetSeconds: number;
  readonly kubectlSeconds: number;
  readonly wallTimeRatio: number;
  readonly signetRequests: number;
  readonly signetRequestsPerObject: number;
  readonly auditSignetRequests: number | undefined;
  readonly metricsApplyDelta: number;
  readonly throttled429: number;
}

export interface ApplyBenchResult {
  readonly cases: readonly ApplyBenchCase[];
  readonly noop: {
    readonly objects: number;
    readonly listRequests: number;
    readonly planSeconds: number;
    readonly requestsPerObjectWithCache: number;
    readonly unchanged: number;
  };
}

async function writeManifests(dir: string, count: number): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const perFile = 100;
  for (let start = 0; start < count; start += perFile) {
    const docs: string[] = [];
    for (let index = start; index < Math.min(count, start + perFile); index++) {
      docs.push(
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${index}\ndata:\n  index: "${index}"\n  payload: "${'x'.repeat(64)}"\n`,
      );
    }
    await writeFile(join(dir, `cm-${String(start).padStart(5, '0')}.yaml`), docs.join('---\n'));
  }
}

async function readSourceFiles(dir: string): Promise<SourceFile[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (name) => ({ path: name, content: await readFile(join(dir, name)) })));
}

function sumMetric(metrics: string, predicate: (labels: string) => boolean): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.indexOf('}');
    if (predicate(line.slice(0, close))) total += Number(line.slice(close + 1).trim());
  }
  return total;
}

async function countAudit(path: string, agent: string): Promise<number> {
  const text = await readFile(path, 'utf8');
  let count = 0;
  for (const line of text.split('\n')) {
    if (line.includes('"stage":"ResponseComplete"') && line.includes(`"userAgent":"${agent}`)) count++;
  }
  return count;
}

export async function runApplyBench(sizes: readonly number[] = [1_000, 5_000]): Promise<ApplyBenchResult> {
  const stateDir = join(repoRoot, '.signet', `bench-apply-${process.pid}`);
  const plane = await startControlPlane({
    stateDir,
    reuse: false,
    ownerPid: process.pid,
    readyTimeoutMs: 180_000,
  });
  const work = join(stateDir, 'manifests');
  const kube = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent, connections: 32 });
  const manager = createResourceManager(kube, owner);
  const cases: ApplyBenchCase[] = [];
  let noop: ApplyBenchResult['noop'] | undefined;
  try {
    for (const size of sizes) {
      const dir = join(work, String(size));
      await writeManifests(dir, size);
      const kubectlNs = `bench-kubectl-${size}`;
      const signetNs = `bench-signet-${size}`;
      for (const name of [kubectlNs, signetNs]) {
        await kube.apply(
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
          { fieldManager: 'bench-setup' },
        );
      }

      const kubectlStart = performance.now();
      await execFileAsync(
        join(plane.binDir, 'kubectl'),
        ['--kubeconfig', plane.kubeconfigPath, 'apply', '--server-side', '-n', kubectlNs, '-f', dir],
        { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
      );
      const kubectlSeconds = (performance.now() - kubectlStart) / 1000;

      const metricsBefore = (await plane.adminGet('/metrics')).body;
      const auditBefore = await countAudit(plane.auditLogPath, userAgent).catch(() => undefined);
      const requestsBefore = kube.stats.total;
      const signetStart = performance.now();
      const rendered = renderManifests({ files: await readSourceFiles(dir) }, { owner });
      await kube.discovery.prefetch(rendered.map((item) => item.object.apiVersion));
      const desired = applyScope(rendered, { targetNamespace: signetNs }, (apiVersion, kind) =>
        kube.discovery.scopeOf(apiVersion, kind),
      ).map((item) => item.object);
      const plan = planChanges({
        desired,
        inventory: undefined,
        live: new Map(),
        owner,
        fieldManager: 'signet',
      });
      const changeSet = await applyPlan(manager, plan, { concurrency: 64 });
      const signetSeconds = (performance.now() - signetStart) / 1000;
      const summary = summariseChangeSet(changeSet);
      if (summary.created !== size)
        throw new Error(`expected ${size} created, got ${JSON.stringify(summary)}`);
      const signetRequests = kube.stats.total - requestsBefore;
      const metricsAfter = (await plane.adminGet('/metrics')).body;
      const auditAfter = await countAudit(plane.auditLogPath, userAgent).catch(() => undefined);
      const isConfigMapApply = (labels: string): boolean =>
        labels.includes('verb="APPLY"') && labels.includes('resource="configmaps"');
      const is429 = (labels: string): boolean => labels.includes('code="429"');
      cases.push({
        objects: size,
        signetSeconds,
        kubectlSeconds,
        wallTimeRatio: signetSeconds / kubectlSeconds,
        signetRequests,
        signetRequestsPerObject: signetRequests / size,
        auditSignetRequests:
          auditBefore === undefined || auditAfter === undefined ? undefined : auditAfter - auditBefore,
        metricsApplyDelta:
          sumMetric(metricsAfter, isConfigMapApply) - sumMetric(metricsBefore, isConfigMapApply),
        throttled429: sumMetric(metricsAfter, is429),
      });

      if (size === sizes[sizes.length - 1]) {
        const listBefore = kube.stats.total;
        const listed = await kube.list('v1', 'ConfigMap', {
          namespace: signetNs,
          labelSelector: 'signet.dev/name=bench',
        });
        const listRequests = kube.stats.total - listBefore;
        const live = new Map<string, KubeObject>(
          listed.items.map((item) => [inventoryId(identityOf(item)), item]),
        );
        const planStart = performance.now();
        const replan = planChanges({
          desired,
          inventory: plan.inventory,
          live,
          owner,
          fieldManager: 'signet',
        });
        const planSeconds = (performance.now() - planStart) / 1000;
        const applyBefore = kube.stats.total;
        await applyPlan(manager, replan);
        noop = {
          objects: size,
          listRequests,
          planSeconds,
          requestsPerObjectWithCache: (kube.stats.total - applyBefore) / size,
          unchanged: summarisePlan(replan).unchanged,
        };
      }
    }
  } finally {
    await kube.close();
    await plane.stop();
  }
  if (noop === undefined) throw new Error('no sizes given');
  return { cases, noop };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runApplyBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const c of result.cases) {
    process.stdout.write(
      `${c.objects} ConfigMaps: signet ${c.signetSeconds.toFixed(2)} s vs kubectl ${c.kubectlSeconds.toFixed(2)} s ` +
        `(ratio ${c.wallTimeRatio.toFixed(2)}, target ≤ 0.5); ${c.signetRequestsPerObject.toFixed(3)} requests/object ` +
        `(client ${c.signetRequests}, audit ${c.auditSignetRequests ?? 'n/a'}, APPLY metric Δ ${c.metricsApplyDelta}; target ≤ 1.1); 429s: ${c.throttled429}\n`,
    );
  }
  const n = result.noop;
  process.stdout.write(
    `no-op re-plan of ${n.objects}: ${n.unchanged} unchanged, plan ${(n.planSeconds * 1000).toFixed(0)} ms over a snapshot ` +
      `listed in ${n.listRequests} requests; ${n.requestsPerObjectWithCache} requests/object with the cache (target ≤ 0.01)\n`,
  );
}
