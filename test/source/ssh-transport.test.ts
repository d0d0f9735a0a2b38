// pollRemote and fetchRevision over SSH against a real OpenSSH server (Debian's sshd, git-shell
// forced), and every refusal: host key, known_hosts, client key, passphrase, timeout.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceError } from '../../src/source/errors.ts';
import { fingerprintSha256 } from '../../src/source/known-hosts.ts';
import { cacheDirFor, fetchRevision, type GitRemote, pollRemote } from '../../src/source/remote.ts';
import { openRepoReader } from '../../src/source/repo-reader.ts';
import { closeIdleSshConnections } from '../../src/source/ssh-connection.ts';
import {
  createRepo,
  generateSshKey,
  runCommand,
  type SshKeyFixture,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { sourceErrorOf as errorOf, fetcherInto, pollRecording } from '../support/remote-fetch.ts';
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

const fetchInto = fetcherInto({ remote: () => remote(), cacheRoot: () => cacheRoot, signal });

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
  closeIdleSshConnections();
  await server?.close();
  await repo?.close();
  await rm(cacheRoot, { recursive: true, force: true });
  await rm(keysDir, { recursive: true, force: true });
});

describe('Git over SSH against OpenSSH', () => {
  it('polls a branch over one SSH connection (protocol v2 ls-refs), reused by later polls with the same Secret only, and resolves annotated tags', async () => {
    const before = server.connections();
    const { resolved, seen } = await pollRecording(remote(), { branch: 'main' }, signal());
    expect(resolved).toEqual({ commit: await repo.git(['rev-parse', 'HEAD']), refName: 'main' });
    expect(seen).toEqual([
      `GET ${server.url(join(repo.dir, '.git'))}`,
      `POST ${server.url(join(repo.dir, '.git'))}`,
    ]);
    await expect.poll(() => server.connections() - before).toBe(1);
    // Later polls with the same Secret reuse the authenticated connection (one exec channel each);
    // another identity never shares it.
    await pollRemote(remote(), { branch: 'main' }, { signal: signal() });
    await pollRemote(remote(), { branch: 'main' }, { signal: signal() });
    expect(server.connections() - before).toBe(1);
    const other = await generateSshKey(keysDir, 'ed25519', 'other-tenant');
    await server.authorize(other);
    const otherIdentity = await readFile(other.privateKeyPath, 'utf8');
    await pollRemote(
      remote({ credentials: { identity: otherIdentity, knownHosts: server.knownHosts } }),
      {
        branch: 'main',
      },
      { signal: signal() },
    );
    await expect.poll(() => server.connections() - before).toBe(2);
    expect(await pollRemote(remote(), { tag: 'v1.0.0' }, { signal: signal() })).toEqual({
      commit: await repo.git(['rev-parse', 'v1.0.0^{commit}']),
      refName: 'v1.0.0',
      tagName: 'v1.0.0',
      tagObject: await repo.git(['rev-parse', 'v1.0.0']),
    });
  });

  it('clones shallow, then fetches incrementally, then does nothing when up to date (protocol v2 fetch)', async () => {
    const commandsBefore = (await server.protocols()).length;
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
    // Three polls and two fetches ran git-upload-pack with GIT_PROTOCOL=version=2 (sshd AcceptEnv):
    // a v2 server answers only v2 commands, so the fetches were v2 ls-refs + fetch
    // (protocol-v2.ts), shallow and incremental alike; the up-to-date one made no request.
    expect((await server.protocols()).slice(commandsBefore)).toEqual(Array(5).fill('version=2'));
  });

  it('falls back to protocol v0 where the server does not pass GIT_PROTOCOL (poll, shallow and incremental fetch)', async () => {
    const v0 = await startSshServer({ hostKeys: ['ed25519'], acceptGitProtocol: false });
    try {
      await v0.authorize(client);
      const v0Remote = remote({
        url: v0.url(join(repo.dir, '.git')),
        credentials: { identity, knownHosts: v0.knownHosts },
      });
      const seen: string[] = [];
      const resolved = await pollRemote(
        v0Remote,
        { tag: 'v1.0.0' },
        {
          signal: signal(),
          onRequest: (method) => seen.push(method),
        },
      );
      // v0: the ref advertisement is the whole answer, no ls-refs request follows.
      expect(seen).toEqual(['GET']);
      expect(resolved.tagObject).toBe(await repo.git(['rev-parse', 'v1.0.0']));
      const outcome = await fetchRevision({
        dir: cacheDirFor(cacheRoot, 'ns', 'v0'),
        remote: v0Remote,
        ref: { tag: 'v1.0.0' },
        resolved,
        depth: 1,
        signal: signal(),
      });
      expect(outcome.fetched).toBe(true);
      expect(v0.log()).not.toMatch(/fatal|error/i);
      // An incremental v0 fetch of the branch: only what is new since the shallow clone.
      const branchDir = cacheDirFor(cacheRoot, 'ns', 'v0-branch');
      const fetchBranch = async (onPack?: (p: { objects: number }) => void) =>
        fetchRevision({
          dir: branchDir,
          remote: v0Remote,
          ref: { branch: 'main' },
          resolved: await pollRemote(v0Remote, { branch: 'main' }, { signal: signal() }),
          depth: 1,
          signal: signal(),
          ...(onPack === undefined ? {} : { onPack }),
        });
      expect(await fetchBranch()).toMatchObject({ fetched: true, shallow: true });
      await repo.commit({ files: { 'deploy/v0.yaml': 'kind: ConfigMap\n' } });
      const packs: number[] = [];
      expect((await fetchBranch((p) => packs.push(p.objects))).fetched).toBe(true);
      expect(packs.reduce((a, b) => a + b, 0)).toBeLessThan(10);
      // sshd dropped GIT_PROTOCOL: git-upload-pack spoke v0 to every poll and fetch.
      expect(await v0.protocols()).toEqual(['v0', 'v0', 'v0', 'v0', 'v0', 'v0']);
    } finally {
      await v0.close();
    }
  });

  it('fetches an annotated tag with its tag object', async () => {
    const out = await fetchInto('tag', { tag: 'v1.0.0' });
    const reader = openRepoReader(out.dir);
    expect((await reader.readObject(await repo.git(['rev-parse', 'v1.0.0']), signal())).type).toBe('tag');
  });

  it('authenticates with RSA-2048 (rsa-sha2: sshd 9.x refuses SHA-1 ssh-rsa signatures) and ECDSA P-384 identities', async () => {
    for (const kind of ['rsa', 'ecdsa-p384'] as const) {
      const key = await generateSshKey(keysDir, kind, `client-${kind}`);
      await server.authorize(key);
      const resolved = await pollRemote(
        remote({
          credentials: {
            identity: await readFile(key.privateKeyPath, 'utf8'),
            knownHosts: server.knownHosts,
          },
        }),
        { branch: 'main' },
        { signal: signal() },
      );
      expect(resolved.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
    }
    expect(server.log()).toMatch(/Accepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: RSA SHA256:/);
    expect(server.log()).toMatch(/Accepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: ECDSA SHA256:/);
  });
});

describe('refusals over SSH: nothing fetched, a message naming what to fix, no secret in it', () => {
  const poll = (r: GitRemote, timeoutSignal = signal()) =>
    pollRemote(r, { branch: 'main' }, { signal: timeoutSignal });
  const noSecrets = (error: SourceError, ...secrets: string[]) => {
    const text = `${error.message} ${String((error as { cause?: unknown }).cause ?? '')}`;
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toContain('PRIVATE KEY');
  };

  it('refuses a second sshd with other host keys on the same address, naming host and fingerprint', async () => {
    const first = await startSshServer({ hostKeys: ['ed25519'] });
    const pinned = first.knownHosts;
    const port = first.port;
    await first.close();
    const impostor = await startSshServer({ hostKeys: ['ed25519'], port });
    try {
      await impostor.authorize(client);
      const before = impostor.connections();
      const error = await errorOf(
        poll(
          remote({
            url: impostor.url(join(repo.dir, '.git')),
            credentials: { identity, knownHosts: pinned },
          }),
        ),
      );
      expect(error.code).toBe('HostKeyRejected');
      const offered = impostor.hostKeys[0];
      const blob = Buffer.from(offered?.publicKeyLine.split(' ')[1] ?? '', 'base64');
      expect(error.message).toContain(`[127.0.0.1]:${port}`);
      expect(error.message).toContain(fingerprintSha256(blob));
      expect(error.message).toContain('known_hosts key of spec.secretRef');
      noSecrets(error, identity);
      // The connection ended at the key exchange: sshd never saw a login attempt.
      await expect.poll(() => impostor.connections() - before).toBe(1);
      expect(impostor.log()).not.toMatch(/Accepted publickey|Failed publickey/);
    } finally {
      await impostor.close();
    }
  });

  it('refuses without known_hosts before connecting, and with a @revoked host key', async () => {
    const before = server.connections();
    const missing = await errorOf(poll(remote({ credentials: { identity } })));
    expect(missing.code).toBe('HostKeyRejected');
    expect(missing.message).toContain('no known_hosts key');
    const invalid = await errorOf(poll(remote({ credentials: { identity, knownHosts: 'garbage' } })));
    expect(invalid.message).toContain('known_hosts key of spec.secretRef is invalid (line 1');
    expect(server.connections()).toBe(before);
    const ed = server.hostKeys.find((k) => k.kind === 'ed25519');
    const revoked = `${server.knownHosts}@revoked * ${ed?.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n`;
    const error = await errorOf(poll(remote({ credentials: { identity, knownHosts: revoked } })));
    expect(error.code).toBe('HostKeyRejected');
    expect(error.message).toContain('revoked');
  });

  it('refuses a client key the server does not know, and reads no key it cannot decrypt', async () => {
    const stranger = await generateSshKey(keysDir, 'ecdsa-p256', 'stranger');
    const strangerKey = await readFile(stranger.privateKeyPath, 'utf8');
    const error = await errorOf(
      poll(remote({ credentials: { identity: strangerKey, knownHosts: server.knownHosts } })),
    );
    expect(error.code).toBe('AuthFailed');
    expect(error.message).toContain('refused user');
    noSecrets(error, strangerKey);

    const encryptedPath = join(keysDir, 'encrypted');
    await runCommand('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      'correct horse',
      '-C',
      'enc',
      '-f',
      encryptedPath,
    ]);
    const encrypted = await readFile(encryptedPath, 'utf8');
    await server.authorize({
      kind: 'ed25519',
      privateKeyPath: encryptedPath,
      publicKeyPath: `${encryptedPath}.pub`,
      publicKeyLine: (await readFile(`${encryptedPath}.pub`, 'utf8')).trim(),
    });
    const before = server.connections();
    const wrong = await errorOf(
      poll(
        remote({
          credentials: {
            identity: encrypted,
            password: 'n0t-the-passphrase-42',
            knownHosts: server.knownHosts,
          },
        }),
      ),
    );
    expect(wrong.code).toBe('AuthFailed');
    expect(wrong.message).toContain('could not be decrypted with the password key');
    noSecrets(wrong, 'n0t-the-passphrase-42', encrypted);
    const none = await errorOf(
      poll(remote({ credentials: { identity: encrypted, knownHosts: server.knownHosts } })),
    );
    expect(none.message).toContain('is encrypted');
    expect(server.connections()).toBe(before);
    const right = await poll(
      remote({
        credentials: { identity: encrypted, password: 'correct horse', knownHosts: server.knownHosts },
      }),
    );
    expect(right.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
  });

  it('refuses RSA keys below 2048 bits and ECDSA P-521 keys before connecting', async () => {
    const weakPath = join(keysDir, 'weak');
    await runCommand('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', weakPath]);
    const error = await errorOf(
      poll(
        remote({
          credentials: { identity: await readFile(weakPath, 'utf8'), knownHosts: server.knownHosts },
        }),
      ),
    );
    expect(error.message).toContain('RSA below 2048 bits');
    const p521 = await generateSshKey(keysDir, 'ecdsa-p521', 'p521');
    const refused = await errorOf(
      poll(
        remote({
          credentials: {
            identity: await readFile(p521.privateKeyPath, 'utf8'),
            knownHosts: server.knownHosts,
          },
        }),
      ),
    );
    expect(refused.message).toContain(
      'is ecdsa-sha2-nistp521; use ed25519, ECDSA P-256/P-384 or RSA >= 2048 bits',
    );
  });

  it('names an unknown repository path', async () => {
    const error = await errorOf(poll(remote({ url: server.url('/srv/nope/missing.git') })));
    expect(error.code).toBe('NotFound');
    expect(error.message).toContain('check spec.url');
  });

  it('cuts a server that hangs after its banner at spec.timeout, and stops on the AbortSignal', async () => {
    const hanging = await startHangingSshServer();
    try {
      const started = Date.now();
      const error = await errorOf(
        poll(remote({ url: `ssh://git@127.0.0.1:${hanging.port}/x.git`, timeoutMs: 500 })),
      );
      expect(error.code).toBe('Timeout');
      expect(error.message).toContain('spec.timeout');
      expect(Date.now() - started).toBeLessThan(5_000);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('shutting down')), 200);
      const aborted = await errorOf(
        poll(
          remote({ url: `ssh://git@127.0.0.1:${hanging.port}/x.git`, timeoutMs: 20_000 }),
          controller.signal,
        ),
      );
      expect(aborted.code).toBe('Aborted');
    } finally {
      await hanging.close();
    }
  });

  it('refuses a corrupt pack (FetchFailed) and a pack over the size bound (TooLarge); a good server then fills the same cache', async () => {
    const corrupter = await generateSshKey(keysDir, 'ed25519', 'corrupt');
    await server.authorize(corrupter, { corruptPack: true });
    const corruptRemote = remote({
      credentials: {
        identity: await readFile(corrupter.privateKeyPath, 'utf8'),
        knownHosts: server.knownHosts,
      },
    });
    const resolved = await pollRemote(corruptRemote, { branch: 'main' }, { signal: signal() });
    const corrupt = await errorOf(
      fetchRevision({
        dir: cacheDirFor(cacheRoot, 'ns', 'corrupt'),
        remote: corruptRemote,
        ref: { branch: 'main' },
        resolved,
        depth: 1,
        signal: signal(),
      }),
    );
    expect(corrupt.code).toBe('FetchFailed');
    expect(corrupt.message).toMatch(/^ssh:\/\/\S+: the pack the Git server sent could not be decoded/);
    const recovered = await fetchRevision({
      dir: cacheDirFor(cacheRoot, 'ns', 'corrupt'),
      remote: remote(),
      ref: { branch: 'main' },
      resolved,
      depth: 1,
      signal: signal(),
    });
    expect(recovered.fetched).toBe(true);
    expect((await openRepoReader(recovered.dir).readObject(resolved.commit, signal())).type).toBe('commit');
    const tooLarge = await errorOf(
      fetchRevision({
        dir: cacheDirFor(cacheRoot, 'ns', 'too-large'),
        remote: remote(),
        ref: { branch: 'main' },
        resolved: await pollRemote(remote(), { branch: 'main' }, { signal: signal() }),
        depth: 1,
        maxResponseBytes: 8_192,
        signal: signal(),
      }),
    );
    expect(tooLarge.code).toBe('TooLarge');
    expect(tooLarge.message).toContain('8192 bytes');
  });

  describe('host certificates (sshd HostCertificate, signed by ssh-keygen -s -h -n -V)', () => {
    const caLine = (ca: SshKeyFixture, port: number, hosts = `[127.0.0.1]:${port}`) =>
      `@cert-authority ${hosts} ${ca.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n`;
    const certRemote = (target: SshServer, knownHosts: string) =>
      remote({ url: target.url(join(repo.dir, '.git')), credentials: { identity, knownHosts } });

    it('accepts a host certificate from a @cert-authority (ed25519, ECDSA and RSA host keys) and fetches through it; refuses a revoked CA, a revoked host key, an unknown CA', async () => {
      const ca = await generateSshKey(keysDir, 'ed25519', 'host-ca');
      const otherCa = await generateSshKey(keysDir, 'ecdsa-p256', 'other-ca');
      const certified = await startSshServer({ hostKeys: ['ed25519'], hostCertificate: { ca } });
      try {
        await certified.authorize(client);
        const trusted = caLine(ca, certified.port);
        const resolved = await poll(certRemote(certified, trusted));
        expect(resolved.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
        // Nothing pins the plain host key: the certificate alone was trusted.
        expect(trusted).not.toContain(certified.hostKeys[0]?.publicKeyLine.split(' ')[1]);
        const fetched = await fetchRevision({
          dir: cacheDirFor(cacheRoot, 'ns', 'certified'),
          remote: certRemote(certified, trusted),
          ref: { branch: 'main' },
          resolved,
          depth: 1,
          signal: signal(),
        });
        expect(fetched.fetched).toBe(true);
        const refusals: Array<[string, RegExp]> = [
          [
            `${trusted}@revoked * ${ca.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n`,
            /its CA key SHA256:\S+ is revoked/,
          ],
          [
            `${trusted}@revoked * ${certified.hostKeys[0]?.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n`,
            /its certified key SHA256:\S+ is revoked/,
          ],
          [
            caLine(otherCa, certified.port),
            /its CA key SHA256:\S+ is not a @cert-authority for \[127\.0\.0\.1\]:\d+/,
          ],
        ];
        for (const [knownHosts, message] of refusals) {
          const error = await errorOf(poll(certRemote(certified, knownHosts)));
          expect(error.code).toBe('HostKeyRejected');
          expect(error.message).toContain(`host certificate of [127.0.0.1]:${certified.port} refused`);
          expect(error.message).toMatch(message);
        }
        // A CA line for another address: no certificate is asked for, and the plain key is unknown.
        const elsewhere = await errorOf(
          poll(certRemote(certified, caLine(ca, certified.port, '[127.0.0.1]:1'))),
        );
        expect(elsewhere.message).toMatch(
          /host \[127\.0\.0\.1\]:\d+ is not in known_hosts: the server offered ssh-ed25519 key/,
        );
      } finally {
        await certified.close();
      }
      for (const kind of ['ecdsa-p256', 'rsa'] as const) {
        const other = await startSshServer({ hostKeys: [kind], hostCertificate: { ca } });
        try {
          await other.authorize(client);
          const resolved = await poll(certRemote(other, caLine(ca, other.port)));
          expect(resolved.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
          // Only the CA line is in known_hosts: a plain key would have been refused.
        } finally {
          await other.close();
        }
      }
    });

    it('refuses an expired host certificate and one whose principal is another host, naming the host and the cause', async () => {
      const ca = await generateSshKey(keysDir, 'ed25519', 'host-ca');
      const expired = await startSshServer({
        hostKeys: ['ed25519'],
        hostCertificate: { ca, validity: '-2d:-1d' },
      });
      const misnamed = await startSshServer({
        hostKeys: ['ed25519'],
        hostCertificate: { ca, principals: 'git.example.com' },
      });
      try {
        await expired.authorize(client);
        await misnamed.authorize(client);
        const old = await errorOf(poll(certRemote(expired, caLine(ca, expired.port))));
        expect(old.code).toBe('HostKeyRejected');
        expect(old.message).toMatch(
          new RegExp(
            `host certificate of \\[127\\.0\\.0\\.1\\]:${expired.port} refused: the certificate expired \\(valid from \\S+ to \\S+\\)`,
          ),
        );
        expect(old.message).toContain('nothing was fetched');
        // It names the certified key as ssh-keygen -l does.
        const hostKey = Buffer.from(expired.hostKeys[0]?.publicKeyLine.split(' ')[1] ?? '', 'base64');
        expect(old.message).toContain(
          `(ssh-ed25519-cert-v01@openssh.com for key ${fingerprintSha256(hostKey)})`,
        );
        const wrong = await errorOf(poll(certRemote(misnamed, caLine(ca, misnamed.port))));
        expect(wrong.code).toBe('HostKeyRejected');
        expect(wrong.message).toContain('the certificate names git.example.com, not 127.0.0.1');
        // The refusal happened at the key exchange: neither server ran git-upload-pack.
        expect(expired.log()).not.toMatch(/git-upload-pack/);
        expect(misnamed.log()).not.toMatch(/git-upload-pack/);
      } finally {
        await expired.close();
        await misnamed.close();
      }
    });

    it('refuses a plain host key where known_hosts has only a @cert-authority line for the host', async () => {
      const ca = await generateSshKey(keysDir, 'ed25519', 'host-ca');
      const error = await errorOf(
        poll(remote({ credentials: { identity, knownHosts: caLine(ca, server.port) } })),
      );
      expect(error.code).toBe('HostKeyRejected');
      expect(error.message).toMatch(
        /known only through @cert-authority lines, but the server offered a plain \S+ key SHA256:/,
      );
      // Its plain key pinned next to the CA line is accepted.
      const resolved = await poll(
        remote({ credentials: { identity, knownHosts: `${caLine(ca, server.port)}${server.knownHosts}` } }),
      );
      expect(resolved.commit).toBe(await repo.git(['rev-parse', 'HEAD']));
    });
  });
});
