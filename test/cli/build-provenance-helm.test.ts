// Provenance for a Helm chart (spec.helm): the bundle must cover the repository root (the chart, its
// vendored dependencies and the values files may be anywhere in it), and `signet digest <root> --path
// <spec.path>` prints the digest the operator checks; a values file changed outside spec.path without
// a new bundle is refused.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepo, makeTempDir, stageFiles, type TestRepo } from '../support/git-fixtures.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../support/helm.ts';
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
import { configMapObject, gitRepositoryObject, runSignet, yamlDocuments } from './support.ts';

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
        path: 'charts/web',
        spec: { helm: { valuesFiles: ['env/prod.yaml'] } },
        verify: {
          mode: 'HEAD',
          keyless: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }],
          trustedRootRef: { name: 'sigstore-root' },
          provenance: { keysRef: { kind: 'Secret', name: 'provenance-keys' } },
        },
      }),
      configMapObject('sigstore-root', { 'trusted_root.json': JSON.stringify(bed.trustedRoot) }),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'provenance-keys' },
        type: 'Opaque',
        data: { [keyed.hint]: Buffer.from(keyed.publicKeyPEM).toString('base64') },
      },
    ]),
  );
  return file;
}

/** Signs a provenance bundle over `signet digest <root> --path charts/web` and commits it. */
async function commitWithBundle(): Promise<string> {
  const digest = await runSignet(['digest', repo.dir, '--path', 'charts/web']);
  expect(digest.code).toBe(0);
  const hex = (digest.lines[0] ?? '').replace(/^sha256:/, '');
  const statement = slsaStatement({ treeDigestHex: hex, repository: url }) as {
    predicate: { buildDefinition: { resolvedDependencies?: unknown } };
  };
  delete statement.predicate.buildDefinition.resolvedDependencies;
  await stageFiles(repo, {
    'charts/web/.signet/provenance.sigstore.json': JSON.stringify(
      await makeKeyedDsseBundle(bed, keyed, statement),
    ),
  });
  return gitsignCommit(bed, repo, 'manifests with provenance\n');
}

beforeAll(async () => {
  env = { SIGNET_HELM_ENGINE: (await ensureHelm()).engine };
  dir = await makeTempDir('cli-build-provenance-helm');
  repo = await createRepo();
  bed = await createSigstoreTestbed();
  keyed = makeKeyedSigner('ci-release-key');
  await repo.commit({});
  await stageFiles(repo, {
    'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
    'charts/web/templates/cm.yaml': cm('{{ .Release.Name }}-app', '{{ .Values.k }}'),
    'env/prod.yaml': 'k: one\n',
  });
}, helmBuildTimeoutMs);

afterAll(async () => {
  await repo?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('provenance of a Helm chart', () => {
  it('is checked over the repository root: a bundle over `signet digest --path` passes', async () => {
    await commitWithBundle();
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.stderr).toMatch(/^built main@sha1:/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('name: apps-app');
    expect(result.stdout).toContain('k: one');
  });

  it('a values file changed outside spec.path without a new bundle is refused', async () => {
    await stageFiles(repo, { 'env/prod.yaml': 'k: two\n' });
    const commit = await gitsignCommit(bed, repo, 'values changed, bundle not\n');
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`rejected main@sha1:${commit}: ProvenanceFailed`);
  });

  it('a chart without its bundle at <spec.path>/.signet/ is refused, naming where it was looked for', async () => {
    await repo.git(['rm', '-q', 'charts/web/.signet/provenance.sigstore.json']);
    const commit = await gitsignCommit(bed, repo, 'bundle removed\n');
    const result = await runSignet(['build', '-f', await policy(), '--repo-dir', repo.dir], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `rejected main@sha1:${commit}: ProvenanceFailed: provenance of main@sha1:${commit}: no provenance bundle at charts/web/.signet/provenance.sigstore.json`,
    );
  });
});
