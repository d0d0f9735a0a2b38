import type { ObjectIdentity } from '../render/object.ts';

/** Apply stages in order. Each stage may wait for the previous one (CRDs must be Established). */
export type ApplyStage = 'crds' | 'namespaces' | 'cluster' | 'namespaced' | 'webhooks';
export const applyStages: readonly ApplyStage[] = ['crds', 'namespaces', 'cluster', 'namespaced', 'webhooks'];

const webhookKinds = new Set(['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
const webhookGroup = 'admissionregistration.k8s.io';

/**
 * Kinds applied early within their stage, in this order (unknown kinds come after them,
 * then `lateKinds`). Cluster-scoped and namespaced kinds never share a stage, so one table serves both.
 */
const earlyKinds: readonly string[] = [
  'PriorityClass',
  'StorageClass',
  'RuntimeClass',
  'IngressClass',
  'ClusterRole',
  'ClusterRoleBinding',
  'ResourceQuota',
  'LimitRange',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'Secret',
  'ConfigMap',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Service',
];
const lateKinds: readonly string[] = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Ingress'];

function kindRank(kind: string): number {
  const early = earlyKinds.indexOf(kind);
  if (early >= 0) return early - earlyKinds.length;
  const late = lateKinds.indexOf(kind);
  if (late >= 0) return late + 1;
  return 0;
}

/** The stage of an object: namespaced-ness is read from `namespace` (set after `applyScope`). */
export function stageOf(identity: Pick<ObjectIdentity, 'group' | 'kind' | 'namespace'>): ApplyStage {
  if (identity.kind === 'CustomResourceDefinition' && identity.group === 'apiextensions.k8s.io')
    return 'crds';
  if (identity.kind === 'Namespace' && identity.group === '') return 'namespaces';
  if (webhookKinds.has(identity.kind) && identity.group === webhookGroup) return 'webhooks';
  return identity.namespace === '' ? 'cluster' : 'namespaced';
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Total order for applying: stage, kind rank, kind, namespace, name, group. */
export function compareForApply(a: ObjectIdentity, b: ObjectIdentity): number {
  return (
    applyStages.indexOf(stageOf(a)) - applyStages.indexOf(stageOf(b)) ||
    kindRank(a.kind) - kindRank(b.kind) ||
    compareStrings(a.kind, b.kind) ||
    compareStrings(a.namespace, b.namespace) ||
    compareStrings(a.name, b.name) ||
    compareStrings(a.group, b.group)
  );
}

export function sortForApply<T>(items: readonly T[], identityOfItem: (item: T) => ObjectIdentity): T[] {
  return [...items].sort((a, b) => compareForApply(identityOfItem(a), identityOfItem(b)));
}

/** Reverse of the apply order: webhooks first, CRDs and namespaces last. */
export function sortForDelete<T>(items: readonly T[], identityOfItem: (item: T) => ObjectIdentity): T[] {
  return [...items].sort((a, b) => compareForApply(identityOfItem(b), identityOfItem(a)));
}

export interface StageGroup<T> {
  readonly stage: ApplyStage;
  readonly items: readonly T[];
}

/** Items grouped by stage in apply order, each group sorted; empty stages are left out. */
export function groupByStage<T>(
  items: readonly T[],
  identityOfItem: (item: T) => ObjectIdentity,
): StageGroup<T>[] {
  const sorted = sortForApply(items, identityOfItem);
  const groups: StageGroup<T>[] = [];
  for (const stage of applyStages) {
    const inStage = sorted.filter((item) => stageOf(identityOfItem(item)) === stage);
    if (inStage.length > 0) groups.push({ stage, items: inStage });
  }
  return groups;
}
