import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { repoRoot, startControlPlane } from './e2e/support/controlplane.ts';
import { applyPlan } from './src/apply/apply.ts';
import { createResourceManager } from './src/apply/manager.ts';
import { loadKubeClient } from './src/kube/load.ts';
import { planChanges } from './src/plan/plan.ts';
import type { KubeObject } from './src/render/object.ts';
import { Session } from 'node:inspector/promises';
import { writeFile } from 'node:fs/promises';
const session = new Session(); session.connect(); await session.post('Profiler.enable');
const plane = await startControlPlane({ stateDir: join(repoRoot, '.signet', 'exp-apply'), reuse: false, ownerPid: process.pid });
const kube = await loadKubeClient({ kubeconfig: plane.kubeconfigPath, userAgent: 'exp' });
const cpu = async (pid: number) => { const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
try {
  const owner = { name: 'bench', namespace: 'x' };
  for (const [round, ns] of ['a', 'b'].entries()) {
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'x' });
    const desired: KubeObject[] = Array.from({ length: 5000 }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}`, namespace: ns, labels: { 'signet.dev/name': 'bench', 'signet.dev/namespace': 'x' } }, data: { index: String(i), payload: 'x'.repeat(64) } }) as unknown as KubeObject);
    const plan = planChanges({ desired, inventory: undefined, live: new Map(), owner, fieldManager: 'signet' });
    const pids = { apiserver: plane.pidOf('kube-apiserver')!, etcd: plane.pidOf('etcd')!, kcm: plane.pidOf('kube-controller-manager')!, node: process.pid };
    const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([k, p]) => [k, await cpu(p)])));
    const prof = false ? new Promise((res) => execFile('curl', ['-s', '--cacert', plane.caCertPath, '--cert', plane.adminCertPath, '--key', plane.adminKeyPath, '-o', '/tmp/apply.pprof', `${plane.server}/debug/pprof/profile?seconds=5`], res)) : undefined;
    if (round === 1) await session.post('Profiler.start');
    const t = performance.now();
    await applyPlan(createResourceManager(kube, owner), plan, { concurrency: 64 });
    const wall = (performance.now() - t) / 1000;
    const after = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([k, p]) => [k, await cpu(p)])));
    console.log(`round ${round}: ${wall.toFixed(2)} s wall; CPU s:`, Object.fromEntries(Object.keys(pids).map((k) => [k, (after[k] - before[k]).toFixed(2)])));
    await prof;
    if (round === 1) { const { profile } = await session.post('Profiler.stop'); await writeFile('/tmp/node-apply.cpuprofile', JSON.stringify(profile)); }
  }
} finally { await kube.close(); await plane.stop(); }
