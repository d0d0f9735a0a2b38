/**
 * Benchmark: cold server-side apply of 1,000 and 5,000 ConfigMaps on the same fresh API server,
 * each case into a fresh namespace, against `kubectl apply --server-side -f <dir>` of the same
 * files in the same run:
 *
 * - library: the files rendered from disk, planned and applied with `applyPlan` at concurrency 64
 *   (requests counted in the client, cross-checked with the audit log and `apiserver_request_total`);
 * - operator: the same files committed (signed) to a Git repository served over HTTPS by
 *   git http-backend, and the in-process operator (`startOperator`, the `signet run` defaults,
 *   notably its default apply concurrency) reconciling a new GitRepository with verify.mode HEAD:
 *   wall time from the GitRepository's creation until status.lastAppliedRevision is the commit;
 *   its API requests (status and Event writes included) and 429s from the audit log by user agent;
 *   where the time went from the Git source's calls and the operator's requests in the audit log.
 *
 * Then the no-op re-plan of the 5,000 applied objects over a listed snapshot.
 *
 * Run: node bench/apply.bench.ts   (prints one JSON line, then the rows)
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ControlPlane, repoRoot } from '../e2e/support/controlplane.ts';
import { createObjects, gitRepositoryObject, trustObjects } from '../e2e/support/fixtures.ts';
import { createSignedRepo, installCrd, type SignedRepo } from '../e2e/support/signet.ts';
import { applyPlan } from '../src/apply/apply.ts';
import { summariseChangeSet } from '../src/apply/changeset.ts';
import { createResourceManager } from '../src/apply/manager.ts';
import { managedSelector } from '../src/controller/live-cache.ts';
import { type RunningOperator, startOperator } from '../src/controller/operator.ts';
import type { FetchedRepository, SourcePort } from '../src/controller/ports.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { inventoryId } from '../src/plan/inventory.ts';
import { planChanges, summarisePlan } from '../src/plan/plan.ts';
import { identityOf, type KubeObject } from '../src/render/object.ts';
import { renderManifests, type SourceFile } from '../src/render/render.ts';
import { applyScope } from '../src/render/scope.ts';
import { createGitSource } from '../src/source/git-source.ts';
import { createLogger } from '../src/util/logger.ts';
import { type BenchRow, fmt, formatRowLine } from './rows.ts';
import { startBenchPlane, waitUntil, watchStatusUntil } from './support.ts';

const execFileAsync = promisify(execFile);
const owner = { name: 'bench', namespace: 'signet-system' };
const userAgent = 'signet-bench/0.1.0';
/** The in-process operator's user agent: its requests are counted from the audit log by it. */
const operatorUserAgent = 'signet-bench-operator/0.1.0';
/** Setup of the operator case and the watch on its status (not counted). */
const userClientAgent = 'signet-bench-user/0.1.0';
const libraryConcurrency = 64;
/**
 * Rounds of the operator case per size, each paired with a kubectl run made just before it: the
 * machine's speed drifts over a run (2 shared cores), and a lone pair can land on either side of it.
 */
const operatorRounds = Number(process.env.SIGNET_BENCH_APPLY_ROUNDS ?? 3);

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

/** Milliseconds from the GitRepository's creation; undefined when that point was not observed. */
export interface OperatorPhases {
  /** First request of the operator after the creation (the informer saw it, the reconcile began). */
  readonly firstRequestMs: number | undefined;
  readonly resolveStartMs: number | undefined;
  readonly resolveEndMs: number | undefined;
  readonly fetchStartMs: number | undefined;
  readonly fetchEndMs: number | undefined;
  /** readTree of spec.path begins after verification (fetchEnd → readTreeStart is verify). */
  readonly readTreeStartMs: number | undefined;
  readonly readTreeEndMs: number | undefined;
  /** The live cache's LIST of ConfigMaps in the namespace (before the plan). */
  readonly listStartMs: number | undefined;
  readonly listEndMs: number | undefined;
  /** The status write recording the inventory before the apply (end of render and plan). */
  readonly progressingStatusStartMs: number | undefined;
  readonly firstApplyStartMs: number | undefined;
  readonly lastApplyEndMs: number | undefined;
  /** The status write of the applied revision. */
  readonly appliedStatusEndMs: number | undefined;
  readonly eventEndMs: number | undefined;
  /** status.lastAppliedRevision seen by the bench's watch. */
  readonly statusSeenMs: number;
}

export interface OperatorApplyCase {
  readonly objects: number;
  /** 1-based; each round has its own kubectl run just before it, into a fresh namespace. */
  readonly round: number;
  readonly applyConcurrency: number;
  readonly commit: string;
  readonly seconds: number;
  readonly kubectlSeconds: number;
  readonly wallTimeRatio: number;
  /** Audit-log requests of the operator's user agent from the creation until its reconcile ended. */
  readonly requests: number;
  readonly requestsPerObject: number;
  readonly requestsByKind: Record<string, number>;
  /** 429 answers to the operator (audit log). */
  readonly throttled429: number;
  /** 429s the whole API server answered during the case (`apiserver_request_total`). */
  readonly serverThrottled429: number;
  /** `created` from the operator's "revision applied" log line. */
  readonly created: number | undefined;
  /** The reconcile's own phase durations from that line (`phasesMs`). */
  readonly operatorPhasesMs: Readonly<Record<string, number>> | undefined;
  /** CPU seconds used from the creation until the status was seen, by process (the bench process runs the operator). */
  readonly cpuSeconds: Readonly<Record<string, number>>;
  /** Signet-managed ConfigMaps already in the cluster, which the operator's cold live cache lists. */
  readonly managedConfigMapsBefore: number;
  readonly reconcileResults: Record<string, number>;
  readonly phases: OperatorPhases;
}

export interface ApplyBenchResult {
  readonly cases: readonly ApplyBenchCase[];
  readonly operator: readonly OperatorApplyCase[];
  /** 429 answers of the whole run, by user agent (audit log). */
  readonly throttled429ByUserAgent: Record<string, number>;
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

interface AuditRecord {
  readonly auditID: string;
  readonly verb: string;
  readonly resource: string;
  readonly namespace: string;
  readonly code: number;
  readonly receivedAt: number;
  readonly completedAt: number | undefined;
}

/**
 * Requests of one user agent received at or after `since` (ms since the epoch), one per auditID:
 * a watch has a ResponseStarted event long before (or without) its ResponseComplete.
 */
async function auditRequests(path: string, agent: string, since: number): Promise<AuditRecord[]> {
  const byId = new Map<string, AuditRecord>();
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (!line.includes(`"userAgent":"${agent}`)) continue;
    const event = JSON.parse(line) as {
      auditID: string;
      stage: string;
      verb: string;
      objectRef?: { resource?: string; subresource?: string; namespace?: string };
      responseStatus?: { code?: number };
      requestReceivedTimestamp: string;
      stageTimestamp: string;
    };
    const receivedAt = Date.parse(event.requestReceivedTimestamp);
    if (receivedAt < since) continue;
    const ref = event.objectRef;
    const previous = byId.get(event.auditID);
    byId.set(event.auditID, {
      auditID: event.auditID,
      verb: event.verb,
      resource:
        ref?.resource === undefined
          ? 'non-resource'
          : `${ref.resource}${ref.subresource === undefined ? '' : `/${ref.subresource}`}`,
      namespace: ref?.namespace ?? '',
      code: event.responseStatus?.code ?? previous?.code ?? 0,
      receivedAt,
      completedAt:
        event.stage === 'ResponseComplete' ? Date.parse(event.stageTimestamp) : previous?.completedAt,
    });
  }
  return [...byId.values()].sort((a, b) => a.receivedAt - b.receivedAt);
}

/** The `signet run` default of a numeric flag, read from its argument parser (src/cli/run.ts). */
async function cliDefault(flag: string): Promise<number> {
  const source = await readFile(new URL('../src/cli/run.ts', import.meta.url), 'utf8');
  const match = new RegExp(`'?${flag}'?: \\{ type: 'string', default: '(\\d+)' \\}`).exec(source);
  if (match?.[1] === undefined) throw new Error(`no default for --${flag} in src/cli/run.ts`);
  return Number(match[1]);
}

type Mark = 'resolveStart' | 'resolveEnd' | 'fetchStart' | 'fetchEnd' | 'readTreeStart' | 'readTreeEnd';

/** The Git source as the operator uses it, recording when each call started and ended (first call). */
function timedSource(inner: SourcePort, marks: Map<Mark, number>): SourcePort {
  const mark = (name: Mark) => {
    if (!marks.has(name)) marks.set(name, Date.now());
  };
  return {
    async resolve(remote, ref, signal) {
      mark('resolveStart');
      try {
        return await inner.resolve(remote, ref, signal);
      } finally {
        mark('resolveEnd');
      }
    },
    async fetch(cacheKey, remote, ref, resolved, options, signal) {
      mark('fetchStart');
      let fetched: FetchedRepository;
      try {
        fetched = await inner.fetch(cacheKey, remote, ref, resolved, options, signal);
      } finally {
        mark('fetchEnd');
      }
      return new Proxy(fetched, {
        get(target, property) {
          if (property === 'readTree') {
            return async (...args: Parameters<FetchedRepository['readTree']>) => {
              mark('readTreeStart');
              try {
                return await target.readTree(...args);
              } finally {
                mark('readTreeEnd');
              }
            };
          }
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
  };
}

/**
 * The operator case of one size: the files of `dir` committed (signed) under deploy/ of a fresh
 * repository served over HTTPS; a fresh in-process operator with the `signet run` defaults; a
 * GitRepository created in a fresh namespace; timed until its status names the commit.
 */
async function runOperatorCase(
  plane: ControlPlane,
  user: KubeClient,
  dir: string,
  size: number,
  round: number,
  kubectlSeconds: number,
): Promise<OperatorApplyCase> {
  const namespace = `bench-operator-${size}-r${round}`;
  const name = 'bench';
  const [applyConcurrency, concurrent, maxObjects] = await Promise.all([
    cliDefault('apply-concurrency'),
    cliDefault('concurrent'),
    cliDefault('max-objects'),
  ]);
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-bench-apply-'));
  let repo: SignedRepo | undefined;
  let operator: RunningOperator | undefined;
  try {
    repo = await createSignedRepo(`apply-bench-${size}`);
    const files: Record<string, string> = {};
    for (const file of (await readdir(dir)).sort()) {
      files[`deploy/${file}`] = await readFile(join(dir, file), 'utf8');
    }
    const commit = await repo.commit(files, { message: `${size} ConfigMaps\n` });
    await user.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
      { fieldManager: 'bench-setup' },
    );
    await createObjects(user, trustObjects(repo, namespace));

    // The operator's log at `signet run`'s level (info): kept to read its summary; warnings shown.
    const logLines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer | string, _encoding, callback) {
          const text = chunk.toString();
          logLines.push(text);
          const level = /"level":(\d+)/.exec(text)?.[1];
          if (level !== undefined && Number(level) >= 40) process.stderr.write(text);
          callback();
        },
      }),
    });
    const marks = new Map<Mark, number>();
    operator = await startOperator(
      {
        kubeconfig: plane.kubeconfigPath,
        concurrent,
        applyConcurrency,
        leaderElect: false,
        leaseNamespace: 'signet-system',
        leaseName: 'signet-leader',
        clusterName: 'kubernetes',
        userAgent: operatorUserAgent,
        maxObjects,
      },
      timedSource(createGitSource({ cacheDir, logger }), marks),
      logger,
    );
    const running = operator;
    const reconcileResults = async (): Promise<Record<string, number>> => {
      const results: Record<string, number> = {};
      for (const value of (await running.metrics.reconcilesTotal.get()).values) {
        results[String(value.labels.result)] = value.value;
      }
      return results;
    };

    // What the operator's cold live cache will list: every Signet-managed ConfigMap of the cluster.
    const managedConfigMaps = (await user.list('v1', 'ConfigMap', { labelSelector: managedSelector })).items
      .length;
    const revision = `main@sha1:${commit}`;
    const metricsBefore = (await plane.adminGet('/metrics')).body;
    const cpuBefore = await processCpuSeconds(plane);
    const createdAt = Date.now();
    const started = performance.now();
    const createdObject = await user.create(
      gitRepositoryObject(repo, namespace, name, { interval: '30m', path: './deploy' }),
    );
    // Watched, not polled: a GET every few ms of an object carrying a 5,000-entry inventory would
    // load the API server the operator is measured against.
    await watchStatusUntil(
      user,
      `/apis/signet.dev/v1alpha1/namespaces/${namespace}/gitrepositories`,
      name,
      createdObject.metadata.resourceVersion ?? '0',
      (status) => status.lastAppliedRevision === revision,
      600_000,
      `${revision} with ${size} ConfigMaps applied`,
    );
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = await processCpuSeconds(plane);
    const statusSeenMs = Date.now() - createdAt;
    // The status is visible before the reconcile has written its Event and returned: wait for it
    // to end, so that its last requests are counted too.
    const results = await waitUntil(
      async () => {
        const now = await reconcileResults();
        return Object.values(now).reduce((a, b) => a + b, 0) > 0 ? now : undefined;
      },
      30_000,
      'the reconcile to end',
    );
    const metricsAfter = (await plane.adminGet('/metrics')).body;
    const requests = await auditRequests(plane.auditLogPath, operatorUserAgent, createdAt);
    const requestsByKind: Record<string, number> = {};
    for (const r of requests) {
      const kind = `${r.verb} ${r.resource}`;
      requestsByKind[kind] = (requestsByKind[kind] ?? 0) + 1;
    }
    const rel = (at: number | undefined) => (at === undefined ? undefined : at - createdAt);
    const inNamespace = (r: AuditRecord, resource: string) =>
      r.namespace === namespace && r.resource === resource;
    const applies = requests.filter((r) => r.verb === 'patch' && inNamespace(r, 'configmaps'));
    // The live cache lists every Signet-managed ConfigMap of the cluster (the library case's too),
    // in pages.
    const lists = requests.filter((r) => r.verb === 'list' && r.resource === 'configmaps');
    const listEnd =
      lists.length === 0 ? undefined : Math.max(...lists.map((r) => r.completedAt ?? r.receivedAt));
    const statusWrites = requests.filter((r) => inNamespace(r, 'gitrepositories/status'));
    const lastApply = Math.max(...applies.map((r) => r.completedAt ?? r.receivedAt));
    const appliedStatus = statusWrites.filter((r) => r.receivedAt >= lastApply)[0];
    const event = requests.filter((r) => inNamespace(r, 'events')).pop();
    const is429 = (labels: string): boolean => labels.includes('code="429"');
    const createdLine = logLines.find((line) => line.includes('"msg":"revision applied"'));
    const appliedLine =
      createdLine === undefined
        ? undefined
        : (JSON.parse(createdLine) as { created?: number; phasesMs?: Record<string, number> });
    const created = appliedLine?.created;
    return {
      objects: size,
      round,
      applyConcurrency,
      commit,
      seconds,
      kubectlSeconds,
      wallTimeRatio: seconds / kubectlSeconds,
      requests: requests.length,
      requestsPerObject: requests.length / size,
      requestsByKind,
      throttled429: requests.filter((r) => r.code === 429).length,
      serverThrottled429: sumMetric(metricsAfter, is429) - sumMetric(metricsBefore, is429),
      created,
      operatorPhasesMs: appliedLine?.phasesMs,
      cpuSeconds: Object.fromEntries(
        Object.entries(cpuAfter).map(([name, value]) => [
          name,
          Number((value - (cpuBefore[name] ?? 0)).toFixed(2)),
        ]),
      ),
      managedConfigMapsBefore: managedConfigMaps,
      reconcileResults: results,
      phases: {
        firstRequestMs: rel(requests[0]?.receivedAt),
        resolveStartMs: rel(marks.get('resolveStart')),
        resolveEndMs: rel(marks.get('resolveEnd')),
        fetchStartMs: rel(marks.get('fetchStart')),
        fetchEndMs: rel(marks.get('fetchEnd')),
        readTreeStartMs: rel(marks.get('readTreeStart')),
        readTreeEndMs: rel(marks.get('readTreeEnd')),
        listStartMs: rel(lists[0]?.receivedAt),
        listEndMs: rel(listEnd),
        progressingStatusStartMs: rel(statusWrites[0]?.receivedAt),
        firstApplyStartMs: rel(applies[0]?.receivedAt),
        lastApplyEndMs: applies.length === 0 ? undefined : rel(lastApply),
        appliedStatusEndMs: rel(appliedStatus?.completedAt),
        eventEndMs: rel(event?.completedAt),
        statusSeenMs,
      },
    };
  } finally {
    await operator?.stop(5_000).catch(() => undefined);
    // The next case's operator watches every namespace: this GitRepository goes (its finalizer
    // removed first, so nothing is pruned; its ConfigMaps stay, as managed objects of the cluster).
    const path = `/apis/signet.dev/v1alpha1/namespaces/${namespace}/gitrepositories/${name}`;
    await user
      .request({
        method: 'PATCH',
        path,
        headers: { 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify({ metadata: { finalizers: null } }),
        timeoutMs: 10_000,
      })
      .catch(() => undefined);
    await user.request({ method: 'DELETE', path, timeoutMs: 10_000 }).catch(() => undefined);
    await repo?.close().catch(() => undefined);
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/** CPU seconds (user + system) so far of the plane's processes and of this one (the operator's). */
async function processCpuSeconds(plane: ControlPlane): Promise<Record<string, number>> {
  const ticksPerSecond = 100;
  const result: Record<string, number> = {};
  for (const name of ['kube-apiserver', 'etcd', 'kube-controller-manager'] as const) {
    const pid = plane.pidOf(name);
    if (pid === undefined) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
    // Fields after the parenthesised command: utime and stime are the 12th and 13th.
    const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields === undefined) continue;
    result[name] = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  }
  const own = process.cpuUsage();
  result['bench process (operator)'] = (own.user + own.system) / 1e6;
  return result;
}

/** `kubectl apply --server-side -f <dir>` into `namespace`, timed (the baseline). */
async function kubectlApplySeconds(plane: ControlPlane, dir: string, namespace: string): Promise<number> {
  const started = performance.now();
  await execFileAsync(
    join(plane.binDir, 'kubectl'),
    ['--kubeconfig', plane.kubeconfigPath, 'apply', '--server-side', '-n', namespace, '-f', dir],
    { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
  );
  return (performance.now() - started) / 1000;
}

export async function runApplyBench(
  sizes: readonly number[] = (process.env.SIGNET_BENCH_APPLY_SIZES ?? '1000,5000').split(',').map(Number),
): Promise<ApplyBenchResult> {
  const stateDir = join(repoRoot, '.signet', `bench-apply-${process.pid}`);
  const plane = await startBenchPlane(stateDir);
  const work = join(stateDir, 'manifests');
  const kube = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent, connections: 32 });
  const manager = createResourceManager(kube, owner);
  const user = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: userClientAgent });
  const cases: ApplyBenchCase[] = [];
  const operatorCases: OperatorApplyCase[] = [];
  const throttled429ByUserAgent: Record<string, number> = {};
  let noop: ApplyBenchResult['noop'] | undefined;
  try {
    await installCrd(user);
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

      const kubectlSeconds = await kubectlApplySeconds(plane, dir, kubectlNs);

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
      const changeSet = await applyPlan(manager, plan, { concurrency: libraryConcurrency });
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
        throttled429: sumMetric(metricsAfter, is429) - sumMetric(metricsBefore, is429),
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

      for (let round = 1; round <= operatorRounds; round++) {
        let baselineSeconds = kubectlSeconds;
        if (round > 1) {
          const ns = `${kubectlNs}-r${round}`;
          await kube.apply(
            { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
            { fieldManager: 'bench-setup' },
          );
          baselineSeconds = await kubectlApplySeconds(plane, dir, ns);
        }
        operatorCases.push(await runOperatorCase(plane, user, dir, size, round, baselineSeconds));
      }
    }
    for (const line of (await readFile(plane.auditLogPath, 'utf8')).split('\n')) {
      if (!line.includes('"stage":"ResponseComplete"') || !line.includes('"code":429')) continue;
      const agent = (JSON.parse(line) as { userAgent?: string }).userAgent ?? '';
      throttled429ByUserAgent[agent] = (throttled429ByUserAgent[agent] ?? 0) + 1;
    }
  } finally {
    await user.close();
    await kube.close();
    await plane.stop();
  }
  if (noop === undefined) throw new Error('no sizes given');
  return { cases, operator: operatorCases, throttled429ByUserAgent, noop };
}

/** "fetch 120 ms, verify 3 ms, …": durations between the observed points of an operator case. */
function phaseSplit(p: OperatorPhases, managed: number): string {
  const span = (label: string, from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? `${label} n/a` : `${label} ${fmt(to - from, 0)}`;
  return [
    span('to first request', 0, p.firstRequestMs),
    span('finalizer, Secret, resolve', p.firstRequestMs, p.resolveEndMs),
    span('fetch', p.fetchStartMs, p.fetchEndMs),
    span('verify', p.fetchEndMs, p.readTreeStartMs),
    span('read tree', p.readTreeStartMs, p.readTreeEndMs),
    span('render', p.readTreeEndMs, p.listStartMs),
    span(`live LIST of ${managed} managed`, p.listStartMs, p.listEndMs),
    span('plan', p.listEndMs, p.progressingStatusStartMs),
    span('inventory status', p.progressingStatusStartMs, p.firstApplyStartMs),
    span('apply', p.firstApplyStartMs, p.lastApplyEndMs),
    span('applied status', p.lastApplyEndMs, p.appliedStatusEndMs),
    span('seen', p.appliedStatusEndMs, p.statusSeenMs),
  ].join(', ');
}

/** Rows for bench/run.ts. */
export function benchRows(raw: unknown): BenchRow[] {
  const r = raw as ApplyBenchResult;
  const target = '≤ 0.5× wall time, ≤ 1.1 requests/object, no 429';
  const rows: BenchRow[] = r.cases.map((c) => ({
    bench: 'apply',
    figure: `cold apply of ${c.objects} ConfigMaps from files (library, concurrency ${libraryConcurrency})`,
    value: `${fmt(c.signetSeconds)} s, ${fmt(c.signetRequestsPerObject, 3)} requests/object, ${c.throttled429} × 429`,
    baseline: `kubectl apply --server-side ${fmt(c.kubectlSeconds)} s`,
    ratio: `${fmt(c.wallTimeRatio)}×`,
    target,
    pass: c.wallTimeRatio <= 0.5 && c.signetRequestsPerObject <= 1.1 && c.throttled429 === 0,
  }));
  const sizes = [...new Set(r.operator.map((c) => c.objects))];
  for (const size of sizes) {
    const rounds = r.operator.filter((c) => c.objects === size);
    const ratios = rounds.map((c) => c.wallTimeRatio).sort((a, b) => a - b);
    const median = ratios[Math.floor(ratios.length / 2)] ?? Number.NaN;
    const meets = (c: OperatorApplyCase) =>
      c.wallTimeRatio <= 0.5 &&
      c.requestsPerObject <= 1.1 &&
      c.throttled429 === 0 &&
      c.serverThrottled429 === 0 &&
      c.created === c.objects;
    const first = rounds[0];
    rows.push({
      bench: 'apply',
      figure: `cold apply of ${size} ConfigMaps from a signed Git repository (operator: fetch, verify, render, plan, apply; default concurrency ${first?.applyConcurrency}; ${rounds.length} rounds, each against its own kubectl run)`,
      value: `${rounds
        .map(
          (c) =>
            `round ${c.round}: ${fmt(c.seconds)} s vs kubectl ${fmt(c.kubectlSeconds)} s (${fmt(c.wallTimeRatio)}×), ${fmt(c.requestsPerObject, 3)} requests/object, ${c.throttled429} × 429, ${c.managedConfigMapsBefore} managed ConfigMaps listed, phases ms ${JSON.stringify(c.operatorPhasesMs ?? {})}, CPU s ${JSON.stringify(c.cpuSeconds)}`,
        )
        .join('; ')}. Round 1 requests: ${JSON.stringify(first?.requestsByKind ?? {})}; ms: ${
        first === undefined ? 'n/a' : phaseSplit(first.phases, first.managedConfigMapsBefore)
      }; the reconcile's own phases (ms): ${JSON.stringify(first?.operatorPhasesMs ?? {})}`,
      baseline: `kubectl apply --server-side ${rounds.map((c) => `${fmt(c.kubectlSeconds)} s`).join(' / ')}`,
      ratio: `${fmt(median)}× median (${ratios.map((x) => fmt(x)).join(' / ')})`,
      target: `${target}, in every round`,
      pass: rounds.length > 0 && rounds.every(meets),
    });
  }
  const n = r.noop;
  rows.push({
    bench: 'apply',
    figure: `no-op re-plan of ${n.objects} unchanged objects`,
    value: `${fmt(n.planSeconds * 1000, 0)} ms, ${fmt(n.requestsPerObjectWithCache, 3)} requests/object`,
    baseline: 'Flux: a GET and a dry-run per object (2 requests/object)',
    ratio: `${fmt(n.requestsPerObjectWithCache / 2, 3)}×`,
    target: '≤ 0.01 requests/object, ≤ 1 s',
    pass: n.requestsPerObjectWithCache <= 0.01 && n.planSeconds <= 1,
  });
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runApplyBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const c of result.cases) {
    process.stdout.write(
      `${c.objects} ConfigMaps (library): client ${c.signetRequests} requests, audit ${c.auditSignetRequests ?? 'n/a'}, APPLY metric Δ ${c.metricsApplyDelta}\n`,
    );
  }
  process.stdout.write(`429s by user agent (audit): ${JSON.stringify(result.throttled429ByUserAgent)}\n`);
  for (const row of benchRows(result)) {
    process.stdout.write(`${formatRowLine(row)}\n`);
  }
}
