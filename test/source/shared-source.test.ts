// Shared fetches against a real `git http-backend` over HTTPS with basic auth: GitRepositories on
// one remote with the same credentials share one ref poll per interval and one pack; a tenant
// whose credentials the server refuses is never served what another tenant fetched; releasing
// every GitRepository leaves nothing held.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteSpec } from '../../src/controller/ports.ts';
import { SourceError } from '../../src/source/errors.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { normaliseRemoteUrl, remoteShareKey, SharedRemotes } from '../../src/source/shared-remotes.ts';
import { createLogger } from '../../src/util/logger.ts';
import { createRepo, type TestRepo } from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

let server: GitServer;
let repo: TestRepo;
let url: string;
let cacheDir: string;
const logger = createLogger({ level: 'silent' });
const tenants = Array.from({ length: 10 }, (_, i) => `team-${i}/apps`);

function remote(password: string): RemoteSpec {
  return {
    url,
    insecure: false,
    timeoutMs: 10_000,
    credentials: { caPem: server.caPem, username: 'alice', password },
  };
}

/** Git requests by kind: `GET` (ref advertisement) and `POST` (pack). */
function counter() {
  const counts = { GET: 0, POST: 0 };
  return {
    counts,
    onRequest: (method: string) => {
      if (method === 'GET' || method === 'POST') counts[method]++;
    },
  };
}

async function refusal(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (error: unknown) => (error instanceof SourceError ? error.code : String(error)),
  );
}

beforeAll(async () => {
  server = await startGitServer({ basicAuth: { username: 'alice', password: 's3cret' } });
  repo = await createRepo();
  await mkdir(join(repo.dir, 'teams', 'a'), { recursive: true });
  await mkdir(join(repo.dir, 'teams', 'b'), { recursive: true });
  await repo.commit({
    files: { 'teams/a/cm.yaml': 'kind: ConfigMap\n', 'teams/b/cm.yaml': 'kind: Secret\n' },
  });
  url = server.serve('mono', join(repo.dir, '.git'));
});

afterAll(async () => {
  await server?.close();
  await repo?.close();
});

describe('shared fetches', () => {
  it('10 GitRepositories on one remote with the same credentials: one ref poll and one pack', async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'signet-shared-'));
    const git = counter();
    const source = createGitSource({ cacheDir, logger, onRequest: git.onRequest });
    const signal = AbortSignal.timeout(30_000);
    const resolved = await Promise.all(
      tenants.map((cacheKey) =>
        source.resolve(remote('s3cret'), { branch: 'main' }, signal, { cacheKey, maxAgeMs: 60_000 }),
      ),
    );
    expect(new Set(resolved.map((r) => r.commit)).size).toBe(1);
    expect(git.counts.GET).toBe(1);
    const [first] = resolved;
    if (first === undefined) throw new Error('nothing resolved');
    const trees = await Promise.all(
      tenants.map(async (cacheKey, i) => {
        const fetched = await source.fetch(
          cacheKey,
          remote('s3cret'),
          { branch: 'main' },
          first,
          { depth: 1 },
          signal,
        );
        return fetched.readTree(first.commit, i % 2 === 0 ? 'teams/a' : 'teams/b', signal);
      }),
    );
    expect(trees.map((t) => t.files.map((f) => f.path))).toEqual(tenants.map(() => ['cm.yaml']));
    // One pack: the first fetch's ref advertisement and upload-pack; the others found the commit.
    expect(git.counts).toEqual({ GET: 2, POST: 1 });
    // A poll younger than maxAgeMs is reused; maxAgeMs 0 (a requested reconcile) polls now.
    await source.resolve(remote('s3cret'), { branch: 'main' }, signal, {
      cacheKey: tenants[0] ?? '',
      maxAgeMs: 60_000,
    });
    expect(git.counts.GET).toBe(2);
    await source.resolve(remote('s3cret'), { branch: 'main' }, signal, {
      cacheKey: tenants[0] ?? '',
      maxAgeMs: 0,
    });
    expect(git.counts.GET).toBe(3);
    expect(source.held()).toMatchObject({ keys: 1, users: tenants.length, polls: 1 });
    // The share's directory is named by the keyed hash: neither the URL nor the password shows.
    const dirs = (await readdir(join(cacheDir, 'shared'))).filter((name) => !name.startsWith('.'));
    expect(dirs).toHaveLength(1);
    expect(dirs[0]).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a tenant whose credentials are refused gets AuthFailed although another tenant fetched the same URL', async () => {
    const git = counter();
    // Same cache directory, same process: the other tenant's poll is fresh and its pack is on disk.
    const source = createGitSource({ cacheDir, logger, onRequest: git.onRequest });
    const signal = AbortSignal.timeout(30_000);
    const good = await source.resolve(remote('s3cret'), { branch: 'main' }, signal, {
      cacheKey: 'team-0/apps',
      maxAgeMs: 60_000,
    });
    await source.fetch('team-0/apps', remote('s3cret'), { branch: 'main' }, good, { depth: 1 }, signal);
    expect(git.counts.POST).toBe(0);
    const share = { cacheKey: 'intruder/apps', maxAgeMs: 60_000 };
    expect(await refusal(source.resolve(remote('guess'), { branch: 'main' }, signal, share))).toBe(
      'AuthFailed',
    );
    // Even knowing the commit, the fetch goes to its own (empty) store and the server refuses it.
    expect(
      await refusal(
        source.fetch('intruder/apps', remote('guess'), { branch: 'main' }, good, { depth: 1 }, signal),
      ),
    ).toBe('AuthFailed');
    // No credentials at all: refused as well (not the anonymous share of anything).
    const anonymous: RemoteSpec = { ...remote(''), credentials: { caPem: server.caPem } };
    expect(
      await refusal(
        source.fetch('anonymous/apps', anonymous, { branch: 'main' }, good, { depth: 1 }, signal),
      ),
    ).toBe('AuthFailed');
    expect(source.held().keys).toBe(3);
  });

  it('a caller whose spec.timeout passes while it waits on a shared poll gets a Timeout naming spec.timeout', async () => {
    const hangCache = await mkdtemp(join(tmpdir(), 'signet-shared-hang-'));
    const source = createGitSource({
      cacheDir: hangCache,
      logger,
    });
    server.setFault({ kind: 'hang' });
    try {
      const hanging = { ...remote('s3cret'), timeoutMs: 300 };
      const error = await source
        .resolve(hanging, { branch: 'main' }, AbortSignal.timeout(300), { cacheKey: 'a/b', maxAgeMs: 0 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SourceError);
      expect((error as SourceError).code).toBe('Timeout');
      expect((error as SourceError).message).toMatch(/no complete answer within 300 ms \(spec\.timeout\)/);
      expect((error as SourceError).message).not.toContain('s3cret');
    } finally {
      server.setFault(undefined);
      await rm(hangCache, { recursive: true, force: true });
    }
  });

  it('releasing every GitRepository leaves no share, user, poll or cached blob held', async () => {
    const source = createGitSource({ cacheDir, logger });
    const signal = AbortSignal.timeout(30_000);
    for (const cacheKey of tenants) {
      const resolved = await source.resolve(remote('s3cret'), { branch: 'main' }, signal, {
        cacheKey,
        maxAgeMs: 60_000,
      });
      const fetched = await source.fetch(
        cacheKey,
        remote('s3cret'),
        { branch: 'main' },
        resolved,
        { depth: 1 },
        signal,
      );
      await fetched.readTree(resolved.commit, 'teams/a', signal);
    }
    expect(source.held().blobs).toBeGreaterThan(0);
    expect(source.held()).toMatchObject({ keys: 1, users: tenants.length, polls: 1 });
    for (const cacheKey of tenants.slice(1)) source.release(cacheKey);
    expect(source.held()).toMatchObject({ keys: 1, users: 1, polls: 1 });
    source.release(tenants[0] ?? '');
    expect(source.held()).toEqual({ keys: 0, users: 0, polls: 0, blobs: 0 });
    await rm(cacheDir, { recursive: true, force: true });
  });
});

describe('share keys (pure)', () => {
  const salt = Buffer.alloc(32, 7);
  const base: RemoteSpec = {
    url: 'https://Git.Example.com/org/repo.git/',
    insecure: false,
    timeoutMs: 1,
    credentials: { username: 'a', password: 'p' },
  };

  it('normalises the host case and a trailing slash, not the path', () => {
    expect(normaliseRemoteUrl('https://Git.Example.com/org/repo.git/')).toBe(
      'https://git.example.com/org/repo.git',
    );
    expect(normaliseRemoteUrl('https://git.example.com/org/repo')).not.toBe(
      normaliseRemoteUrl('https://git.example.com/org/repo.git'),
    );
    // scp-like paths are relative to the login's home, ssh:// paths are absolute: different repositories.
    expect(normaliseRemoteUrl('git@host:org/repo.git')).not.toBe(
      normaliseRemoteUrl('ssh://git@host/org/repo.git'),
    );
  });

  it('differs for every credential field, insecure and the salt; equal for the same remote', () => {
    const key = remoteShareKey(base, salt);
    expect(remoteShareKey({ ...base, url: 'https://git.example.com/org/repo.git' }, salt)).toBe(key);
    for (const credentials of [
      { username: 'a', password: 'q' },
      { username: 'b', password: 'p' },
      { username: 'a', password: 'p', caPem: 'x' },
      { bearerToken: 'p' },
      {},
    ]) {
      expect(remoteShareKey({ ...base, credentials }, salt)).not.toBe(key);
    }
    expect(remoteShareKey({ ...base, insecure: true }, salt)).not.toBe(key);
    expect(remoteShareKey(base, Buffer.alloc(32, 8))).not.toBe(key);
    expect(key).not.toContain('p');
  });

  it('SharedRemotes reuses an in-flight or recent poll, drops a failed one, and forgets a key without users', async () => {
    let now = 0;
    const shares = new SharedRemotes<string>(() => now);
    shares.join('a', 'k');
    shares.join('b', 'k');
    let polls = 0;
    const poll = () => Promise.resolve(`refs-${++polls}`);
    expect(await shares.poll('k', 'refs/heads/main', 1_000, poll)).toBe('refs-1');
    now = 999;
    expect(await shares.poll('k', 'refs/heads/main', 1_000, poll)).toBe('refs-1');
    now = 1_001;
    expect(await shares.poll('k', 'refs/heads/main', 1_000, poll)).toBe('refs-2');
    const failing = shares.poll('k', 'refs/heads/dev', 1_000, () => Promise.reject(new Error('down')));
    await expect(failing).rejects.toThrow('down');
    expect(await shares.poll('k', 'refs/heads/dev', 1_000, poll)).toBe('refs-3');
    shares.join('b', 'other');
    expect(shares.size).toEqual({ keys: 2, users: 2, polls: 2 });
    shares.release('a');
    shares.release('b');
    expect(shares.size).toEqual({ keys: 0, users: 0, polls: 0 });
  });
});
