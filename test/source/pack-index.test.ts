// Native pack indexing (pack-index.ts) cross-checked against `git index-pack` / `git verify-pack`,
// and the receiver (pack-receiver.ts) under a real fetch: isomorphic-git and git both read the result.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import { indexPack } from '../../src/source/pack-index.ts';
import { demuxUploadPack, withNativePackReceiver } from '../../src/source/pack-receiver.ts';
import { cacheDirFor, fetchRevision, type GitRemote, pollRemote } from '../../src/source/remote.ts';
import { openRepoReader, readTree } from '../../src/source/repo-reader.ts';
import { measureEventLoop } from '../support/event-loop.ts';
import { fastImportHistory } from '../support/git-bombs.ts';
import { createRepo, makeTempDir, runCommand, type TestRepo } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

let repo: TestRepo;
let work: string;
let server: GitServer;
const signal = () => AbortSignal.timeout(20_000);

/** Files that delta well against each other and against their previous versions. */
function files(generation: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < 40; i++) {
    const lines = Array.from({ length: 60 }, (_, line) => `  key-${line}: value-${line}-${i % 3}`);
    if (i < 5) lines[generation % 60] = `  changed: ${generation}-${i}`;
    out[`deploy/cm-${i}.yaml`] = `kind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n${lines.join('\n')}\n`;
  }
  return out;
}

async function git(args: readonly string[], input?: string): Promise<Buffer> {
  return (
    await runCommand('git', args, {
      cwd: repo.dir,
      ...(input === undefined ? {} : { input }),
      timeoutMs: 60_000,
    })
  ).stdout;
}

async function packOf(revs: string, extra: readonly string[] = []): Promise<Buffer> {
  return git(['pack-objects', '--stdout', '--revs', ...extra], `${revs}\n`);
}

/** `git index-pack` on `pack`: its .idx bytes. */
async function gitIndex(pack: Buffer, name: string): Promise<Buffer> {
  const path = join(work, `${name}.pack`);
  await writeFile(path, pack);
  await runCommand('git', ['index-pack', '-o', join(work, `${name}.idx`), path], { timeoutMs: 60_000 });
  return readFile(join(work, `${name}.idx`));
}

async function corruptionOf(pack: Buffer): Promise<SourceError> {
  const error = await indexPack(pack).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  expect((error as SourceError).code).toBe('CorruptRepository');
  return error as SourceError;
}

beforeAll(async () => {
  work = await makeTempDir('pack-index');
  repo = await createRepo();
  await mkdir(join(repo.dir, 'deploy'));
  for (let generation = 0; generation < 4; generation++) await repo.commit({ files: files(generation) });
  await repo.commit({ files: { 'big.txt': `${'0123456789abcdef\n'.repeat(4_000)}tail 1\n` } });
  await repo.commit({ files: { 'big.txt': `${'0123456789abcdef\n'.repeat(4_000)}tail 2\n` } });
  server = await startGitServer();
});

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await rm(work, { recursive: true, force: true });
});

describe('indexPack', () => {
  it('builds the same .idx as git index-pack for ofs-delta and ref-delta packs', async () => {
    for (const [name, extra] of [
      ['ofs', []],
      ['ref', ['--no-delta-base-offset']],
    ] as const) {
      const pack = await packOf('HEAD', extra);
      const indexed = await indexPack(pack);
      if (indexed.kind !== 'indexed') throw new Error(`${name}: ${indexed.kind}`);
      expect(indexed.checksum).toBe(pack.subarray(-20).toString('hex'));
      expect(indexed.idx.equals(await gitIndex(pack, name)), name).toBe(true);
      // The pack really has deltas of that kind (entry types 6 / 7 in verify-pack's chain report).
      const verify = (
        await runCommand('git', ['verify-pack', '-v', join(work, `${name}.idx`)], { timeoutMs: 60_000 })
      ).stdout.toString();
      expect(verify).toMatch(/chain length = 1:/);
      expect(indexed.objects).toBe(Number(/non delta: (\d+)/.exec(verify)?.[1] ?? 0) + deltaCount(verify));
    }
  });

  it('reports a thin pack (a ref-delta base outside the pack) instead of indexing it', async () => {
    const thin = await packOf('HEAD\n^HEAD~1', ['--thin']);
    const outcome = await indexPack(thin);
    expect(outcome.kind).toBe('thin');
    if (outcome.kind === 'thin') {
      const base = (await git(['rev-parse', 'HEAD~1:big.txt'])).toString().trim();
      expect(outcome.missingBase).toBe(base);
    }
    // Without --thin the same range is self-contained.
    expect((await indexPack(await packOf('HEAD\n^HEAD~1'))).kind).toBe('indexed');
  });

  it('refuses damaged, truncated and inconsistent packs with CorruptRepository', async () => {
    const pack = await packOf('HEAD');
    const flipped = Buffer.from(pack);
    flipped[Math.floor(flipped.length / 2)] = (flipped[Math.floor(flipped.length / 2)] ?? 0) ^ 0xff;
    expect((await corruptionOf(flipped)).message).toMatch(/checksum is [0-9a-f]{40}, the trailer says/);
    await corruptionOf(pack.subarray(0, pack.length - 100));
    await corruptionOf(pack.subarray(0, 20));
    // A damaged entry under a recomputed (valid) trailer is caught by inflation or the id checks.
    const resealed = Buffer.from(flipped);
    createHash('sha1')
      .update(resealed.subarray(0, resealed.length - 20))
      .digest()
      .copy(resealed, resealed.length - 20);
    expect((await corruptionOf(resealed)).message).toMatch(/received pack: /);
    // One entry more announced than present.
    const overcounted = Buffer.from(pack);
    overcounted.writeUInt32BE(overcounted.readUInt32BE(8) + 1, 8);
    createHash('sha1')
      .update(overcounted.subarray(0, overcounted.length - 20))
      .digest()
      .copy(overcounted, overcounted.length - 20);
    expect((await corruptionOf(overcounted)).message).toMatch(/ends after \d+ of \d+ entries/);
    overcounted.writeUInt32BE(0xffffffff, 8);
    createHash('sha1')
      .update(overcounted.subarray(0, overcounted.length - 20))
      .digest()
      .copy(overcounted, overcounted.length - 20);
    expect((await corruptionOf(overcounted)).message).toMatch(/4294967295 entries announced/);
  });

  it('stops on an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(indexPack(await packOf('HEAD'), { signal: controller.signal })).rejects.toThrow();
  });
});

function deltaCount(verifyOutput: string): number {
  let total = 0;
  for (const match of verifyOutput.matchAll(/chain length = \d+: (\d+) objects?/g)) total += Number(match[1]);
  return total;
}

const line = (payload: Buffer | string) => {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
};

/** An upload-pack answer: NAK, then `pack` in side-band-64k packets. */
function sideBand(pack: Buffer): Buffer {
  const parts = [line('NAK\n')];
  for (let at = 0; at < pack.length; at += 65_515) {
    parts.push(line(Buffer.concat([Buffer.from([1]), pack.subarray(at, at + 65_515)])));
  }
  parts.push(Buffer.from('0000'));
  return Buffer.concat(parts);
}

/** A receiver over a stub client answering every request with `answer`. */
async function receive(answer: Buffer, gitdir: string): Promise<Buffer> {
  const http = withNativePackReceiver(
    {
      async request(req) {
        return {
          url: req.url,
          method: req.method ?? 'GET',
          statusCode: 200,
          statusMessage: 'OK',
          headers: {},
          body: (async function* () {
            yield new Uint8Array(answer);
          })(),
        };
      },
    },
    { gitdir, signal: signal() },
  );
  const res = await http.request({ url: 'https://git.example/repo.git/git-upload-pack', method: 'POST' });
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body ?? []) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('withNativePackReceiver', () => {
  it('writes a pack and hands isomorphic-git the answer without it; a thin pack is refused', async () => {
    const gitdir = join(work, 'receiver');
    const pack = await packOf('HEAD');
    expect((await receive(sideBand(pack), gitdir)).toString()).toBe('0008NAK\n0000');
    const name = `pack-${pack.subarray(-20).toString('hex')}`;
    expect((await readdir(join(gitdir, 'objects', 'pack'))).sort()).toEqual([`${name}.idx`, `${name}.pack`]);
    // isomorphic-git never asks for a thin pack and would inflate it without bounds (pako).
    const thin = sideBand(await packOf('HEAD\n^HEAD~1', ['--thin']));
    const error = await receive(thin, join(work, 'receiver-thin')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as SourceError).code).toBe('FetchFailed');
    expect((error as SourceError).message).toMatch(
      /sent a thin pack \(delta base [0-9a-f]{40} is not in it\)/,
    );
  });

  it('refuses a corrupt pack with FetchFailed and writes nothing', async () => {
    const pack = Buffer.from(await packOf('HEAD'));
    pack[100] = (pack[100] ?? 0) ^ 0xff;
    const gitdir = join(work, 'receiver-corrupt');
    const error = await receive(sideBand(pack), gitdir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).code).toBe('FetchFailed');
    expect((error as SourceError).message).toMatch(
      /^https:\/\/git\.example\/repo\.git\/git-upload-pack: the pack the Git server sent could not be decoded \(corrupt or truncated\): received pack: the checksum/,
    );
    expect(await readdir(join(gitdir, 'objects', 'pack')).catch(() => [])).toEqual([]);
  });
});

describe('demuxUploadPack', () => {
  it('splits pack data from the other lines and leaves unframed or fatal answers alone', () => {
    const band = (n: number, data: string) => line(Buffer.concat([Buffer.from([n]), Buffer.from(data)]));
    const answer = Buffer.concat([
      line('shallow 0123456789012345678901234567890123456789\n'),
      Buffer.from('0000'),
      line('NAK\n'),
      band(2, 'Counting objects\n'),
      band(1, 'PACK'),
      band(1, 'DATA'),
      Buffer.from('0000'),
    ]);
    const demuxed = demuxUploadPack(answer);
    expect(demuxed?.pack.toString()).toBe('PACKDATA');
    expect(demuxed?.lines.toString()).toBe(
      '0035shallow 0123456789012345678901234567890123456789\n00000008NAK\n0016\u0002Counting objects\n0000',
    );
    expect(demuxUploadPack(Buffer.concat([line('NAK\n'), band(3, 'fatal: no')]))).toBeUndefined();
    expect(demuxUploadPack(Buffer.concat([line('NAK\n'), Buffer.from('PACK\0\0\0\x02')]))).toBeUndefined();
    expect(demuxUploadPack(Buffer.concat([line('NAK\n'), Buffer.from('00')]))).toBeUndefined();
  });
});

describe('fetchRevision with native pack indexing', () => {
  it('writes packs that isomorphic-git, git verify-pack and git fsck accept, first clone and incremental', async () => {
    const url = server.serve('native', join(repo.dir, '.git'));
    const remote: GitRemote = {
      url,
      insecure: false,
      timeoutMs: 10_000,
      credentials: { caPem: server.caPem },
    };
    const dir = cacheDirFor(work, 'ns', 'native');
    const packs: { objects: number }[] = [];
    const fetch = async () => {
      const resolved = await pollRemote(remote, { branch: 'main' }, { signal: signal() });
      await fetchRevision({
        dir,
        remote,
        ref: { branch: 'main' },
        resolved,
        depth: 1,
        signal: signal(),
        onPack: (pack) => packs.push(pack),
      });
      return resolved.commit;
    };
    const check = async (commit: string) => {
      const reader = openRepoReader(dir);
      expect((await reader.readObject(commit)).type).toBe('commit');
      const tree = await readTree(dir, commit, 'deploy');
      const expected = (await git(['show', `${commit}:deploy/cm-3.yaml`])).toString();
      expect(Buffer.from(tree.files.find((f) => f.path === 'cm-3.yaml')?.content ?? []).toString()).toBe(
        expected,
      );
      const packDir = join(dir, 'objects', 'pack');
      const names = await readdir(packDir);
      expect(names.filter((n) => !/^pack-[0-9a-f]{40}\.(pack|idx)$/.test(n))).toEqual([]);
      for (const idx of names.filter((n) => n.endsWith('.idx'))) {
        const ours = await readFile(join(packDir, idx));
        const copy = join(work, `check-${idx.replace('.idx', '.pack')}`);
        await copyFile(join(packDir, idx.replace('.idx', '.pack')), copy);
        expect(ours.equals(await gitIndex(await readFile(copy), `check-${idx.slice(0, -4)}`))).toBe(true);
      }
      await runCommand('git', ['--git-dir', dir, 'fsck', '--full', '--strict'], { timeoutMs: 60_000 });
    };
    const first = await fetch();
    expect(packs).toHaveLength(1);
    await check(first);
    await repo.commit({ files: files(9) });
    const second = await fetch();
    expect(packs).toHaveLength(2);
    expect(packs[1]?.objects).toBeLessThan(packs[0]?.objects ?? 0);
    await check(second);
  });
});

describe('indexPack on a long history', () => {
  it('indexes 100,000 commits without keeping the event loop busy for 100 ms at a time', async () => {
    const long = await createRepo();
    try {
      await runCommand('git', ['fast-import', '--quiet'], {
        cwd: long.dir,
        input: fastImportHistory('refs/heads/long', 100_000, 1_700_000_000),
        timeoutMs: 120_000,
      });
      const pack = (
        await runCommand('git', ['pack-objects', '--stdout', '--revs'], {
          cwd: long.dir,
          input: 'refs/heads/long\n',
          timeoutMs: 120_000,
        })
      ).stdout;
      const measured = await measureEventLoop(() => indexPack(pack), 10);
      console.log(
        `indexPack, 100,000 commits (${(pack.length / 1024 / 1024).toFixed(1)} MiB): ${measured.elapsedMs.toFixed(0)} ms, ` +
          `busiest tick gap ${measured.maxBusyGapMs.toFixed(0)} ms with ${measured.maxBusyMs.toFixed(1)} ms of CPU, max delay ${measured.maxDelayMs.toFixed(1)} ms`,
      );
      expect(measured.result.kind).toBe('indexed');
      if (measured.result.kind !== 'indexed') return;
      expect(measured.result.idx.equals(await gitIndex(pack, 'long'))).toBe(true);
      expect(measured.maxBusyMs).toBeLessThan(100);
    } finally {
      await long.close();
    }
  }, 120_000);
});
