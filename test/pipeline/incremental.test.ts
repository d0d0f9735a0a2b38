// The operator's common case (HEAD mode, depth 1) polled again after one small commit: the Git source
// must fetch only what changed. git upload-pack answers a shallow `deepen` request without thin packs
// (isomorphic-git never asks for them) with the whole tree again, so the second fetch must not deepen.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteSpec } from '../../src/controller/ports.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { createLogger } from '../../src/util/logger.ts';
import { makeTempDir, runCommand } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

const fileCount = 2_000;
let dir: string;
let origin: string;
let server: GitServer;
let remote: RemoteSpec;

function manifest(index: number, generation: number): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${index}\ndata:\n  gen: "${generation}"\n  k: v${index}\n`;
}

/** A commit through `git fast-import` (2,000 files in about a second). */
async function fastImport(files: Record<string, string>, message: string, parent: boolean): Promise<void> {
  const lines = [
    'commit refs/heads/main',
    'committer Test <test@example.com> 1700000000 +0000',
    `data ${message.length}`,
    message,
    ...(parent ? ['from refs/heads/main^0'] : []),
  ];
  for (const [path, content] of Object.entries(files)) {
    lines.push(`M 100644 inline ${path}`, `data ${Buffer.byteLength(content)}`, content);
  }
  lines.push('');
  await runCommand('git', ['fast-import', '--quiet'], {
    cwd: origin,
    input: lines.join('\n'),
    timeoutMs: 60_000,
  });
}

async function packBytes(gitdir: string): Promise<Map<string, number>> {
  const packDir = join(gitdir, 'objects', 'pack');
  const sizes = new Map<string, number>();
  for (const name of await readdir(packDir)) {
    if (name.endsWith('.pack')) sizes.set(name, (await stat(join(packDir, name))).size);
  }
  return sizes;
}

beforeAll(async () => {
  dir = await makeTempDir('pipeline-incremental');
  origin = join(dir, 'origin');
  await runCommand('git', ['init', '-q', '-b', 'main', origin]);
  const files: Record<string, string> = {};
  for (let index = 0; index < fileCount; index++)
    files[`deploy/team-${index % 4}/cm-${index}.yaml`] = manifest(index, 0);
  await fastImport(files, 'initial', false);
  server = await startGitServer();
  remote = {
    url: server.serve('large', join(origin, '.git')),
    insecure: false,
    timeoutMs: 30_000,
    credentials: { caPem: server.caPem },
  };
}, 60_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('incremental depth-1 fetch', () => {
  it('fetches one changed file as a small pack, not the whole tree again, and reads the new revision', async () => {
    const cacheDir = join(dir, 'cache');
    const source = createGitSource({ cacheDir, logger: createLogger({ level: 'silent' }) });
    const signal = AbortSignal.timeout(30_000);
    const first = await source.resolve(remote, { branch: 'main' }, signal);
    const gitdir =
      (await source.fetch('team/apps', remote, { branch: 'main' }, first, { depth: 1 }, signal)).gitdir ?? '';
    const before = await packBytes(gitdir);
    const [firstPackBytes] = [...before.values()];
    expect(firstPackBytes).toBeGreaterThan(50_000);

    await fastImport({ 'deploy/team-0/cm-0.yaml': manifest(0, 1) }, 'one change', true);
    const second = await source.resolve(remote, { branch: 'main' }, signal);
    const fetched = await source.fetch('team/apps', remote, { branch: 'main' }, second, { depth: 1 }, signal);
    const added = [...(await packBytes(gitdir))].filter(([name]) => !before.has(name));
    expect(added).toHaveLength(1);
    const [, newPackBytes] = added[0] ?? ['', 0];
    // The changed blob, the commit and the three trees on its path: a fraction of the first pack.
    expect(newPackBytes).toBeLessThan((firstPackBytes ?? 0) / 4);
    const tree = await fetched.readTree(second.commit, 'deploy/team-0', signal);
    expect(tree.files).toHaveLength(fileCount / 4);
    expect(Buffer.from(tree.files.find((f) => f.path === 'cm-0.yaml')?.content ?? []).toString()).toContain(
      'gen: "1"',
    );
    expect(await fetched.isAncestor(first.commit, second.commit)).toBe(true);
  });
});
