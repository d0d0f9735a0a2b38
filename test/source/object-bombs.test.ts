// zlib bombs and oversized objects: every inflation is bounded by a configured limit, never by the
// size an object declares, and refusing a 300 MiB bomb costs a few MiB, not 300.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import { defaultObjectLimits } from '../../src/source/object-limits.ts';
import { indexPack } from '../../src/source/pack-index.ts';
import { openPackStore } from '../../src/source/pack-store.ts';
import { openRepoReader, readTree } from '../../src/source/repo-reader.ts';
import {
  deflate,
  deflateRepeated,
  deltaVarint,
  entryHeader,
  indexOf,
  installPack,
  mebibyte,
  ofsDistance,
  packOf,
  writeLooseBomb,
} from '../support/git-bombs.ts';
import { makeTempDir, runCommand, writeLooseObject } from '../support/git-fixtures.ts';

const bombMiB = 300;
const commitHead = `tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904
author Mallory <mallory@example.com> 1700000000 +0000
committer Mallory <mallory@example.com> 1700000000 +0000

`;

/**
 * Runs `refuse` and returns its error, with the growth of the process's peak RSS and of the memory
 * held by ArrayBuffers (both would be ≥ 300 MiB if the bomb were inflated).
 */
async function measured(refuse: () => Promise<unknown>): Promise<{ error: unknown; peakGrowth: number }> {
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const rssBefore = process.memoryUsage().rss;
  const error = await refuse().then(
    () => undefined,
    (e: unknown) => e,
  );
  const peakAfter = process.resourceUsage().maxRSS * 1024;
  // The peak can only grow past the earlier peak; measure from the larger of the two baselines' view.
  const peakGrowth = peakAfter - Math.max(peakBefore, rssBefore);
  return { error, peakGrowth };
}

function expectRefused(error: unknown, code: string, message: RegExp): void {
  expect(error).toBeInstanceOf(SourceError);
  expect((error as SourceError).code).toBe(code);
  expect((error as SourceError).message).toMatch(message);
}

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('bombs');
});
afterAll(async () => {
  await runCommand('rm', ['-rf', dir]);
});

async function bareRepo(name: string): Promise<string> {
  const gitdir = join(dir, name);
  await mkdir(gitdir, { recursive: true });
  await runCommand('git', ['init', '-q', '--bare', gitdir]);
  return gitdir;
}

describe('pack entries', () => {
  let bomb: Buffer; // zlib of a 300 MiB commit
  let bombId: string;
  beforeAll(async () => {
    const size = Buffer.byteLength(commitHead) + bombMiB * mebibyte;
    const built = await deflateRepeated(
      Buffer.concat([Buffer.from(`commit ${size}\0`), Buffer.from(commitHead)]),
      Buffer.alloc(mebibyte, 'x'),
      bombMiB,
    );
    // A pack entry holds the content's zlib stream without the loose `commit <size>\0` header:
    // build it again from the content alone.
    bomb = (await deflateRepeated(Buffer.from(commitHead), Buffer.alloc(mebibyte, 'x'), bombMiB)).compressed;
    bombId = built.sha1;
    expect(bomb.length).toBeLessThan(mebibyte);
  });
  const bombSize = () => Buffer.byteLength(commitHead) + bombMiB * mebibyte;

  it('receiving: a commit whose header declares 300 MiB is refused before inflating (TooLarge)', async () => {
    const pack = packOf([Buffer.concat([entryHeader(1, bombSize()), bomb])]);
    const { error, peakGrowth } = await measured(() => indexPack(pack));
    expectRefused(
      error,
      'TooLarge',
      /received pack: the entry at offset 12: commit declares 314572\d\d\d bytes, over the 1 MiB commit limit; refused before inflating it \(raise the limit with --max-commit-bytes/,
    );
    expect(peakGrowth).toBeLessThan(64 * mebibyte);
  });

  it('receiving: a commit whose header claims 200 bytes but inflates to 300 MiB is stopped at 200', async () => {
    const pack = packOf([Buffer.concat([entryHeader(1, 200), bomb])]);
    const { error, peakGrowth } = await measured(() => indexPack(pack));
    expectRefused(error, 'CorruptRepository', /the entry at 12 inflates past the 200 bytes it declares/);
    expect(peakGrowth).toBeLessThan(64 * mebibyte);
  });

  it('receiving and reading: a delta whose result is 300 MiB is refused before it is allocated', async () => {
    // Base: a 64 KiB blob. Delta: 4,800 one-byte "copy 64 KiB from offset 0" instructions = 300 MiB.
    const base = Buffer.alloc(0x10000, 'b');
    const resultSize = 4_800 * 0x10000;
    const delta = Buffer.concat([
      deltaVarint(base.length),
      deltaVarint(resultSize),
      Buffer.alloc(4_800, 0x80),
    ]);
    const baseEntry = Buffer.concat([entryHeader(3, base.length), deflate(base)]);
    const deltaEntry = Buffer.concat([
      entryHeader(6, delta.length),
      ofsDistance(baseEntry.length),
      deflate(delta),
    ]);
    const pack = packOf([baseEntry, deltaEntry]);
    const receiving = await measured(() => indexPack(pack));
    expectRefused(
      receiving.error,
      'TooLarge',
      new RegExp(
        `received pack: the delta at offset ${12 + baseEntry.length} \\(its result\\): blob declares ${resultSize} bytes, over the 16 MiB blob limit; .*--max-file-bytes`,
      ),
    );
    expect(receiving.peakGrowth).toBeLessThan(64 * mebibyte);

    // The same pack already on disk (an index made by hand): the read path refuses it the same way.
    const gitdir = await bareRepo('delta');
    const deltaId = 'd'.repeat(40);
    await installPack(
      gitdir,
      pack,
      indexOf(
        [
          { oid: 'b'.repeat(40), offset: 12 },
          { oid: deltaId, offset: 12 + baseEntry.length },
        ],
        pack,
      ),
    );
    const store = await openPackStore(gitdir);
    const reading = await measured(async () => store.read(deltaId));
    expectRefused(
      reading.error,
      'TooLarge',
      new RegExp(
        `object ${deltaId} \\(pack pack-[0-9a-f]{40}: the delta at offset \\d+ \\(its result\\)\\): blob declares ${resultSize} bytes`,
      ),
    );
    expect(reading.peakGrowth).toBeLessThan(64 * mebibyte);
  });

  it('reading from disk: a packed commit declaring 300 MiB, and one claiming 200 bytes, are refused', async () => {
    const gitdir = await bareRepo('packed');
    const declared = Buffer.concat([entryHeader(1, bombSize()), bomb]);
    const claimsSmall = Buffer.concat([entryHeader(1, 200), bomb]);
    const pack = packOf([declared, claimsSmall]);
    const small = 'a'.repeat(40);
    await installPack(
      gitdir,
      pack,
      indexOf(
        [
          { oid: bombId, offset: 12 },
          { oid: small, offset: 12 + declared.length },
        ],
        pack,
      ),
    );
    const reader = openRepoReader(gitdir);
    const big = await measured(() => reader.readObject(bombId));
    expectRefused(
      big.error,
      'TooLarge',
      new RegExp(
        `object ${bombId} \\(pack pack-[0-9a-f]{40}: the entry at offset 12\\): commit declares \\d+ bytes, over the 1 MiB commit limit`,
      ),
    );
    expect(big.peakGrowth).toBeLessThan(64 * mebibyte);
    const lying = await measured(() => reader.readObject(small));
    expectRefused(lying.error, 'CorruptRepository', /inflates past the 200 bytes it declares/);
    expect(lying.peakGrowth).toBeLessThan(64 * mebibyte);
  });
});

describe('loose objects', () => {
  it('a loose commit bomb (300 KiB inflating to 300 MiB) is refused from its header', async () => {
    const gitdir = await bareRepo('loose');
    const { oid, compressedBytes } = await writeLooseBomb(gitdir, 'commit', commitHead, bombMiB);
    expect(compressedBytes).toBeLessThan(mebibyte);
    const reader = openRepoReader(gitdir);
    const { error, peakGrowth } = await measured(() => reader.readObject(oid));
    expectRefused(
      error,
      'TooLarge',
      new RegExp(
        `object ${oid} \\(loose object ${oid}\\): commit declares \\d+ bytes, over the 1 MiB commit limit; .*--max-commit-bytes`,
      ),
    );
    expect(peakGrowth).toBeLessThan(64 * mebibyte);
    // The same walk the rollback check makes refuses it too (not "not in the history").
    const walk = await measured(() => reader.isAncestor('e'.repeat(40), oid));
    expectRefused(walk.error, 'TooLarge', /commit declares/);
  });

  it('a tree bomb under the commit is refused by readTree with the tree limit', async () => {
    const gitdir = await bareRepo('tree');
    const tree = await writeLooseBomb(gitdir, 'tree', '100644 a\0', bombMiB);
    const commit = await writeLooseObject(
      gitdir,
      'commit',
      Buffer.from(commitHead.replace(/^tree [0-9a-f]{40}/, `tree ${tree.oid}`)),
    );
    const { error, peakGrowth } = await measured(() => readTree(gitdir, commit, ''));
    expectRefused(
      error,
      'TooLarge',
      new RegExp(
        `object ${tree.oid} \\(loose object ${tree.oid}\\): tree declares \\d+ bytes, over the 8 MiB tree limit; .*--max-tree-bytes`,
      ),
    );
    expect(peakGrowth).toBeLessThan(64 * mebibyte);
  });

  it('a blob bomb under spec.path is refused with the file limit, naming the file', async () => {
    const gitdir = await bareRepo('blob');
    const blob = await writeLooseBomb(gitdir, 'blob', 'kind: ConfigMap\n', bombMiB);
    const entry = Buffer.concat([Buffer.from('100644 huge.yaml\0'), Buffer.from(blob.oid, 'hex')]);
    const tree = await writeLooseObject(gitdir, 'tree', entry);
    const commit = await writeLooseObject(
      gitdir,
      'commit',
      Buffer.from(commitHead.replace(/^tree [0-9a-f]{40}/, `tree ${tree}`)),
    );
    const { error, peakGrowth } = await measured(() => readTree(gitdir, commit, ''));
    expectRefused(
      error,
      'TooLarge',
      new RegExp(`^huge\\.yaml: ${blob.size} bytes is over the 4194304-byte file limit`),
    );
    expect(peakGrowth).toBeLessThan(64 * mebibyte);
  });
});

describe('legitimate large files elsewhere in the repository', () => {
  it('are indexed on receipt as git indexes them; over 16 MiB only whole (streamed), not as a delta base', async () => {
    const work = await bareRepo('large-blob');
    const source = join(dir, 'large-source');
    await runCommand('git', ['init', '-q', '-b', 'main', source]);
    // Lines that share nothing between the two files (git would deltify one against the other).
    const text = (mib: number, filler: string) =>
      Array.from(
        { length: mib * 16_384 },
        (_, i) => `${filler}${String(i).padStart(8, '0')}${filler.repeat(6)}\n`,
      );
    const big = text(20, 'abcdefgh'); // over the 16 MiB receive bound: hashed while streaming
    const mid = text(6, 'qrstuvwx'); // over the 4 MiB file limit, under the receive bound
    const commit = async (message: string) => {
      await writeFile(join(source, 'big.bin'), big.join(''));
      await writeFile(join(source, 'mid.bin'), mid.join(''));
      await runCommand('git', ['add', '-A'], { cwd: source });
      await runCommand(
        'git',
        ['-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '-qm', message],
        {
          cwd: source,
        },
      );
    };
    const packOfHead = async () =>
      (
        await runCommand('git', ['pack-objects', '--stdout', '--revs'], {
          cwd: source,
          input: 'HEAD\n',
          timeoutMs: 60_000,
        })
      ).stdout;
    await commit('v1');
    mid[100] = 'changed\n';
    await commit('mid changed'); // mid.bin v2 is a delta on v1 in the pack
    const pack = await packOfHead();
    const indexed = await indexPack(pack);
    if (indexed.kind !== 'indexed') throw new Error(indexed.kind);
    const packPath = join(work, 'large.pack');
    await writeFile(packPath, pack);
    await runCommand('git', ['index-pack', '-o', join(work, 'large.idx'), packPath], { timeoutMs: 60_000 });
    expect(indexed.idx.equals(await readFile(join(work, 'large.idx')))).toBe(true);

    // A second version of the 20 MiB file: the first would have to be held as a delta base.
    big[100] = 'changed\n';
    await commit('big changed');
    const both = await packOfHead();
    const error = await indexPack(both).catch((e: unknown) => e);
    expectRefused(
      error,
      'TooLarge',
      /^received pack: the base \(at offset \d+\) of the delta at offset \d+: blob declares \d+ bytes, over the 16 MiB blob limit; refused before inflating it \(raise the limit with --max-file-bytes/,
    );
    // Raised, it is indexed.
    const raised = await indexPack(both, { limits: { ...defaultObjectLimits, blobBytes: 24 * mebibyte } });
    expect(raised.kind).toBe('indexed');
  });
});

describe('reading from disk', () => {
  it('reads a 3.5 MiB file stored as a delta on its 6 MiB earlier version (up to 16 MiB held as a base)', async () => {
    const source = join(dir, 'shrunk-source');
    await runCommand('git', ['init', '-q', '-b', 'main', source]);
    const lines = Array.from(
      { length: 6 * 16_384 },
      (_, i) => `line ${String(i).padStart(8, '0')} ${'z'.repeat(50)}\n`,
    );
    const git = (args: string[]) =>
      runCommand('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', ...args], { cwd: source });
    await writeFile(join(source, 'data.txt'), lines.join(''));
    await git(['add', '-A']);
    await git(['commit', '-qm', 'large']);
    await writeFile(join(source, 'data.txt'), lines.slice(0, 56_000).join(''));
    await git(['commit', '-qam', 'shrunk']);
    await git(['repack', '-adq']);
    const small = (await git(['rev-parse', 'HEAD:data.txt'])).stdout.toString().trim();
    const verify = (
      await runCommand('git', ['verify-pack', '-v', ...(await packIdx(source))], { cwd: source })
    ).stdout.toString();
    // git stored the small version as a delta on the large one.
    expect(verify).toMatch(new RegExp(`^${small} blob\\s+\\d+ \\d+ \\d+ 1 [0-9a-f]{40}$`, 'm'));
    const store = await openPackStore(join(source, '.git'));
    expect(Buffer.from(store.read(small)?.content ?? []).toString()).toBe(lines.slice(0, 56_000).join(''));
  });
});

async function packIdx(source: string): Promise<string[]> {
  const packDir = join(source, '.git', 'objects', 'pack');
  const names = (await runCommand('ls', [packDir])).stdout.toString().split('\n');
  return names.filter((n) => n.endsWith('.idx')).map((n) => join(packDir, n));
}
