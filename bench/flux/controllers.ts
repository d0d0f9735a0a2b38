// Flux's source-controller and kustomize-controller as out-of-cluster processes against the
// bench's control plane (admin kubeconfig): built by bench/flux/build.sh (reused when present),
// their CRDs installed from the build's cache directory, each on loopback ports of its own.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../e2e/support/controlplane.ts';
import { type OperatorProcess, startOperatorProcess } from '../../e2e/support/operator-process.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/render/object.ts';
import { waitUntil } from '../support.ts';

const execFileAsync = promisify(execFile);

/** The build's output directory (`bin/`, `crds/`) and how long `build.sh` took this time. */
export interface FluxBuild {
  readonly dir: string;
  readonly seconds: number;
}

/** Runs bench/flux/build.sh with the project's Go (hack/go.sh) first on PATH: builds once, then reuses. */
export async function ensureFluxBuilt(
  signal: AbortSignal = AbortSignal.timeout(3_600_000),
): Promise<FluxBuild> {
  const started = performance.now();
  const goBin = (await execFileAsync(join(repoRoot, 'hack', 'go.sh'), [], { signal })).stdout.trim();
  const { stdout } = await execFileAsync(join(repoRoot, 'bench', 'flux', 'build.sh'), [], {
    signal,
    env: { ...process.env, PATH: `${goBin}:${process.env.PATH ?? ''}` },
    maxBuffer: 16 * 1024 * 1024,
  });
  const dir = stdout.trim().split('\n').pop();
  if (dir === undefined || dir === '') throw new Error('bench/flux/build.sh printed no output directory');
  return { dir, seconds: (performance.now() - started) / 1000 };
}

/** Installs every CRD of the build (server-side apply) and waits until each is Established. */
export async function installFluxCrds(client: KubeClient, buildDir: string): Promise<void> {
  const { parse } = await import('yaml');
  const crdDir = join(buildDir, 'crds');
  const names: string[] = [];
  for (const file of (await readdir(crdDir)).filter((f) => f.endsWith('.yaml')).sort()) {
    const crd = parse(await readFile(join(crdDir, file), 'utf8')) as KubeObject;
    await client.apply(crd, { fieldManager: 'signet-bench', force: true });
    names.push(crd.metadata.name ?? file);
  }
  for (const name of names) {
    await waitUntil(
      async () => {
        const live = await client.get({
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          name,
        });
        const conditions =
          (live?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
        return conditions.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
      },
      30_000,
      `the CRD ${name} to be Established`,
      100,
    );
  }
  client.discovery.invalidate();
}

/** A free loopback TCP port (closed again; the controller binds it right after). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('no port'));
        else resolve(address.port);
      });
    });
  });
}

export interface RunningFlux {
  readonly source: OperatorProcess;
  readonly kustomize: OperatorProcess;
  /** pids of both controllers, for VmRSS and CPU time. */
  pids(): number[];
  stop(): Promise<void>;
}

async function waitHealthy(name: string, controller: OperatorProcess, port: number): Promise<void> {
  await waitUntil(
    async () => {
      if (controller.child.exitCode !== null) {
        throw new Error(
          `${name} exited (${controller.child.exitCode}): ${controller.lines.slice(-20).join('\n')}`,
        );
      }
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.ok)
        .catch(() => false);
      return ok ? true : undefined;
    },
    60_000,
    `${name} to be ready on 127.0.0.1:${port}`,
    200,
  );
}

/**
 * Starts both controllers watching every namespace, without leader election, logging at info.
 * source-controller serves its artifacts on a loopback port and advertises that same address, so
 * kustomize-controller downloads from it over plain HTTP (as in a cluster, where it is a Service).
 */
export async function startFlux(buildDir: string, kubeconfig: string): Promise<RunningFlux> {
  const storage = await mkdtemp(join(tmpdir(), 'signet-bench-flux-storage-'));
  const [storagePort, sourceMetrics, sourceHealth, kustomizeMetrics, kustomizeHealth] = await Promise.all(
    Array.from({ length: 5 }, freePort),
  );
  const env = { KUBECONFIG: kubeconfig, RUNTIME_NAMESPACE: 'flux-system' };
  const common = ['--enable-leader-election=false', '--watch-all-namespaces=true', '--log-level=info'];
  const source = startOperatorProcess(
    join(buildDir, 'bin', 'source-controller'),
    [
      ...common,
      `--metrics-addr=127.0.0.1:${sourceMetrics}`,
      `--health-addr=127.0.0.1:${sourceHealth}`,
      `--storage-path=${storage}`,
      `--storage-addr=127.0.0.1:${storagePort}`,
      `--storage-adv-addr=127.0.0.1:${storagePort}`,
    ],
    { env },
  );
  const kustomize = startOperatorProcess(
    join(buildDir, 'bin', 'kustomize-controller'),
    [...common, `--metrics-addr=127.0.0.1:${kustomizeMetrics}`, `--health-addr=127.0.0.1:${kustomizeHealth}`],
    { env },
  );
  const running: RunningFlux = {
    source,
    kustomize,
    pids() {
      return [source.child.pid, kustomize.child.pid].filter((pid): pid is number => pid !== undefined);
    },
    async stop() {
      await Promise.all([source.stop('SIGTERM', 15_000), kustomize.stop('SIGTERM', 15_000)]);
      await rm(storage, { recursive: true, force: true });
    },
  };
  try {
    await waitHealthy('source-controller', source, sourceHealth ?? 0);
    await waitHealthy('kustomize-controller', kustomize, kustomizeHealth ?? 0);
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}
