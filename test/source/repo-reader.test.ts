// openRepoReader and readTree against repositories made by the system git (no network).
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import {
  BlobCache,
  defaultTreeLimits,
  openRepoReader,
  readTree,
  symlinkEscapes,
} from '../../src/source/repo-reader.ts';
import { createRepo, runCommand, type TestRepo } from '../support/git-fixtures.ts';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return (error as SourceError).code;
}

describe('openRepoReader: ranges and ancestry with merges', () => {
  let repo: TestRepo;
  const c: Record<string, string> = {};
  const revList = async (...args: string[]) =>
    (await repo.git(['rev-list', ...args])).split('\n').filter((line) => line !== '');

  beforeAll(async () => {
    //   A - B - C ------- M1 - E - M2
    //        \           /         /
    //         D1 - D2 --+--- F ---+
    repo = await createRepo();
    c.A = await repo.commit();
    c.B = await repo.commit();
    await repo.git(['checkout', '-q', '-b', 'feature']);
    c.D1 = await repo.commit();
    c.D2 = await repo.commit();
    await repo.git(['checkout', '-q', 'main']);
    c.C = await repo.commit();
    c.M1 = await repo.merge('feature');
    c.E = await repo.commit();
    await repo.git(['checkout', '-q', 'feature']);
    c.F = await repo.commit();
    await repo.git(['checkout', '-q', 'main']);
    c.M2 = await repo.merge('feature');
  });
  afterAll(() => repo.close());

  it('lists exactly what `git rev-list head ^since` lists, newest first', async () => {
    const reader = openRepoReader(join(repo.dir, '.git'));
    const cases: [string, string | undefined][] = [
      ['M2', undefined],
      ['M2', 'B'],
      ['M2', 'D1'],
      ['M2', 'E'],
      ['E', 'D2'],
      ['M1', 'C'],
      ['M2', 'M2'],
      ['D2', 'C'],
    ];
    for (const [head, since] of cases) {
      const headOid = c[head] as string;
      const sinceOid = since === undefined ? undefined : (c[since] as string);
      const expected = await revList(headOid, ...(sinceOid === undefined ? [] : [`^${sinceOid}`]));
      expect(await reader.listRange(headOid, sinceOid), `${head} ^${since ?? ''}`).toEqual(expected);
    }
  });

  it('answers isAncestor like `git merge-base --is-ancestor` (equal counts as ancestor)', async () => {
    const reader = openRepoReader(join(repo.dir, '.git'));
    const names = Object.keys(c);
    for (const a of names) {
      for (const d of names) {
        const { code } = await runCommand(
          'git',
          ['merge-base', '--is-ancestor', c[a] as string, c[d] as string],
          {
            cwd: repo.dir,
            okCodes: [0, 1],
          },
        );
        expect(await reader.isAncestor(c[a] as string, c[d] as string), `${a} ≤ ${d}`).toBe(code === 0);
      }
    }
  });

  it('reads raw objects and refuses unknown ones', async () => {
    const reader = openRepoReader(join(repo.dir, '.git'));
    const object = await reader.readObject(c.M1 as string);
    expect(object.type).toBe('commit');
    expect(Buffer.from(object.raw).equals(await repo.readRaw(c.M1 as string))).toBe(true);
    expect(await codeOf(reader.readObject('0'.repeat(40)))).toBe('NotFound');
  });

  it('honours an aborted signal', async () => {
    const reader = openRepoReader(join(repo.dir, '.git'));
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(reader.listRange(c.M2 as string, undefined, controller.signal)).rejects.toThrow('stop');
  });
});

describe('readTree', () => {
  let repo: TestRepo;
  let first: string;
  let second: string;
  beforeAll(async () => {
    repo = await createRepo();
    await mkdir(join(repo.dir, 'deploy', 'nested', 'deeper'), { recursive: true });
    await symlink('../../README.md', join(repo.dir, 'deploy', 'escape.yaml'));
    await symlink('nested/a.yaml', join(repo.dir, 'deploy', 'inside.yaml'));
    await repo.git(['add', 'deploy/escape.yaml', 'deploy/inside.yaml']);
    first = await repo.commit({
      files: {
        'README.md': 'outside\n',
        'deploy/nested/a.yaml': 'a: 1\n',
        'deploy/nested/deeper/b.yaml': 'b: 1\n',
        'deploy/c.yaml': 'c: 1\n',
      },
    });
    second = await repo.commit({ files: { 'deploy/c.yaml': 'c: 2\n' } });
  });
  afterAll(() => repo.close());

  it('returns only the files under the path, relative to it, with symlinks as data', async () => {
    const tree = await readTree(join(repo.dir, '.git'), first, './deploy/', defaultTreeLimits, {
      blobCache: new BlobCache(1 << 20),
    });
    expect(tree.files.map((f) => f.path).sort()).toEqual(['c.yaml', 'nested/a.yaml', 'nested/deeper/b.yaml']);
    const a = tree.files.find((f) => f.path === 'nested/a.yaml');
    expect(Buffer.from(a?.content ?? []).toString()).toBe('a: 1\n');
    expect(a?.oid).toBe(await repo.git(['rev-parse', `${first}:deploy/nested/a.yaml`]));
    expect(tree.symlinks).toEqual([
      { path: 'escape.yaml', target: '../../README.md', escapesTree: true },
      { path: 'inside.yaml', target: 'nested/a.yaml', escapesTree: false },
    ]);
  });

  it('never reads a blob twice across revisions', async () => {
    const blobCache = new BlobCache(1 << 20);
    const dir = join(repo.dir, '.git');
    await readTree(dir, first, 'deploy', defaultTreeLimits, { blobCache });
    expect(blobCache.misses).toBe(5); // 3 files + 2 symlink targets
    await readTree(dir, second, 'deploy', defaultTreeLimits, { blobCache });
    expect(blobCache.misses).toBe(6); // only the changed c.yaml
    expect(blobCache.hits).toBe(4);
  });

  it('enforces file size, total size, file count and depth bounds', async () => {
    const dir = join(repo.dir, '.git');
    const run = (limits: Partial<typeof defaultTreeLimits>) =>
      codeOf(
        readTree(
          dir,
          first,
          'deploy',
          { ...defaultTreeLimits, ...limits },
          { blobCache: new BlobCache(1 << 20) },
        ),
      );
    expect(await run({ maxFileBytes: 4 })).toBe('TooLarge');
    expect(await run({ maxTotalBytes: 12 })).toBe('TooLarge');
    expect(await run({ maxFiles: 3 })).toBe('TooLarge');
    expect(await run({ maxDepth: 1 })).toBe('TooLarge');
    const error = await readTree(dir, first, 'deploy', { ...defaultTreeLimits, maxFiles: 2 }).catch(
      (e: unknown) => e as Error,
    );
    expect(String(error)).toMatch(/more than 2 files under spec.path "deploy"/);
  });

  it('refuses `..` and absolute paths, and names a missing path', async () => {
    const dir = join(repo.dir, '.git');
    expect(await codeOf(readTree(dir, first, '../etc'))).toBe('InvalidPath');
    expect(await codeOf(readTree(dir, first, 'deploy/../../x'))).toBe('InvalidPath');
    expect(await codeOf(readTree(dir, first, '/etc'))).toBe('InvalidPath');
    expect(await codeOf(readTree(dir, first, 'nowhere'))).toBe('NotFound');
    expect(await codeOf(readTree(dir, first, 'README.md'))).toBe('NotFound');
  });

  it('flags symlinks that leave the tree', () => {
    expect(symlinkEscapes('a.yaml', '../x')).toBe(true);
    expect(symlinkEscapes('a/b.yaml', '../x')).toBe(false);
    expect(symlinkEscapes('a/b.yaml', '../../x')).toBe(true);
    expect(symlinkEscapes('a.yaml', '/etc/passwd')).toBe(true);
    expect(symlinkEscapes('a.yaml', './b/../c')).toBe(false);
  });
});

describe('readTree: symlink targets', () => {
  it('cuts a target over 4 KiB on a character, not inside one', async () => {
    const repo = await createRepo();
    try {
      // 4,095 ASCII bytes then `é` (2 bytes): the 4,096-byte cut falls inside the `é`.
      await mkdir(join(repo.dir, 'deploy'));
      const oid = await repo.git(['hash-object', '-w', '--stdin'], { input: `${'a'.repeat(4_095)}é/x.yaml` });
      await repo.git(['update-index', '--add', '--cacheinfo', `120000,${oid},deploy/long.yaml`]);
      const head = await repo.commit({ files: { 'deploy/a.yaml': 'a: 1\n' } });
      const tree = await readTree(join(repo.dir, '.git'), head, 'deploy', defaultTreeLimits, {
        blobCache: new BlobCache(1 << 20),
      });
      expect(tree.symlinks).toEqual([{ path: 'long.yaml', target: 'a'.repeat(4_095), escapesTree: false }]);
    } finally {
      await repo.close();
    }
  });
});
