// Only images of known origin run (issue 17), end to end on a real API server: the operator verifies
// every image of a revision against spec.verify.images with a real OCI registry (TLS, token auth) and
// signatures made by the real cosign, and applies the Deployment with its image pinned to the
// verified digest; an image signed keylessly (a bundle referrer made with the offline Sigstore test
// bed, whose trusted root is spec.verify.trustedRootRef) by the allowed identity is applied pinned too.
// An unsigned image, one signed keylessly by another identity, one signed by an untrusted key, a tag
// moved to an unsigned digest, an image no policy names and an unreachable registry each refuse the
// revision (Verified=False ImageUnverified, naming image, object and cause) with nothing applied and
// the last revision kept. A no-op reconcile makes no registry request (counted at the registry's own
// log). `signet verify` refuses each of the same cases with exit 1.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import type { JsonValue, KubeObject } from '../src/render/object.ts';
import { configMapObject, runSignet, secretObject, yamlDocuments } from '../test/cli/support.ts';
import { Receiver } from '../test/notify/support.ts';
import {
  type CosignKeyPair,
  cosignBuildTimeoutMs,
  ensureCosign,
  generateKeyPair,
  signKeyed,
} from '../test/support/cosign.ts';
import { makeTempDir } from '../test/support/git-fixtures.ts';
import { attachKeylessBundle } from '../test/support/image-signing.ts';
import {
  moveTag,
  type OciRegistry,
  type PushedImage,
  pushImage,
  startRegistry,
} from '../test/support/oci-registry.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from '../test/support/sigstore-fixtures.ts';
import {
  createObjects,
  deleteGitRepositoryAndWait,
  gitCaSecretName,
  gitRepositoryObject,
  signersConfigMapName,
  trustObjects,
} from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { registerSecret } from './support/secret-scan.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  type SignedRepo,
  startTestOperator,
  waitCommitApplied,
  waitCommitRefused,
} from './support/signet.ts';

const ns = useTestNamespace('signet-images');
let admin: KubeClient;
let signed: SignedRepo;
let registry: OciRegistry;
let keyDir: string;
let otherDir: string;
let key: CosignKeyPair;
let otherKey: CosignKeyPair;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let good: PushedImage;
let keyless: PushedImage;
let bed: SigstoreTestbed;
let goodCommit = '';
let policyDir: string;
let slack: Receiver;
/** Every operator log line (debug level), also in the suite-wide secret scan. */
const logs = capturingLogger('images');

const unreachable = '127.0.0.1:1';
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The only identity allowed to sign team/keyless-* images. */
const keylessIdentity = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT };
const otherSubject = 'https://github.com/mallory/deploy/.github/workflows/release.yml@refs/heads/main';

function verifySpec(): { [key: string]: JsonValue } {
  return {
    mode: 'HEAD',
    signersRef: { kind: 'ConfigMap', name: signersConfigMapName },
    imagePullSecretRef: { name: 'registry' },
    trustedRootRef: { name: 'sigstore-root' },
    images: [
      // The first matching policy decides: team/keyless-* is keyless only, the rest of team/ keyed.
      { match: [`${registry.host}/team/keyless-*`], keyless: [keylessIdentity] },
      { match: [`${registry.host}/team/**`], keysRef: { kind: 'Secret', name: 'image-keys' } },
      { match: [`${unreachable}/**`], keysRef: { kind: 'Secret', name: 'image-keys' } },
    ],
  };
}

function deploymentYaml(image: string, note = '', name = 'web'): string {
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: ${name}`,
    `  annotations: {note: "${note}"}`,
    'spec:',
    '  replicas: 0',
    '  selector: {matchLabels: {app: web}}',
    '  template:',
    '    metadata: {labels: {app: web}}',
    '    spec:',
    `      initContainers: [{name: init, image: "${image}"}]`,
    `      containers: [{name: app, image: "${image}"}]`,
    '',
  ].join('\n');
}

const liveImages = async (name = 'web'): Promise<string[]> => {
  const live = await admin.get({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    name,
    namespace: ns.name,
  });
  const spec = (live?.spec as { template: { spec: Record<string, { image: string }[]> } } | undefined)
    ?.template.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].map((c) => c.image);
};

const reconciles = async (result: string): Promise<number> =>
  (await operator.operator.metrics.reconcilesTotal.get()).values
    .filter((v) => v.labels.result === result)
    .reduce((sum, v) => sum + v.value, 0);

const waitApplied = (commit: string): Promise<RepoStatus> =>
  waitCommitApplied(admin, ns.name, 'apps', commit);
const waitRefused = (commit: string): Promise<RepoStatus> =>
  waitCommitRefused(admin, ns.name, 'apps', commit, 'ImageUnverified');

/** The policy file a CI job checks in: the GitRepository and the objects it references. */
async function writePolicyFile(): Promise<string> {
  const path = join(policyDir, 'apps.yaml');
  const repo = gitRepositoryObject(signed, ns.name, 'apps', { path: './deploy', verify: verifySpec() });
  await writeFile(
    path,
    yamlDocuments([
      repo as unknown as Record<string, unknown>,
      secretObject(gitCaSecretName, { 'ca.crt': signed.server.caPem }),
      configMapObject(signersConfigMapName, { allowed_signers: signed.allowedSigners }),
      {
        ...secretObject('registry', {
          '.dockerconfigjson': registry.dockerConfigJson,
          'ca.crt': registry.caPem,
        }),
        type: 'kubernetes.io/dockerconfigjson',
      },
      secretObject('image-keys', { 'cosign.pub': key.publicKeyPem }),
      sigstoreRootObject(),
    ]),
  );
  return path;
}

/** The test bed's trusted root, which spec.verify.trustedRootRef names. */
function sigstoreRootObject(): Record<string, unknown> {
  return configMapObject('sigstore-root', { 'trusted_root.json': JSON.stringify(bed.trustedRoot) });
}

beforeAll(async () => {
  await ensureCosign();
  admin = await adminClient();
  await installCrd(admin);
  registry = await startRegistry();
  keyDir = await makeTempDir('e2e-image-key');
  otherDir = await makeTempDir('e2e-image-other');
  key = await generateKeyPair(keyDir);
  otherKey = await generateKeyPair(otherDir);
  policyDir = await makeTempDir('e2e-image-policy');
  good = await pushImage(registry, 'team/web', 'v1');
  await signKeyed(registry, good.pinned, key, { format: 'legacy-sig-tag' });
  bed = await createSigstoreTestbed();
  keyless = await pushImage(registry, 'team/keyless-api', 'v1');
  await attachKeylessBundle(registry, keyless, { testbed: bed, ...keylessIdentity });
  slack = new Receiver();
  await slack.listen();
  signed = await createSignedRepo('images');
  goodCommit = await signed.commit({
    'deploy/web.yaml': deploymentYaml(good.reference),
    'deploy/api.yaml': deploymentYaml(keyless.reference, '', 'api'),
  });
  await createObjects(admin, [
    ...trustObjects(signed, ns.name, { slackAddress: slack.url('http') }),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'registry', namespace: ns.name },
      type: 'kubernetes.io/dockerconfigjson',
      stringData: { '.dockerconfigjson': registry.dockerConfigJson, 'ca.crt': registry.caPem },
    } as KubeObject,
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'image-keys', namespace: ns.name },
      stringData: { 'cosign.pub': key.publicKeyPem },
    } as KubeObject,
    { ...sigstoreRootObject(), metadata: { name: 'sigstore-root', namespace: ns.name } } as KubeObject,
  ]);
  registerSecret('images: registry password', registry.password);
  registerSecret('images: cosign key password', key.password);
  operator = await startTestOperator({ namespace: ns.name }, logs.logger);
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'apps', {
      interval: '1s',
      path: './deploy',
      verify: verifySpec(),
      alerts: { slack: { secretRef: { name: 'slack' } } },
    }),
    { fieldManager: 'e2e' },
  );
}, cosignBuildTimeoutMs);

afterAll(async () => {
  if (admin !== undefined) await deleteGitRepositoryAndWait(admin, ns.name, 'apps').catch(() => undefined);
  await operator?.stop();
  await signed?.close();
  await registry?.stop();
  await slack?.close();
  for (const dir of [keyDir, otherDir, policyDir])
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  await admin?.close();
});

describe('image verification on a real API server', () => {
  it('applies a signed image with its digest pinned in the live object, and records the signer', async () => {
    const applied = await waitApplied(goodCommit);
    const pinned = `${good.reference}@${good.digest}`;
    expect(await liveImages()).toEqual([pinned, pinned]);
    const images = (applied as unknown as { images?: { total: number; entries: Record<string, string>[] } })
      .images;
    expect(images?.total).toBe(2);
    const keyed = images?.entries.find((entry) => entry.image === pinned);
    expect(keyed).toMatchObject({ digest: good.digest, format: 'legacy-sig-tag' });
    expect(keyed?.signer).toMatch(/^key SHA256:/);
  });

  it('applies an image signed keylessly by the allowed identity pinned, and records the identity', async () => {
    const applied = await waitApplied(goodCommit);
    const pinned = `${keyless.reference}@${keyless.digest}`;
    expect(await liveImages('api')).toEqual([pinned, pinned]);
    const images = (applied as unknown as { images?: { entries: Record<string, string>[] } }).images;
    expect(images?.entries.find((entry) => entry.image === pinned)).toMatchObject({
      digest: keyless.digest,
      signer: `${DEFAULT_SUBJECT} (${OIDC_ISSUER})`,
      format: 'bundle-referrer',
    });
  });

  it('a no-op reconcile makes no registry request', async () => {
    registry.resetRequests();
    const before = await reconciles('unchanged');
    await waitFor(async () => (await reconciles('unchanged')) >= before + 3, {
      timeoutMs: 30_000,
      description: 'three no-op reconciles',
    });
    expect(registry.requests()).toEqual([]);
  });

  it('signet verify prints the pinned reference (exit 0), build prints the pinned objects, diff plans no change', async () => {
    const policy = await writePolicyFile();
    const pinned = `${good.reference}@${good.digest}`;
    const verified = await runSignet(['verify', '-f', policy], { timeoutMs: 90_000 });
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);
    expect(verified.lines).toContainEqual(
      expect.stringMatching(new RegExp(`^image ${pinned} signed by key SHA256:`)),
    );
    const built = await runSignet(['build', '-f', policy], { timeoutMs: 90_000 });
    expect(built.code).toBe(0);
    expect(built.stdout).toContain(`image: ${pinned}`);
    expect(built.stdout).not.toMatch(/image: [^\n@]+\n/);
    // The operator applied the pinned objects: the same pinning in the CLI plans nothing.
    const diff = await runSignet(['diff', '-f', policy, '--kubeconfig', kubeconfigPath()], {
      timeoutMs: 90_000,
    });
    expect(diff.stdout).toContain('no changes');
    expect(diff.code).toBe(0);
  });

  const refusals: { name: string; image: () => Promise<string>; cause: (image: string) => RegExp }[] = [
    {
      name: 'an unsigned image',
      image: async () => (await pushImage(registry, 'team/unsigned', 'v1')).reference,
      cause: () => /no signature found/,
    },
    {
      name: 'an image signed keylessly by another identity',
      image: async () => {
        const other = await pushImage(registry, 'team/keyless-worker', 'v1');
        await attachKeylessBundle(registry, other, {
          testbed: bed,
          issuer: OIDC_ISSUER,
          subject: otherSubject,
        });
        return other.reference;
      },
      cause: () =>
        new RegExp(
          `is not signed by a trusted identity or key: .*signed by "${escapeRegExp(otherSubject)}" \\(issuer "${escapeRegExp(OIDC_ISSUER)}"\\), not an allowed identity \\(${escapeRegExp(DEFAULT_SUBJECT)} from `,
        ),
    },
    {
      name: 'an image signed by an untrusted key',
      image: async () => {
        const other = await pushImage(registry, 'team/other-key', 'v1');
        await signKeyed(registry, other.pinned, otherKey, { format: 'bundle-referrer' });
        return other.reference;
      },
      cause: () => /is not signed by a trusted identity or key/,
    },
    {
      name: 'a signed tag moved to an unsigned digest',
      image: async () => {
        const moved = await pushImage(registry, 'team/moving', 'v1');
        await signKeyed(registry, moved.pinned, key, { format: 'legacy-sig-tag' });
        const unsigned = await pushImage(registry, 'team/moving', 'unsigned');
        await moveTag(registry, 'team/moving', 'v1', unsigned.digest);
        return moved.reference;
      },
      cause: () => /digest sha256:[0-9a-f]{64} is not signed/,
    },
    {
      name: 'an image no policy names',
      image: async () => 'quay.io/elsewhere/app:1.0',
      cause: () => /quay\.io\/elsewhere\/app matches no policy of spec\.verify\.images/,
    },
    {
      name: 'an unreachable registry',
      image: async () => `${unreachable}/team/app:v1`,
      cause: () => /127\.0\.0\.1:1\/v2\/team\/app\/manifests\/v1/,
    },
  ];
  for (const [index, refusal] of refusals.entries()) {
    it(`${refusal.name}: Verified=False ImageUnverified, nothing applied, the last revision kept`, async () => {
      const image = await refusal.image();
      const bad = await signed.commit({ 'deploy/web.yaml': deploymentYaml(image, `bad-${index}`) });
      const refused = await waitRefused(bad);
      const verified = condition(refused, 'Verified');
      expect(verified?.status).toBe('False');
      expect(verified?.message).toContain(`revision main@sha1:${bad} rejected (ImageUnverified)`);
      expect(verified?.message).toContain(`image ${image} in Deployment ${ns.name}/web`);
      expect(verified?.message).toMatch(refusal.cause(image));
      expect(verified?.message).toContain(`main@sha1:${goodCommit} stays in force`);
      expect(condition(refused, 'Ready')).toMatchObject({ status: 'False', reason: 'VerificationFailed' });
      expect(refused.lastAppliedRevision).toBe(`main@sha1:${goodCommit}`);
      expect(await liveImages()).toEqual([
        `${good.reference}@${good.digest}`,
        `${good.reference}@${good.digest}`,
      ]);
      // The Event is recorded right after the status is written: wait for it rather than race it.
      await waitFor(
        async () => {
          const events = await admin.list('v1', 'Event', {
            namespace: ns.name,
            fieldSelector: 'involvedObject.name=apps,reason=ImageUnverified',
          });
          return events.items.some((e) =>
            String(e.message).includes(`main@sha1:${bad} rejected (ImageUnverified)`),
          )
            ? true
            : undefined;
        },
        { timeoutMs: 30_000, description: `an ImageUnverified Event for main@sha1:${bad}` },
      );
      await waitFor(
        () =>
          slack.requests.some((r) =>
            JSON.stringify(r.body).includes(`main@sha1:${bad} rejected (ImageUnverified)`),
          ),
        { timeoutMs: 30_000, description: `a Slack alert for main@sha1:${bad}` },
      );
      // The CI check refuses the same revision for the same cause.
      const cli = await runSignet(['verify', '-f', await writePolicyFile()], { timeoutMs: 90_000 });
      expect(cli.code).toBe(1);
      expect(cli.stdout).toContain(
        `rejected main@sha1:${bad}: ImageUnverified: image ${image} in Deployment ${ns.name}/web`,
      );
      expect(cli.stdout).toMatch(refusal.cause(image));
    });
  }

  it('no operator log line carries the registry password, a dockerconfigjson or a bearer token', () => {
    expect(logs.lines.length).toBeGreaterThan(0);
    for (const line of logs.lines) {
      expect(line).not.toContain(registry.password);
      expect(line).not.toContain(Buffer.from(`${registry.username}:${registry.password}`).toString('base64'));
      expect(line).not.toMatch(/Bearer [A-Za-z0-9._-]{8,}/);
    }
  });
});
