/**
 * Scopes of the built-in Kubernetes kinds, for rendering without a cluster (`signet build`). Pure.
 * A kind not listed here nor defined by a CustomResourceDefinition in the same set is refused as
 * UnknownScope, as the operator refuses a kind its cluster does not serve.
 */
import type { ResourceScope } from '../render/scope.ts';

const cluster = [
  'v1/Namespace',
  'v1/Node',
  'v1/PersistentVolume',
  'rbac.authorization.k8s.io/ClusterRole',
  'rbac.authorization.k8s.io/ClusterRoleBinding',
  'apiextensions.k8s.io/CustomResourceDefinition',
  'admissionregistration.k8s.io/MutatingWebhookConfiguration',
  'admissionregistration.k8s.io/ValidatingWebhookConfiguration',
  'admissionregistration.k8s.io/ValidatingAdmissionPolicy',
  'admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding',
  'apiregistration.k8s.io/APIService',
  'storage.k8s.io/StorageClass',
  'storage.k8s.io/CSIDriver',
  'storage.k8s.io/VolumeAttachment',
  'scheduling.k8s.io/PriorityClass',
  'node.k8s.io/RuntimeClass',
  'networking.k8s.io/IngressClass',
  'certificates.k8s.io/CertificateSigningRequest',
  'flowcontrol.apiserver.k8s.io/FlowSchema',
  'flowcontrol.apiserver.k8s.io/PriorityLevelConfiguration',
];
const namespaced = [
  'v1/ConfigMap',
  'v1/Secret',
  'v1/Service',
  'v1/ServiceAccount',
  'v1/Pod',
  'v1/PersistentVolumeClaim',
  'v1/Endpoints',
  'v1/LimitRange',
  'v1/ResourceQuota',
  'v1/ReplicationController',
  'apps/Deployment',
  'apps/StatefulSet',
  'apps/DaemonSet',
  'apps/ReplicaSet',
  'batch/Job',
  'batch/CronJob',
  'autoscaling/HorizontalPodAutoscaler',
  'policy/PodDisruptionBudget',
  'networking.k8s.io/Ingress',
  'networking.k8s.io/NetworkPolicy',
  'rbac.authorization.k8s.io/Role',
  'rbac.authorization.k8s.io/RoleBinding',
  'coordination.k8s.io/Lease',
  'discovery.k8s.io/EndpointSlice',
];
const scopes = new Map<string, ResourceScope>([
  ...cluster.map((key) => [key, 'Cluster'] as const),
  ...namespaced.map((key) => [key, 'Namespaced'] as const),
]);

/** `apiVersion` `kind` → scope for built-in kinds (the group is what counts, not the version). */
export function builtinScopeOf(apiVersion: string, kind: string): ResourceScope | undefined {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : 'v1';
  return scopes.get(`${group}/${kind}`);
}
