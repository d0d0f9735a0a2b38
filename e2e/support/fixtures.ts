// The Kubernetes objects most operator tests need around a signed repository: the trust policy
// (allowed_signers ConfigMap), the Git server's CA, an optional Slack Secret, the GitRepository
// itself, its deletion through the finalizer (or the finalizer's removal when no operator is left),
// and a second identity with the namespace's `edit` role.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient } from '../../src/kube/client.ts';
import { loadKubeClient } from '../../src/kube/load.ts';
import type { JsonObject, KubeObject } from '../../src/render/object.ts';
import { adminKubeConfig, createServiceAccountToken, kubeConfigForToken, waitFor } from './kube.ts';
import { registerSecret } from './secret-scan.ts';
import type { SignedRepo } from './signet.ts';

/** Names the objects below are created under; GitRepository specs refer to them. */
export const signersConfigMapName = 'signers';
export const gitCaSecretName = 'git-ca';

/**
 * The `signers` ConfigMap (allowed_signers of the repository's key) and the `git-ca` Secret
 * (`ca.crt` of the HTTPS Git server), plus a `slack` Secret when a webhook address is given.
 */
export function trustObjects(
  signed: Pick<SignedRepo, 'allowedSigners' | 'server'>,
  namespace: string,
  options: { slackAddress?: string } = {},
): KubeObject[] {
  const objects: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: signersConfigMapName, namespace },
      data: { allowed_signers: signed.allowedSigners },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: gitCaSecretName, namespace },
      stringData: { 'ca.crt': signed.server.caPem },
    },
  ];
  if (options.slackAddress !== undefined) {
    registerSecret(`Slack webhook URL of the slack Secret in ${namespace}`, options.slackAddress);
    objects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'slack', namespace },
      stringData: { address: options.slackAddress },
    });
  }
  return objects;
}

/** Creates each object in order (the objects must not exist yet). */
export async function createObjects(client: KubeClient, objects: readonly KubeObject[]): Promise<void> {
  for (const object of objects) await client.create(object);
}

/**
 * A GitRepository for `signed` on branch main, verified in HEAD mode against the `signers`
 * ConfigMap, fetched with the `git-ca` Secret; `spec` adds to or overrides those fields.
 */
export function gitRepositoryObject(
  signed: Pick<SignedRepo, 'url'>,
  namespace: string,
  name: string,
  spec: JsonObject = {},
  labels: Record<string, string> = {},
): KubeObject {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name, namespace, labels },
    spec: {
      url: signed.url,
      ref: { branch: 'main' },
      secretRef: { name: gitCaSecretName },
      verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: signersConfigMapName } },
      ...spec,
    },
  };
}

/** Deletes a GitRepository and waits until its finalizer has run and the object is gone. */
export async function deleteGitRepositoryAndWait(
  client: KubeClient,
  namespace: string,
  name: string,
  timeoutMs = 30_000,
): Promise<void> {
  const ref = { apiVersion: 'signet.dev/v1alpha1', kind: 'GitRepository', name, namespace };
  await client.delete(ref);
  await waitFor(async () => (await client.get(ref)) === undefined, {
    timeoutMs,
    description: `GitRepository ${namespace}/${name} finalized and gone`,
  });
}

/**
 * Removes the finalizer of every GitRepository in `namespace` (best effort: errors are ignored), so
 * that they go with their namespace once no operator is left to finalize them. No-op without a client.
 */
export async function releaseGitRepositories(
  client: KubeClient | undefined,
  namespace: string,
): Promise<void> {
  if (client === undefined) return;
  const repos = await client
    .list('signet.dev/v1alpha1', 'GitRepository', { namespace })
    .catch(() => ({ items: [] }));
  for (const repo of repos.items) {
    await client
      .request({
        method: 'PATCH',
        path: `/apis/signet.dev/v1alpha1/namespaces/${namespace}/gitrepositories/${repo.metadata.name}`,
        headers: { 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify({ metadata: { finalizers: null } }),
        timeoutMs: 15_000,
      })
      .catch(() => undefined);
  }
}

/**
 * Another identity than the admin user (the operator's own): ServiceAccount `name` in `namespace`
 * with the built-in `edit` ClusterRole there (RoleBinding `<name>-edit`), and a client acting as it
 * with a TokenRequest token and user agent `<name>/1.0`. Its kubeconfig is written to a fresh
 * temporary `tokenDir`, which the caller removes.
 */
export async function editorServiceAccountClient(
  admin: KubeClient,
  namespace: string,
  name: string,
): Promise<{ client: KubeClient; tokenDir: string }> {
  await admin.create({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace },
  });
  await admin.create({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `${name}-edit`, namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  } as unknown as KubeObject);
  const base = adminKubeConfig();
  const token = await createServiceAccountToken(base, { namespace, serviceAccountName: name });
  const tokenDir = await mkdtemp(join(tmpdir(), `signet-${name}-token-`));
  const kubeconfig = join(tokenDir, 'kubeconfig');
  await writeFile(kubeconfig, kubeConfigForToken(base, token, name).exportConfig(), { mode: 0o600 });
  return { client: await loadKubeClient({ kubeconfig, userAgent: `${name}/1.0` }), tokenDir };
}
