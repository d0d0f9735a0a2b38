// `signet verify` as a CI job runs it: a child process, a policy file holding the GitRepository and the
// Secret/ConfigMap it names, a repository served over HTTPS by git http-backend (or a local clone).
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeDigest } from '../../src/provenance/tree-digest.ts';
import {
  allowedSignersLine,
  type CommitSigning,
  createGpgHome,
  createRepo,
  type GpgHome,
  generateSshKey,
  makeTempDir,
  stageFiles,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  gitsignCommit,
  type KeyedSigner,
  makeKeyedDsseBundle,
  makeKeyedSigner,
  OIDC_ISSUER,
  type SigstoreTestbed,
  slsaStatement,
} from '../support/sigstore-fixtures.ts';
import { type SshServer, startSshServer } from '../support/ssh-server.ts';
import {
  configMapObject,
  gitRepositoryObject,
  provenanceKeysSecret,
  runSignet,
  secretObject,
  yamlDocuments,
} from './support.ts';

let server: GitServer;
let repo: TestRepo;
let gpg: GpgHome;
let dir: string;
let url: string;
let allowedSigners: string;
let armoredKey: string;
let ssh: CommitSigning;
let stranger: CommitSigning;
let openpgp: CommitSigning;
const commits: Record<string, string> = {};
/** Messages name commits by their first 12 hex digits. */
const short = (name: string): string => (commits[name] ?? '').slice(0, 12);

async function branch(name: string, from: string): Promise<void> {
  await repo.git(['checkout', '-q', '-b', name, from]);
}

/** Writes a policy file for `ref` (branch) and returns its path. */
async function policy(
  name: string,
  options: {
    branch?: string;
    mode?: string;
    signers?: Record<string, string> | 'absent';
    verify?: Record<string, unknown>;
    /** Another transport: the URL and the Secret `git-ca` then holds (SSH: identity, known_hosts). */
    transport?: { url: string; secret: Record<string, string> };
  } = {},
): Promise<string> {
  const signers = options.signers ?? { allowed_signers: allowedSigners, 'release.asc': armoredKey };
  const path = join(dir, `${name}.yaml`);
  await writeFile(
    path,
    yamlDocuments([
      gitRepositoryObject({
        url: options.transport?.url ?? url,
        ref: { branch: options.branch ?? 'main' },
        secretRef: 'git-ca',
        verify: options.verify ?? {
          mode: options.mode ?? 'HEAD',
          signersRef: { kind: 'ConfigMap', name: 'signers' },
        },
      }),
      secretObject('git-ca', options.transport?.secret ?? { 'ca.crt': server.caPem }),
      ...(signers === 'absent' ? [] : [configMapObject('signers', signers)]),
    ]),
  );
  return path;
}

beforeAll(async () => {
  dir = await makeTempDir('cli-verify');
  server = await startGitServer();
  repo = await createRepo();
  gpg = await createGpgHome();
  const key = await generateSshKey(dir, 'ed25519', 'release@example.com');
  const other = await generateSshKey(dir, 'ed25519', 'mallory@example.com');
  const fingerprint = await gpg.generateKey('Release Bot <release@example.com>');
  armoredKey = await gpg.exportPublicKey(fingerprint);
  allowedSigners = `${allowedSignersLine('release@example.com', key)}\n`;
  ssh = { format: 'ssh', key };
  stranger = { format: 'ssh', key: other };
  openpgp = { format: 'openpgp', gpg, fingerprint };
  commits.a = await repo.commit({ sign: ssh });
  commits.b = await repo.commit({ sign: ssh });
  await branch('old', commits.a);
  await branch('unsigned', commits.b);
  commits.unsigned = await repo.commit({});
  await branch('untrusted', commits.b);
  commits.untrusted = await repo.commit({ sign: stranger });
  await branch('gpg', commits.b);
  commits.gpg = await repo.commit({ sign: openpgp });
  await branch('range', commits.b);
  commits.gap = await repo.commit({});
  commits.rangeHead = await repo.commit({ sign: ssh });
  await repo.git(['checkout', '-q', 'main']);
  url = server.serve('apps', join(repo.dir, '.git'));
}, 120_000);

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await gpg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('signet verify over SSH (same policy file, the Secret holds identity and known_hosts)', () => {
  let sshd: SshServer;
  let transport: { url: string; secret: Record<string, string> };
  beforeAll(async () => {
    sshd = await startSshServer();
    const deployKey = await generateSshKey(dir, 'ecdsa-p256', 'deploy');
    await sshd.authorize(deployKey);
    transport = {
      url: sshd.url(join(repo.dir, '.git')),
      secret: { identity: await readFile(deployKey.privateKeyPath, 'utf8'), known_hosts: sshd.knownHosts },
    };
  });
  afterAll(async () => {
    await sshd?.close();
  });

  it('exits 0 for a signed HEAD, and rejects a rollback given --since', async () => {
    const head = await runSignet(['verify', '-f', await policy('ssh-head', { transport })]);
    expect(head.stderr).toBe('');
    expect(head.lines).toEqual([
      expect.stringMatching(new RegExp(`^verified main@sha1:${commits.b} \\(HEAD\\) signed by ssh key`)),
    ]);
    expect(head.code).toBe(0);
    const rollback = await runSignet([
      'verify',
      '-f',
      await policy('ssh-rollback', { branch: 'old', transport }),
      '--since',
      commits.b ?? '',
    ]);
    expect(rollback.code).toBe(1);
    expect(rollback.lines[0]).toMatch(new RegExp(`^rejected old@sha1:${commits.a}: RollbackRejected: `));
  });

  it('signet build fetches over SSH with the same policy file and Secret', async () => {
    const built = await runSignet(['build', '-f', await policy('ssh-build', { transport })]);
    expect(built.stderr).toMatch(
      new RegExp(`^built main@sha1:${commits.b} \\(\\d+ objects?\\), signed by ssh key`),
    );
    expect(built.code).toBe(0);
  });

  it('Range verification over SSH: an unsigned commit in the range is rejected, a signed range verifies', async () => {
    const rejected = await runSignet([
      'verify',
      '-f',
      await policy('ssh-range', { branch: 'range', mode: 'Range', transport }),
      '--since',
      commits.b ?? '',
    ]);
    expect(rejected.code).toBe(1);
    expect(rejected.lines[0]).toContain(`commit ${short('gap')}: the commit is not signed`);
    const verified = await runSignet([
      'verify',
      '-f',
      await policy('ssh-range-main', { mode: 'Range', transport }),
      '--since',
      commits.a ?? '',
      '--output',
      'json',
    ]);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({
      verified: true,
      evidence: { mode: 'Range', commitsVerified: 1 },
    });
  });

  it('refuses a host whose key is not pinned, naming the fingerprint, and never prints the key', async () => {
    const other = await startSshServer({ hostKeys: ['ed25519'] });
    try {
      const pinned = other.knownHosts.replace(`:${other.port}`, `:${sshd.port}`);
      const wrong = { ...transport, secret: { ...transport.secret, known_hosts: pinned } };
      const result = await runSignet(['verify', '-f', await policy('ssh-wrong-host', { transport: wrong })]);
      expect(result.code).not.toBe(0);
      const output = `${result.stdout}${result.stderr}`;
      expect(output).toMatch(
        /host key of \[127\.0\.0\.1\]:\d+ does not match known_hosts: the server offered \S+ key SHA256:/,
      );
      expect(output).not.toContain('PRIVATE KEY');
      expect(output).not.toContain((transport.secret.identity ?? '').split('\n')[1]);
    } finally {
      await other.close();
    }
  });
});

describe('signet verify over HTTPS', () => {
  it('exits 0 with one line for a signed HEAD', async () => {
    const result = await runSignet(['verify', '-f', await policy('head')]);
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^verified main@sha1:${commits.b} \\(HEAD\\) signed by ssh key SHA256:\\S+ \\(release@example.com\\)$`,
        ),
      ),
    ]);
    expect(result.code).toBe(0);
  });

  it('exits 1 with one line naming the commit and the reason for an unsigned HEAD', async () => {
    const result = await runSignet(['verify', '-f', await policy('unsigned', { branch: 'unsigned' })]);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(new RegExp(`^rejected unsigned@sha1:${commits.unsigned}: Unsigned: `));
    expect(result.lines[0]).toContain(commits.unsigned);
  });

  it('exits 1 with one line for a commit signed by a key that is not trusted', async () => {
    const result = await runSignet(['verify', '-f', await policy('untrusted', { branch: 'untrusted' })]);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(
      new RegExp(`^rejected untrusted@sha1:${commits.untrusted}: UntrustedSigner: .*${short('untrusted')}`),
    );
  });

  it('mixed policy: SSH signers and an OpenPGP .asc key in one ConfigMap each verify their commits', async () => {
    const mixed = await policy('gpg', { branch: 'gpg' });
    const result = await runSignet(['verify', '-f', mixed]);
    expect(result.lines).toEqual([
      expect.stringMatching(
        new RegExp(`^verified gpg@sha1:${commits.gpg} \\(HEAD\\) signed by openpgp key `),
      ),
    ]);
    expect(result.code).toBe(0);
    const sshOnly = await policy('gpg-ssh-only', {
      branch: 'gpg',
      signers: { allowed_signers: allowedSigners },
    });
    const refused = await runSignet(['verify', '-f', sshOnly]);
    expect(refused.code).toBe(1);
    expect(refused.lines[0]).toMatch(new RegExp(`^rejected gpg@sha1:${commits.gpg}: UntrustedSigner: `));
    const sshCommit = await runSignet(['verify', '-f', await policy('main-mixed')]);
    expect(sshCommit.code).toBe(0);
  });

  it('--since stands in for lastAppliedRevision: a rollback is rejected', async () => {
    const file = await policy('rollback', { branch: 'old' });
    const result = await runSignet(['verify', '-f', file, '--since', commits.b ?? '']);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(new RegExp(`^rejected old@sha1:${commits.a}: RollbackRejected: `));
    expect(result.lines[0]).toContain(`last applied revision ${short('b')}`);
    const forward = await runSignet(['verify', '-f', await policy('forward'), '--since', commits.a ?? '']);
    expect(forward.code).toBe(0);
  });

  it('Range mode: an unsigned commit inside the range is rejected, a signed range verifies', async () => {
    const file = await policy('range', { branch: 'range', mode: 'Range' });
    const result = await runSignet(['verify', '-f', file, '--since', commits.b ?? '']);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(new RegExp(`^rejected range@sha1:${commits.rangeHead}: Unsigned: `));
    expect(result.lines[0]).toContain(`commit ${short('gap')}: the commit is not signed`);
    const signedRange = await runSignet([
      'verify',
      '-f',
      await policy('range-main', { mode: 'Range' }),
      '--since',
      commits.a ?? '',
      '--output',
      'json',
    ]);
    expect(signedRange.code).toBe(0);
    expect(JSON.parse(signedRange.stdout)).toMatchObject({
      verified: true,
      evidence: { commit: commits.b, mode: 'Range', commitsVerified: 1 },
    });
  });

  it('--output json carries the verdict and the evidence', async () => {
    const ok = await runSignet(['verify', '-f', await policy('json-ok'), '--output', 'json']);
    expect(ok.code).toBe(0);
    const verified = JSON.parse(ok.stdout) as Record<string, unknown>;
    expect(verified).toMatchObject({
      verified: true,
      revision: `main@sha1:${commits.b}`,
      evidence: {
        commit: commits.b,
        mode: 'HEAD',
        signer: {
          type: 'ssh',
          principal: 'release@example.com',
          keyFingerprint: expect.stringMatching(/^SHA256:/),
        },
        verifiedAt: expect.any(String),
      },
    });
    const bad = await runSignet([
      'verify',
      '-f',
      await policy('json-bad', { branch: 'unsigned' }),
      '--output',
      'json',
    ]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({
      verified: false,
      revision: `unsigned@sha1:${commits.unsigned}`,
      stage: 'verify',
      reason: 'Unsigned',
      message: expect.stringContaining(`commit ${short('unsigned')}`),
    });
  });
});

describe('signet verify --repo-dir on a local clone', () => {
  it('verifies without any network, with the same verdicts', async () => {
    const file = await policy('local', { branch: 'gpg' });
    const offline = join(dir, 'offline.yaml');
    // An unreachable URL proves the local clone alone is read.
    const { readFile } = await import('node:fs/promises');
    await writeFile(offline, (await readFile(file, 'utf8')).replace(url, 'https://127.0.0.1:9/none.git'));
    const ok = await runSignet(['verify', '-f', offline, '--repo-dir', repo.dir]);
    expect(ok.lines).toEqual([expect.stringMatching(new RegExp(`^verified gpg@sha1:${commits.gpg} `))]);
    expect(ok.code).toBe(0);
    const unsignedFile = join(dir, 'offline-unsigned.yaml');
    await writeFile(
      unsignedFile,
      (await readFile(offline, 'utf8')).replace('branch: gpg', 'branch: unsigned'),
    );
    const rejected = await runSignet(['verify', '-f', unsignedFile, '--repo-dir', repo.dir]);
    expect(rejected.code).toBe(1);
    expect(rejected.lines).toEqual([expect.stringMatching(/: Unsigned: /)]);
  });
});

describe('signet verify: bad input exits 2', () => {
  it('a missing file', async () => {
    const result = await runSignet(['verify', '-f', join(dir, 'nope.yaml')]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/cannot read .*nope\.yaml/);
  });

  it('no -f, and a --since that is not a commit', async () => {
    expect((await runSignet(['verify'])).code).toBe(2);
    const since = await runSignet(['verify', '-f', await policy('since'), '--since', 'HEAD~1']);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since must be a full commit SHA');
  });

  it('an invalid GitRepository, naming the field', async () => {
    const result = await runSignet([
      'verify',
      '-f',
      await policy('invalid', {
        verify: { mode: 'Sometimes', signersRef: { kind: 'ConfigMap', name: 'signers' } },
      }),
    ]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('spec.verify.mode');
  });

  it('a reference to another namespace is refused, naming the field', async () => {
    const result = await runSignet([
      'verify',
      '-f',
      await policy('cross-namespace', {
        verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers', namespace: 'other' } },
      }),
    ]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(
      'spec.verify.signersRef.namespace: references are namespace-local: a GitRepository may only use Secrets/ConfigMaps in its own namespace; remove spec.verify.signersRef.namespace',
    );
  });

  it('a reference missing from the file with no cluster to read it from', async () => {
    const result = await runSignet(['verify', '-f', await policy('no-signers', { signers: 'absent' })]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /ConfigMap signers is not in the file and could not be read from the cluster/,
    );
  });
});

describe('signet verify: a gitsign commit and a provenance bundle (keyless and keyed in one policy file)', () => {
  let bed: SigstoreTestbed;
  let keyed: KeyedSigner;
  const identity = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT };
  const manifest = (color: string): string =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  color: ${color}\n`;

  /** The policy file: the GitRepository, git-ca, the trustedRootRef ConfigMap and the keysRef Secret (base64 `data:`). */
  async function provenancePolicy(name: string, branchName: string): Promise<string> {
    const path = join(dir, `${name}.yaml`);
    await writeFile(
      path,
      yamlDocuments([
        gitRepositoryObject({
          url,
          ref: { branch: branchName },
          path: './prov',
          secretRef: 'git-ca',
          verify: {
            mode: 'HEAD',
            keyless: [identity],
            trustedRootRef: { name: 'sigstore-root' },
            provenance: { keysRef: { kind: 'Secret', name: 'provenance-keys' } },
          },
        }),
        secretObject('git-ca', { 'ca.crt': server.caPem }),
        configMapObject('sigstore-root', { 'trusted_root.json': JSON.stringify(bed.trustedRoot) }),
        provenanceKeysSecret(keyed),
      ]),
    );
    return path;
  }

  beforeAll(async () => {
    bed = await createSigstoreTestbed();
    keyed = makeKeyedSigner('ci-release-key');
    const manifests = { 'app.yaml': manifest('teal') };
    const digest = treeDigest(
      Object.entries(manifests).map(([path, content]) => ({ path, content: Buffer.from(content) })),
    );
    const statement = slsaStatement({ treeDigestHex: digest.sha256, repository: url }) as {
      predicate: { buildDefinition: { resolvedDependencies?: unknown } };
    };
    // The bundle travels in the commit it describes, so it cannot name that commit: a repository-only claim.
    delete statement.predicate.buildDefinition.resolvedDependencies;
    const bundle = JSON.stringify(await makeKeyedDsseBundle(bed, keyed, statement));
    await branch('prov', commits.b ?? '');
    await stageFiles(repo, {
      'prov/app.yaml': manifests['app.yaml'],
      'prov/.signet/provenance.sigstore.json': bundle,
    });
    commits.prov = await gitsignCommit(bed, repo, 'manifests with provenance\n');
    // The manifests change after the bundle was made: the bundle is over a different tree digest.
    await branch('prov-stale', commits.prov);
    await stageFiles(repo, { 'prov/app.yaml': manifest('red-alert') });
    commits.provStale = await gitsignCommit(bed, repo, 'manifests changed, bundle not\n');
    await repo.git(['checkout', '-q', 'main']);
  }, 60_000);

  it('exits 0 with one line naming the gitsign identity', async () => {
    const result = await runSignet(['verify', '-f', await provenancePolicy('prov-good', 'prov')]);
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([
      `verified prov@sha1:${commits.prov} (HEAD) signed by gitsign ${DEFAULT_SUBJECT} (${OIDC_ISSUER})`,
    ]);
    expect(result.code).toBe(0);
  });

  it('exits 1 with one line naming the commit and ProvenanceFailed when the bundle is over another tree', async () => {
    const result = await runSignet(['verify', '-f', await provenancePolicy('prov-stale', 'prov-stale')]);
    expect(result.code).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(
      new RegExp(
        `^rejected prov-stale@sha1:${commits.provStale}: ProvenanceFailed: provenance of prov-stale@sha1:${commits.provStale}: `,
      ),
    );
    expect(result.lines[0]).toContain('no subject of the provenance statement');
  });

  it('a keysRef Secret whose base64 data holds another key refuses the bundle (the data: field is decoded and used)', async () => {
    const file = await provenancePolicy('prov-other-key', 'prov');
    const { readFile } = await import('node:fs/promises');
    const other = makeKeyedSigner('ci-release-key');
    await writeFile(
      file,
      (await readFile(file, 'utf8')).replace(
        Buffer.from(keyed.publicKeyPEM).toString('base64'),
        Buffer.from(other.publicKeyPEM).toString('base64'),
      ),
    );
    const result = await runSignet(['verify', '-f', file]);
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      expect.stringMatching(new RegExp(`^rejected prov@sha1:${commits.prov}: ProvenanceFailed: `)),
    ]);
  });
});
