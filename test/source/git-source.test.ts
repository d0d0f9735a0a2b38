// The Git source against a real `git http-backend` over HTTPS with a test CA.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteSpec } from '../../src/controller/ports.ts';
import { SourceError } from '../../src/source/errors.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { createLogger } from '../../src/util/logger.ts';
import { createRepo, type TestRepo } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

let server: GitServer;
let authServer: GitServer;
let repo: TestRepo;
let cacheDir: string;
let url: string;
const requests: string[] = [];
const logger = createLogger({ level: 'silent' });

function remote(overrides: Partial<RemoteSpec> = {}): RemoteSpec {
  return { url, insecure: false, timeoutMs: 10_000, credentials: { caPem: server.caPem }, ...overrides };
}

async function expectSourceError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  expect((error as SourceError).code).toBe(code);
}

beforeAll(async () => {
  server = await startGitServer();
  authServer = await startGitServer({ basicAuth: { username: 'alice', password: 's3cret' } });
  repo = await createRepo();
  await mkdir(join(repo.dir, 'deploy'));
  await repo.commit({ files: { 'deploy/a.yaml': 'kind: ConfigMap\n', 'README.md': 'hello\n' } });
  await repo.commit({ files: { 'deploy/b.yaml': 'kind: ConfigMap\n' } });
  await repo.git(['tag', '-a', 'v1.2.0', '-m', 'release']);
  await repo.git(['tag', '-a', 'v1.10.0', '-m', 'release']);
  url = server.serve('apps', join(repo.dir, '.git'));
  authServer.serve('apps', join(repo.dir, '.git'));
  cacheDir = await mkdtemp(join(tmpdir(), 'signet-source-'));
});

afterAll(async () => {
  await server.close();
  await authServer.close();
  await repo.close();
  await rm(cacheDir, { recursive: true, force: true });
});

describe('git source over HTTPS', () => {
  it('resolves a branch in exactly one round trip', async () => {
    const source = createGitSource({ cacheDir, logger, onRequest: (m, u) => requests.push(`${m} ${u}`) });
    requests.length = 0;
    const head = await repo.git(['rev-parse', 'HEAD']);
    const resolved = await source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    expect(resolved).toEqual({ commit: head, refName: 'main' });
    expect(requests).toEqual([expect.stringMatching(/^GET .*\/info\/refs$/)]);
  });

  it('resolves annotated tags (peeled, with the tag object) and the highest semver tag', async () => {
    const source = createGitSource({ cacheDir, logger });
    const tagObject = await repo.git(['rev-parse', 'v1.10.0']);
    const commit = await repo.git(['rev-parse', 'v1.10.0^{commit}']);
    const bySemver = await source.resolve(remote(), { semver: '^1.0.0' }, AbortSignal.timeout(10_000));
    expect(bySemver).toEqual({ commit, refName: 'v1.10.0', tagName: 'v1.10.0', tagObject });
    await expectSourceError(
      source.resolve(remote(), { tag: 'v9' }, AbortSignal.timeout(10_000)),
      'RefNotFound',
    );
  });

  it('fetches, reads only the files under the path, and skips the network when the commit is cached', async () => {
    const source = createGitSource({ cacheDir, logger, onRequest: (m, u) => requests.push(`${m} ${u}`) });
    const resolved = await source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    const fetched = await source.fetch(
      'ns/apps',
      remote(),
      { branch: 'main' },
      resolved,
      { depth: 1 },
      AbortSignal.timeout(10_000),
    );
    const tree = await fetched.readTree(resolved.commit, 'deploy', AbortSignal.timeout(10_000));
    expect(tree.files.map((f) => f.path)).toEqual(['a.yaml', 'b.yaml']);
    requests.length = 0;
    await source.fetch(
      'ns/apps',
      remote(),
      { branch: 'main' },
      resolved,
      { depth: 1 },
      AbortSignal.timeout(10_000),
    );
    expect(requests).toHaveLength(0);
  });

  it('fetches one new commit incrementally and lists the range and ancestry like git does', async () => {
    const source = createGitSource({ cacheDir, logger });
    const first = await source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    await source.fetch(
      'ns/range',
      remote(),
      { branch: 'main' },
      first,
      { depth: 'full' },
      AbortSignal.timeout(10_000),
    );
    await repo.commit({ files: { 'deploy/c.yaml': 'kind: ConfigMap\n' } });
    const second = await source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    const fetched = await source.fetch(
      'ns/range',
      remote(),
      { branch: 'main' },
      second,
      { depth: 'full', since: first.commit },
      AbortSignal.timeout(10_000),
    );
    expect(await fetched.listRange(second.commit, first.commit)).toEqual([second.commit]);
    expect(await fetched.isAncestor(first.commit, second.commit)).toBe(true);
    expect(await fetched.isAncestor(second.commit, first.commit)).toBe(false);
    const all = (await repo.git(['rev-list', second.commit])).split('\n');
    expect(await fetched.listRange(second.commit, undefined)).toEqual(all);
  });

  it('refuses a wrong CA, plain http without insecure, and wrong credentials', async () => {
    const source = createGitSource({ cacheDir, logger });
    await expectSourceError(
      source.resolve(remote({ credentials: {} }), { branch: 'main' }, AbortSignal.timeout(10_000)),
      'TLSError',
    );
    await expectSourceError(
      source.resolve(
        remote({ url: url.replace('https://', 'http://') }),
        { branch: 'main' },
        AbortSignal.timeout(10_000),
      ),
      'InsecureURL',
    );
    const authUrl = `${authServer.baseUrl}/apps.git`;
    await expectSourceError(
      source.resolve(
        {
          url: authUrl,
          insecure: false,
          timeoutMs: 10_000,
          credentials: { caPem: authServer.caPem, username: 'alice', password: 'wrong' },
        },
        { branch: 'main' },
        AbortSignal.timeout(10_000),
      ),
      'AuthFailed',
    );
    const ok = await source.resolve(
      {
        url: authUrl,
        insecure: false,
        timeoutMs: 10_000,
        credentials: { caPem: authServer.caPem, username: 'alice', password: 's3cret' },
      },
      { branch: 'main' },
      AbortSignal.timeout(10_000),
    );
    expect(ok.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('times out against a hanging server and reports a 500 as FetchFailed', async () => {
    const source = createGitSource({ cacheDir, logger });
    server.setFault({ kind: 'hang' });
    const started = Date.now();
    await expectSourceError(
      source.resolve(remote({ timeoutMs: 500 }), { branch: 'main' }, AbortSignal.timeout(10_000)),
      'Timeout',
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    server.setFault({ kind: 'status', status: 500 });
    await expectSourceError(
      source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000)),
      'FetchFailed',
    );
    server.setFault(undefined);
  });

  it('refuses a pack over the size bound and a path with ..', async () => {
    await repo.commit({ files: { 'big.bin': randomBytes(20_000).toString('base64') } });
    const source = createGitSource({ cacheDir, logger, maxPackBytes: 8_000 });
    const resolved = await source.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    await expectSourceError(
      source.fetch(
        'ns/too-large',
        remote(),
        { branch: 'main' },
        resolved,
        { depth: 'full' },
        AbortSignal.timeout(10_000),
      ),
      'TooLarge',
    );
    const roomy = createGitSource({ cacheDir, logger });
    const head = await roomy.resolve(remote(), { branch: 'main' }, AbortSignal.timeout(10_000));
    const fetched = await roomy.fetch(
      'ns/apps',
      remote(),
      { branch: 'main' },
      head,
      { depth: 1 },
      AbortSignal.timeout(10_000),
    );
    await expectSourceError(
      fetched.readTree(head.commit, '../etc', AbortSignal.timeout(10_000)),
      'InvalidPath',
    );
  });
});
