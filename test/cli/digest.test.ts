// `signet digest <dir>` prints what spec.verify.provenance checks: treeDigest over the same files, the
// same value the Git source's tree gives for that directory at a commit; symlinks are refused.
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeDigest } from '../../src/provenance/tree-digest.ts';
import { createLocalSource } from '../../src/source/git-source.ts';
import { createRepo, makeTempDir, type TestRepo } from '../support/git-fixtures.ts';
import { runSignet } from './support.ts';

let dir: string;
let repo: TestRepo;
const files: Record<string, string> = {
  'app.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n',
  'b/z.yaml': 'kind: ConfigMap\n',
  'b/ä.yaml': 'kind: Secret\n', // sorted by UTF-8 bytes: after every ASCII name
  'B-upper.yaml': 'kind: Service\n',
  'empty.yaml': '',
  '.signet/provenance.sigstore.json': '{"excluded": true}',
};

async function writeTree(root: string, tree: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(tree)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

beforeAll(async () => {
  dir = await makeTempDir('cli-digest');
  repo = await createRepo();
  await writeTree(join(repo.dir, 'deploy'), files);
  await repo.git(['add', '-A']);
  await repo.commit({ files: {} });
});

afterAll(async () => {
  await repo?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('signet digest', () => {
  it('prints the treeDigest of the directory (.signet/ excluded), equal to the digest of the Git tree', async () => {
    const result = await runSignet(['digest', join(repo.dir, 'deploy')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const expected = treeDigest(
      Object.entries(files).map(([path, content]) => ({ path, content: Buffer.from(content) })),
    );
    expect(expected.fileCount).toBe(5);
    expect(result.lines).toEqual([expected.digest]);
    const source = createLocalSource(repo.dir);
    const signal = AbortSignal.timeout(10_000);
    const head = await repo.git(['rev-parse', 'HEAD']);
    const fetched = await source.fetch(
      'local',
      { url: 'file:///unused', insecure: false, timeoutMs: 10_000, credentials: {} },
      { branch: 'main' },
      { commit: head },
      { depth: 1 },
      signal,
    );
    const tree = await fetched.readTree(head, 'deploy', signal);
    expect(treeDigest(tree.files, tree.symlinks).digest).toBe(expected.digest);
  });

  it('--bundle-path leaves that file out; a change to any file changes the digest', async () => {
    const root = join(dir, 'bundle');
    await writeTree(root, { 'a.yaml': 'a: 1\n', 'ci/bundle.json': '{}' });
    const withBundle = await runSignet(['digest', root, '--bundle-path', 'ci/bundle.json']);
    expect(withBundle.code).toBe(0);
    expect(withBundle.lines).toEqual([
      treeDigest([{ path: 'a.yaml', content: Buffer.from('a: 1\n') }]).digest,
    ]);
    await writeFile(join(root, 'a.yaml'), 'a: 2\n');
    const changed = await runSignet(['digest', root, '--bundle-path', 'ci/bundle.json']);
    expect(changed.lines[0]).not.toBe(withBundle.lines[0]);
  });

  it('--path to a chart (Chart.yaml, or --helm) covers the repository root, as the operator checks spec.helm', async () => {
    const root = join(dir, 'helm');
    const tree = {
      'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
      'charts/web/.signet/provenance.sigstore.json': '{}',
      'env/prod.yaml': 'color: red\n',
      'plain/values.yaml': 'a: 1\n',
    };
    await writeTree(root, tree);
    const rootDigest = (leftOut: string) =>
      treeDigest(
        Object.entries(tree)
          .filter(([path]) => !path.startsWith(leftOut))
          .map(([path, content]) => ({ path, content: Buffer.from(content) })),
      ).digest;
    const chart = await runSignet(['digest', root, '--path', 'charts/web']);
    expect(chart.lines).toEqual([rootDigest('charts/web/.signet/')]);
    // spec.path without Chart.yaml (spec.helm.chart elsewhere): --helm says so.
    const flagged = await runSignet(['digest', root, '--path', 'plain', '--helm']);
    expect(flagged.lines).toEqual([rootDigest('plain/.signet/')]);
    const plain = await runSignet(['digest', root, '--path', 'plain']);
    expect(plain.lines).toEqual([
      treeDigest([{ path: 'values.yaml', content: Buffer.from('a: 1\n') }]).digest,
    ]);
  });

  it('refuses a symlink with exit 2 and names it', async () => {
    const root = join(dir, 'links');
    await writeTree(root, { 'a.yaml': 'a: 1\n' });
    await symlink('a.yaml', join(root, 'link.yaml'));
    const result = await runSignet(['digest', root]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('link.yaml');
  });

  it('exits 2 with the usage for no path, and for a directory that does not exist', async () => {
    const none = await runSignet(['digest']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: signet digest');
    const missing = await runSignet(['digest', join(dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope');
  });
});
