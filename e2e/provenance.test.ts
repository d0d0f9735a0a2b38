// ProvenanceFailed end to end, against a real API server: a GitRepository with spec.verify.provenance
// whose commits are all validly SSH-signed, but whose manifest tree carries a Sigstore bundle over a
// different tree digest, or no bundle at all. Each refused revision must leave the cluster and
// lastAppliedRevision exactly as the last good revision left them (Verified=False ProvenanceFailed,
// Ready=False); a commit with a good bundle afterwards is applied. The bundles are keyless message
// signatures made by the offline Sigstore test bed, whose trusted_root.json is the trustedRootRef.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { treeDigest } from '../src/provenance/tree-digest.ts';
import { createLogger } from '../src/util/logger.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeMessageBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from '../test/support/sigstore-fixtures.ts';
import {
  createObjects,
  deleteGitRepositoryAndWait,
  gitRepositoryObject,
  signersConfigMapName,
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
  waitCommitApplied,
  waitCommitRefused,
} from './support/signet.ts';

const ns = useTestNamespace('signet-provenance');
const bundlePath = 'deploy/.signet/provenance.sigstore.json';
const identity = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT };
let admin: KubeClient;
let signed: SignedRepo;
let bed: SigstoreTestbed;
let operator: Awaited<ReturnType<typeof startTestOperator>>;

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const colorOf = async (name: string): Promise<string | undefined> =>
  ((await admin.get(configMap(name)))?.data as Record<string, string> | undefined)?.color;
const status = (): Promise<RepoStatus> => repoStatus(admin, ns.name, 'apps');
/** signet_verification_failures_total{reason="ProvenanceFailed"} of the in-process operator. */
const provenanceFailures = async (): Promise<number> =>
  (await operator.operator.metrics.verificationFailuresTotal.get()).values
    .filter((v) => v.labels.reason === 'ProvenanceFailed')
    .reduce((sum, v) => sum + v.value, 0);

/** The manifests under deploy/ (paths relative to spec.path) and a keyless bundle over their tree digest. */
async function bundleFor(manifests: Record<string, string>): Promise<string> {
  const digest = treeDigest(
    Object.entries(manifests).map(([path, content]) => ({ path, content: Buffer.from(content) })),
  );
  return JSON.stringify(await makeMessageBundle(bed, Buffer.from(digest.digest)));
}

const deployFiles = (manifests: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(manifests).map(([path, content]) => [`deploy/${path}`, content]));

const waitApplied = (commit: string): Promise<RepoStatus> =>
  waitCommitApplied(admin, ns.name, 'apps', commit);
const waitRefused = (commit: string): Promise<RepoStatus> =>
  waitCommitRefused(admin, ns.name, 'apps', commit, 'ProvenanceFailed');

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  bed = await createSigstoreTestbed();
  signed = await createSignedRepo('provenance');
  const first = { 'app.yaml': configMapYaml('app', { color: 'v1' }) };
  await signed.commit({ ...deployFiles(first), [bundlePath]: await bundleFor(first) });
  await createObjects(admin, [
    ...trustObjects(signed, ns.name),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'sigstore-root', namespace: ns.name },
      data: { 'trusted_root.json': JSON.stringify(bed.trustedRoot) },
    },
  ]);
  // Refusals are logged at warn every interval; the assertions read status, Events and metrics.
  operator = await startTestOperator({ namespace: ns.name }, createLogger({ level: 'error' }));
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'apps', {
      interval: '1s',
      path: './deploy',
      verify: {
        mode: 'HEAD',
        signersRef: { kind: 'ConfigMap', name: signersConfigMapName },
        trustedRootRef: { name: 'sigstore-root' },
        provenance: { keyless: [identity] },
      },
    }),
    { fieldManager: 'e2e' },
  );
}, 120_000);

afterAll(async () => {
  if (admin !== undefined) await deleteGitRepositoryAndWait(admin, ns.name, 'apps').catch(() => undefined);
  await operator?.stop();
  await signed?.close();
  await admin?.close();
});

describe('provenance of the manifests on a real API server', () => {
  let good = '';

  it('applies a signed revision whose tree carries a good bundle', async () => {
    good = await signed.repo.git(['rev-parse', 'HEAD']);
    const applied = await waitApplied(good);
    expect(condition(applied, 'Verified')).toMatchObject({ status: 'True', reason: 'Verified' });
    expect(await colorOf('app')).toBe('v1');
  });

  const refusals = [
    {
      name: 'a bundle over a different tree digest (the manifests changed, the bundle did not)',
      files: (n: number): Record<string, string | null> =>
        deployFiles({
          'app.yaml': configMapYaml('app', { color: `bad-${n}` }),
          'new.yaml': configMapYaml('new', { color: `bad-${n}` }),
        }),
      message: /the bundle signs a different artifact than the manifest tree sha256:[0-9a-f]{64}/,
    },
    {
      name: 'no bundle at all',
      files: (n: number): Record<string, string | null> => ({
        ...deployFiles({
          'app.yaml': configMapYaml('app', { color: `bad-${n}` }),
          'new.yaml': configMapYaml('new', { color: `bad-${n}` }),
        }),
        [bundlePath]: null,
      }),
      message: /no provenance bundle at \.signet\/provenance\.sigstore\.json/,
    },
  ];
  for (const [index, refusal] of refusals.entries()) {
    it(`${refusal.name}: Verified=False ProvenanceFailed, Ready=False, nothing applied`, async () => {
      const bad = await signed.commit(refusal.files(index));
      const refused = await waitRefused(bad);
      const verified = condition(refused, 'Verified');
      expect(verified?.status).toBe('False');
      expect(verified?.message).toContain(`revision main@sha1:${bad} rejected (ProvenanceFailed)`);
      expect(verified?.message).toMatch(refusal.message);
      expect(verified?.message).toContain(`main@sha1:${good} stays in force`);
      expect(condition(refused, 'Ready')).toMatchObject({ status: 'False', reason: 'VerificationFailed' });
      expect(refused.lastAppliedRevision).toBe(`main@sha1:${good}`);
      // The commit signature itself was fine: the evidence of the last verified commit stays.
      expect(refused.verification?.commit).toBe(good);
      // Two more refusals later (interval 1s) it is still refused and nothing of it reached the cluster.
      const before = await provenanceFailures();
      await waitFor(async () => (await provenanceFailures()) >= before + 2, {
        timeoutMs: 15_000,
        description: 'two more ProvenanceFailed refusals counted by the operator',
      });
      const after = await status();
      expect(after.lastAppliedRevision).toBe(`main@sha1:${good}`);
      expect(condition(after, 'Verified')?.reason).toBe('ProvenanceFailed');
      expect(await colorOf('app')).toBe('v1');
      expect(await admin.get(configMap('new'))).toBeUndefined();
      const events = await admin.list('v1', 'Event', {
        namespace: ns.name,
        fieldSelector: 'involvedObject.name=apps,reason=ProvenanceFailed',
      });
      expect(events.items.map((e) => e.message as string)).toContainEqual(
        expect.stringContaining(`main@sha1:${bad} rejected (ProvenanceFailed)`),
      );
    });
  }

  it('a later commit with a bundle over its tree is applied', async () => {
    const manifests = {
      'app.yaml': configMapYaml('app', { color: 'v2' }),
      'new.yaml': configMapYaml('new', { color: 'v2' }),
    };
    const next = await signed.commit({ ...deployFiles(manifests), [bundlePath]: await bundleFor(manifests) });
    const applied = await waitApplied(next);
    expect(condition(applied, 'Verified')).toMatchObject({ status: 'True', reason: 'Verified' });
    expect(applied.verification?.commit).toBe(next);
    expect(await colorOf('app')).toBe('v2');
    expect(await colorOf('new')).toBe('v2');
    // The bundle is not a manifest: it is never applied.
    expect(applied.inventory?.entries.map((e) => e.id).sort()).toEqual([
      `${ns.name}_app__ConfigMap`,
      `${ns.name}_new__ConfigMap`,
    ]);
  });
});
