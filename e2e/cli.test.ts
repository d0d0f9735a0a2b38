// `signet diff -f` against a real API server, as a CI job runs it (a child process with a kubeconfig):
// planned creates before anything is applied (and nothing applied by the diff), "no changes" once the
// operator applied the revision (a ResourceQuota whose `cpu: 1000m` the server stores as `1` included:
// a server-side-apply dry-run tells that it is unchanged), a planned update for a new signed commit, a live object the
// kubeconfig may not read (403) reported as an error rather than planned as a create (exit 2), and a
// revision that fails verification planned not at all (exit 2).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { configMapObject, runSignet, secretObject, yamlDocuments } from '../test/cli/support.ts';
import { makeTempDir } from '../test/support/git-fixtures.ts';
import { gitRepositoryObject } from './support/fixtures.ts';
import { adminKubeConfig, kubeconfigPath, serviceAccountKubeConfig, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-cli');
/** The server stores `1000m` as `1`: the live value differs from Git's text, not from its meaning. */
const quotaYaml =
  'apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\nspec:\n  hard:\n    cpu: 1000m\n';
let admin: KubeClient;
let signed: SignedRepo;
let policyPath: string;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;

const gitRepository = () =>
  gitRepositoryObject(signed, ns.name, 'apps', { interval: '1h', path: './deploy' });

function diff(kubeconfig = kubeconfigPath()) {
  return runSignet(['diff', '-f', policyPath, '--kubeconfig', kubeconfig], { timeoutMs: 90_000 });
}

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo();
  await signed.commit({
    'deploy/app.yaml': configMapYaml('app', { color: 'blue' }),
    'deploy/extra.yaml': configMapYaml('extra', { keep: 'yes' }),
    'deploy/quota.yaml': quotaYaml,
  });
  policyPath = join(await makeTempDir('e2e-cli'), 'apps.yaml');
  // The same objects as the cluster will hold: the file is what the CI job checks in.
  const secret = secretObject('git-ca', { 'ca.crt': signed.server.caPem });
  const signers = configMapObject('signers', { allowed_signers: signed.allowedSigners });
  await writeFile(policyPath, yamlDocuments([gitRepository(), secret, signers]));
  for (const object of [secret, signers]) {
    await admin.create({
      ...object,
      metadata: { ...(object.metadata as Record<string, unknown>), namespace: ns.name },
    } as never);
  }
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await signed?.close();
  await admin?.close();
});

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });

describe('signet diff against a real API server', () => {
  it('plans creates before anything is applied, exit 1, and applies nothing', async () => {
    const head = await signed.repo.git(['rev-parse', 'HEAD']);
    const result = await diff();
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([
      expect.stringMatching(new RegExp(`^revision main@sha1:${head} verified, signed by ssh key SHA256:`)),
      `create  ResourceQuota/${ns.name}/quota`,
      `create  ConfigMap/${ns.name}/app`,
      `create  ConfigMap/${ns.name}/extra`,
      '3 change(s)',
    ]);
    expect(result.code).toBe(1);
    expect(await admin.get(configMap('app'))).toBeUndefined();
    expect(await admin.get(configMap('extra'))).toBeUndefined();
  });

  it('says "no changes" (exit 0) once the operator applied the revision', async () => {
    const head = await signed.repo.git(['rev-parse', 'HEAD']);
    operator = await startTestOperator();
    await admin.apply(gitRepository() as never, { fieldManager: 'e2e' });
    await waitFor(
      async () => (await repoStatus(admin, ns.name, 'apps')).lastAppliedRevision === `main@sha1:${head}`,
      { timeoutMs: 60_000, description: 'the operator to apply the signed revision' },
    );
    await operator.stop();
    operator = undefined;
    const quota = await admin.get({
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      name: 'quota',
      namespace: ns.name,
    });
    expect((quota?.spec as { hard?: Record<string, string> } | undefined)?.hard).toEqual({ cpu: '1' });
    const result = await diff();
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([expect.stringMatching(/^revision main@sha1:\S+ verified/), 'no changes']);
    expect(result.code).toBe(0);
  });

  it('plans an update and a prune for a new signed commit', async () => {
    await signed.commit({
      'deploy/app.yaml': configMapYaml('app', { color: 'green' }),
      'deploy/extra.yaml': null,
    });
    const result = await diff();
    expect(result.lines.slice(1)).toEqual([
      `update  ConfigMap/${ns.name}/app (fields-differ)`,
      `prune   ConfigMap/${ns.name}/extra`,
      '2 change(s)',
    ]);
    expect(result.code).toBe(1);
    expect((await admin.get(configMap('app')))?.data).toEqual({ color: 'blue' });
    expect(await admin.get(configMap('extra'))).toBeDefined();
  });

  it('exits 2 naming the object and the error when a live object cannot be read (403), instead of planning a create', async () => {
    // A CI identity that may read the GitRepository (for its status) but not the ConfigMaps.
    await admin.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'diff-reader', namespace: ns.name },
      rules: [{ apiGroups: ['signet.dev'], resources: ['gitrepositories'], verbs: ['get'] }],
    } as never);
    await admin.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'diff-reader', namespace: ns.name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'diff-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'diff-reader', namespace: ns.name }],
    } as never);
    const reader = await serviceAccountKubeConfig(adminKubeConfig(), {
      namespace: ns.name,
      serviceAccountName: 'diff-reader',
    });
    const readerPath = join(await makeTempDir('e2e-cli-reader'), 'kubeconfig');
    await writeFile(readerPath, reader.exportConfig(), { mode: 0o600 });

    const result = await diff(readerPath);
    expect(result.code).toBe(2);
    // Nothing planned: no "create" of an object that exists, no "N change(s)".
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`ConfigMap/${ns.name}/app: Forbidden (HTTP 403)`);
    expect(result.stderr).toContain(`system:serviceaccount:${ns.name}:diff-reader`);
    expect(result.stderr).toContain('so no plan was made');
    // The object is there, as the admin diff (exit 1, an update) of the test above saw.
    expect((await admin.get(configMap('app')))?.data).toEqual({ color: 'blue' });
  });

  it('exits 2 and plans nothing for a revision that fails verification', async () => {
    const unsigned = await signed.commit(
      { 'deploy/app.yaml': configMapYaml('app', { color: 'mallory' }) },
      { unsigned: true },
    );
    const result = await diff();
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Unsigned');
    expect(result.stderr).toContain(unsigned.slice(0, 12));
    expect((await admin.get(configMap('app')))?.data).toEqual({ color: 'blue' });
  });
});
