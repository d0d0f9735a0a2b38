/**
 * Drift mode `Deny`, pure: a ValidatingAdmissionPolicy and its binding (admissionregistration.k8s.io/v1,
 * enforced by the API server itself, no webhook to run) that refuse UPDATE and DELETE of objects
 * labelled as managed by one GitRepository unless the request comes from an allowed identity:
 * the operator, the tenant ServiceAccount it impersonates, and the built-in controllers that must
 * keep working (namespace deletion, garbage collection).
 */
import { createHash } from 'node:crypto';

export interface DenyPolicyInput {
  readonly gitRepository: { readonly namespace: string; readonly name: string };
  /** Usernames allowed to change the objects (operator identity, impersonated ServiceAccount). */
  readonly allowedUsernames: readonly string[];
}

export interface PolicyObject {
  readonly apiVersion: 'admissionregistration.k8s.io/v1';
  readonly kind: 'ValidatingAdmissionPolicy' | 'ValidatingAdmissionPolicyBinding';
  readonly metadata: { readonly name: string; readonly labels: Record<string, string> };
  readonly spec: Record<string, unknown>;
}

/** Controllers that delete or update objects as part of cluster housekeeping. */
export const builtInAllowedUsernames: readonly string[] = [
  'system:serviceaccount:kube-system:namespace-controller',
  'system:serviceaccount:kube-system:generic-garbage-collector',
];

export const denyPolicyLabel = 'signet.dev/deny-policy';

/** A DNS-1123 name, unique per GitRepository, bounded in length. */
export function denyPolicyName(namespace: string, name: string): string {
  const readable = `signet-deny-${namespace}-${name}`.toLowerCase();
  if (readable.length <= 63) return readable;
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 10);
  return `${readable.slice(0, 52).replace(/-+$/, '')}-${hash}`;
}

function celString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

export function buildDenyPolicy(input: DenyPolicyInput): [PolicyObject, PolicyObject] {
  const { namespace, name } = input.gitRepository;
  const policyName = denyPolicyName(namespace, name);
  const allowed = [...new Set([...input.allowedUsernames, ...builtInAllowedUsernames])].sort();
  const labels = {
    'app.kubernetes.io/managed-by': 'signet',
    'signet.dev/name': name,
    'signet.dev/namespace': namespace,
    [denyPolicyLabel]: 'true',
  };
  const message =
    `this object is managed by the Signet GitRepository ${namespace}/${name} (drift mode Deny): ` +
    'change it in Git instead';
  const policy: PolicyObject = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: policyName, labels },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          { apiGroups: ['*'], apiVersions: ['*'], resources: ['*'], operations: ['UPDATE', 'DELETE'] },
        ],
      },
      validations: [
        {
          expression: `request.userInfo.username in [${allowed.map(celString).join(', ')}]`,
          message,
          reason: 'Forbidden',
        },
      ],
    },
  };
  const binding: PolicyObject = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: policyName, labels },
    spec: {
      policyName,
      validationActions: ['Deny'],
      matchResources: {
        objectSelector: { matchLabels: { 'signet.dev/name': name, 'signet.dev/namespace': namespace } },
      },
    },
  };
  return [policy, binding];
}
