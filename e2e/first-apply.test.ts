// The first apply of a new GitRepository, by a freshly started operator: nothing is in its inventory,
// so it applies without waiting for its cold live cache, which lists (for drift) meanwhile. An
// object that already exists (made by someone else, same values) is taken over: labelled, counted as
// configured (not created), recorded in the inventory, and drift on it is reverted afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { createObjects, gitRepositoryObject, trustObjects } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-first-apply');
let admin: KubeClient;
let editor: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;
const captured = capturingLogger();

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });

beforeAll(async () => {
  admin = await adminClient();
  editor = await adminClient('kubectl-edit/1.0');
  await installCrd(admin);
  signed = await createSignedRepo();
  await signed.commit({
    'deploy/app.yaml': configMapYaml('app', { color: 'blue' }),
    'deploy/new.yaml': configMapYaml('new', { fresh: 'yes' }),
  });
  await createObjects(admin, trustObjects(signed, ns.name));
  // There before Signet, made by someone else with the values Git holds.
  await admin.create({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'app', namespace: ns.name, labels: { team: 'platform' } },
    data: { color: 'blue' },
  } as never);
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await signed?.close();
  await admin?.close();
  await editor?.close();
});

describe('the first apply of a new GitRepository by a freshly started operator', () => {
  it('takes over an existing object (configured, labelled, in the inventory) and creates the new one', async () => {
    operator = await startTestOperator({}, captured.logger);
    const head = await signed.repo.git(['rev-parse', 'HEAD']);
    await admin.apply(gitRepositoryObject(signed, ns.name, 'apps', { interval: '1h', path: './deploy' }), {
      fieldManager: 'e2e',
    });
    const status = await waitFor(
      async () => {
        const now = await repoStatus(admin, ns.name, 'apps');
        return now.lastAppliedRevision === `main@sha1:${head}` ? now : undefined;
      },
      { timeoutMs: 60_000, description: 'the first revision applied' },
    );
    expect(condition(status, 'Ready')?.status).toBe('True');
    expect(condition(status, 'Ready')?.message).toContain('1 created, 1 configured');
    expect(status.inventory?.entries.map((e) => e.id).sort()).toEqual([
      `${ns.name}_app__ConfigMap`,
      `${ns.name}_new__ConfigMap`,
    ]);
    const app = await admin.get(configMap('app'));
    expect(app?.metadata.labels).toMatchObject({
      team: 'platform',
      'signet.dev/name': 'apps',
      'signet.dev/namespace': ns.name,
    });
    expect((await admin.get(configMap('new')))?.data).toEqual({ fresh: 'yes' });
    const applied = captured.lines
      .map((line) => JSON.parse(line) as { msg?: string; phasesMs?: Record<string, number> })
      .find((line) => line.msg === 'revision applied');
    expect(applied?.phasesMs).toEqual(
      expect.objectContaining({
        render: expect.any(Number),
        apply: expect.any(Number),
        status: expect.any(Number),
      }),
    );
  });

  it('reverts drift on the taken-over object: the cache listed while the objects were applied', async () => {
    await editor.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/app`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { color: 'red' } }),
      timeoutMs: 10_000,
    });
    await waitFor(
      async () =>
        ((await admin.get(configMap('app')))?.data as Record<string, string> | undefined)?.color === 'blue'
          ? true
          : undefined,
      { timeoutMs: 15_000, description: 'the edit of app reverted to blue' },
    );
  });
});
