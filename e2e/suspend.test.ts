// spec.suspend on a real API server with an in-process operator: while a GitRepository is suspended
// a new signed commit is not applied, an out-of-band hotfix is neither reverted (Revert) nor denied
// (Deny: the ValidatingAdmissionPolicy is lifted), and status is left as it was. Resuming applies the
// revision in Git; a field the hotfix took over is a conflict with its manager (reported, not
// overwritten, as for any other manager) until spec.force; then drift handling and Deny are back.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import type { KubeObject } from '../src/render/object.ts';
import { createLogger } from '../src/util/logger.ts';
import { denyPolicyName } from '../src/watch/deny-policy.ts';
import {
  createObjects,
  editorServiceAccountClient,
  gitRepositoryObject,
  trustObjects,
} from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-suspend');
let admin: KubeClient;
let editor: KubeClient;
let intruder: KubeClient;
let signed: SignedRepo;
let tokenDir: string;
let operator: Awaited<ReturnType<typeof startTestOperator>>;

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const colorOf = async (name: string): Promise<string | undefined> =>
  ((await admin.get(configMap(name)))?.data as Record<string, string> | undefined)?.color;
const status = (name: string): Promise<RepoStatus> => repoStatus(admin, ns.name, name);
const policyRef = (kind: 'ValidatingAdmissionPolicy' | 'ValidatingAdmissionPolicyBinding') => ({
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind,
  name: denyPolicyName(ns.name, 'guarded'),
});

/** signet_reconciles_total{result="suspended"} of the in-process operator. */
const suspendedReconciles = async (): Promise<number> =>
  (await operator.operator.metrics.reconcilesTotal.get()).values
    .filter((v) => v.labels.result === 'suspended')
    .reduce((sum, v) => sum + v.value, 0);

function repository(name: string, path: string, mode: 'Revert' | 'Deny', suspend: boolean): KubeObject {
  return gitRepositoryObject(signed, ns.name, name, { interval: '1s', path, suspend, drift: { mode } });
}

/** A merge patch of a ConfigMap's data as `client`, under field manager `kubectl-edit`. */
function hotfix(client: KubeClient, name: string, color: string) {
  return client.request({
    method: 'PATCH',
    path: `/api/v1/namespaces/${ns.name}/configmaps/${name}?fieldManager=kubectl-edit`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({ data: { color } }),
    timeoutMs: 15_000,
  });
}

/** Asks for a reconcile now (the requestedAt annotation) and waits until the operator ran it suspended. */
async function reconcileSuspended(name: string): Promise<void> {
  const before = await suspendedReconciles();
  await admin.request({
    method: 'PATCH',
    path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/${name}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({
      metadata: { annotations: { 'reconcile.signet.dev/requestedAt': new Date().toISOString() } },
    }),
  });
  await waitFor(async () => (await suspendedReconciles()) > before, {
    timeoutMs: 15_000,
    description: `a suspended reconcile of ${name}`,
  });
}

/**
 * The value stays `expected` for `holdMs`, read every 100 ms; fails at the first other value. A revert
 * takes 25-44 ms (p50-p99, docs/benchmarks.md), so 3 s without one is a revert that did not happen.
 */
async function expectStays(read: () => Promise<string | undefined>, expected: string, holdMs = 3_000) {
  const until = Date.now() + holdMs;
  while (Date.now() < until) {
    expect(await read()).toBe(expected);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(await read()).toBe(expected);
}

async function waitApplied(name: string, commit: string): Promise<RepoStatus> {
  let last: RepoStatus = {};
  return waitFor(
    async () => {
      last = await status(name);
      return last.lastAppliedRevision === `main@sha1:${commit}` && condition(last, 'Ready')?.status === 'True'
        ? last
        : undefined;
    },
    { timeoutMs: 60_000, description: `${name}: main@sha1:${commit} applied and Ready` },
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}; last Ready: ${JSON.stringify(condition(last, 'Ready'))}`, {
      cause: error,
    });
  });
}

beforeAll(async () => {
  admin = await adminClient();
  editor = await adminClient('kubectl-edit/1.0');
  await installCrd(admin);
  signed = await createSignedRepo('suspend');
  await signed.commit({
    'deploy/app.yaml': configMapYaml('app', { color: 'v1' }),
    'deny/guarded.yaml': configMapYaml('guarded', { color: 'v1' }),
  });
  await createObjects(admin, trustObjects(signed, ns.name));
  // Another identity for Deny mode (the admin user is the operator's own, which the policy allows).
  ({ client: intruder, tokenDir } = await editorServiceAccountClient(admin, ns.name, 'intruder'));
  operator = await startTestOperator({ namespace: ns.name }, createLogger({ level: 'error' }));
  for (const object of [
    repository('apps', './deploy', 'Revert', false),
    repository('guarded', './deny', 'Deny', false),
  ]) {
    await admin.apply(object, { fieldManager: 'e2e' });
  }
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await signed?.close();
  await admin?.close();
  await editor?.close();
  await intruder?.close();
  if (tokenDir !== undefined) await rm(tokenDir, { recursive: true, force: true });
});

describe('spec.suspend', () => {
  let first = '';

  it('before suspension: applied, and an out-of-band edit is reverted', async () => {
    first = await signed.repo.git(['rev-parse', 'HEAD']);
    await waitApplied('apps', first);
    await waitApplied('guarded', first);
    expect((await hotfix(editor, 'app', 'edited')).status).toBe(200);
    await waitFor(async () => (await colorOf('app')) === 'v1', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the edit reverted (Revert mode)',
    });
  });

  it('suspended: a new signed commit is not applied and status is left as it was', async () => {
    const before = await status('apps');
    await admin.apply(repository('apps', './deploy', 'Revert', true), { fieldManager: 'e2e' });
    await admin.apply(repository('guarded', './deny', 'Deny', true), { fieldManager: 'e2e' });
    const next = await signed.commit({
      'deploy/app.yaml': configMapYaml('app', { color: 'v2' }),
      'deny/guarded.yaml': configMapYaml('guarded', { color: 'v2' }),
    });
    expect(next).not.toBe(first);
    // Two reconciles that ran suspended after the commit, each asked for explicitly.
    await reconcileSuspended('apps');
    await reconcileSuspended('apps');
    const after = await status('apps');
    expect(after.lastAppliedRevision).toBe(`main@sha1:${first}`);
    expect(after.lastAttemptedRevision).toBe(`main@sha1:${first}`);
    expect(after.conditions).toEqual(before.conditions);
    expect(await colorOf('app')).toBe('v1');
  });

  it('suspended (Revert): a hotfix stays', async () => {
    expect((await hotfix(editor, 'app', 'hotfix')).status).toBe(200);
    await expectStays(() => colorOf('app'), 'hotfix');
  });

  it('suspended (Deny): the ValidatingAdmissionPolicy is lifted, another identity may hotfix', async () => {
    await reconcileSuspended('guarded');
    await waitFor(
      async () =>
        (await admin.get(policyRef('ValidatingAdmissionPolicyBinding'))) === undefined &&
        (await admin.get(policyRef('ValidatingAdmissionPolicy'))) === undefined,
      { timeoutMs: 15_000, description: 'the Deny policy and binding removed while suspended' },
    );
    await waitFor(async () => (await hotfix(intruder, 'guarded', 'hotfix')).status === 200, {
      timeoutMs: 30_000,
      intervalMs: 250,
      description: 'the intruder hotfix admitted once the policy is gone',
    });
    await expectStays(() => colorOf('guarded'), 'hotfix');
  });

  it('resumed: a hotfixed field is a conflict, as for any other manager; spec.force applies Git over it', async () => {
    const head = await signed.repo.git(['rev-parse', 'HEAD']);
    await admin.apply(repository('apps', './deploy', 'Revert', false), { fieldManager: 'e2e' });
    await admin.apply(repository('guarded', './deny', 'Deny', false), { fieldManager: 'e2e' });
    // The hotfix made the editor the owner of .data.color: the resumed apply reports the conflict
    // (docs/reliability.md, "Another field manager owns a field") and overwrites nothing.
    const conflicted = await waitFor(
      async () => {
        const ready = condition(await status('apps'), 'Ready');
        return ready?.reason === 'ApplyFailed' ? ready : undefined;
      },
      { timeoutMs: 30_000, description: 'apps: Ready=False ApplyFailed after resuming' },
    );
    expect(conflicted.message).toContain(`applying main@sha1:${head}`);
    expect(conflicted.message).toContain(`ConfigMap/${ns.name}/app`);
    expect(conflicted.message).toContain('conflict with "kubectl-edit"');
    expect(conflicted.message).toContain('.data.color');
    expect(await colorOf('app')).toBe('hotfix');
    // The intruder's hotfix of guarded is an Update by another identity too.
    const guardedReady = await waitFor(
      async () => {
        const ready = condition(await status('guarded'), 'Ready');
        return ready?.reason === 'ApplyFailed' ? ready : undefined;
      },
      { timeoutMs: 30_000, description: 'guarded: Ready=False ApplyFailed after resuming' },
    );
    expect(guardedReady.message).toContain('conflict with "kubectl-edit"');

    // Taking the field back, as for any conflict: spec.force.
    for (const [name, path, mode] of [
      ['apps', './deploy', 'Revert'],
      ['guarded', './deny', 'Deny'],
    ] as const) {
      await admin.apply(
        gitRepositoryObject(signed, ns.name, name, { interval: '1s', path, drift: { mode }, force: true }),
        { fieldManager: 'e2e' },
      );
    }
    await waitApplied('apps', head);
    await waitApplied('guarded', head);
    expect(await colorOf('app')).toBe('v2');
    expect(await colorOf('guarded')).toBe('v2');

    // Revert works again.
    expect((await hotfix(editor, 'app', 'edited-again')).status).toBe(200);
    await waitFor(async () => (await colorOf('app')) === 'v2', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the edit after resuming reverted',
    });
    // Deny is enforced again (the API server enforces a new policy once its informer has it; a probe
    // that still gets through is drift, which Deny mode reverts).
    await waitFor(async () => (await hotfix(intruder, 'guarded', 'again')).status === 403, {
      timeoutMs: 30_000,
      intervalMs: 250,
      description: 'an UPDATE by another identity refused again',
    });
    await waitFor(async () => (await colorOf('guarded')) === 'v2', {
      timeoutMs: 10_000,
      description: 'guarded at its Git value',
    });
  });
});
