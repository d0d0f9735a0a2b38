/**
 * A GitRepository as the API server would hand it over (before parseGitRepository): `apps` in
 * `team-a`, branch main of an HTTPS URL, signers from ConfigMap `signers`; `spec` fields given
 * replace those defaults one by one.
 */
export function rawGitRepository(spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name: 'apps', namespace: 'team-a' },
    spec: {
      url: 'https://git.example.com/apps.git',
      ref: { branch: 'main' },
      verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
      ...spec,
    },
  };
}
