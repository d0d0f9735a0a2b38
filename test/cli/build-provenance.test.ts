// Provenance for a kustomization: the bundle must cover the repository root (everything the build
// can read), and `signet digest <root> --path <spec.path>` prints the digest the operator checks.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepo, makeTempDir, stageFiles, type TestRepo } from '../support/git-fixtures.ts';
import { ensureKustomize, kustomizeBuildTimeoutMs } from '../support/kustomize.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  gitsignCommit,
  type KeyedSigner,
  makeKeyedDsseBundle,
  makeKeyedSigner,
  OIDC_ISSUER,
  type SigstoreTestbed,
  slsaStatement,
} from '../support/sigstore-fixtures.ts';
import {
  configMapObject,
  gitRepositoryObject,
  provenanceKeysSecret,
  runSignet,
  yamlDocuments,
} from './support.ts';

const url = 'https://127.0.0.1:9/unreachable.git';
let dir: string;
let repo: TestRepo;
let bed: SigstoreTestbed;
let keyed: KeyedSigner;
let env: Record<string, string>;
const cm = (name: string, value: string) =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  k: ${value}\n`;

async function policy(): Promise<string> {
  const file = join(dir, 'policy.yaml');
  await writeFile(
    file,
    yamlDocuments([
      gitRepositoryObject({
        url,
        path: 'apps/prod',
        verify: {
          mode: 'HEAD',
          keyless: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }],
          trustedRootRef: { name: 'sigstore-root' },
          provenance: { keysRef: { kind: 'Secret', name: 'provenance-keys' } },
        },
      }),
      configMapObject('sigstore-root', { 'trusted_root.json': JSON.stringify(bed.trustedRoot) }),
      provenanceKeysSecret(keyed),
    ]),
  );
  return file;
}

/** Signs a provenance bundle over `signet digest <root> --path apps/prod` and commits it. */
async function commitWithBundle(): Promise<string> {
  const digest = await runSignet(['digest', repo.dir, '--path', 'apps/prod']);
  expect(digest.code).toBe(0);
  const hex = (digest.lines[0] ?? '').replace(/^sha256:/, '');
  const statement = slsaStatement({ treeDigestHex: hex, repository: url }) as {
    predicate: { buildDefinition: { resolvedDependencies?: unknown } };
  };
  delete statement.predicate.buildDefinition.resolvedDependencies;
  await stageFiles(repo, {
    'apps/prod/.signet/provenance.sigstore.json': JSON.stringify(
      await makeKeyedDsseBundle(bed, keyed, statement),
    ),
  });
  return gitsignCommit(bed, repo, 'manifests with provenance\n');
}

beforeAll(async () => {
  env = { SIGNET_KUSTOMIZE_ENGINE: (await ensureKustomize()).engine };
  dir = await makeTempDir('cli-build-provenance');
  repo = await createRepo();
  bed = await createSigstoreTestbed();
  keyed = makeKeyedSigner('ci-release-key');
  await repo.commit({});
  await stageFiles(repo, {
    'base/kustomization.yaml': 'resources: [cm.yaml]\n',
    'base/cm.yaml': cm('app', 'one'),
    'apps/prod/kustomization.yaml': 'resources: [../../base]\nnamePrefix: prod-\n',
  });
}, kustomizeBuildTimeoutMs);

afterAll(async () => {
  await repo?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('provenance of a kustomization', () => {
  it('is checked over the repository root: a bundle over `signet digest --path` passes', async () => {
    await commitWithBundle();
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.stderr).toMatch(/^built main@sha1:/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('name: prod-app');
  });

  it('a change under ../base (outside spec.path) without a new bundle is refused', async () => {
    await stageFiles(repo, { 'base/cm.yaml': cm('app', 'two') });
    const commit = await gitsignCommit(bed, repo, 'base changed, bundle not\n');
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`rejected main@sha1:${commit}: ProvenanceFailed`);
  });

  it('a kustomization without its bundle at <spec.path>/.signet/ is refused, naming where it was looked for', async () => {
    await repo.git(['rm', '-q', 'apps/prod/.signet/provenance.sigstore.json']);
    const commit = await gitsignCommit(bed, repo, 'bundle removed\n');
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `rejected main@sha1:${commit}: ProvenanceFailed: provenance of main@sha1:${commit}: no provenance bundle at apps/prod/.signet/provenance.sigstore.json`,
    );
  });
});
