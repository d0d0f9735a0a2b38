// The native-zlib pack reader against git itself: every object of packs with deep ofs-delta chains,
// with ref-deltas, and of the pack isomorphic-git wrote during a real fetch reads back byte for byte
// as `git cat-file --batch` gives it; a damaged pack fails closed.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { openPackStore } from '../../src/source/pack-store.ts';
import { createLogger } from '../../src/util/logger.ts';
import { makeTempDir, runCommand } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

let dir: string;
let origin: string;
let server: GitServer;

const git = async (args: readonly string[], cwd: string, input?: string | Uint8Array) =>
  (await runCommand('git', args, { cwd, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) }))
    .stdout;

/** Every object of the repository at `gitdir`: oid → [type, content], via `git cat-file --batch`. */
async function allObjects(gitdir: string): Promise<Map<string, { type: string; content: Buffer }>> {
  const oids = (await git(['cat-file', '--batch-all-objects', '--batch-check=%(objectname)'], gitdir))
    .toString()
    .trim()
    .split('\n');
  const out = await git(['cat-file', '--batch'], gitdir, `${oids.join('\n')}\n`);
  const objects = new Map<string, { type: string; content: Buffer }>();
  let offset = 0;
  while (offset < out.length) {
    const newline = out.indexOf(0x0a, offset);
    const [oid, type, size] = out.subarray(offset, newline).toString().split(' ');
    const start = newline + 1;
    objects.set(oid ?? '', { type: type ?? '', content: out.subarray(start, start + Number(size)) });
    offset = start + Number(size) + 1;
  }
  return objects;
}

async function expectSameObjects(gitdir: string): Promise<number> {
  const expected = await allObjects(gitdir);
  const store = await openPackStore(gitdir);
  for (const [oid, object] of expected) {
    const read = store.read(oid);
    expect(read?.type, oid).toBe(object.type);
    expect(Buffer.from(read?.content ?? []).equals(object.content), oid).toBe(true);
  }
  expect(store.read('0'.repeat(40))).toBeUndefined();
  return expected.size;
}

beforeAll(async () => {
  dir = await makeTempDir('pack-store');
  origin = join(dir, 'origin');
  await git(['init', '-q', '-b', 'main', origin], dir);
  // Many revisions of similar files: git stores them as long delta chains.
  for (let generation = 0; generation < 30; generation++) {
    const lines = [
      'commit refs/heads/main',
      `committer T <t@example.com> ${1_700_000_000 + generation} +0000`,
      'data 3',
      `g${String(generation).padStart(2, '0')}`,
      ...(generation === 0 ? [] : ['from refs/heads/main^0']),
    ];
    for (let index = 0; index < 40; index++) {
      const content = `kind: ConfigMap\nmetadata:\n  name: cm-${index}\ndata:\n${'  line: same text\n'.repeat(20)}  gen: "${generation}"\n`;
      lines.push(
        `M 100644 inline d${index % 3}/cm-${index}.yaml`,
        `data ${Buffer.byteLength(content)}`,
        content,
      );
    }
    lines.push('');
    await git(['fast-import', '--quiet'], origin, lines.join('\n'));
  }
  await git(['repack', '-adfq', '--depth=50', '--window=50'], origin);
  server = await startGitServer();
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('openPackStore', () => {
  it('reads every object of a pack with ofs-delta chains exactly as git does', async () => {
    const histogram = (await git(['verify-pack', '-v', ...(await packIndexes(join(origin, '.git')))], origin))
      .toString()
      .matchAll(/chain length = (\d+)/g);
    const longest = Math.max(0, ...[...histogram].map((m) => Number(m[1])));
    expect(longest).toBeGreaterThanOrEqual(3); // delta chains exist
    expect(await expectSameObjects(join(origin, '.git'))).toBeGreaterThan(1_000);
  });

  it('reads ref-delta packs (no --delta-base-offset)', async () => {
    const refRepo = join(dir, 'ref-delta');
    await git(['init', '-q', '--bare', refRepo], dir);
    const pack = await git(['pack-objects', '--stdout', '--revs', '--all'], origin, '--all\n').catch(() =>
      git(['pack-objects', '--stdout', '--revs'], origin, 'refs/heads/main\n'),
    );
    await git(['index-pack', '--stdin', '--fix-thin'], refRepo, pack);
    expect(await expectSameObjects(refRepo)).toBeGreaterThan(1_000);
  });

  it('reads the pack and index isomorphic-git wrote during a fetch over HTTPS', async () => {
    const source = createGitSource({
      cacheDir: join(dir, 'cache'),
      logger: createLogger({ level: 'silent' }),
    });
    const remote = {
      url: server.serve('origin', join(origin, '.git')),
      insecure: false,
      timeoutMs: 30_000,
      credentials: { caPem: server.caPem },
    };
    const signal = AbortSignal.timeout(30_000);
    const resolved = await source.resolve(remote, { branch: 'main' }, signal);
    const fetched = await source.fetch(
      'ns/origin',
      remote,
      { branch: 'main' },
      resolved,
      { depth: 'full' },
      signal,
    );
    expect(await expectSameObjects(fetched.gitdir ?? '')).toBeGreaterThan(1_000);
  });

  it('fails closed on a damaged pack', async () => {
    const damaged = join(dir, 'damaged');
    await git(['clone', '-q', '--no-local', '--bare', origin, damaged], dir); // no hard links to origin's pack
    const [index] = await packIndexes(damaged);
    const packPath = (index ?? '').replace(/\.idx$/, '.pack');
    const bytes = await readFile(packPath);
    for (let i = 64; i < bytes.length - 64; i += 211) bytes[i] = (bytes[i] ?? 0) ^ 0x5a;
    await writeFile(packPath, bytes);
    const store = await openPackStore(damaged);
    const expected = await allObjects(join(origin, '.git'));
    let refused = 0;
    for (const [oid, object] of expected) {
      try {
        const read = store.read(oid);
        // Whatever is not refused is exactly git's object: each read is checked against its id.
        expect(read?.type, oid).toBe(object.type);
        expect(Buffer.from(read?.content ?? []).equals(object.content), oid).toBe(true);
      } catch (error) {
        expect(error).toBeInstanceOf(SourceError);
        // A damaged entry header may declare a size over the object limits: refused before inflating.
        expect(['CorruptRepository', 'TooLarge']).toContain((error as SourceError).code);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(expected.size / 4);
  });
});

async function packIndexes(gitdir: string): Promise<string[]> {
  const packDir = join(gitdir, 'objects', 'pack');
  return (await readdir(packDir)).filter((n) => n.endsWith('.idx')).map((n) => join(packDir, n));
}
