/**
 * Benchmark: Flux side by side, in the same run, on the same fresh API server (issue 18, Numbers 4).
 *
 * Flux's source-controller and kustomize-controller (bench/flux/build.sh: pinned Go modules, built
 * once into ~/.cache/signet/flux) and `bin/signet run` (as in its image) run as separate processes
 * out of cluster against one control plane, all three started before the first case and kept
 * running, each watching every namespace. Both read the same signed commit of a repository served
 * over HTTPS by git http-backend (Flux gets the CA as `ca.crt` of its GitRepository's secretRef and
 * verifies the HEAD commit's SSH signature against a `.sshpub` key; Signet its HEAD policy).
 *
 * - Cold apply of 1,000 and 5,000 ConfigMaps, each tool into a fresh namespace: wall time from the
 *   creation of the source objects (Flux: GitRepository + Kustomization; Signet: GitRepository) until
 *   the commit is applied and Ready, seen through a watch; API requests from the audit log by user
 *   agent (`source-controller/`, `kustomize-controller/`; `signet/`) from the creation until 2 s
 *   after Ready (the trailing status and Event writes), per object; VmRSS right after (Flux: the sum
 *   of both controllers). Rounds alternate which tool goes first.
 * - No-op reconcile of the largest size: each tool's "reconcile now" annotation
 *   (`reconcile.fluxcd.io/requestedAt` on the Kustomization, `reconcile.signet.dev/requestedAt` on
 *   the GitRepository) until status.lastHandledReconcileAt names it: requests and wall time.
 * - Drift: one ConfigMap edited out of band; time until its data is back. Flux reverts at its next
 *   interval: its Kustomization's interval is set to `driftInterval` first (and that reconcile
 *   awaited), so the figure is bounded by that setting, not by Flux's speed.
 * - Memory once everything is deleted (Flux's Kustomizations prune, Signet's finalizer prunes) and
 *   the processes idled `idleMs`: VmRSS of each.
 * - Fleet (`SIGNET_BENCH_FLUX_FLEET`, default 200; 0 skips): that many GitRepositories over paths of
 *   one signed monorepo, 4 objects each, in fresh processes, Flux then Signet (runFleets). Flux
 *   has a GitRepository per path unless `SIGNET_BENCH_FLUX_FLEET_SOURCES=shared` (one for all).
 *
 * Run: node bench/flux.bench.ts   (or `node bench/run.ts flux`; `make bench` builds Flux first)
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
import type { KubeObject } from '../src/render/object.ts';
import {
  ensureFluxBuilt,
  type FluxBuild,
  installFluxCrds,
  type RunningFlux,
  startFlux,
} from './flux/controllers.ts';
import { type FluxFleetResult, runFluxFleet } from './flux/fleet.ts';
import {
  type AuditTally,
  configMapFiles,
  type FluxRepositorySpec,
  fleetFiles,
  fluxGitRepository,
  fluxKustomization,
  fluxKustomizeApi,
  fluxRequestedAt,
  fluxSourceApi,
  fluxTrustObjects,
  fluxUserAgents,
  kustomizationApplied,
  median,
  tallyAudit,
} from './flux/objects.ts';
import { type BenchRow, fmt, formatRowLine } from './rows.ts';
import { startBenchPlane, waitUntil, watchStatusUntil } from './support.ts';

type Tool = 'flux' | 'signet';
const tools: readonly Tool[] = ['signet', 'flux'];
const userAgent = 'signet-bench-user/0.1.0';
const signetAgents: readonly string[] = ['signet/'];
const signetRequestedAt = 'reconcile.signet.dev/requestedAt';
const repoName = 'bench';
/** Requests after Ready are still the reconcile's (status, Events): counted this long after. */
const settleMs = 2_000;

export interface FluxBenchOptions {
  readonly sizes?: readonly number[];
  readonly rounds?: number;
  /** Flux Kustomization interval during the drift case. */
  readonly driftInterval?: string;
  /** Idle time before the memory is read once everything is deleted. */
  readonly idleMs?: number;
  /** GitRepositories of the fleet case (each tool its own, fresh processes); 0 skips it. */
  readonly fleet?: number;
  /**
   * Flux's sources in the fleet: a GitRepository per path (default, like Signet's fleet) or one
   * shared GitRepository for all Kustomizations (Flux's cheaper monorepo layout).
   */
  readonly fleetSources?: 'one-per-path' | 'shared';
}

export interface SignetFleetResult {
  readonly gitRepositories: number;
  readonly seconds: number;
  readonly requests: AuditTally;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
}

export interface FleetCase {
  readonly repositories: number;
  readonly objectsPerRepository: number;
  readonly flux: FluxFleetResult & { readonly gitRequests: number };
  readonly signet: SignetFleetResult & { readonly gitRequests: number };
}

export interface ColdCase {
  readonly tool: Tool;
  readonly objects: number;
  readonly round: number;
  readonly seconds: number;
  readonly requests: number;
  readonly requestsPerObject: number;
  readonly requestsByKind: Readonly<Record<string, number>>;
  readonly throttled429: number;
  /** VmRSS right after Ready (Flux: both controllers). */
  readonly rssBytes: number;
}

export interface ToolFigure {
  readonly seconds: number;
  readonly requests: number;
  readonly requestsByKind: Readonly<Record<string, number>>;
}

export interface FluxBenchResult {
  readonly fluxVersion: string;
  readonly build: FluxBuild;
  readonly cold: readonly ColdCase[];
  readonly noop: { readonly objects: number } & Readonly<Record<Tool, ToolFigure>>;
  readonly drift: {
    readonly objects: number;
    readonly fluxInterval: string;
    readonly secondsToRevert: Readonly<Record<Tool, number>>;
  };
  readonly idleAfterDelete: { readonly idleMs: number; readonly rssBytes: Readonly<Record<Tool, number>> };
  readonly fleet: FleetCase | undefined;
}

/** The processes under test and what the cases share. */
interface Bench {
  readonly plane: ControlPlane;
  readonly user: KubeClient;
  readonly flux: RunningFlux;
  readonly signet: OperatorProcess;
}

async function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (kib === undefined) throw new Error(`no ${field} for pid ${pid}`);
  return Number(kib) * 1_024;
}
const vmRssBytes = (pid: number) => procStatusBytes(pid, 'VmRSS');

async function rssOf(bench: Bench, tool: Tool): Promise<number> {
  const pids = tool === 'flux' ? bench.flux.pids() : [bench.signet.child.pid ?? -1];
  const values = await Promise.all(pids.map(vmRssBytes));
  return values.reduce((a, b) => a + b, 0);
}

async function auditTally(bench: Bench, tool: Tool, since: number): Promise<AuditTally> {
  const lines = (await readFile(bench.plane.auditLogPath, 'utf8')).split('\n');
  return tallyAudit(lines, tool === 'flux' ? fluxUserAgents : signetAgents, since);
}

async function mergePatch(client: KubeClient, path: string, patch: unknown): Promise<KubeObject> {
  const response = await client.request({
    method: 'PATCH',
    path,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify(patch),
    timeoutMs: 30_000,
  });
  if (response.status !== 200)
    throw new Error(`PATCH ${path}: HTTP ${response.status} ${response.body.slice(0, 500)}`);
  return JSON.parse(response.body) as KubeObject;
}

const fluxPath = (kind: 'kustomizations' | 'gitrepositories', namespace: string, name = '') =>
  `/apis/${kind === 'kustomizations' ? fluxKustomizeApi : fluxSourceApi}/namespaces/${namespace}/${kind}${name === '' ? '' : `/${name}`}`;
const signetPath = (namespace: string, name = '') =>
  `/apis/signet.dev/v1alpha1/namespaces/${namespace}/gitrepositories${name === '' ? '' : `/${name}`}`;

/**
 * Watches one object of `collectionPath` from `resourceVersion` until `done` holds for it; fails
 * after `timeoutMs`. (bench/support.ts's watchStatusUntil judges only `status`; a ConfigMap has none.)
 */
async function watchObjectUntil(
  client: KubeClient,
  collectionPath: string,
  name: string,
  resourceVersion: string,
  done: (object: KubeObject) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const stop = new AbortController();
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([stop.signal, deadline]);
  let matched = false;
  let from = resourceVersion;
  while (!matched) {
    const query = new URLSearchParams({
      watch: '1',
      fieldSelector: `metadata.name=${name}`,
      resourceVersion: from,
      timeoutSeconds: '300',
    });
    const outcome = await client
      .stream(
        { path: `${collectionPath}?${query}`, subject: what, signal, idleTimeoutMs: 330_000 },
        (line) => {
          const event = JSON.parse(line) as { type: string; object: KubeObject };
          from = event.object.metadata.resourceVersion ?? from;
          if ((event.type === 'ADDED' || event.type === 'MODIFIED') && done(event.object)) {
            matched = true;
            stop.abort();
          }
        },
      )
      .catch((error: unknown) => {
        if (matched) return undefined;
        throw deadline.aborted ? new Error(`timed out after ${timeoutMs} ms waiting for ${what}`) : error;
      });
    if (matched) return;
    if (deadline.aborted) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    // A watch the server refused (e.g. 410 Gone for an expired resourceVersion) is not retried.
    if (outcome !== undefined && outcome.status !== 'closed') {
      throw new Error(`watching ${what}: HTTP ${outcome.status}`);
    }
  }
}

async function createNamespace(client: KubeClient, name: string): Promise<void> {
  await client.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
    { fieldManager: 'bench-setup' },
  );
}

function fluxSpec(repo: SignedRepo, namespace: string, interval: string): FluxRepositorySpec {
  return {
    namespace,
    name: repoName,
    url: repo.url,
    caPem: repo.server.caPem,
    signerPublicKey: repo.key.publicKeyLine,
    path: './deploy',
    interval,
    targetNamespace: namespace,
  };
}

/** Creates the source objects of `tool` in a fresh namespace; resolves once the commit is applied. */
async function coldCase(
  bench: Bench,
  tool: Tool,
  repo: SignedRepo,
  commit: string,
  objects: number,
  round: number,
): Promise<ColdCase> {
  const namespace = `${tool}-${objects}-r${round}`;
  const revision = `main@sha1:${commit}`;
  await createNamespace(bench.user, namespace);
  let watch: () => Promise<void>;
  let since: number;
  let started: number;
  if (tool === 'flux') {
    const spec = fluxSpec(repo, namespace, '10m');
    await createObjects(bench.user, fluxTrustObjects(spec));
    since = Date.now();
    started = performance.now();
    await bench.user.create(fluxGitRepository(spec));
    const created = await bench.user.create(fluxKustomization(spec));
    watch = () =>
      watchStatusUntil(
        bench.user,
        fluxPath('kustomizations', namespace),
        repoName,
        created.metadata.resourceVersion ?? '0',
        (status) => kustomizationApplied(status, revision),
        900_000,
        `Flux to apply ${objects} ConfigMaps in ${namespace}`,
      );
  } else {
    await createObjects(bench.user, trustObjects(repo, namespace));
    since = Date.now();
    started = performance.now();
    const created = await bench.user.create(
      gitRepositoryObject(repo, namespace, repoName, { interval: '10m', path: './deploy' }),
    );
    watch = () =>
      watchStatusUntil(
        bench.user,
        signetPath(namespace),
        repoName,
        created.metadata.resourceVersion ?? '0',
        (status) => status.lastAppliedRevision === revision,
        900_000,
        `Signet to apply ${objects} ConfigMaps in ${namespace}`,
      );
  }
  await watch();
  const seconds = (performance.now() - started) / 1000;
  const rssBytes = await rssOf(bench, tool);
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const tally = await auditTally(bench, tool, since);
  return {
    tool,
    objects,
    round,
    seconds,
    requests: tally.total,
    requestsPerObject: tally.total / objects,
    requestsByKind: tally.byKind,
    throttled429: tally.throttled429,
    rssBytes,
  };
}

/** Each tool's "reconcile now" on the unchanged objects of `namespace`. */
async function noopReconcile(bench: Bench, tool: Tool, namespace: string): Promise<ToolFigure> {
  const value = `${new Date().toISOString()}-${tool}`;
  const path =
    tool === 'flux' ? fluxPath('kustomizations', namespace, repoName) : signetPath(namespace, repoName);
  const since = Date.now();
  const started = performance.now();
  const patched = await mergePatch(bench.user, path, {
    metadata: { annotations: { [tool === 'flux' ? fluxRequestedAt : signetRequestedAt]: value } },
  });
  await watchStatusUntil(
    bench.user,
    tool === 'flux' ? fluxPath('kustomizations', namespace) : signetPath(namespace),
    repoName,
    patched.metadata.resourceVersion ?? '0',
    (status) => status.lastHandledReconcileAt === value,
    600_000,
    `${tool} to handle the reconcile request in ${namespace}`,
  );
  const seconds = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const tally = await auditTally(bench, tool, since);
  return { seconds, requests: tally.total, requestsByKind: tally.byKind };
}

/** Sets the Flux Kustomization's interval and waits until the reconcile that change caused is done. */
async function setFluxInterval(bench: Bench, namespace: string, interval: string): Promise<void> {
  const patched = await mergePatch(bench.user, fluxPath('kustomizations', namespace, repoName), {
    spec: { interval },
  });
  const generation = patched.metadata.generation ?? 0;
  await watchStatusUntil(
    bench.user,
    fluxPath('kustomizations', namespace),
    repoName,
    patched.metadata.resourceVersion ?? '0',
    (status) =>
      Number(status.observedGeneration ?? 0) >= generation &&
      Array.isArray(status.conditions) &&
      (status.conditions as { type?: string; status?: string }[]).some(
        (c) => c.type === 'Ready' && c.status === 'True',
      ),
    600_000,
    `Flux to reconcile interval ${interval} in ${namespace}`,
  );
}

/** Edits `cm-<index>` out of band; seconds from the edit's answer until its data is back. */
async function driftRevert(
  bench: Bench,
  namespace: string,
  index: number,
  timeoutMs: number,
): Promise<number> {
  const name = `cm-${index}`;
  const edited = await mergePatch(bench.user, `/api/v1/namespaces/${namespace}/configmaps/${name}`, {
    data: { index: 'drifted' },
  });
  const started = performance.now();
  await watchObjectUntil(
    bench.user,
    `/api/v1/namespaces/${namespace}/configmaps`,
    name,
    edited.metadata.resourceVersion ?? '0',
    (object) => (object.data as Record<string, string> | undefined)?.index === String(index),
    timeoutMs,
    `${name} in ${namespace} to be reverted`,
  );
  return (performance.now() - started) / 1000;
}

/** Deletes every source object of both tools (pruning their ConfigMaps) and waits until they are gone. */
async function deleteAll(bench: Bench, namespaces: readonly string[]): Promise<void> {
  const paths: string[] = [];
  for (const namespace of namespaces) {
    if (namespace.startsWith('flux-')) {
      paths.push(
        fluxPath('kustomizations', namespace, repoName),
        fluxPath('gitrepositories', namespace, repoName),
      );
    } else paths.push(signetPath(namespace, repoName));
  }
  // The Kustomization first: it prunes while its source is still there.
  for (const path of paths) await bench.user.request({ method: 'DELETE', path, timeoutMs: 30_000 });
  for (const path of paths) {
    await waitUntil(
      async () =>
        (await bench.user.request({ method: 'GET', path, timeoutMs: 30_000 })).status === 404
          ? true
          : undefined,
      600_000,
      `${path} to be deleted`,
      500,
    );
  }
}

async function startSignet(kubeconfig: string, cacheDir: string): Promise<OperatorProcess> {
  const signetBin = await ensureBuilt();
  const running = startOperatorProcess(signetBin, signetRunArgs({ kubeconfig, cacheDir }), {
    env: { SIGNET_LOG_LEVEL: 'info' },
  });
  await running.metricsPort(60_000);
  return running;
}

export async function runFluxBench(options: FluxBenchOptions = {}): Promise<FluxBenchResult> {
  const sizes = options.sizes ?? (process.env.SIGNET_BENCH_FLUX_SIZES ?? '1000,5000').split(',').map(Number);
  const rounds = options.rounds ?? Number(process.env.SIGNET_BENCH_FLUX_ROUNDS ?? 1);
  const driftInterval = options.driftInterval ?? '1m';
  const idleMs = options.idleMs ?? 20_000;
  // 200 by default: Flux needed 467 s for 200 at load 7-10 (about 40 min for the issue's 1,000).
  const fleetSize = options.fleet ?? Number(process.env.SIGNET_BENCH_FLUX_FLEET ?? 200);
  const fleetSources =
    options.fleetSources ??
    (process.env.SIGNET_BENCH_FLUX_FLEET_SOURCES === 'shared' ? 'shared' : 'one-per-path');
  const build = await ensureFluxBuilt();
  const stateDir = join(repoRoot, '.signet', `bench-flux-${process.pid}`);
  const plane = await startBenchPlane(stateDir);
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-bench-flux-cache-'));
  const user = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent });
  const repos: SignedRepo[] = [];
  let flux: RunningFlux | undefined;
  let signet: OperatorProcess | undefined;
  try {
    await installCrd(user);
    await installFluxCrds(user, build.dir);
    await createNamespace(user, 'flux-system');
    flux = await startFlux(build.dir, plane.kubeconfigPath);
    signet = await startSignet(plane.kubeconfigPath, cacheDir);
    const bench: Bench = { plane, user, flux, signet };
    const cold: ColdCase[] = [];
    for (const size of sizes) {
      const repo = await createSignedRepo(`flux-bench-${size}`);
      repos.push(repo);
      const commit = await repo.commit(configMapFiles(size), { message: `${size} ConfigMaps\n` });
      for (let round = 1; round <= rounds; round++) {
        const order = round % 2 === 1 ? tools : [...tools].reverse();
        for (const tool of order) {
          const result = await coldCase(bench, tool, repo, commit, size, round);
          process.stderr.write(
            `[flux bench] ${tool} ${size} round ${round}: ${result.seconds.toFixed(2)} s, ${result.requests} requests, RSS ${(result.rssBytes / 2 ** 20).toFixed(0)} MiB\n`,
          );
          cold.push(result);
        }
      }
    }
    const largest = Math.max(...sizes);
    const last = (tool: Tool) => `${tool}-${largest}-r${rounds}`;
    const noop = {
      objects: largest,
      flux: await noopReconcile(bench, 'flux', last('flux')),
      signet: await noopReconcile(bench, 'signet', last('signet')),
    };
    await setFluxInterval(bench, last('flux'), driftInterval);
    const driftIndex = Math.floor(largest / 2);
    const drift = {
      objects: largest,
      fluxInterval: driftInterval,
      secondsToRevert: {
        signet: await driftRevert(bench, last('signet'), driftIndex, 60_000),
        flux: await driftRevert(bench, last('flux'), driftIndex, 600_000),
      },
    };
    await deleteAll(bench, [...new Set(cold.map((c) => `${c.tool}-${c.objects}-r${c.round}`))]);
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const idleAfterDelete = {
      idleMs,
      rssBytes: { flux: await rssOf(bench, 'flux'), signet: await rssOf(bench, 'signet') },
    };
    let fleet: FleetCase | undefined;
    if (fleetSize > 0) {
      // Fresh processes for the fleet: each tool's memory is its fleet's, not the cases' above.
      await signet.stop('SIGTERM', 30_000);
      signet = undefined;
      await flux.stop();
      flux = undefined;
      const repo = await createSignedRepo('flux-bench-fleet');
      repos.push(repo);
      fleet = await runFleets(plane, user, repo, fleetSize, fleetSources);
    }
    return { fluxVersion: await fluxVersion(), build, cold, noop, drift, idleAfterDelete, fleet };
  } finally {
    await signet?.stop('SIGTERM', 30_000);
    await flux?.stop();
    for (const repo of repos) await repo.close().catch(() => undefined);
    await user.close();
    await plane.stop();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/**
 * The fleet: one signed commit holding `apps/flux/app-<i>` and `apps/signet/app-<i>` (4 objects
 * each); Flux first (runFluxFleet: one GitRepository and one Kustomization per path), then a fresh
 * `signet run` with one GitRepository per path; Git requests counted at the Git server.
 */
async function runFleets(
  plane: ControlPlane,
  user: KubeClient,
  repo: SignedRepo,
  size: number,
  fluxSources: 'one-per-path' | 'shared',
): Promise<FleetCase> {
  const commit = await repo.commit(
    { ...fleetFiles(size, 'flux'), ...fleetFiles(size, 'signet') },
    { message: `fleet of ${size}\n` },
  );
  const revision = `main@sha1:${commit}`;
  const paths = (tool: Tool) => Array.from({ length: size }, (_, i) => `./apps/${tool}/app-${i}`);
  let gitBefore = repo.server.requests.length;
  const flux = await runFluxFleet({
    client: user,
    kubeconfig: plane.kubeconfigPath,
    auditLogPath: plane.auditLogPath,
    repo: { url: repo.url, caPem: repo.server.caPem, signerPublicKey: repo.key.publicKeyLine },
    revision,
    paths: paths('flux'),
    sources: fluxSources,
  });
  const fluxGit = repo.server.requests.length - gitBefore;
  process.stderr.write(
    `[flux bench] flux fleet of ${size}: ${flux.seconds.toFixed(1)} s, ${flux.requests.total} requests\n`,
  );
  gitBefore = repo.server.requests.length;
  const signet = await signetFleet(plane, user, repo, revision, paths('signet'));
  const signetGit = repo.server.requests.length - gitBefore;
  process.stderr.write(
    `[flux bench] signet fleet of ${size}: ${signet.seconds.toFixed(1)} s, ${signet.requests.total} requests\n`,
  );
  return {
    repositories: size,
    objectsPerRepository: 4,
    flux: { ...flux, gitRequests: fluxGit },
    signet: { ...signet, gitRequests: signetGit },
  };
}

async function signetFleet(
  plane: ControlPlane,
  user: KubeClient,
  repo: SignedRepo,
  revision: string,
  paths: readonly string[],
): Promise<SignetFleetResult> {
  const namespace = 'signet-fleet';
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-bench-fleet-cache-'));
  const signet = await startSignet(plane.kubeconfigPath, cacheDir);
  try {
    await createNamespace(user, namespace);
    await createObjects(user, trustObjects(repo, namespace));
    const since = Date.now();
    const started = performance.now();
    const objects = paths.map((path, i) =>
      gitRepositoryObject(repo, namespace, `app-${i}`, { interval: '10m', path }),
    );
    for (let start = 0; start < objects.length; start += 32) {
      await Promise.all(objects.slice(start, start + 32).map((object) => user.create(object)));
    }
    // A LIST every 2 s (the bench's own user agent, not counted), as for Flux's fleet.
    await waitUntil(
      async () => {
        const listed = await user.list('signet.dev/v1alpha1', 'GitRepository', { namespace });
        const applied = listed.items.filter(
          (item) =>
            (item.status as { lastAppliedRevision?: string } | undefined)?.lastAppliedRevision === revision,
        );
        return applied.length >= paths.length ? true : undefined;
      },
      1_800_000,
      `${paths.length} Signet GitRepositories to apply ${revision}`,
      2_000,
    );
    const seconds = (performance.now() - started) / 1000;
    const pid = signet.child.pid ?? -1;
    const rssBytes = await vmRssBytes(pid);
    const peakRssBytes = await procStatusBytes(pid, 'VmHWM');
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const requests = tallyAudit(
      (await readFile(plane.auditLogPath, 'utf8')).split('\n'),
      signetAgents,
      since,
    );
    return { gitRepositories: paths.length, seconds, requests, rssBytes, peakRssBytes };
  } finally {
    await signet.stop('SIGTERM', 30_000);
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/** The pinned versions, from bench/flux/build.sh. */
async function fluxVersion(): Promise<string> {
  const script = await readFile(new URL('./flux/build.sh', import.meta.url), 'utf8');
  const source = /^SOURCE_CONTROLLER_VERSION=(\S+)$/m.exec(script)?.[1] ?? '?';
  const kustomize = /^KUSTOMIZE_CONTROLLER_VERSION=(\S+)$/m.exec(script)?.[1] ?? '?';
  return `source-controller v${source} + kustomize-controller v${kustomize}`;
}

const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 0)} MiB`;

/** Rows for bench/run.ts: each figure for both tools, Flux as the baseline, the ratio Signet ÷ Flux. */
export function benchRows(raw: unknown): BenchRow[] {
  const r = raw as FluxBenchResult;
  const rows: BenchRow[] = [];
  const flux = r.fluxVersion;
  for (const objects of [...new Set(r.cold.map((c) => c.objects))]) {
    const of = (tool: Tool) => r.cold.filter((c) => c.objects === objects && c.tool === tool);
    const signetCases = of('signet');
    const fluxCases = of('flux');
    const signetSeconds = median(signetCases.map((c) => c.seconds));
    const fluxSeconds = median(fluxCases.map((c) => c.seconds));
    const perObject = (cases: readonly ColdCase[]) => median(cases.map((c) => c.requestsPerObject));
    const describe = (cases: readonly ColdCase[]) =>
      `${cases.map((c) => `${fmt(c.seconds)} s`).join(' / ')}, ${fmt(perObject(cases), 3)} requests/object, ${cases.reduce((a, c) => a + c.throttled429, 0)} × 429, RSS ${cases.map((c) => mib(c.rssBytes)).join(' / ')}`;
    rows.push({
      bench: 'flux',
      figure: `cold apply of ${objects} ConfigMaps from a signed Git repository, creation to Ready (${signetCases.length} round(s), fresh namespaces); requests by kind: Signet ${JSON.stringify(signetCases[0]?.requestsByKind ?? {})}, Flux ${JSON.stringify(fluxCases[0]?.requestsByKind ?? {})}`,
      value: describe(signetCases),
      baseline: `Flux (${flux}) ${describe(fluxCases)}`,
      ratio: `${fmt(signetSeconds / fluxSeconds)}× time, ${fmt(perObject(signetCases) / perObject(fluxCases))}× requests/object`,
      target: '≤ 0.5× Flux time, ≤ 1.1 requests/object, no 429',
      pass:
        signetSeconds <= 0.5 * fluxSeconds &&
        perObject(signetCases) <= 1.1 &&
        signetCases.every((c) => c.throttled429 === 0),
    });
  }
  const largestCases = (tool: Tool) => r.cold.filter((c) => c.tool === tool && c.objects === r.noop.objects);
  const rssAfterApply = (tool: Tool) => median(largestCases(tool).map((c) => c.rssBytes));
  rows.push({
    bench: 'flux',
    figure: `RSS right after the ${r.noop.objects}-object cold apply (Flux: both controllers; every earlier case's objects still applied)`,
    value: mib(rssAfterApply('signet')),
    baseline: `Flux ${mib(rssAfterApply('flux'))}`,
    ratio: `${fmt(rssAfterApply('signet') / rssAfterApply('flux'))}×`,
    target: '≤ 0.8× Flux (issue 18)',
    pass: rssAfterApply('signet') <= 0.8 * rssAfterApply('flux'),
  });
  const n = r.noop;
  rows.push({
    bench: 'flux',
    figure: `no-op reconcile of ${n.objects} unchanged objects ("reconcile now" annotation until handled); requests by kind: Signet ${JSON.stringify(n.signet.requestsByKind)}, Flux ${JSON.stringify(n.flux.requestsByKind)}`,
    value: `${n.signet.requests} requests, ${fmt(n.signet.seconds)} s`,
    baseline: `Flux ${n.flux.requests} requests, ${fmt(n.flux.seconds)} s`,
    ratio: `${fmt(n.signet.requests / n.flux.requests, 4)}× requests`,
    target: '≤ 0.01 requests/object',
    pass: n.signet.requests / n.objects <= 0.01,
  });
  const d = r.drift;
  rows.push({
    bench: 'flux',
    figure: `drift: one of ${d.objects} ConfigMaps edited out of band, time until reverted (Flux reverts at its next interval: Kustomization interval ${d.fluxInterval})`,
    value: `${fmt(d.secondsToRevert.signet * 1000, 0)} ms`,
    baseline: `Flux ${fmt(d.secondsToRevert.flux, 1)} s`,
    ratio: `${fmt(d.secondsToRevert.signet / d.secondsToRevert.flux, 4)}×`,
    target: '≤ 1 s',
    pass: d.secondsToRevert.signet <= 1,
  });
  const idle = r.idleAfterDelete;
  rows.push({
    bench: 'flux',
    figure: `RSS once every GitRepository/Kustomization is deleted (objects pruned) and ${fmt(idle.idleMs / 1000, 0)} s idle`,
    value: mib(idle.rssBytes.signet),
    baseline: `Flux ${mib(idle.rssBytes.flux)}`,
    ratio: `${fmt(idle.rssBytes.signet / idle.rssBytes.flux)}×`,
    target: '≤ 0.8× Flux (issue 18)',
    pass: idle.rssBytes.signet <= 0.8 * idle.rssBytes.flux,
  });
  const f = r.fleet;
  if (f !== undefined) {
    const objects = f.repositories * f.objectsPerRepository;
    const describe = (x: {
      seconds: number;
      requests: AuditTally;
      rssBytes: number;
      peakRssBytes: number;
      gitRequests: number;
    }) =>
      `${fmt(x.seconds, 1)} s, ${fmt(x.requests.total / objects, 2)} API requests/object (${fmt(x.requests.total / f.repositories, 1)}/repository), ${x.gitRequests} Git requests, RSS ${mib(x.rssBytes)} (peak ${mib(x.peakRssBytes)})`;
    rows.push({
      bench: 'flux',
      figure: `fleet cold start: ${f.repositories} GitRepositories over paths of one signed monorepo, ${f.objectsPerRepository} objects each (Namespace, ServiceAccount, ConfigMap, Deployment), created at once until all applied; fresh processes, defaults; requests by kind: Signet ${JSON.stringify(f.signet.requests.byKind)}, Flux ${JSON.stringify(f.flux.requests.byKind)}`,
      value: describe(f.signet),
      baseline: `Flux (${f.flux.gitRepositories} GitRepositories + ${f.flux.kustomizations} Kustomizations) ${describe(f.flux)}`,
      ratio: `${fmt(f.signet.seconds / f.flux.seconds)}× time, ${fmt(f.signet.requests.total / f.flux.requests.total)}× API requests, ${fmt(f.signet.rssBytes / f.flux.rssBytes)}× RSS`,
      target:
        'issue 18: all Ready ≤ 60 s, RSS ≤ 175 MiB and ≤ 0.8× Flux, ≤ 1.1 requests/object + 6/repository, Git ≤ 10',
      pass:
        f.signet.seconds <= 60 &&
        f.signet.rssBytes <= 175 * 2 ** 20 &&
        f.signet.rssBytes <= 0.8 * f.flux.rssBytes &&
        f.signet.requests.total <= 1.1 * objects + 6 * f.repositories &&
        f.signet.gitRequests <= 10,
    });
  }
  rows.push({
    bench: 'flux',
    figure: `Flux build (bench/flux/build.sh, ${flux}), this run`,
    value: `${fmt(r.build.seconds, 1)} s (reused when cached)`,
    baseline: 'n/a',
    ratio: 'n/a',
    target: 'reported only',
    pass: 'info',
  });
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runFluxBench();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const row of benchRows(result)) process.stdout.write(`${formatRowLine(row)}\n`);
}
