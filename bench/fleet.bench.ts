/**
 * Benchmark: a fleet of GitRepositories on one operator (issue 18, Numbers 1–3). One signed monorepo
 * served over HTTPS (git http-backend, test/support/git-server.ts) holds `count` paths, each with 4
 * objects in a namespace of its own (a Namespace, a ServiceAccount, a ConfigMap and a Deployment, like
 * Flux's fleet benchmark); `count` GitRepositories (`interval: 1m`), one per path, are created at once
 * against the operator as its own process (`bin/signet run` with the image's defaults), on a fresh
 * real API server.
 *
 * - Cold start: from the first create until a watch has seen every GitRepository Ready with the
 *   commit applied; operator RSS (VmHWM, the peak, and VmRSS once all are Ready); the operator's API
 *   requests (audit log, by user agent, one per auditID) per GitRepository and per object; Git
 *   requests in total and the POSTs to git-upload-pack among them (the packs: HTTPS protocol v1
 *   advertises refs with a GET and fetches with a POST), counted at the Git server.
 * - Steady state: nothing changes for `steadyMs` (5 minutes for the documented figure): Git and API
 *   requests per minute, the operator's CPU time over the window (/proc/<pid>/stat), its RSS.
 * - Restart: SIGKILL, then a new process on the same cache directory: time until it has reconciled
 *   every GitRepository and all are Ready, PATCHes of managed objects (audit log), Git requests and
 *   POSTs to git-upload-pack (packs fetched).
 *
 * Run: node bench/fleet.bench.ts   (or `node bench/run.ts fleet`)
 * Env: SIGNET_BENCH_FLEET_COUNT (default 1000), SIGNET_BENCH_FLEET_STEADY_MS (default 300000).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ControlPlane, repoRoot } from '../e2e/support/controlplane.ts';
import { createObjects, gitRepositoryObject, trustObjects } from '../e2e/support/fixtures.ts';
import {
  ensureBuilt,
  type OperatorProcess,
  signetRunArgs,
  startOperatorProcess,
} from '../e2e/support/operator-process.ts';
import { createSignedRepo, installCrd, type SignedRepo } from '../e2e/support/signet.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import { type BenchRow, fmt, formatRowLine, mib } from './rows.ts';
import { startBenchPlane, tearDownBench } from './support.ts';

const fleetNamespace = 'fleet';
const objectsPerRepo = 4;
/** `bin/signet run` sends `signet/<version>`; the bench's own client `signet-bench-user/…`. */
const operatorAgentPrefix = 'signet/';
const collection = `/apis/signet.dev/v1alpha1/namespaces/${fleetNamespace}/gitrepositories`;
const clockTicksPerSecond = 100;

const appName = (index: number) => `app-${String(index).padStart(4, '0')}`;

/** `apps/<app>/app.yaml`: a Namespace of its own and three objects in it. */
export function fleetFiles(count: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let index = 0; index < count; index++) {
    const app = appName(index);
    const ns = `fleet-${app}`;
    files[`apps/${app}/app.yaml`] = [
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n`,
      `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${app}\n  namespace: ${ns}\n`,
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${app}\n  namespace: ${ns}\ndata:\n  app: ${app}\n`,
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        `  name: ${app}`,
        `  namespace: ${ns}`,
        'spec:',
        '  replicas: 1',
        '  selector:',
        '    matchLabels:',
        `      app: ${app}`,
        '  template:',
        '    metadata:',
        '      labels:',
        `        app: ${app}`,
        '    spec:',
        `      serviceAccountName: ${app}`,
        '      containers:',
        '        - name: app',
        '          image: registry.example/podinfo:6.0.0',
        '          envFrom:',
        '            - configMapRef:',
        `                name: ${app}`,
        '',
      ].join('\n'),
    ].join('---\n');
  }
  return files;
}

// ---------- pure: audit records and what they add up to ----------

export interface AuditRecord {
  readonly auditID: string;
  readonly userAgent: string;
  readonly verb: string;
  readonly requestURI: string;
  readonly receivedAt: number;
}

/** One record per auditID (a watch logs ResponseStarted and ResponseComplete) from audit JSON lines. */
export function parseAuditRecords(text: string): AuditRecord[] {
  const byId = new Map<string, AuditRecord>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let event: {
      auditID?: string;
      userAgent?: string;
      verb?: string;
      requestURI?: string;
      requestReceivedTimestamp?: string;
    };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      continue;
    }
    if (event.auditID === undefined || byId.has(event.auditID)) continue;
    byId.set(event.auditID, {
      auditID: event.auditID,
      userAgent: event.userAgent ?? '',
      verb: event.verb ?? '',
      requestURI: event.requestURI ?? '',
      receivedAt: Date.parse(event.requestReceivedTimestamp ?? ''),
    });
  }
  return [...byId.values()];
}

/** The records of clients whose user agent starts with `agentPrefix`, received in [from, to). */
export function inWindow(
  records: readonly AuditRecord[],
  agentPrefix: string,
  from: number,
  to: number,
): AuditRecord[] {
  return records.filter(
    (r) => r.userAgent.startsWith(agentPrefix) && r.receivedAt >= from && r.receivedAt < to,
  );
}

/** PATCHes of objects in the fleet's own namespaces (`fleet-app-…`, the Namespaces themselves too). */
export function managedObjectPatches(records: readonly AuditRecord[]): AuditRecord[] {
  return records.filter((r) => r.verb === 'patch' && /\/namespaces\/fleet-app-/.test(r.requestURI));
}

/** The resource of an API path (`configmaps`, `gitrepositories/status`, `namespaces`), names left out. */
export function resourceOf(requestURI: string): string {
  const segments = (requestURI.split('?')[0] ?? '').split('/').filter((s) => s !== '');
  let rest =
    segments[0] === 'api' ? segments.slice(2) : segments[0] === 'apis' ? segments.slice(3) : segments;
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  if (rest.length === 0) return segments.join('/');
  return rest[2] === undefined ? (rest[0] ?? '') : `${rest[0]}/${rest[2]}`;
}

/** Requests per verb and resource (`patch configmaps`), most first: where requests go. */
export function requestBreakdown(records: readonly AuditRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    const key = `${r.verb} ${resourceOf(r.requestURI)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([key, n]) => `${n} ${key}`)
    .join(', ');
}

export interface GitRequestCounts {
  readonly total: number;
  /** POSTs to git-upload-pack: fetches (packs) with HTTPS protocol v1. */
  readonly uploadPackPosts: number;
}

export function gitCounts(requests: readonly { method: string; path: string }[]): GitRequestCounts {
  return {
    total: requests.length,
    uploadPackPosts: requests.filter((r) => r.method === 'POST' && r.path.endsWith('/git-upload-pack'))
      .length,
  };
}

// ---------- shell: processes, the API server, the Git server ----------

async function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (kib === undefined) throw new Error(`no ${field} for pid ${pid}`);
  return Number(kib) * 1_024;
}

/** User + system CPU seconds of a process so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

function pidOf(running: OperatorProcess): number {
  const pid = running.child.pid;
  if (pid === undefined) throw new Error('operator process has no pid');
  return pid;
}

interface RepoEvent {
  type: string;
  object: {
    metadata: { name: string; resourceVersion?: string };
    status?: { lastAppliedRevision?: string; conditions?: { type: string; status: string }[] };
  };
}

const isReady = (status: RepoEvent['object']['status'], revision: string) =>
  status?.lastAppliedRevision === revision &&
  (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Watches the fleet's GitRepositories (after a list) until `count` of them are Ready with
 * `revision` applied; resolves with the time (performance.now()) the last one was seen.
 */
async function watchFleetReady(
  client: KubeClient,
  count: number,
  revision: string,
  timeoutMs: number,
  onProgress: (ready: number) => void,
): Promise<number> {
  const ready = new Set<string>();
  const listed = await client.list('signet.dev/v1alpha1', 'GitRepository', { namespace: fleetNamespace });
  for (const item of listed.items) {
    if (isReady(item.status as RepoEvent['object']['status'], revision)) ready.add(item.metadata.name);
  }
  if (ready.size >= count) return performance.now();
  let from = listed.resourceVersion;
  const controller = new AbortController();
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([controller.signal, deadline]);
  let doneAt: number | undefined;
  let reported = 0;
  while (doneAt === undefined) {
    const query = new URLSearchParams({
      watch: '1',
      resourceVersion: from,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    });
    const outcome = await client
      .stream(
        { path: `${collection}?${query}`, subject: 'the fleet', signal, idleTimeoutMs: 400_000 },
        (line) => {
          const event = JSON.parse(line) as RepoEvent;
          from = event.object.metadata.resourceVersion ?? from;
          if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
          if (isReady(event.object.status, revision)) ready.add(event.object.metadata.name);
          else ready.delete(event.object.metadata.name);
          if (ready.size - reported >= 100) {
            reported = ready.size;
            onProgress(ready.size);
          }
          if (ready.size >= count && doneAt === undefined) {
            doneAt = performance.now();
            controller.abort();
          }
        },
      )
      .catch((error: unknown) => {
        if (doneAt !== undefined) return undefined;
        if (deadline.aborted)
          throw new Error(`timed out after ${timeoutMs} ms: ${ready.size} of ${count} Ready`);
        throw error;
      });
    if (doneAt !== undefined) break;
    if (deadline.aborted) throw new Error(`timed out after ${timeoutMs} ms: ${ready.size} of ${count} Ready`);
    if (outcome !== undefined && outcome.status !== 'closed') {
      throw new Error(`watching the fleet: HTTP ${outcome.status}`);
    }
  }
  return doneAt;
}

/** Reconciles by result in a /metrics text (`applied`, `unchanged`, …). */
function reconcilesByResult(metricsText: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of metricsText.matchAll(/^signet_reconciles_total\{result="([^"]+)"\} (\S+)$/gm)) {
    counts.set(match[1] ?? '', Number(match[2]));
  }
  return counts;
}

/** GitRepositories a process logged a 'revision applied…' line for. */
function appliedKeys(running: OperatorProcess): Set<string> {
  return new Set(
    running.logs
      .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('revision applied'))
      .map((l) => String(l.gitrepository)),
  );
}

/**
 * Mean milliseconds per phase over the 'revision applied' lines that carry `phasesMs` (where one
 * reconcile's time goes), as `resolve 12, fetchAndVerify 80, …`; empty without such lines.
 */
export function meanPhases(logs: readonly { msg?: string; phasesMs?: unknown }[]): string {
  const sums = new Map<string, number>();
  let lines = 0;
  for (const line of logs) {
    if (line.msg !== 'revision applied' || typeof line.phasesMs !== 'object' || line.phasesMs === null)
      continue;
    lines++;
    for (const [phase, ms] of Object.entries(line.phasesMs)) {
      if (typeof ms === 'number') sums.set(phase, (sums.get(phase) ?? 0) + ms);
    }
  }
  if (lines === 0) return '';
  return `mean of ${lines} reconciles: ${[...sums.entries()].map(([phase, ms]) => `${phase} ${Math.round(ms / lines)} ms`).join(', ')}`;
}

export interface PhaseRequests {
  readonly api: number;
  readonly apiBreakdown: string;
  readonly git: GitRequestCounts;
}

export interface FleetBenchResult {
  readonly count: number;
  readonly objects: number;
  readonly loadAverage: string;
  readonly cold: PhaseRequests & {
    readonly seconds: number;
    readonly peakRssBytes: number;
    readonly rssReadyBytes: number;
    readonly phases: string;
  };
  readonly steady: PhaseRequests & {
    readonly windowSeconds: number;
    readonly cpuSeconds: number;
    readonly rssBytes: number;
    readonly reconciles: number;
  };
  readonly restart: PhaseRequests & {
    readonly seconds: number;
    readonly managedPatches: number;
    readonly peakRssBytes: number;
    readonly phases: string;
    /** How completion was seen: distinct GitRepositories in 'revision applied' lines, or reconciles. */
    readonly completion: string;
  };
}

function startSignet(signetBin: string, plane: ControlPlane, cacheDir: string, run: string): OperatorProcess {
  return startOperatorProcess(signetBin, signetRunArgs({ kubeconfig: plane.kubeconfigPath, cacheDir }), {
    env: { SIGNET_LOG_LEVEL: 'info', POD_NAME: 'signet-fleet-bench' },
    // Kept for post-mortems (.signet/ is not committed).
    logPath: join(repoRoot, '.signet', 'bench-logs', `fleet-${process.pid}-${run}.log`),
  });
}

async function requestsBetween(
  plane: ControlPlane,
  repo: SignedRepo,
  gitFrom: number,
  from: number,
  to: number,
): Promise<PhaseRequests & { records: AuditRecord[] }> {
  const records = inWindow(
    parseAuditRecords(await readFile(plane.auditLogPath, 'utf8')),
    operatorAgentPrefix,
    from,
    to,
  );
  return {
    api: records.length,
    apiBreakdown: requestBreakdown(records),
    git: gitCounts(repo.server.requests.slice(gitFrom)),
    records,
  };
}

const log = (message: string) => process.stderr.write(`[fleet] ${new Date().toISOString()} ${message}\n`);

export async function runFleetBench(
  count = Number(process.env.SIGNET_BENCH_FLEET_COUNT ?? 1_000),
  steadyMs = Number(process.env.SIGNET_BENCH_FLEET_STEADY_MS ?? 300_000),
): Promise<FleetBenchResult> {
  const stateDir = join(repoRoot, '.signet', `bench-fleet-${process.pid}`);
  const work = await mkdtemp(join(tmpdir(), 'signet-bench-fleet-'));
  const cacheDir = join(work, 'cache');
  let plane: ControlPlane | undefined;
  let client: KubeClient | undefined;
  let repo: SignedRepo | undefined;
  let running: OperatorProcess | undefined;
  try {
    const signetBin = await ensureBuilt();
    plane = await startBenchPlane(stateDir);
    client = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: 'signet-bench-user/0.1.0' });
    await installCrd(client);
    repo = await createSignedRepo('fleet');
    const commit = await repo.commit(fleetFiles(count), { message: 'fleet\n' });
    const revision = `main@sha1:${commit}`;
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fleetNamespace } },
      { fieldManager: 'bench' },
    );
    await createObjects(client, trustObjects(repo, fleetNamespace));
    const kube = client;
    const signed = repo;

    // 1. Cold start.
    running = startSignet(signetBin, plane, cacheDir, 'cold');
    await running.metricsPort(120_000);
    let pid = pidOf(running);
    const loadAverage = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
    const readyWatch = watchFleetReady(kube, count, revision, 1_800_000, (n) =>
      log(`cold start: ${n} Ready`),
    );
    const gitColdFrom = signed.server.requests.length;
    const coldFrom = Date.now();
    const started = performance.now();
    const pending = Array.from({ length: count }, (_, index) => index);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let index = pending.shift(); index !== undefined; index = pending.shift()) {
          await kube.create(
            gitRepositoryObject(signed, fleetNamespace, appName(index), {
              interval: '1m',
              timeout: '5m',
              path: `./apps/${appName(index)}`,
            }),
          );
        }
      }),
    );
    log(`created ${count} GitRepositories in ${((performance.now() - started) / 1_000).toFixed(1)} s`);
    const readyAt = await readyWatch;
    const coldTo = Date.now();
    const rssReadyBytes = await procStatusBytes(pid, 'VmRSS');
    const coldRequests = await requestsBetween(plane, signed, gitColdFrom, coldFrom, coldTo + 1);
    const cold = {
      seconds: (readyAt - started) / 1_000,
      peakRssBytes: await procStatusBytes(pid, 'VmHWM'),
      rssReadyBytes,
      phases: meanPhases(running.logs),
      api: coldRequests.api,
      apiBreakdown: coldRequests.apiBreakdown,
      git: coldRequests.git,
    };
    log(`cold start: ${JSON.stringify(cold)}`);

    // 2. Steady state: nothing changes for steadyMs.
    const gitSteadyFrom = signed.server.requests.length;
    const steadyFrom = Date.now();
    const cpuBefore = await cpuSeconds(pid);
    const reconcilesBefore = [...reconcilesByResult(await running.metrics()).values()].reduce(
      (a, b) => a + b,
      0,
    );
    await new Promise((resolve) => setTimeout(resolve, steadyMs));
    const cpuAfter = await cpuSeconds(pid);
    const steadyTo = Date.now();
    const reconcilesAfter = [...reconcilesByResult(await running.metrics()).values()].reduce(
      (a, b) => a + b,
      0,
    );
    const steadyRequests = await requestsBetween(plane, signed, gitSteadyFrom, steadyFrom, steadyTo);
    const steady = {
      windowSeconds: (steadyTo - steadyFrom) / 1_000,
      cpuSeconds: cpuAfter - cpuBefore,
      rssBytes: await procStatusBytes(pid, 'VmRSS'),
      reconciles: reconcilesAfter - reconcilesBefore,
      api: steadyRequests.api,
      apiBreakdown: steadyRequests.apiBreakdown,
      git: steadyRequests.git,
    };
    log(`steady state: ${JSON.stringify(steady)}`);

    // 3. Restart: SIGKILL, a new process on the same cache directory.
    await running.stop('SIGKILL', 10_000);
    const gitRestartFrom = signed.server.requests.length;
    const restartFrom = Date.now();
    const restartStarted = performance.now();
    running = startSignet(signetBin, plane, cacheDir, 'restart');
    const second = running;
    await second.metricsPort(120_000);
    pid = pidOf(second);
    let completion = '';
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 1_800_000;
      let lastReported = 0;
      const tick = async () => {
        const applied = appliedKeys(second).size;
        const reconciled = [...reconcilesByResult(await second.metrics()).entries()]
          .filter(([result]) => result === 'applied' || result === 'unchanged')
          .reduce((sum, [, n]) => sum + n, 0);
        if (applied - lastReported >= 100) {
          lastReported = applied;
          log(`restart: ${applied} applied, ${reconciled} reconciled`);
        }
        if (applied >= count || reconciled >= count) {
          completion = `${applied} GitRepositories logged 'revision applied', ${reconciled} reconciles applied or unchanged`;
          resolve();
        } else if (Date.now() > deadline) reject(new Error(`restart: ${applied} of ${count} after 30 min`));
        else setTimeout(() => void tick().catch(reject), 200);
      };
      void tick().catch(reject);
    });
    await watchFleetReady(kube, count, revision, 300_000, () => undefined);
    const restartSeconds = (performance.now() - restartStarted) / 1_000;
    const restartTo = Date.now();
    const restartRequests = await requestsBetween(plane, signed, gitRestartFrom, restartFrom, restartTo + 1);
    const restart = {
      seconds: restartSeconds,
      managedPatches: managedObjectPatches(restartRequests.records).length,
      peakRssBytes: await procStatusBytes(pid, 'VmHWM'),
      completion,
      phases: meanPhases(second.logs),
      api: restartRequests.api,
      apiBreakdown: restartRequests.apiBreakdown,
      git: restartRequests.git,
    };
    log(`restart: ${JSON.stringify(restart)}`);
    return { count, objects: count * objectsPerRepo, loadAverage, cold, steady, restart };
  } finally {
    await running?.stop('SIGTERM', 30_000).catch(() => undefined);
    await tearDownBench({ repo, client, plane }, [work, stateDir]);
  }
}

/** Rows for bench/run.ts, judged against issue 18's targets. */
export function benchRows(r: FleetBenchResult): BenchRow[] {
  const bench = 'fleet';
  const fleet = `${r.count} GitRepositories × ${objectsPerRepo} objects, one signed monorepo, operator process`;
  const perRepo = r.cold.api / r.count;
  const apiTarget = 1.1 * r.objects + 6 * r.count;
  const minutes = r.steady.windowSeconds / 60;
  const steadyGitPerMinute = r.steady.git.total / minutes;
  const steadyApiPerMinute = r.steady.api / minutes;
  return [
    {
      bench,
      figure: `cold start: ${fleet}, created at once, until all Ready (load average ${r.loadAverage} on ${cpus().length} cores)`,
      value: `${fmt(r.cold.seconds, 1)} s${r.cold.phases === '' ? '' : ` (${r.cold.phases})`}`,
      baseline: 'target 60 s (Flux published: 1,000 Kustomizations in 256 s)',
      ratio: `${fmt(r.cold.seconds / 60)}× of target`,
      target: '≤ 60 s',
      pass: r.cold.seconds <= 60,
    },
    {
      bench,
      figure: 'cold start: operator RSS',
      value: `peak ${fmt(mib(r.cold.peakRssBytes), 1)} MiB, ${fmt(mib(r.cold.rssReadyBytes), 1)} MiB once all Ready`,
      baseline: 'target 175 MiB (Flux published, same fleet)',
      ratio: `${fmt(mib(r.cold.peakRssBytes) / 175)}× of target`,
      target: '≤ 175 MiB',
      pass: mib(r.cold.peakRssBytes) <= 175,
    },
    {
      bench,
      figure: 'cold start: operator API requests (audit log, by user agent)',
      value: `${r.cold.api} (${fmt(perRepo)} per GitRepository, ${fmt(r.cold.api / r.objects)} per object); ${r.cold.apiBreakdown}`,
      baseline: `target ${fmt(apiTarget, 0)} (1.1 per object + 6 per GitRepository)`,
      ratio: `${fmt(r.cold.api / apiTarget)}× of target`,
      target: '≤ 1.1 per object + 6 per GitRepository',
      pass: r.cold.api <= apiTarget,
    },
    {
      bench,
      figure: 'cold start: Git requests in total (at the Git server)',
      value: `${r.cold.git.total} (${r.cold.git.uploadPackPosts} POSTs to git-upload-pack)`,
      baseline: 'target 10',
      ratio: `${fmt(r.cold.git.total / 10)}× of target`,
      target: '≤ 10',
      pass: r.cold.git.total <= 10,
    },
    {
      bench,
      figure: `steady state: the same fleet at interval 1m, nothing changing, ${fmt(minutes, 1)} min measured: Git requests`,
      value: `${fmt(steadyGitPerMinute, 1)} per minute (${r.steady.git.total} in all, ${r.steady.git.uploadPackPosts} POSTs to git-upload-pack)`,
      baseline: 'target 1 per distinct URL per interval (1 URL)',
      ratio: `${fmt(steadyGitPerMinute)}× of target`,
      target: '≤ 1 per minute',
      pass: steadyGitPerMinute <= 1,
    },
    {
      bench,
      figure: 'steady state: operator API requests',
      value: `${fmt(steadyApiPerMinute, 1)} per minute (${r.steady.api} in all${r.steady.api > 0 ? `: ${r.steady.apiBreakdown}` : ''}); ${r.steady.reconciles} reconciles`,
      baseline: `target ${fmt(r.count / 100, 0)} per minute (1 per 100 GitRepositories)`,
      ratio: `${fmt(steadyApiPerMinute / (r.count / 100))}× of target`,
      target: '≤ 1 per minute per 100 GitRepositories',
      pass: steadyApiPerMinute <= r.count / 100,
    },
    {
      bench,
      figure: 'steady state: operator CPU and RSS',
      value: `${fmt((100 * r.steady.cpuSeconds) / r.steady.windowSeconds, 1)} % of one core (${fmt(r.steady.cpuSeconds, 1)} s CPU in ${fmt(r.steady.windowSeconds, 0)} s); RSS ${fmt(mib(r.steady.rssBytes), 1)} MiB`,
      baseline: '–',
      ratio: '–',
      target: 'informational: idle CPU (no published anchor)',
      pass: 'info',
    },
    {
      bench,
      figure:
        'restart (SIGKILL, same cache directory): time until every GitRepository is reconciled and Ready',
      value: `${fmt(r.restart.seconds, 1)} s (${r.restart.completion}${r.restart.phases === '' ? '' : `; ${r.restart.phases}`}); peak RSS ${fmt(mib(r.restart.peakRssBytes), 1)} MiB`,
      baseline: `cold start ${fmt(r.cold.seconds, 1)} s`,
      ratio: `${fmt(r.restart.seconds / r.cold.seconds)}× of cold start`,
      target: 'informational: no target for the time (the targets are the PATCHes and packs below)',
      pass: 'info',
    },
    {
      bench,
      figure: 'restart: PATCHes of managed objects (audit log)',
      value: `${r.restart.managedPatches} (operator API requests ${r.restart.api}, ${fmt(r.restart.api / r.count)} per GitRepository: ${r.restart.apiBreakdown})`,
      baseline: `cold start: ${r.objects} objects applied`,
      ratio: `${fmt(r.restart.managedPatches / r.objects)}× of the objects`,
      target: '0',
      pass: r.restart.managedPatches === 0,
    },
    {
      bench,
      figure: "restart: operator API requests per GitRepository (the informers' LISTs and WATCHes included)",
      value: `${fmt(r.restart.api / r.count)} (${r.restart.api} in all)`,
      baseline: `cold start: ${fmt(r.cold.api / r.count)} per GitRepository`,
      ratio: `${fmt(r.restart.api / r.count / 3)}× of target`,
      target: '≤ 3 per GitRepository',
      pass: r.restart.api / r.count <= 3,
    },
    {
      bench,
      figure: 'restart: packs fetched (POSTs to git-upload-pack at the Git server)',
      value: `${r.restart.git.uploadPackPosts} (Git requests ${r.restart.git.total})`,
      baseline: `cold start: ${r.cold.git.uploadPackPosts}`,
      ratio: '–',
      target: '0 with the cache directory kept',
      pass: r.restart.git.uploadPackPosts === 0,
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runFleetBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const row of benchRows(result)) process.stdout.write(`${formatRowLine(row)}\n`);
}
