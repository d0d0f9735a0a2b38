// pollRemote and fetchRevision over SSH against a real OpenSSH server (Debian's sshd, git-shell
// forced), and every refusal: host key, known_hosts, client key, passphrase, timeout.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GitRef } from '../../src/api/gitrepository.ts';
import { SourceError } from '../../src/source/errors.ts';
import { fingerprintSha256 } from '../../src/source/known-hosts.ts';
import {
  cacheDirFor,
  type FetchRevisionRequest,
  fetchRevision,
  type GitRemote,
  pollRemote,
} from '../../src/source/remote.ts';
import { openRepoReader } from '../../src/source/repo-reader.ts';
import {
  createRepo,
  generateSshKey,
  runCommand,
  type SshKeyFixture,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { type SshServer, startHangingSshServer, startSshServer } from '../support/ssh-server.ts';

let server: SshServer;
let repo: TestRepo;
let keysDir: string;
let cacheRoot: string;
let client: SshKeyFixture;
let identity: string;
let url: string;
const signal = () => AbortSignal.timeout(30_000);

function remote(overrides: Partial<GitRemote> = {}): GitRemote {
  return {
    url,
    insecure: false,
    timeoutMs: 10_000,
    credentials: { identity, knownHosts: server.knownHosts },
    ...overrides,
  };
}

async function errorOf(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

async function fetchInto(
  name: string,
  ref: GitRef,
  options: Partial<FetchRevisionRequest> = {},
): Promise<{ dir: string; fetched: boolean; shallow: boolean; commit: string }> {
  const resolved = await pollRemote(options.remote ?? remote(), ref, { signal: signal() });
  const outcome = await fetchRevision({
    dir: cacheDirFor(cacheRoot, 'ns', name),
    remote: remote(),
    ref,
    resolved,
    depth: 1,
    signal: signal(),
    ...options,
  });
  return { ...outcome, commit: resolved.commit };
}

beforeAll(async () => {
  server = await startSshServer();
  keysDir = await mkdtemp(join(tmpdir(), 'signet-sshkeys-'));
  client = await generateSshKey(keysDir, 'ed25519', 'deploy');
  await server.authorize(client);
  identity = await readFile(client.privateKeyPath, 'utf8');
  repo = await createRepo();
  const files: Record<string, string> = {};
  for (let i = 0; i < 40; i++) {
    files[`deploy/cm-${i}.yaml`] = `kind: ConfigMap\ndata: {x: ${randomBytes(1_000).toString('base64')}}\n`;
  }
  await mkdir(join(repo.dir, 'deploy'));
  await repo.commit({ files });
  await repo.tag('v1.0.0', 'HEAD');
  await repo.commit();
  url = server.url(join(repo.dir, '.git'));
  cacheRoot = await mkdtemp(join(tmpdir(), 'signet-ssh-cache-'));
});

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await rm(cacheRoot, { recursive: true, force: true });
  await rm(keysDir, { recursive: true, force: true });
});

describe('Git over SSH against OpenSSH', () => {
  it('polls a branch in one SSH connection (protocol v2 ls-refs) and resolves annotated tags', async () => {
    const before = server.connections();
    const seen: string[] = [];
    const resolved = await pollRemote(
      remote(),
      { branch: 'main' },
      {
        signal: signal(),
        onRequest: (method, u) => seen.push(`${method} ${u}`),
      },
    );
    expect(resolved).toEqual({ commit: await repo.git(['rev-parse', 'HEAD']), refName: 'main' });
    expect(seen).toEqual([
      `GET ${server.url(join(repo.dir, '.git'))}`,
      `POST ${server.url(join(repo.dir, '.git'))}`,
    ]);
    await expect.poll(() => server.connections() - before).toBe(1);
    expect(await pollRemote(remote(), { tag: 'v1.0.0' }, { signal: signal() })).toEqual({
      commit: await repo.git(['rev-parse', 'v1.0.0^{commit}']),
      refName: 'v1.0.0',
      tagName: 'v1.0.0',
      tagObject: await repo.git(['rev-parse', 'v1.0.0']),
    });
  });

  it('clones shallow, then fetches incrementally, then does nothing when up to date', async () => {
    const first = await fetchInto('inc', { branch: 'main' });
    expect(first).toMatchObject({ fetched: true, shallow: true });
    expect((await openRepoReader(first.dir).readObject(first.commit, signal())).type).toBe('commit');
    await repo.commit({ files: { 'deploy/new.yaml': 'kind: ConfigMap\n' } });
    const packs: number[] = [];
    const second = await fetchInto('inc', { branch: 'main' }, { onPack: (p) => packs.push(p.objects) });
    expect(second.fetched).toBe(true);
    expect(second.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
    // Incremental: the new commit, its tree, the deploy tree and one blob, not the 40 files again.
    expect(packs.reduce((a, b) => a + b, 0)).toBeLessThan(10);
    const third = await fetchInto('inc', { branch: 'main' });
    expect(third.fetched).toBe(false);
  });

  it('fetches an annotated tag with its tag object', async () => {
    const out = await fetchInto('tag', { tag: 'v1.0.0' });
    const reader = openRepoReader(out.dir);
    expect((await reader.readObject(await repo.git(['rev-parse', 'v1.0.0']), signal())).type).toBe('tag');
  });
});
