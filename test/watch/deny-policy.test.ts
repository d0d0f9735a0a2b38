import { describe, expect, it } from 'vitest';
import { buildDenyPolicy, denyPolicyName } from '../../src/watch/deny-policy.ts';

describe('buildDenyPolicy', () => {
  it('binds a policy to the GitRepository labels and allows only the listed identities', () => {
    const [policy, binding] = buildDenyPolicy({
      gitRepository: { namespace: 'team-a', name: 'apps' },
      allowedUsernames: ['system:serviceaccount:signet-system:signet', "o'brien"],
    });
    expect(policy.metadata.name).toBe('signet-deny-team-a-apps');
    expect(binding.spec).toEqual({
      policyName: 'signet-deny-team-a-apps',
      validationActions: ['Deny'],
      matchResources: {
        objectSelector: { matchLabels: { 'signet.dev/name': 'apps', 'signet.dev/namespace': 'team-a' } },
      },
    });
    const validations = policy.spec.validations as { expression: string; message: string }[];
    expect(validations[0]?.expression).toBe(
      "request.userInfo.username in ['o\\'brien', 'system:serviceaccount:kube-system:generic-garbage-collector', " +
        "'system:serviceaccount:kube-system:namespace-controller', 'system:serviceaccount:signet-system:signet']",
    );
    expect(validations[0]?.message).toContain('GitRepository team-a/apps');
    expect(validations[0]?.message).toContain('change it in Git instead');
  });

  it('keeps names DNS-1123 and at most 63 characters', () => {
    const name = denyPolicyName('a'.repeat(60), 'B'.repeat(60));
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});
