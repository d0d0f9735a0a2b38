import { identityOf, type KubeObject, type ObjectIdentity } from '../render/object.ts';

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

export const helmHookAnnotation = 'helm.sh/hook';
export const helmHookWeightAnnotation = 'helm.sh/hook-weight';

/** What orders an object for apply: its identity and, for a Helm hook, its weight (absent: 0). */
export interface ApplyKey extends ObjectIdentity {
  readonly hookWeight?: bigint;
}

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/**
 * The weight Helm gives a hook: `helm.sh/hook-weight` read as Go's strconv.Atoi does (optional
 * sign, decimal digits, 64-bit); 0 when the object is not a hook (`helm.sh/hook` absent), when the
 * weight is absent, or when it does not parse (Helm ignores it then too).
 */
export function hookWeightOf(annotations: Readonly<Record<string, string>> | undefined): bigint {
  if (annotations?.[helmHookAnnotation] === undefined) return 0n;
  const text = annotations[helmHookWeightAnnotation];
  if (text === undefined || !/^[+-]?[0-9]+$/.test(text)) return 0n;
  const weight = BigInt(text);
  return weight < int64Min || weight > int64Max ? 0n : weight;
}

/** The apply key of a rendered object: its identity and its hook weight. */
export function applyKeyOf(object: KubeObject): ApplyKey {
  return { ...identityOf(object), hookWeight: hookWeightOf(object.metadata.annotations) };
}

function compareWeights(a: ApplyKey, b: ApplyKey): number {
  const left = a.hookWeight ?? 0n;
  const right = b.hookWeight ?? 0n;
  return left < right ? -1 : left > right ? 1 : 0;
}

/**
 * Total order for applying: stage, hook weight (Helm's, 0 for ordinary objects), kind rank, kind,
 * namespace, name, group. Within a stage this is Helm's hook order (weight, then kind, then name).
 */
export function compareForApply(a: ApplyKey, b: ApplyKey): number {
  return (
    applyStages.indexOf(stageOf(a)) - applyStages.indexOf(stageOf(b)) ||
    compareWeights(a, b) ||
    kindRank(a.kind) - kindRank(b.kind) ||
    compareStrings(a.kind, b.kind) ||
    compareStrings(a.namespace, b.namespace) ||
    compareStrings(a.name, b.name) ||
    compareStrings(a.group, b.group)
  );
}

export function sortForApply<T>(items: readonly T[], identityOfItem: (item: T) => ApplyKey): T[] {
  return [...items].sort((a, b) => compareForApply(identityOfItem(a), identityOfItem(b)));
}

/** Reverse of the apply order: webhooks first, CRDs and namespaces last. */
export function sortForDelete<T>(items: readonly T[], identityOfItem: (item: T) => ApplyKey): T[] {
  return [...items].sort((a, b) => compareForApply(identityOfItem(b), identityOfItem(a)));
}

export interface StageGroup<T> {
  readonly stage: ApplyStage;
  /** The hook weight shared by the group's items (0 for ordinary objects). */
  readonly hookWeight: bigint;
  readonly items: readonly T[];
}

/**
 * Items grouped by stage and, within a stage, by hook weight, in apply order, each group sorted;
 * a group is applied after the one before it has been (applyAll). Without hooks: one group a stage.
 */
export function groupByStage<T>(items: readonly T[], identityOfItem: (item: T) => ApplyKey): StageGroup<T>[] {
  const groups: { stage: ApplyStage; hookWeight: bigint; items: T[] }[] = [];
  for (const item of sortForApply(items, identityOfItem)) {
    const key = identityOfItem(item);
    const stage = stageOf(key);
    const hookWeight = key.hookWeight ?? 0n;
    const last = groups.at(-1);
    if (last !== undefined && last.stage === stage && last.hookWeight === hookWeight) last.items.push(item);
    else groups.push({ stage, hookWeight, items: [item] });
  }
  return groups;
}
