// Fair queueing (issue 18): one hanging Git host must not delay GitRepositories on another host
// beyond their interval. Four GitRepositories point at a Git server that never answers (four
// repository URLs on one host, spec.timeout 20 s); four others at a healthy server (interval 2 s).
// The operator runs with --concurrent 2 and --git-host-concurrency 1: at most one worker waits on
// the hanging host, the others' reconciles are deferred (requeued after ~1 s) instead of queuing
// behind it. A new signed commit on the healthy server is applied by all four of its
// GitRepositories within a few intervals, far below the hanging host's 20 s timeout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { type GitServer, startGitServer } from '../test/support/git-server.ts';
import { gitRepositoryObject, releaseGitRepositories } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { configMapYaml, repoStatus, startTestOperator, waitAllReady } from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-fleet-fair');
const healthy = ['fast-0', 'fast-1', 'fast-2', 'fast-3'];
const hanging = ['slow-0', 'slow-1', 'slow-2', 'slow-3'];
let admin: KubeClient;
let signed: Awaited<ReturnType<typeof startSuite>>['signed'];
let slowServer: GitServer;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;

function files(color: string): Record<string, string> {
  return Object.fromEntries(
    healthy.map((name) => [`teams/${name}/cm.yaml`, configMapYaml(`${name}-cm`, { color })]),
  );
}

beforeAll(async () => {
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'fleet-fair' }));
  await signed.commit(files('blue'));
  slowServer = await startGitServer();
  await admin.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'slow-ca', namespace: ns.name },
    stringData: { 'ca.crt': slowServer.caPem },
  });
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await releaseGitRepositories(admin, ns.name);
  await slowServer?.close();
  await closeAll(signed, admin);
});

describe('fair queueing', () => {
  it('a hanging Git host holds at most --git-host-concurrency workers; GitRepositories on another host keep their interval', async () => {
    slowServer.setFault({ kind: 'hang' });
    operator = await startTestOperator({ namespace: ns.name, concurrent: 2 }, undefined, {
      hostConcurrency: 1,
    });
    for (const name of hanging) {
      const url = slowServer.serve(name, `${signed.repo.dir}/.git`);
      await admin.apply(
        gitRepositoryObject({ url }, ns.name, name, {
          interval: '2s',
          timeout: '20s',
          path: './teams/fast-0',
          secretRef: { name: 'slow-ca' },
        }),
        { fieldManager: 'e2e' },
      );
    }
    for (const name of healthy) {
      await admin.apply(
        gitRepositoryObject(signed, ns.name, name, { interval: '2s', path: `./teams/${name}` }),
        {
          fieldManager: 'e2e',
        },
      );
    }
    await waitAllReady(admin, ns.name, healthy, 60_000);

    const commit = await signed.commit(files('green'));
    const pushedAt = Date.now();
    const appliedAfterMs: Record<string, number> = {};
    await waitFor(
      async () => {
        for (const name of healthy) {
          if (appliedAfterMs[name] !== undefined) continue;
          const status = await repoStatus(admin, ns.name, name);
          if (status.lastAppliedRevision === `main@sha1:${commit}`)
            appliedAfterMs[name] = Date.now() - pushedAt;
        }
        return Object.keys(appliedAfterMs).length === healthy.length;
      },
      { timeoutMs: 15_000, description: 'every healthy GitRepository to apply the new commit' },
    );
    const deferred = (await operator.operator.metrics.reconcilesTotal.get()).values
      .filter((v) => v.labels.result === 'deferred')
      .reduce((sum, v) => sum + v.value, 0);
    const depth = (await operator.operator.metrics.queueDepth.get()).values[0]?.value;
    console.log('fair queueing:', JSON.stringify({ appliedAfterMs, deferred, queueDepth: depth }));
    // Far below the hanging host's 20 s spec.timeout: two intervals plus the machine's slack.
    expect(Math.max(...Object.values(appliedAfterMs))).toBeLessThan(12_000);
    // The hanging host's other GitRepositories were deferred, not queued behind the one waiting.
    expect(deferred).toBeGreaterThan(0);
    expect(depth).toBeTypeOf('number');
    // Nothing of the hanging host was applied.
    for (const name of hanging)
      expect((await repoStatus(admin, ns.name, name)).lastAppliedRevision).toBeUndefined();
  }, 120_000);
});
