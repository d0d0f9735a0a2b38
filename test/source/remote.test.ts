// pollRemote and fetchRevision against a real `git http-backend` over HTTPS (test CA) and HTTP.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import {
  cacheDirFor,
  fetchRevision,
  type GitRemote,
  pollRemote,
  selectSemverTag,
} from '../../src/source/remote.ts';
import { openRepoReader, readTree } from '../../src/source/repo-reader.ts';
import { createRepo, type TestRepo } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';
import { sourceErrorOf as errorOf, fetcherInto, pollRecording } from '../support/remote-fetch.ts';

let server: GitServer;
let repo: TestRepo;
let cacheRoot: string;
let url: string;
const signal = () => AbortSignal.timeout(20_000);

function remote(overrides: Partial<GitRemote> = {}): GitRemote {
  return { url, insecure: false, timeoutMs: 10_000, credentials: { caPem: server.caPem }, ...overrides };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return (await errorOf(promise)).code;
}

const fetchInto = fetcherInto({ remote: () => remote(), cacheRoot: () => cacheRoot, signal });

async function packBytes(dir: string): Promise<number[]> {
  const packs = (await readdir(join(dir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack'));
  const sized = await Promise.all(
    packs.map(async (f) => ({ f, s: await stat(join(dir, 'objects', 'pack', f)) })),
  );
  return sized.sort((a, b) => a.s.mtimeMs - b.s.mtimeMs).map((p) => p.s.size);
}

beforeAll(async () => {
  server = await startGitServer();
  repo = await createRepo();
  const files: Record<string, string> = {};
  // Incompressible content, so a full pack is clearly larger than an incremental one.
  for (let i = 0; i < 60; i++) {
    files[`deploy/cm-${i}.yaml`] = `kind: ConfigMap\ndata: {x: ${randomBytes(1_500).toString('base64')}}\n`;
  }
  await mkdir(join(repo.dir, 'deploy'));
  await repo.commit({ files });
  await repo.commit();
  await repo.tag('v1.2.0', 'HEAD');
  await repo.git(['tag', 'v1.3.0-light']);
  await repo.commit();
  await repo.tag('v1.10.0', 'HEAD');
  await repo.tag('v2.0.0-rc.1', 'HEAD');
  await repo.commit();
  url = server.serve('apps', join(repo.dir, '.git'));
  cacheRoot = await mkdtemp(join(tmpdir(), 'signet-remote-'));
});

afterAll(async () => {
  await server.close();
  await repo.close();
  await rm(cacheRoot, { recursive: true, force: true });
});

describe('pollRemote', () => {
  it('is one round trip (one GET of the ref advertisement) for a branch', async () => {
    server.requests.length = 0;
    const { resolved, seen } = await pollRecording(remote(), { branch: 'main' }, signal());
    expect(resolved).toEqual({ commit: await repo.git(['rev-parse', 'HEAD']), refName: 'main' });
    expect(server.requests).toEqual([
      { method: 'GET', path: '/apps.git/info/refs', query: '?service=git-upload-pack' },
    ]);
    expect(seen).toHaveLength(1);
  });

  it('resolves annotated and lightweight tags, the highest semver tag, and commits without a request', async () => {
    expect(await pollRemote(remote(), { tag: 'v1.2.0' }, { signal: signal() })).toEqual({
      commit: await repo.git(['rev-parse', 'v1.2.0^{commit}']),
      refName: 'v1.2.0',
      tagName: 'v1.2.0',
      tagObject: await repo.git(['rev-parse', 'v1.2.0']),
    });
    expect(await pollRemote(remote(), { tag: 'v1.3.0-light' }, { signal: signal() })).toEqual({
      commit: await repo.git(['rev-parse', 'v1.3.0-light']),
      refName: 'v1.3.0-light',
      tagName: 'v1.3.0-light',
    });
    const semver = await pollRemote(remote(), { semver: '>=1.0.0 <2.0.0' }, { signal: signal() });
    expect(semver.tagName).toBe('v1.10.0');
    expect(semver.tagObject).toBe(await repo.git(['rev-parse', 'v1.10.0']));
    server.requests.length = 0;
    const commit = await repo.git(['rev-parse', 'HEAD~1']);
    expect(await pollRemote(remote(), { commit }, { signal: signal() })).toEqual({ commit });
    expect(server.requests).toHaveLength(0);
    expect(await codeOf(pollRemote(remote(), { branch: 'nope' }, { signal: signal() }))).toBe('RefNotFound');
    expect(await codeOf(pollRemote(remote(), { semver: '^9' }, { signal: signal() }))).toBe('RefNotFound');
    expect(selectSemverTag(['v1.2.0', '1.10.0', 'v2.0.0-rc.1', 'latest'], '*')).toBe('1.10.0');
  });

  it('refuses a wrong CA (TLSError), an unknown repository (NotFound), and http:// without insecure', async () => {
    expect(
      await codeOf(pollRemote(remote({ credentials: {} }), { branch: 'main' }, { signal: signal() })),
    ).toBe('TLSError');
    expect(
      await codeOf(
        pollRemote(remote({ url: server.url('missing') }), { branch: 'main' }, { signal: signal() }),
      ),
    ).toBe('NotFound');
    const error = await errorOf(
      pollRemote(
        remote({ url: url.replace('https://', 'http://') }),
        { branch: 'main' },
        { signal: signal() },
      ),
    );
    expect(error.code).toBe('InsecureURL');
    expect(error.message).toMatch(/http:\/\/ is refused/);
  });

  it('times out against a hanging server and stops on the caller’s AbortSignal', async () => {
    server.setFault({ kind: 'hang' });
    try {
      const started = Date.now();
      expect(
        await codeOf(pollRemote(remote({ timeoutMs: 300 }), { branch: 'main' }, { signal: signal() })),
      ).toBe('Timeout');
      expect(Date.now() - started).toBeLessThan(3_000);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('shutting down')), 100);
      expect(await codeOf(pollRemote(remote(), { branch: 'main' }, { signal: controller.signal }))).toBe(
        'Aborted',
      );
    } finally {
      server.setFault(undefined);
    }
  });
});

describe('authentication', () => {
  let basic: GitServer;
  let bearer: GitServer;
  beforeAll(async () => {
    basic = await startGitServer({ basicAuth: { username: 'alice', password: 'pa55-w0rd' } });
    bearer = await startGitServer({ bearerToken: 'tok-123456' });
    basic.serve('apps', join(repo.dir, '.git'));
    bearer.serve('apps', join(repo.dir, '.git'));
  });
  afterAll(async () => {
    await basic.close();
    await bearer.close();
  });

  it('sends basic credentials and a bearer token, never echoing them in errors', async () => {
    const on = (s: GitServer, credentials: GitRemote['credentials']): GitRemote => ({
      url: s.url('apps'),
      insecure: false,
      timeoutMs: 10_000,
      credentials: { caPem: s.caPem, ...credentials },
    });
    const head = await repo.git(['rev-parse', 'HEAD']);
    const ok = { signal: signal() };
    expect(
      (await pollRemote(on(basic, { username: 'alice', password: 'pa55-w0rd' }), { branch: 'main' }, ok))
        .commit,
    ).toBe(head);
    expect((await pollRemote(on(bearer, { bearerToken: 'tok-123456' }), { branch: 'main' }, ok)).commit).toBe(
      head,
    );
    const wrong = await errorOf(
      pollRemote(on(basic, { username: 'alice', password: 'wrong-pass' }), { branch: 'main' }, ok),
    );
    expect(wrong.code).toBe('AuthFailed');
    expect(wrong.message).not.toMatch(/wrong-pass|alice/);
    const noToken = await errorOf(pollRemote(on(bearer, { bearerToken: 'tok-bad' }), { branch: 'main' }, ok));
    expect(noToken.code).toBe('AuthFailed');
    expect(noToken.message).not.toMatch(/tok-bad/);
    // A full fetch through the authenticated server works too.
    const resolved = await pollRemote(on(bearer, { bearerToken: 'tok-123456' }), { branch: 'main' }, ok);
    const outcome = await fetchRevision({
      dir: cacheDirFor(cacheRoot, 'auth', 'bearer'),
      remote: on(bearer, { bearerToken: 'tok-123456' }),
      ref: { branch: 'main' },
      resolved,
      depth: 1,
      signal: signal(),
    });
    expect(outcome.fetched).toBe(true);
  });

  it('serves plain http only when insecure is set', async () => {
    const plain = await startGitServer({ tls: false });
    try {
      plain.serve('apps', join(repo.dir, '.git'));
      const insecure: GitRemote = {
        url: plain.url('apps'),
        insecure: true,
        timeoutMs: 10_000,
        credentials: {},
      };
      expect((await pollRemote(insecure, { branch: 'main' }, { signal: signal() })).refName).toBe('main');
      expect(
        await codeOf(pollRemote({ ...insecure, insecure: false }, { branch: 'main' }, { signal: signal() })),
      ).toBe('InsecureURL');
    } finally {
      await plain.close();
    }
  });
});

describe('fetchRevision', () => {
  it('fetches depth 1, reads the tree over HTTPS, and skips the network when the commit is cached', async () => {
    const first = await fetchInto('shallow', { branch: 'main' });
    expect(first).toMatchObject({ fetched: true, shallow: true });
    const tree = await readTree(first.dir, first.commit, 'deploy');
    expect(tree.files).toHaveLength(60);
    server.requests.length = 0;
    const again = await fetchRevision({
      dir: first.dir,
      remote: remote(),
      ref: { branch: 'main' },
      resolved: { commit: first.commit, refName: 'main' },
      depth: 1,
      signal: signal(),
    });
    expect(again.fetched).toBe(false);
    expect(server.requests).toHaveLength(0);
  });

  it('fetches one new commit incrementally: a small pack, the shallow cache kept, the range known', async () => {
    const before = await fetchInto('incremental', { branch: 'main' });
    await repo.commit({
      files: { 'deploy/cm-7.yaml': 'kind: ConfigMap\nmetadata: {name: cm-7}\nchanged\n' },
    });
    server.requests.length = 0;
    const after = await fetchInto('incremental', { branch: 'main' }, { depth: 'full', since: before.commit });
    expect(after).toMatchObject({ fetched: true, shallow: true });
    // poll GET + fetch's own ref advertisement GET + one upload-pack POST
    expect(server.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'POST']);
    const packs = await packBytes(after.dir);
    expect(packs).toHaveLength(2);
    expect(packs[1]).toBeLessThan((packs[0] ?? 0) / 10);
    const reader = openRepoReader(after.dir);
    expect(await reader.listRange(after.commit, before.commit)).toEqual([after.commit]);
    expect(await reader.isAncestor(before.commit, after.commit)).toBe(true);
  });

  it('deepens a shallow cache when the last applied commit is not an ancestor (force push / rollback)', async () => {
    const tip = await fetchInto('rollback', { branch: 'main' });
    const older = await repo.git(['rev-parse', 'HEAD~3']);
    const outcome = await fetchRevision({
      dir: tip.dir,
      remote: remote(),
      ref: { commit: older },
      resolved: { commit: older },
      depth: 'full',
      since: tip.commit,
      signal: signal(),
    });
    expect(outcome.fetched).toBe(true);
    const reader = openRepoReader(tip.dir);
    expect(await reader.isAncestor(tip.commit, older)).toBe(false);
    expect(await reader.isAncestor(older, tip.commit)).toBe(true);
    expect(await reader.listRange(tip.commit, older)).toEqual(
      (await repo.git(['rev-list', tip.commit, `^${older}`])).split('\n'),
    );
  });

  it('fetches an annotated tag with its tag object, and a commit ref that is not a branch tip', async () => {
    const tag = await fetchInto('tag', { tag: 'v1.2.0' });
    const tagObject = await repo.git(['rev-parse', 'v1.2.0']);
    const object = await openRepoReader(tag.dir).readObject(tagObject);
    expect(object.type).toBe('tag');
    const commit = await repo.git(['rev-parse', 'HEAD~2']);
    const byCommit = await fetchInto('commit', { commit });
    expect(byCommit.fetched).toBe(true);
    expect((await openRepoReader(byCommit.dir).readObject(commit)).type).toBe('commit');
    expect(await codeOf(fetchInto('missing-commit', { commit: 'f'.repeat(40) }))).toMatch(
      /RefNotFound|FetchFailed/,
    );
  });

  it('reports a 500, a connection closed mid-pack and a corrupted pack as FetchFailed, then recovers', async () => {
    const faults = [
      { kind: 'status', status: 500 },
      { kind: 'close-mid-pack' },
      { kind: 'corrupt-pack' },
    ] as const;
    for (const [index, fault] of faults.entries()) {
      server.setFault(fault);
      try {
        const error = await errorOf(
          fetchRevision({
            dir: cacheDirFor(cacheRoot, 'faults', `f${index}`),
            remote: remote(),
            ref: { branch: 'main' },
            resolved: { commit: await repo.git(['rev-parse', 'HEAD']), refName: 'main' },
            depth: 1,
            signal: signal(),
          }),
        );
        expect(error.code, fault.kind).toBe('FetchFailed');
        expect(error.message).toMatch(
          [/answered 500/, /git-upload-pack: ECONNRESET/, /could not be decoded \(corrupt or truncated\)/][
            index
          ] as RegExp,
        );
        expect(error.message).not.toMatch(/report.*bug/i);
      } finally {
        server.setFault(undefined);
      }
    }
    // The same cache directories work once the server is healthy again.
    for (const index of faults.keys()) {
      const outcome = await fetchRevision({
        dir: cacheDirFor(cacheRoot, 'faults', `f${index}`),
        remote: remote(),
        ref: { branch: 'main' },
        resolved: await pollRemote(remote(), { branch: 'main' }, { signal: signal() }),
        depth: 1,
        signal: signal(),
      });
      expect(outcome.fetched).toBe(true);
    }
  });

  it('times out a pack that stops halfway (the body streams under the same deadline)', async () => {
    server.setFault({ kind: 'stall-mid-pack' });
    try {
      const started = Date.now();
      const error = await errorOf(
        fetchRevision({
          dir: cacheDirFor(cacheRoot, 'faults', 'stall'),
          remote: remote({ timeoutMs: 1_000 }),
          ref: { branch: 'main' },
          resolved: { commit: await repo.git(['rev-parse', 'HEAD']), refName: 'main' },
          depth: 1,
          signal: signal(),
        }),
      );
      expect(error.code).toBe('Timeout');
      expect(error.message).toMatch(/git-upload-pack: no complete answer within 1000 ms/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      server.setFault(undefined);
    }
  });

  it('never puts credentials from the URL into a message', async () => {
    const withUserinfo = url.replace('https://', 'https://bob:hunter2@');
    const error = await errorOf(
      pollRemote(remote({ url: withUserinfo, credentials: {} }), { branch: 'main' }, { signal: signal() }),
    );
    expect(error.message).not.toMatch(/bob|hunter2/);
  });

  it('refuses a repository over the size bound with TooLarge', async () => {
    const error = await errorOf(fetchInto('too-large', { branch: 'main' }, { maxResponseBytes: 4_096 }));
    expect(error.code).toBe('TooLarge');
    expect(error.message).toMatch(/over the size bound/);
  });

  it('keeps one cache directory per object and refuses names that could escape the root', () => {
    expect(cacheDirFor('/cache', 'team-a', 'apps')).toBe('/cache/team-a/apps');
    expect(() => cacheDirFor('/cache', '..', 'apps')).toThrow(SourceError);
    expect(() => cacheDirFor('/cache', 'ns', 'a/b')).toThrow(SourceError);
  });
});
