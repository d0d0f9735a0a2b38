// Memory that follows the work (issue 18): 20 GitRepositories over one monorepo, each a ConfigMap,
// the even ones also a ServiceAccount. What the operator holds for them is counted by entry
// (RunningOperator.held(): desired states, written statuses, watches and their objects, interned
// structures, Git shares, polls and blobs, drift reports, Event repeat counts, alert notifiers),
// not by RSS. Deleting the GitRepositories that manage ServiceAccounts stops that watch; deleting
// the rest brings every count back to zero. RSS and heap are printed for the report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { gitRepositoryObject, releaseGitRepositories } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { configMapYaml, startTestOperator, waitAllReady } from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-fleet-memory');
const fleetSize = 20;
const names = Array.from({ length: fleetSize }, (_, i) => `team-${i}`);
const even = names.filter((_, i) => i % 2 === 0);
const odd = names.filter((_, i) => i % 2 === 1);
let admin: KubeClient;
let signed: Awaited<ReturnType<typeof startSuite>>['signed'];
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;

const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
function memory(): { rssMiB: number; heapMiB: number } {
  globalThis.gc?.();
  const usage = process.memoryUsage();
  return { rssMiB: mib(usage.rss), heapMiB: mib(usage.heapUsed) };
}

function held(): Record<string, number> {
  if (operator === undefined) throw new Error('no operator');
  return operator.operator.held();
}

async function deleteAll(list: readonly string[]): Promise<void> {
  await Promise.all(
    list.map((name) =>
      admin.delete({ apiVersion: 'signet.dev/v1alpha1', kind: 'GitRepository', name, namespace: ns.name }),
    ),
  );
  for (const name of list) {
    await waitFor(
      async () =>
        (await admin.get({
          apiVersion: 'signet.dev/v1alpha1',
          kind: 'GitRepository',
          name,
          namespace: ns.name,
        })) === undefined,
      { timeoutMs: 60_000, description: `GitRepository ${name} finalized and gone` },
    );
  }
}

beforeAll(async () => {
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'fleet-memory' }));
  const files: Record<string, string> = {};
  for (const [i, name] of names.entries()) {
    files[`teams/${name}/config.yaml`] = configMapYaml(`${name}-config`, { team: name });
    if (i % 2 === 0) {
      files[`teams/${name}/sa.yaml`] =
        `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}-sa\n`;
    }
  }
  await signed.commit(files);
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await releaseGitRepositories(admin, ns.name);
  await closeAll(signed, admin);
});

describe('memory that follows the work', () => {
  it('entries held for GitRepositories go back to zero once they are deleted; an unused watch is stopped', async () => {
    operator = await startTestOperator({ namespace: ns.name, concurrent: 4 });
    const idle = memory();
    const idleHeld = held();
    expect(Object.values(idleHeld).every((count) => count === 0)).toBe(true);
    for (const name of names) {
      await admin.apply(
        gitRepositoryObject(signed, ns.name, name, { interval: '10m', path: `./teams/${name}` }),
        {
          fieldManager: 'e2e',
        },
      );
    }
    await waitAllReady(admin, ns.name, names, 120_000);
    const loaded = held();
    const loadedMemory = memory();
    expect(loaded).toMatchObject({
      managed: fleetSize,
      watches: 2,
      watchUsers: fleetSize,
      gitKeys: 1,
      gitUsers: fleetSize,
    });
    // The watches are cluster-wide (label-selected): objects other e2e files manage count too.
    expect(loaded.liveObjects).toBeGreaterThanOrEqual(fleetSize + even.length);
    expect(loaded.interned).toBeGreaterThan(0);
    expect(loaded.gitBlobs).toBeGreaterThan(0);

    await deleteAll(even);
    await waitFor(() => held().managed === odd.length && held().watches === 1, {
      timeoutMs: 30_000,
      description: 'the ServiceAccount watch stopped and the deleted GitRepositories forgotten',
    });
    expect(held()).toMatchObject({ managed: odd.length, watches: 1, gitUsers: odd.length });
    expect(held().liveObjects).toBeGreaterThanOrEqual(odd.length);

    await deleteAll(odd);
    await waitFor(() => Object.values(held()).every((count) => count === 0), {
      timeoutMs: 30_000,
      description: `every held entry back to 0 (now ${JSON.stringify(held())})`,
    });
    const after = memory();
    console.log(
      'fleet memory (in-process operator, vitest worker):',
      JSON.stringify({ idle, loaded: loadedMemory, afterDelete: after, heldLoaded: loaded }),
    );
  }, 240_000);
});
