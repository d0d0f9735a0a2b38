// Git over SSH on the real control plane: a GitRepository with an ssh:// URL and a Secret holding an
// encrypted deploy key (identity + password) and the pinned known_hosts, served by Debian's sshd with
// git-shell forced. Signed commits are verified and applied, a new commit is fetched incrementally,
// a force push back to an older commit is refused (rollback protection), and a host key that does
// not match is Ready=False FetchFailed naming the fingerprint, with nothing applied. A host known only
// through a `@cert-authority` line (sshd with a HostCertificate) is verified and applied, and `signet
// diff` with the same GitRepository and Secret in a policy file plans no changes; an expired
// host certificate is Ready=False FetchFailed naming the host and the cause. The key and
// its passphrase are registered with the suite-wide secret scan (e2e/zz-secret-scan.test.ts).
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { fingerprintSha256 } from '../src/source/known-hosts.ts';
import { configMapObject, runSignet, secretObject, yamlDocuments } from '../test/cli/support.ts';
import { generateSshKey, makeTempDir, runCommand } from '../test/support/git-fixtures.ts';
import { type SshServer, startSshServer } from '../test/support/ssh-server.ts';
import { createObjects, gitRepositoryObject, signersConfigMapName } from './support/fixtures.ts';
import { kubeconfigPath } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { registerSecret } from './support/secret-scan.ts';
import {
  condition,
  configMapYaml,
  type RepoStatus,
  type SignedRepo,
  startTestOperator,
  waitRepoStatus,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-ssh');
let admin: KubeClient;
let signed: SignedRepo;
let sshd: SshServer;
let impostor: SshServer;
let certified: SshServer;
let expiredCert: SshServer;
let keyDir: string;
/** The Secret data of `git-ssh-ca` (the deploy key, its passphrase, only the host CA). */
let caSecretData: Record<string, string>;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;
const passphrase = `pass-${Math.random().toString(36).slice(2, 14)}`;

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const color = async () =>
  ((await admin.get(configMap('app')))?.data as Record<string, string> | undefined)?.color;

async function waitStatus(name: string, predicate: (s: RepoStatus) => boolean, description: string) {
  return waitRepoStatus(admin, ns.name, name, predicate, { timeoutMs: 60_000, description });
}

beforeAll(async () => {
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'ssh-apps' }));
  await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'blue' }) });
  sshd = await startSshServer();
  impostor = await startSshServer({ hostKeys: ['ed25519'] });
  keyDir = await makeTempDir('ssh-deploy-key');
  const ca = await generateSshKey(keyDir, 'ed25519', 'host-ca');
  certified = await startSshServer({ hostKeys: ['ed25519'], hostCertificate: { ca } });
  expiredCert = await startSshServer({ hostKeys: ['ed25519'], hostCertificate: { ca, validity: '-2d:-1d' } });
  const keyPath = join(keyDir, 'deploy');
  await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'deploy', '-f', keyPath]);
  const identity = await readFile(keyPath, 'utf8');
  registerSecret('SSH deploy key (identity) of the git-ssh Secret', identity);
  for (const line of identity.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l))) {
    registerSecret('a line of the SSH deploy key', line);
  }
  registerSecret('passphrase (password) of the SSH deploy key', passphrase);
  const publicKeyLine = (await readFile(`${keyPath}.pub`, 'utf8')).trim();
  for (const server of [sshd, impostor, certified, expiredCert]) {
    await server.authorize({
      kind: 'ed25519',
      privateKeyPath: keyPath,
      publicKeyPath: `${keyPath}.pub`,
      publicKeyLine,
    });
  }
  caSecretData = {
    identity,
    password: passphrase,
    known_hosts: `@cert-authority [127.0.0.1]:${certified.port},[127.0.0.1]:${expiredCert.port} ${ca.publicKeyLine.split(' ').slice(0, 2).join(' ')}\n`,
  };
  const secret = (name: string, knownHosts: string) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns.name },
    stringData: { identity, password: passphrase, known_hosts: knownHosts },
  });
  await createObjects(admin, [
    secret('git-ssh', sshd.knownHosts),
    // The impostor's address pinned with the real server's keys: its own key does not match.
    secret('git-ssh-pinned-elsewhere', sshd.knownHosts.replaceAll(`:${sshd.port}`, `:${impostor.port}`)),
    // Only the host CA: no plain host key of either certified server is pinned.
    secret('git-ssh-ca', caSecretData.known_hosts ?? ''),
  ]);
  operator = await startTestOperator();
}, 120_000);

afterAll(async () => {
  await closeAll(operator, sshd, impostor, certified, expiredCert, signed, admin);
  if (keyDir !== undefined) await rm(keyDir, { recursive: true, force: true });
});

describe('a GitRepository over SSH with a pinned host key and an encrypted deploy key', () => {
  it('verifies and applies the signed commit, then the next one, and refuses a rollback', async () => {
    const url = sshd.url(join(signed.repo.dir, '.git'));
    await admin.apply(
      gitRepositoryObject({ url }, ns.name, 'apps', {
        interval: '2s',
        timeout: '20s',
        path: './deploy',
        secretRef: { name: 'git-ssh' },
      }),
      { fieldManager: 'e2e' },
    );
    const first = await signed.repo.git(['rev-parse', 'HEAD']);
    const applied = await waitStatus(
      'apps',
      (s) => s.lastAppliedRevision === `main@sha1:${first}`,
      'first applied',
    );
    expect(condition(applied, 'Ready')?.status).toBe('True');
    expect(condition(applied, 'Verified')?.status).toBe('True');
    expect(await color()).toBe('blue');

    const second = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'green' }) });
    await waitStatus('apps', (s) => s.lastAppliedRevision === `main@sha1:${second}`, 'second applied');
    expect(await color()).toBe('green');

    await signed.repo.git(['reset', '--hard', first]);
    const rejected = await waitStatus(
      'apps',
      (s) => condition(s, 'Verified')?.reason === 'RollbackRejected',
      'Verified=False RollbackRejected',
    );
    expect(rejected.lastAppliedRevision).toBe(`main@sha1:${second}`);
    expect(await color()).toBe('green');
    await signed.repo.git(['reset', '--hard', second]);
  });

  it('refuses a server whose host key is not the pinned one: FetchFailed naming host and fingerprint, nothing applied', async () => {
    const url = impostor.url(join(signed.repo.dir, '.git'));
    await admin.apply(
      gitRepositoryObject({ url }, ns.name, 'impostor', {
        interval: '1h',
        timeout: '10s',
        path: './deploy',
        targetNamespace: ns.name,
        secretRef: { name: 'git-ssh-pinned-elsewhere' },
      }),
      { fieldManager: 'e2e' },
    );
    const refused = await waitStatus(
      'impostor',
      (s) => condition(s, 'Ready')?.reason === 'FetchFailed',
      'Ready=False FetchFailed',
    );
    const offered = Buffer.from(impostor.hostKeys[0]?.publicKeyLine.split(' ')[1] ?? '', 'base64');
    const message = condition(refused, 'Ready')?.message ?? '';
    expect(condition(refused, 'Ready')?.status).toBe('False');
    expect(condition(refused, 'Verified')).toMatchObject({ status: 'False', reason: 'FetchFailed' });
    expect(message).toContain(`host key of [127.0.0.1]:${impostor.port} does not match known_hosts`);
    expect(message).toContain(fingerprintSha256(offered));
    expect(message).toContain('known_hosts key of spec.secretRef');
    expect(refused.lastAppliedRevision).toBeUndefined();
    expect(impostor.log()).not.toMatch(/Accepted publickey/);
  });

  it('trusts a host certificate signed by a @cert-authority: the signed commit is verified and applied; an expired certificate is FetchFailed, nothing applied', async () => {
    const head = await signed.commit({ 'cert/app.yaml': configMapYaml('cert-app', { color: 'certified' }) });
    await admin.apply(
      gitRepositoryObject({ url: certified.url(join(signed.repo.dir, '.git')) }, ns.name, 'certified', {
        interval: '1h',
        timeout: '20s',
        path: './cert',
        secretRef: { name: 'git-ssh-ca' },
      }),
      { fieldManager: 'e2e' },
    );
    const applied = await waitStatus(
      'certified',
      (s) => s.lastAppliedRevision === `main@sha1:${head}`,
      'applied through the certified host',
    );
    expect(condition(applied, 'Verified')?.status).toBe('True');
    const certApp = await admin.get({ ...configMap('cert-app') });
    expect((certApp?.data as Record<string, string> | undefined)?.color).toBe('certified');

    // signet diff with the same GitRepository and Secret in a policy file: fetched through the
    // certified host, verified, and nothing to change.
    const policyPath = join(keyDir, 'certified-policy.yaml');
    await writeFile(
      policyPath,
      yamlDocuments([
        gitRepositoryObject({ url: certified.url(join(signed.repo.dir, '.git')) }, ns.name, 'certified', {
          interval: '1h',
          timeout: '20s',
          path: './cert',
          secretRef: { name: 'git-ssh-ca' },
        }) as unknown as Record<string, unknown>,
        secretObject('git-ssh-ca', caSecretData),
        configMapObject(signersConfigMapName, { allowed_signers: signed.allowedSigners }),
      ]),
    );
    const diff = await runSignet(['diff', '-f', policyPath, '--kubeconfig', kubeconfigPath()], {
      timeoutMs: 90_000,
    });
    expect(diff.stderr).toBe('');
    expect(diff.lines).toEqual([
      expect.stringMatching(new RegExp(`^revision main@sha1:${head} verified`)),
      'no changes',
    ]);
    expect(diff.code).toBe(0);

    await admin.apply(
      gitRepositoryObject({ url: expiredCert.url(join(signed.repo.dir, '.git')) }, ns.name, 'expired-cert', {
        interval: '1h',
        timeout: '10s',
        path: './cert',
        secretRef: { name: 'git-ssh-ca' },
      }),
      { fieldManager: 'e2e' },
    );
    const refused = await waitStatus(
      'expired-cert',
      (s) => condition(s, 'Ready')?.reason === 'FetchFailed',
      'Ready=False FetchFailed (expired host certificate)',
    );
    expect(condition(refused, 'Verified')).toMatchObject({ status: 'False', reason: 'FetchFailed' });
    expect(condition(refused, 'Ready')?.message).toMatch(
      new RegExp(
        `host certificate of \\[127\\.0\\.0\\.1\\]:${expiredCert.port} refused: the certificate expired`,
      ),
    );
    expect(refused.lastAppliedRevision).toBeUndefined();
    expect(expiredCert.log()).not.toMatch(/Accepted publickey/);
  });
});
