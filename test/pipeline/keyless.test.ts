// Keyless (gitsign) and SSH signatures through the shared pipeline (src/controller/pipeline.ts) that the
// operator and the CLI both run: a real repository served over HTTPS by git http-backend, fetched with
// the isomorphic-git source, verified against a policy with BOTH signersRef and keyless identities and a
// trustedRootRef holding the offline Sigstore test bed's trusted_root.json; provenance bundles on top.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GitRepository, parseGitRepository } from '../../src/api/gitrepository.ts';
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
import { mapReferenceReader, pipelineRunner } from '../support/pipeline-run.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  type GitsignOptions,
  gitsignCommit,
  type KeyedSigner,
  makeGitsignSignature,
  makeKeyedDsseBundle,
  makeKeyedSigner,
  makeMessageBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
  slsaStatement,
} from '../support/sigstore-fixtures.ts';

let bed: SigstoreTestbed;
let server: GitServer;
let repo: TestRepo;
let dir: string;
let cacheDir: string;
let url: string;
let ssh: CommitSigning;
let keyed: KeyedSigner;
let gpg: GpgHome;
let openpgp: CommitSigning;
const commits: Record<string, string> = {};
const references = new Map<string, Record<string, string>>();
const identity = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT };

/** An annotated tag on `target` signed the way gitsign signs tags: the CMS block appended to the tag object. */
async function gitsignTag(name: string, target: string, options: GitsignOptions = {}): Promise<string> {
  const payload = Buffer.from(
    `object ${target}\ntype commit\ntag ${name}\ntagger Test Committer <committer@example.com> ${Math.floor(Date.now() / 1000)} +0000\n\nrelease ${name}\n`,
  );
  const { armored } = await makeGitsignSignature(bed, payload, options);
  const oid = await repo.git(['hash-object', '-t', 'tag', '-w', '--stdin'], {
    input: Buffer.concat([payload, Buffer.from(armored)]),
  });
  await repo.git(['update-ref', `refs/tags/${name}`, oid]);
  return oid;
}

function configMap(name: string, color: string): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  color: ${color}\n`;
}

function policy(options: {
  branch?: string;
  tag?: string;
  signers?: string;
  mode?: 'HEAD' | 'Range' | 'Tag' | 'TagAndHEAD';
  path?: string;
  keyless?: readonly { issuer: string; subject: string }[];
  trustedRootRef?: boolean;
  provenance?: Record<string, unknown>;
}): GitRepository {
  return parseGitRepository({
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name: 'apps', namespace: 'team-a' },
    spec: {
      url,
      ref: options.tag === undefined ? { branch: options.branch ?? 'main' } : { tag: options.tag },
      secretRef: { name: 'git-ca' },
      ...(options.path === undefined ? {} : { path: options.path }),
      verify: {
        mode: options.mode ?? 'HEAD',
        signersRef: { kind: 'ConfigMap', name: options.signers ?? 'signers' },
        keyless: options.keyless ?? [identity],
        ...(options.trustedRootRef === false ? {} : { trustedRootRef: { name: 'sigstore-root' } }),
        ...(options.provenance === undefined ? {} : { provenance: options.provenance }),
      },
    },
  });
}

/** resolve → fetch → verify (→ read tree → provenance), exactly as the reconciler and the CLI run it. */
const run0 = pipelineRunner({
  cacheDir: () => cacheDir,
  readReference: mapReferenceReader(references),
  timeoutMs: 30_000,
});
async function run(repository: GitRepository, since?: string) {
  const r = await run0(repository, since);
  if (!r.ok) console.log('REFUSAL', r.reason, r.message);
  return r;
}

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  dir = await makeTempDir('pipeline-keyless');
  cacheDir = join(dir, 'cache');
  server = await startGitServer();
  repo = await createRepo();
  const key = await generateSshKey(dir, 'ed25519', 'release@example.com');
  ssh = { format: 'ssh', key };
  keyed = makeKeyedSigner('ci-release-key');
  url = server.serve('apps', join(repo.dir, '.git'));
  references.set('Secret/git-ca', { 'ca.crt': server.caPem });
  references.set('ConfigMap/signers', {
    allowed_signers: `${allowedSignersLine('release@example.com', key)}\n`,
  });
  references.set('ConfigMap/sigstore-root', { 'trusted_root.json': JSON.stringify(bed.trustedRoot) });
  references.set('ConfigMap/provenance-keys', { 'ci-release-key': keyed.publicKeyPEM });

  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'blue') });
  commits.first = await repo.commit({ files: {}, sign: ssh });
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'green') });
  commits.ssh = await repo.commit({ files: {}, sign: ssh });
  await repo.git(['branch', 'ssh-head', commits.ssh]);
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'red') });
  commits.gitsign = await gitsignCommit(bed, repo, 'keyless change\n');

  await repo.git(['checkout', '-q', '-b', 'foreign', commits.ssh]);
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'black') });
  commits.foreign = await gitsignCommit(bed, repo, 'someone else\n', {
    subject: 'https://github.com/mallory/deploy/.github/workflows/release.yml@refs/heads/main',
  });

  await repo.git(['checkout', '-q', '-b', 'range-gap', commits.gitsign]);
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'white') });
  commits.gap = await repo.commit({ files: {} });
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'grey') });
  commits.gapHead = await gitsignCommit(bed, repo, 'after the gap\n');

  // Provenance: CI renders prov/ (and prov-keyed/), computes the tree digest and commits a bundle with it.
  await repo.git(['checkout', '-q', '-b', 'prov', commits.gitsign]);
  const manifests = { 'app.yaml': configMap('app', 'teal'), 'nested/extra.yaml': configMap('extra', 'x') };
  const digest = treeDigest(
    Object.entries(manifests).map(([path, content]) => ({ path, content: Buffer.from(content) })),
  );
  const messageBundle = await makeMessageBundle(bed, Buffer.from(digest.digest));
  const statement = slsaStatement({ treeDigestHex: digest.sha256, repository: url }) as {
    predicate: { buildDefinition: { resolvedDependencies?: unknown } };
  };
  // The bundle travels in the commit it describes, so it cannot name that commit: a repository-only claim.
  delete statement.predicate.buildDefinition.resolvedDependencies;
  const dsseBundle = await makeKeyedDsseBundle(bed, keyed, statement);
  await stageFiles(repo, {
    ...Object.fromEntries(Object.entries(manifests).map(([path, content]) => [`prov/${path}`, content])),
    'prov/.signet/provenance.sigstore.json': JSON.stringify(messageBundle),
    ...Object.fromEntries(
      Object.entries(manifests).map(([path, content]) => [`prov-keyed/${path}`, content]),
    ),
    'prov-keyed/.signet/provenance.sigstore.json': JSON.stringify(dsseBundle),
  });
  commits.prov = await gitsignCommit(bed, repo, 'manifests with provenance\n');
  await repo.git(['checkout', '-q', '-b', 'prov-tampered', commits.prov]);
  await stageFiles(repo, {
    'prov/app.yaml': configMap('app', 'red-alert'),
    'prov-keyed/nested/extra.yaml': configMap('extra', 'y'),
  });
  commits.tampered = await repo.commit({ files: {}, sign: ssh });

  // Tags: gitsign and OpenPGP mixed, on commits signed by the other kind (or not at all).
  gpg = await createGpgHome();
  const fingerprint = await gpg.generateKey('Release Bot <release@example.com>');
  openpgp = { format: 'openpgp', gpg, fingerprint };
  references.set('ConfigMap/signers-mixed', {
    allowed_signers: `${allowedSignersLine('release@example.com', key)}\n`,
    'release.asc': await gpg.exportPublicKey(fingerprint),
  });
  await repo.git(['checkout', '-q', '-b', 'tags', commits.gitsign]);
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'olive') });
  commits.openpgpHead = await repo.commit({ files: {}, sign: openpgp });
  commits.gitsignOnOpenpgp = await gitsignTag('v1.0.0', commits.openpgpHead);
  commits.openpgpOnGitsign = await repo.tag('v1.1.0', commits.gitsign, { sign: openpgp });
  await stageFiles(repo, { 'deploy/app.yaml': configMap('app', 'unsigned') });
  commits.unsignedHead = await repo.commit({ files: {} });
  commits.gitsignOnUnsigned = await gitsignTag('v1.2.0', commits.unsignedHead);
  commits.foreignTag = await gitsignTag('v1.3.0', commits.openpgpHead, {
    subject: 'https://github.com/mallory/deploy/.github/workflows/release.yml@refs/heads/main',
  });
  commits.onlineTag = await gitsignTag('v1.4.0', commits.openpgpHead, { log: 'none' });
  await repo.git(['checkout', '-q', 'main']);
}, 120_000);

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await gpg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('keyless and SSH signers in one policy, HEAD mode', () => {
  it('verifies a gitsign HEAD against the trusted root from trustedRootRef', async () => {
    const result = await run(policy({ branch: 'main' }));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.revision).toBe(`main@sha1:${commits.gitsign}`);
    expect(result.evidence.signer).toMatchObject({
      type: 'x509',
      identity: DEFAULT_SUBJECT,
      issuer: OIDC_ISSUER,
    });
    expect(result.signer).toBe(`gitsign ${DEFAULT_SUBJECT} (${OIDC_ISSUER})`);
    expect(result.files.files.map((f) => f.path)).toContain('deploy/app.yaml');
  });

  it('verifies an SSH-signed HEAD through the same policy', async () => {
    const result = await run(policy({ branch: 'ssh-head' }));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.evidence.signer).toMatchObject({ type: 'ssh', principal: 'release@example.com' });
  });

  it('rejects a gitsign commit from an identity the policy does not name', async () => {
    const result = await run(policy({ branch: 'foreign' }));
    expect(result).toMatchObject({ ok: false, stage: 'verify', reason: 'UntrustedSigner' });
    expect(result.ok ? '' : result.message).toContain('mallory/deploy');
    expect(result.ok ? '' : result.message).toContain('is not an allowed identity');
  });

  it('rejects the test bed commit when no trustedRootRef is set (the pinned public-good root does not know it)', async () => {
    const result = await run(policy({ branch: 'main', trustedRootRef: false }));
    expect(result).toMatchObject({ ok: false, stage: 'verify', reason: 'UntrustedSigner' });
    expect(result.ok ? '' : result.message).toContain('does not chain to a trusted Fulcio CA');
  });

  it('a gitsign commit is refused when the policy has no keyless identity even though an SSH signer is set', async () => {
    const sshOnly = parseGitRepository({
      apiVersion: 'signet.dev/v1alpha1',
      kind: 'GitRepository',
      metadata: { name: 'apps', namespace: 'team-a' },
      spec: {
        url,
        ref: { branch: 'main' },
        secretRef: { name: 'git-ca' },
        verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
      },
    });
    const result = await run(sshOnly);
    expect(result).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
    expect(result.ok ? '' : result.message).toContain('no keyless verification is configured');
  });
});

describe('keyless and SSH signers in one policy, Range mode', () => {
  it('verifies a range holding an SSH commit and a gitsign commit', async () => {
    const result = await run(policy({ branch: 'main', mode: 'Range' }), commits.first);
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.evidence).toMatchObject({ mode: 'Range', commit: commits.gitsign, commitsVerified: 2 });
  });

  it('rejects a range with an unsigned commit between two signed ones, naming it', async () => {
    const result = await run(policy({ branch: 'range-gap', mode: 'Range' }), commits.first);
    expect(result).toMatchObject({ ok: false, stage: 'verify', reason: 'Unsigned' });
    expect(result.ok ? '' : result.message).toContain((commits.gap ?? '').slice(0, 12));
  });

  it('rejects a rollback to an ancestor of the last applied commit', async () => {
    const result = await run(policy({ branch: 'ssh-head', mode: 'Range' }), commits.gitsign);
    expect(result).toMatchObject({ ok: false, reason: 'RollbackRejected' });
  });
});

describe('provenance bundles through the pipeline', () => {
  it('accepts a keyless message-signature bundle over the tree digest', async () => {
    const result = await run(policy({ branch: 'prov', path: 'prov', provenance: { keyless: [identity] } }));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.files.files.map((f) => f.path).sort()).toEqual([
      '.signet/provenance.sigstore.json',
      'app.yaml',
      'nested/extra.yaml',
    ]);
  });

  it('accepts a keyed DSSE SLSA bundle (keysRef) in Range mode', async () => {
    const result = await run(
      policy({
        branch: 'prov',
        mode: 'Range',
        path: 'prov-keyed',
        provenance: { keysRef: { kind: 'ConfigMap', name: 'provenance-keys' } },
      }),
      commits.gitsign,
    );
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.evidence).toMatchObject({ mode: 'Range', commitsVerified: 1 });
  });

  it('rejects with ProvenanceFailed when the tree changed after the bundle was made', async () => {
    const keyless = await run(
      policy({ branch: 'prov-tampered', path: 'prov', provenance: { keyless: [identity] } }),
    );
    expect(keyless).toMatchObject({ ok: false, stage: 'verify', reason: 'ProvenanceFailed' });
    expect(keyless.ok ? '' : keyless.message).toContain('different artifact');
    const keyedResult = await run(
      policy({
        branch: 'prov-tampered',
        path: 'prov-keyed',
        provenance: { keysRef: { kind: 'ConfigMap', name: 'provenance-keys' } },
      }),
    );
    expect(keyedResult).toMatchObject({ ok: false, stage: 'verify', reason: 'ProvenanceFailed' });
    expect(keyedResult.ok ? '' : keyedResult.message).toContain('no subject of the provenance statement');
  });

  it('rejects a bundle signed by an identity the provenance policy does not name', async () => {
    const result = await run(
      policy({
        branch: 'prov',
        path: 'prov',
        provenance: {
          keyless: [
            {
              issuer: OIDC_ISSUER,
              subject: 'https://github.com/other/x/.github/workflows/a.yml@refs/heads/main',
            },
          ],
        },
      }),
    );
    expect(result).toMatchObject({ ok: false, reason: 'ProvenanceFailed' });
  });
});

describe('keyless and OpenPGP signers in one policy, Tag and TagAndHEAD modes', () => {
  const tagPolicy = (tag: string, mode: 'Tag' | 'TagAndHEAD') =>
    policy({ tag, mode, signers: 'signers-mixed' });

  it('Tag: a gitsign-signed tag verifies (the OpenPGP-signed commit below it is not checked)', async () => {
    const result = await run(tagPolicy('v1.0.0', 'Tag'));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.revision).toBe(`v1.0.0@sha1:${commits.openpgpHead}`);
    expect(result.evidence).toMatchObject({
      mode: 'Tag',
      commit: commits.openpgpHead,
      signer: { type: 'x509', identity: DEFAULT_SUBJECT, issuer: OIDC_ISSUER },
      tag: { name: 'v1.0.0', oid: commits.gitsignOnOpenpgp, signer: { type: 'x509' } },
    });
  });

  it('Tag: a gitsign tag on an unsigned commit verifies, TagAndHEAD refuses the unsigned commit', async () => {
    const tagOnly = await run(tagPolicy('v1.2.0', 'Tag'));
    if (!tagOnly.ok) throw new Error(`${tagOnly.reason}: ${tagOnly.message}`);
    expect(tagOnly.evidence.tag?.signer.type).toBe('x509');
    const both = await run(tagPolicy('v1.2.0', 'TagAndHEAD'));
    expect(both).toMatchObject({ ok: false, stage: 'verify', reason: 'Unsigned' });
    expect(both.ok ? '' : both.message).toContain((commits.unsignedHead ?? '').slice(0, 12));
  });

  it('TagAndHEAD: a gitsign tag on an OpenPGP-signed commit verifies both', async () => {
    const result = await run(tagPolicy('v1.0.0', 'TagAndHEAD'));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.evidence).toMatchObject({
      mode: 'TagAndHEAD',
      commit: commits.openpgpHead,
      signer: { type: 'openpgp', principal: 'release@example.com' },
      tag: { name: 'v1.0.0', signer: { type: 'x509', identity: DEFAULT_SUBJECT } },
    });
  });

  it('TagAndHEAD: an OpenPGP-signed tag on a gitsign-signed commit verifies both', async () => {
    const result = await run(tagPolicy('v1.1.0', 'TagAndHEAD'));
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    expect(result.evidence).toMatchObject({
      mode: 'TagAndHEAD',
      commit: commits.gitsign,
      signer: { type: 'x509', identity: DEFAULT_SUBJECT },
      tag: { name: 'v1.1.0', oid: commits.openpgpOnGitsign, signer: { type: 'openpgp' } },
    });
  });

  it('TagAndHEAD: the OpenPGP half is refused when the policy lacks the .asc key', async () => {
    const result = await run(policy({ tag: 'v1.0.0', mode: 'TagAndHEAD' }));
    expect(result).toMatchObject({ ok: false, stage: 'verify', reason: 'UntrustedSigner' });
    expect(result.ok ? '' : result.message).toContain((commits.openpgpHead ?? '').slice(0, 12));
  });

  it('Tag and TagAndHEAD: a gitsign tag from an identity the policy does not name is refused', async () => {
    for (const mode of ['Tag', 'TagAndHEAD'] as const) {
      const result = await run(tagPolicy('v1.3.0', mode));
      expect(result, mode).toMatchObject({ ok: false, stage: 'verify', reason: 'UntrustedSigner' });
      expect(result.ok ? '' : result.message).toContain('mallory/deploy');
    }
  });

  it('Tag: a gitsign tag signed in online mode (no log entry) is refused with the rekorMode hint', async () => {
    const result = await run(tagPolicy('v1.4.0', 'Tag'));
    expect(result).toMatchObject({ ok: false, stage: 'verify', reason: 'UntrustedSigner' });
    expect(result.ok ? '' : result.message).toContain('gitsign.rekorMode offline');
  });
});
