// RSS of a `bin/signet run` process through a fleet's life (issue 18, "Memory that follows the
// work"): idle with no GitRepository, N GitRepositories over one signed monorepo all Ready (a
// ConfigMap and a ServiceAccount each), then all deleted. VmRSS from /proc after `idleMs` of
// idling in each phase. Starts its own control plane in a temporary state directory.
//
//   node hack/fleet-rss.ts [N=200] [idleMs=10000]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../e2e/support/controlplane.ts';
import { createObjects, gitRepositoryObject, trustObjects } from '../e2e/support/fixtures.ts';
import { ensureBuilt, signetRunArgs, startOperatorProcess } from '../e2e/support/operator-process.ts';
import { configMapYaml, createSignedRepo, installCrd } from '../e2e/support/signet.ts';
import { loadKubeClient } from '../src/kube/load.ts';

const count = Number(process.argv[2] ?? 200);
const idleMs = Number(process.argv[3] ?? 10_000);
const namespace = 'fleet-rss';

async function vmRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN);
  return Math.round((kib / 1024) * 10) / 10;
}

/** Used V8 heap and external memory of the process (its /metrics), MiB. */
async function heapMiB(metricsText: string): Promise<{ heapUsed: number; external: number }> {
  const value = (name: string) => {
    const line = metricsText.split('\n').find((l) => l.startsWith(`${name} `));
    return Math.round((Number(line?.split(' ')[1] ?? Number.NaN) / 1024 / 1024) * 10) / 10;
  };
  return {
    heapUsed: value('signet_process_nodejs_heap_size_used_bytes'),
    external: value('signet_process_nodejs_external_memory_bytes'),
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const stateDir = await mkdtemp(join(tmpdir(), 'signet-fleet-rss-'));
const cacheDir = await mkdtemp(join(tmpdir(), 'signet-fleet-rss-cache-'));
const plane = await startControlPlane({ stateDir, reuse: false });
const signetBin = await ensureBuilt();
const client = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: 'fleet-rss/1.0' });
const signed = await createSignedRepo('fleet-rss');
const names = Array.from({ length: count }, (_, i) => `team-${i}`);
let operator: ReturnType<typeof startOperatorProcess> | undefined;
try {
  await installCrd(client);
  await client.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { fieldManager: 'fleet-rss' },
  );
  await createObjects(client, trustObjects(signed, namespace));
  const files: Record<string, string> = {};
  for (const name of names) {
    files[`teams/${name}/cm.yaml`] = configMapYaml(`${name}-cm`, { team: name });
    files[`teams/${name}/sa.yaml`] = `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}-sa\n`;
  }
  await signed.commit(files);
  operator = startOperatorProcess(
    signetBin,
    signetRunArgs({ kubeconfig: plane.kubeconfigPath, namespace, cacheDir }),
    { env: { SIGNET_LOG_LEVEL: 'info' } },
  );
  const pid = operator.child.pid ?? 0;
  await operator.metricsPort(60_000);
  await new Promise((resolve) => setTimeout(resolve, idleMs));
  const idle = await vmRssMiB(pid);
  const idleHeap = await heapMiB(await operator.metrics());

  const started = Date.now();
  for (const name of names) {
    await client.apply(
      gitRepositoryObject(signed, namespace, name, { interval: '10m', path: `./teams/${name}` }),
      {
        fieldManager: 'fleet-rss',
      },
    );
  }
  const ready = async () => {
    const list = await client.list('signet.dev/v1alpha1', 'GitRepository', { namespace });
    return list.items.filter((item) =>
      (
        (item.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []
      ).some((c) => c.type === 'Ready' && c.status === 'True'),
    ).length;
  };
  await until(`${count} GitRepositories Ready`, async () => (await ready()) === count);
  const readyAfterMs = Date.now() - started;
  await new Promise((resolve) => setTimeout(resolve, idleMs));
  const loaded = await vmRssMiB(pid);
  const loadedHeap = await heapMiB(await operator.metrics());

  for (const name of names) {
    await client.delete({ apiVersion: 'signet.dev/v1alpha1', kind: 'GitRepository', name, namespace });
  }
  await until(
    'every GitRepository finalized',
    async () => (await client.list('signet.dev/v1alpha1', 'GitRepository', { namespace })).items.length === 0,
  );
  await new Promise((resolve) => setTimeout(resolve, idleMs));
  const afterDelete = await vmRssMiB(pid);
  const afterDeleteHeap = await heapMiB(await operator.metrics());
  console.log(
    JSON.stringify({
      gitRepositories: count,
      objects: count * 2,
      readyAfterMs,
      idleMs,
      vmRssMiB: { idle, loaded, afterDelete },
      heapMiB: { idle: idleHeap, loaded: loadedHeap, afterDelete: afterDeleteHeap },
      afterDeleteVsIdle: Math.round((afterDelete / idle) * 100) / 100,
    }),
  );
} finally {
  await operator?.stop('SIGTERM', 10_000);
  await signed.close();
  await client.close();
  await plane.stop();
  await rm(stateDir, { recursive: true, force: true });
  await rm(cacheDir, { recursive: true, force: true });
}
