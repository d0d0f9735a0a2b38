// The Flux side of the fleet benchmark (issue 18, Numbers 1 and 4): N Kustomizations, each a path
// of one signed monorepo, with one GitRepository per path (as Signet's fleet has one GitRepository
// per path) or one shared by all (Flux's usual layout), created at once on a control plane the
// caller started; timed until every Kustomization has the revision applied and is Ready.
// bench/fleet.bench.ts (h-fleet-bench) calls runFluxFleet with its own monorepo and control plane.
import { readFile } from 'node:fs/promises';
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/render/object.ts';
import { waitUntil } from '../support.ts';
import { ensureFluxBuilt, installFluxCrds, startFlux } from './controllers.ts';
import {
  type AuditTally,
  type FluxRepositorySpec,
  fluxGitRepository,
  fluxKustomization,
  fluxKustomizeApi,
  fluxTrustObjects,
  fluxUserAgents,
  kustomizationApplied,
  tallyAudit,
} from './objects.ts';

export interface FluxFleetOptions {
  /** Admin client of the control plane (creates the Flux objects, watches their status). */
  readonly client: KubeClient;
  readonly kubeconfig: string;
  /** kube-apiserver audit log: Flux's requests are counted from it by user agent. */
  readonly auditLogPath: string;
  readonly repo: { readonly url: string; readonly caPem: string; readonly signerPublicKey: string };
  /** The revision every Kustomization must reach, e.g. `main@sha1:<commit>`. */
  readonly revision: string;
  /** One Kustomization per path, e.g. `./apps/app-0`; its manifests name their own namespaces. */
  readonly paths: readonly string[];
  /** `one-per-path` (default): N GitRepositories of the same URL; `shared`: one GitRepository. */
  readonly sources?: 'one-per-path' | 'shared';
  /** Namespace of the Flux objects (created). Default `flux-fleet`. */
  readonly namespace?: string;
  /** spec.interval of every object. Default `10m`. */
  readonly interval?: string;
  readonly timeoutMs?: number;
  /** Called while Flux still runs, after all are Ready (e.g. a steady-state window). */
  readonly whileReady?: () => Promise<void>;
}

export interface FluxFleetResult {
  readonly kustomizations: number;
  readonly gitRepositories: number;
  /** Creation of the first object until the last Kustomization was seen applied and Ready. */
  readonly seconds: number;
  /** Audit-log requests of both controllers from the creation until all Ready (+2 s). */
  readonly requests: AuditTally;
  /** VmRSS of both controllers when all were Ready, and their peaks (VmHWM). */
  readonly rssBytes: number;
  readonly peakRssBytes: number;
}

async function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (kib === undefined) throw new Error(`no ${field} for pid ${pid}`);
  return Number(kib) * 1_024;
}

/** Names of the Kustomizations of `namespace` that have `revision` applied and are Ready. */
async function appliedNames(client: KubeClient, namespace: string, revision: string): Promise<Set<string>> {
  const listed = await client.list(fluxKustomizeApi, 'Kustomization', { namespace });
  return new Set(
    listed.items
      .filter((item: KubeObject) =>
        kustomizationApplied((item.status ?? {}) as Record<string, unknown>, revision),
      )
      .map((item: KubeObject) => item.metadata.name ?? ''),
  );
}

/**
 * Builds Flux (reused when cached), installs its CRDs, starts both controllers, creates the fleet,
 * waits until all are Ready, measures, and stops the controllers (the objects stay).
 */
export async function runFluxFleet(options: FluxFleetOptions): Promise<FluxFleetResult> {
  const namespace = options.namespace ?? 'flux-fleet';
  const interval = options.interval ?? '10m';
  const shared = options.sources === 'shared';
  const build = await ensureFluxBuilt();
  await installFluxCrds(options.client, build.dir);
  for (const name of [namespace, 'flux-system']) {
    await options.client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
      { fieldManager: 'bench-setup' },
    );
  }
  const specs: FluxRepositorySpec[] = options.paths.map((path, index) => ({
    namespace,
    name: `app-${index}`,
    url: options.repo.url,
    caPem: options.repo.caPem,
    signerPublicKey: options.repo.signerPublicKey,
    path,
    interval,
    ...(shared ? { sourceName: 'monorepo' } : {}),
  }));
  const first = specs[0];
  if (first === undefined) throw new Error('runFluxFleet: no paths given');
  const flux = await startFlux(build.dir, options.kubeconfig);
  try {
    for (const object of fluxTrustObjects(first)) await options.client.create(object);
    const since = Date.now();
    const started = performance.now();
    const sources = shared ? [{ ...first, name: 'monorepo' }] : specs;
    // Created in parallel batches, as `kubectl apply -f` of a directory would, without 429s.
    const objects = [...sources.map(fluxGitRepository), ...specs.map(fluxKustomization)];
    for (let start = 0; start < objects.length; start += 32) {
      await Promise.all(objects.slice(start, start + 32).map((object) => options.client.create(object)));
    }
    // A LIST every 2 s (the bench's own user agent, not counted): cheaper than a watch per object.
    // Each Kustomization counts once it has been seen applied and Ready: a fleet slower than its
    // interval has the first ones reconciling again (Ready Unknown) before the last are applied.
    const applied = new Set<string>();
    await waitUntil(
      async () => {
        for (const name of await appliedNames(options.client, namespace, options.revision)) applied.add(name);
        return applied.size >= specs.length ? true : undefined;
      },
      options.timeoutMs ?? 3_600_000,
      () => `${specs.length} Flux Kustomizations to apply ${options.revision}`,
      2_000,
    );
    const seconds = (performance.now() - started) / 1000;
    const pids = flux.pids();
    const rssBytes = (await Promise.all(pids.map((pid) => procStatus(pid, 'VmRSS')))).reduce(
      (a, b) => a + b,
      0,
    );
    const peakRssBytes = (await Promise.all(pids.map((pid) => procStatus(pid, 'VmHWM')))).reduce(
      (a, b) => a + b,
      0,
    );
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const requests = tallyAudit(
      (await readFile(options.auditLogPath, 'utf8')).split('\n'),
      fluxUserAgents,
      since,
    );
    await options.whileReady?.();
    return {
      kustomizations: specs.length,
      gitRepositories: sources.length,
      seconds,
      requests,
      rssBytes,
      peakRssBytes,
    };
  } finally {
    await flux.stop();
  }
}
