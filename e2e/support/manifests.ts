// The shipped manifests/ as the install and least-privilege tests use them on the shared cluster:
// parsed into objects, rendered through a kustomize overlay that only renames them, and the
// SelfSubjectAccessReview that checks what the RBAC they grant allows.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { AuthorizationV1Api, type KubeConfig, type V1ResourceAttributes } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { repoRoot } from './controlplane.ts';
import { requestOptions } from './kube.ts';

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** The objects of a multi-document YAML stream (empty documents left out). */
export function parseObjects(text: string): ManifestObject[] {
  return parseAllDocuments(text)
    .map((document) => document.toJSON() as ManifestObject | null)
    .filter((object): object is ManifestObject => object !== null);
}

export function toYamlStream(objects: readonly ManifestObject[]): string {
  return objects.map((object) => stringify(object)).join('---\n');
}

/** The kinds of a flavour's RBAC (with its Namespace and ServiceAccount). */
export const rbacKinds: ReadonlySet<string> = new Set([
  'Namespace',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'ClusterRole',
  'ClusterRoleBinding',
]);

/**
 * Writes `<workDir>/<namespace>/kustomization.yaml`, an overlay of `flavourDir` (relative to the
 * repository root) that only renames: everything into `namespace`, names suffixed `-<suffix>`.
 * Returns the overlay's directory, for `kubectl kustomize`.
 */
export async function renameOverlay(
  workDir: string,
  flavourDir: string,
  namespace: string,
  suffix: string,
): Promise<string> {
  const overlay = join(workDir, namespace);
  await mkdir(overlay, { recursive: true });
  await writeFile(
    join(overlay, 'kustomization.yaml'),
    stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace,
      nameSuffix: `-${suffix}`,
      resources: [relative(overlay, join(repoRoot, flavourDir))],
    }),
  );
  return overlay;
}

/** SelfSubjectAccessReview as `config`: whether it may do what `attributes` describe. */
export async function allowed(config: KubeConfig, attributes: V1ResourceAttributes): Promise<boolean> {
  const review = await config.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview(
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: attributes },
      },
    },
    requestOptions(),
  );
  return review.status?.allowed === true;
}
