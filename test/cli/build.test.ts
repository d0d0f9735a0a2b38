// `signet build` on a local clone: verification, then plain manifests or the Kustomize build of
// spec.path, printed as the operator would apply them; refusals exit 1.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  allowedSignersLine,
  type CommitSigning,
  createRepo,
  generateSshKey,
  makeTempDir,
  stageFiles,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { ensureKustomize, kustomizeBuildTimeoutMs } from '../support/kustomize.ts';
import { configMapObject, gitRepositoryObject, runSignet, yamlDocuments } from './support.ts';

let dir: string;
let repo: TestRepo;
let ssh: CommitSigning;
let allowedSigners: string;
let env: Record<string, string>;

const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  k: v\n`;

async function policy(name: string, path: string, spec: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    yamlDocuments([
      gitRepositoryObject({
        name: 'shop',
        namespace: 'flux',
        url: 'https://127.0.0.1:9/unreachable.git',
        path,
        verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers' } },
        spec,
      }),
      configMapObject('signers', { allowed_signers: allowedSigners }),
    ]),
  );
  return file;
}

beforeAll(async () => {
  const binaries = await ensureKustomize();
  env = { SIGNET_KUSTOMIZE_ENGINE: binaries.engine };
  dir = await makeTempDir('cli-build');
  repo = await createRepo();
  const key = await generateSshKey(dir, 'ed25519', 'release@example.com');
  allowedSigners = `${allowedSignersLine('release@example.com', key)}\n`;
  ssh = { format: 'ssh', key };
  await stageFiles(repo, {
    'base/kustomization.yaml':
      'resources: [cm.yaml]\nconfigMapGenerator:\n- name: settings\n  literals: [a=b]\n',
    'base/cm.yaml': cm('plain'),
    'apps/prod/kustomization.yaml': 'resources: [../../base]\nnamePrefix: prod-\n',
    'apps/remote/kustomization.yaml': 'resources: [github.com/example/repo//base?ref=v1]\n',
    'apps/exec/kustomization.yaml': 'generators: [gen.yaml]\n',
    'apps/exec/gen.yaml':
      'apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: g\n  annotations:\n    config.kubernetes.io/function: |\n      exec: {path: ./gen.sh}\n',
    'plain/cm.yaml': cm('only'),
  });
  await repo.commit({ sign: ssh });
}, kustomizeBuildTimeoutMs);

afterAll(async () => {
  await repo?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('signet build', () => {
  it('prints a verified overlay built from ../base, labelled and namespaced as the operator applies it', async () => {
    const result = await runSignet(
      ['build', '-f', await policy('prod', 'apps/prod', { targetNamespace: 'shop' }), '--repo-dir', repo.dir],
      { env },
    );
    expect(result.stderr).toMatch(/^built main@sha1:[0-9a-f]{40} \(2 objects\), signed by ssh key/);
    expect(result.code).toBe(0);
    const objects = parseAllDocuments(result.stdout).map((d) => d.toJS());
    expect(objects.map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'shop/prod-plain',
      expect.stringMatching(/^shop\/prod-settings-[a-z0-9]{10}$/),
    ]);
    expect(objects[1].metadata.labels).toEqual({
      'app.kubernetes.io/managed-by': 'signet',
      'signet.dev/name': 'shop',
      'signet.dev/namespace': 'flux',
    });
  });

  it('renders a plain directory as before', async () => {
    const result = await runSignet(['build', '-f', await policy('plain', 'plain'), '--repo-dir', repo.dir], {
      env,
    });
    expect(result.code).toBe(0);
    expect(parseAllDocuments(result.stdout).map((d) => d.toJS().metadata)).toEqual([
      expect.objectContaining({ name: 'only', namespace: 'flux' }),
    ]);
  });

  it('exits 1 naming the file and field for a remote base and an exec plugin, printing nothing', async () => {
    const remote = await runSignet(
      ['build', '-f', await policy('remote', 'apps/remote'), '--repo-dir', repo.dir],
      { env },
    );
    expect(remote.code).toBe(1);
    expect(remote.stdout).toBe('');
    expect(remote.stderr).toContain(
      'BuildFailed: apps/remote/kustomization.yaml: resources[0]: "github.com/example/repo//base?ref=v1" is remote',
    );
    const exec = await runSignet(['build', '-f', await policy('exec', 'apps/exec'), '--repo-dir', repo.dir], {
      env,
    });
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain(
      'apps/exec/kustomization.yaml: generators[0] (apps/exec/gen.yaml): KRM functions',
    );
  });

  it('exits 1 for an unsigned revision and 2 for bad input', async () => {
    await stageFiles(repo, { 'plain/cm.yaml': cm('changed') });
    await repo.commit({});
    const unsigned = await runSignet(
      ['build', '-f', await policy('unsigned', 'plain'), '--repo-dir', repo.dir],
      { env },
    );
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/Unsigned/);
    expect((await runSignet(['build'], { env })).code).toBe(2);
  });
});
