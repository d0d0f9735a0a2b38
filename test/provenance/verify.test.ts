import { createPublicKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  normalizeRepositoryUrl,
  type ProvenanceInput,
  type ProvenancePolicy,
  treeDigest,
  verifyProvenance,
} from '../../src/provenance/index.ts';
import { cosignKeyHint } from '../../src/trust-root/index.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  type KeyedSigner,
  makeDsseBundle,
  makeKeyedDsseBundle,
  makeKeyedMessageBundle,
  makeKeyedSigner,
  makeMessageBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
  slsaStatement,
} from '../support/sigstore-fixtures.ts';

const REPO = 'https://github.com/acme/deploy';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const BUILDER = 'https://github.com/acme/deploy/.github/workflows/release.yml@refs/heads/main';
const files = [
  { path: 'clusters/prod/deploy.yaml', content: Buffer.from('kind: Deployment\n') },
  { path: 'clusters/prod/svc.yaml', content: Buffer.from('kind: Service\n') },
  { path: 'README.md', content: Buffer.from('outside the manifest root\n') },
];
const ROOT = 'clusters/prod';
const tree = treeDigest(files, [], { root: ROOT });

let bed: SigstoreTestbed;
let keyless: ProvenancePolicy;
let signer: KeyedSigner;

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  keyless = { trustedRoot: bed.trustedRoot, identities: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }] };
  signer = makeKeyedSigner('release-2026');
});

function input(
  bundleJson: unknown,
  policy: ProvenancePolicy = keyless,
  extra: Partial<ProvenanceInput> = {},
) {
  return verifyProvenance({
    files,
    symlinks: [],
    root: ROOT,
    bundleJson,
    policy,
    source: { url: REPO, commit: COMMIT },
    ...extra,
  });
}

const statement = (overrides: Partial<Parameters<typeof slsaStatement>[0]> = {}) =>
  slsaStatement({
    treeDigestHex: tree.sha256,
    builderId: BUILDER,
    repository: REPO,
    commit: COMMIT,
    ...overrides,
  });

describe('verifyProvenance: keyless message signature over the tree digest', () => {
  it('accepts a bundle that signs the ASCII tree digest', async () => {
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
    const result = await input(bundle);
    expect(result).toMatchObject({
      ok: true,
      evidence: {
        treeDigest: tree.digest,
        fileCount: 2,
        bundleKind: 'message-signature',
        bundlePath: 'clusters/prod/.signet/provenance.sigstore.json',
        signer: { type: 'x509', identity: DEFAULT_SUBJECT, issuer: OIDC_ISSUER },
        tlogEntries: 1,
      },
    });
  });

  it('refuses a bundle path outside .signet/, where the bundle would be rendered as manifests', async () => {
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
    for (const bundlePath of ['provenance.json', 'ci/bundle.yaml']) {
      const result = await input(bundle, keyless, { bundlePath });
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.message).toContain('must be a file under .signet/');
    }
  });

  it('reads the bundle from the tree at the default path (excluded from the digest)', async () => {
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest), { withTimestamp: true });
    const withBundle = [
      ...files,
      { path: `${ROOT}/.signet/provenance.sigstore.json`, content: Buffer.from(JSON.stringify(bundle)) },
    ];
    const result = await input(undefined, keyless, { files: withBundle });
    expect(result.ok ? 'ok' : result.message).toBe('ok');
  });

  it('rejects a bundle over a different digest', async () => {
    const other = treeDigest([{ path: 'x.yaml', content: Buffer.from('x') }]);
    const result = await input(await makeMessageBundle(bed, Buffer.from(other.digest)));
    expect(result).toMatchObject({
      ok: false,
      reason: 'ProvenanceFailed',
      message: expect.stringMatching(/different artifact/),
    });
  });

  it('rejects a bundle whose digest field was swapped to match', async () => {
    const other = treeDigest([{ path: 'x.yaml', content: Buffer.from('x') }]);
    const bundle = (await makeMessageBundle(bed, Buffer.from(other.digest))) as {
      messageSignature: { messageDigest: { digest: string } };
    };
    const { createHash } = await import('node:crypto');
    bundle.messageSignature.messageDigest.digest = createHash('sha256').update(tree.digest).digest('base64');
    const result = await input(bundle);
    expect(result.ok).toBe(false);
  });

  it('rejects a wrong signer identity and a foreign log', async () => {
    const evil = await makeMessageBundle(bed, Buffer.from(tree.digest), {
      subject: 'https://github.com/evil/x',
    });
    expect(await input(evil)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/not an allowed identity/),
    });
    const foreign = await makeMessageBundle(bed, Buffer.from(tree.digest), { log: 'foreign' });
    expect(await input(foreign)).toMatchObject({ ok: false, message: expect.stringMatching(/TLOG/) });
  });

  it('rejects a missing bundle, malformed JSON and a bundle file that is a symlink', async () => {
    expect(await input(undefined)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/no provenance bundle/),
    });
    expect(await input('{not json')).toMatchObject({ ok: false, message: expect.stringMatching(/not JSON/) });
    expect(await input({ mediaType: 'nope' })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/Sigstore bundle/),
    });
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
    const linked = await input(bundle, keyless, {
      symlinks: [{ path: `${ROOT}/.signet/provenance.sigstore.json`, target: '/tmp/elsewhere.json' }],
    });
    expect(linked).toMatchObject({ ok: false, message: expect.stringMatching(/symbolic link/) });
  });

  it('rejects a tree containing a symlink', async () => {
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
    const result = await input(bundle, keyless, {
      symlinks: [{ path: `${ROOT}/secret.yaml`, target: '/etc/shadow' }],
    });
    expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/symlinks are refused/) });
  });

  it('rejects a message signature when builders are restricted', async () => {
    const bundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
    const result = await input(bundle, { ...keyless, builderIds: [BUILDER] });
    expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/DSSE/) });
  });
});

describe('verifyProvenance: keyless DSSE SLSA provenance', () => {
  it('accepts a statement for the tree, builder, repository and commit', async () => {
    const bundle = await makeDsseBundle(bed, statement());
    const result = await input(bundle, { ...keyless, builderIds: [BUILDER] });
    expect(result).toMatchObject({
      ok: true,
      evidence: {
        bundleKind: 'dsse',
        predicateType: 'https://slsa.dev/provenance/v1',
        builderId: BUILDER,
        source: 'commit-matched',
      },
    });
  });

  it('rejects the raw dsse proposal shape (signature count mismatch)', async () => {
    const bundle = await makeDsseBundle(bed, statement(), { dsseEntryShape: 'raw-proposal' });
    expect(await input(bundle)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/signature count mismatch/),
    });
  });

  it('rejects a statement about another digest', async () => {
    const bundle = await makeDsseBundle(bed, statement({ treeDigestHex: 'f'.repeat(64) }));
    expect(await input(bundle)).toMatchObject({ ok: false, message: expect.stringMatching(/no subject/) });
  });

  it('rejects a wrong predicate type', async () => {
    const bundle = await makeDsseBundle(
      bed,
      statement({ predicateType: 'https://example.com/not-provenance' }),
    );
    expect(await input(bundle)).toMatchObject({ ok: false, message: expect.stringMatching(/predicateType/) });
  });

  it('rejects a wrong builder', async () => {
    const bundle = await makeDsseBundle(bed, statement({ builderId: 'https://ci.evil.example/builder' }));
    expect(await input(bundle, { ...keyless, builderIds: [BUILDER] })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/not an accepted builder/),
    });
  });

  it('rejects provenance for another commit or another repository', async () => {
    const otherCommit = await makeDsseBundle(bed, statement({ commit: 'f'.repeat(40) }));
    expect(await input(otherCommit)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/built at f{40}/),
    });
    const otherRepo = await makeDsseBundle(bed, statement({ repository: 'https://github.com/evil/deploy' }));
    expect(await input(otherRepo)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/evil\/deploy/),
    });
  });
});

describe('verifyProvenance: keyed bundles', () => {
  const keyed = (): ProvenancePolicy => ({
    trustedRoot: bed.trustedRoot,
    keys: { [signer.hint]: signer.publicKeyPEM },
  });

  it('accepts a keyed bundle without a tlog entry (thresholds 0)', async () => {
    const bundle = await makeKeyedMessageBundle(bed, signer, Buffer.from(tree.digest));
    const result = await input(bundle, keyed());
    expect(result).toMatchObject({
      ok: true,
      evidence: { signer: { type: 'key', hint: 'release-2026' }, tlogEntries: 0 },
    });
  });

  it('accepts a keyed bundle with a tlog entry, and rejects one from an untrusted log', async () => {
    const logged = await makeKeyedMessageBundle(bed, signer, Buffer.from(tree.digest), { log: 'trusted' });
    expect(await input(logged, keyed())).toMatchObject({ ok: true, evidence: { tlogEntries: 1 } });
    const foreign = await makeKeyedMessageBundle(bed, signer, Buffer.from(tree.digest), { log: 'foreign' });
    expect((await input(foreign, keyed())).ok).toBe(false);
  });

  it('accepts a keyed DSSE provenance statement', async () => {
    const bundle = await makeKeyedDsseBundle(bed, signer, statement(), { log: 'trusted' });
    expect(await input(bundle, { ...keyed(), builderIds: [BUILDER] })).toMatchObject({
      ok: true,
      evidence: { bundleKind: 'dsse', signer: { type: 'key' } },
    });
  });

  it("finds the key by cosign's hint (base64 sha256 of the SPKI, not a valid Secret key) under any name", async () => {
    const pem = signer.publicKeyPEM;
    const hint = cosignKeyHint(createPublicKey(pem));
    expect(hint).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const cosignSigned = await makeKeyedMessageBundle(bed, { ...signer, hint }, Buffer.from(tree.digest));
    const result = await input(cosignSigned, { trustedRoot: bed.trustedRoot, keys: { 'cosign.pub': pem } });
    expect(result).toMatchObject({ ok: true, evidence: { signer: { type: 'key', hint } } });
    // Another key's cosign hint is still unknown, and says so.
    const other = makeKeyedSigner('other');
    const otherHint = cosignKeyHint(createPublicKey(other.publicKeyPEM));
    const stranger = await makeKeyedMessageBundle(
      bed,
      { ...other, hint: otherHint },
      Buffer.from(tree.digest),
    );
    expect(
      await input(stranger, { trustedRoot: bed.trustedRoot, keys: { 'cosign.pub': pem } }),
    ).toMatchObject({
      ok: false,
      message: expect.stringContaining("by name or by cosign's key hint (known: cosign.pub)"),
    });
  });

  it('rejects an unknown key hint, a wrong key, and keyed bundles when no keys are configured', async () => {
    const stranger = makeKeyedSigner('stranger');
    const unknown = await makeKeyedMessageBundle(bed, stranger, Buffer.from(tree.digest));
    expect(await input(unknown, keyed())).toMatchObject({
      ok: false,
      message: expect.stringMatching(/stranger/),
    });
    const impostor = { ...stranger, hint: signer.hint };
    const wrongKey = await makeKeyedMessageBundle(bed, impostor, Buffer.from(tree.digest));
    expect(await input(wrongKey, keyed())).toMatchObject({
      ok: false,
      message: expect.stringMatching(/SIGNATURE/),
    });
    const bundle = await makeKeyedMessageBundle(bed, signer, Buffer.from(tree.digest));
    expect(await input(bundle, keyless)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/names no keys/),
    });
  });
});

describe('normalizeRepositoryUrl', () => {
  it('treats common spellings of one repository alike', () => {
    const canonical = 'github.com/acme/deploy';
    for (const url of [
      'https://github.com/acme/deploy',
      'https://github.com/acme/deploy.git',
      'https://GitHub.com/acme/deploy/',
      'git+https://github.com/acme/deploy@refs/heads/main',
      'ssh://git@github.com/acme/deploy.git',
      'git@github.com:acme/deploy.git',
    ]) {
      expect(normalizeRepositoryUrl(url)).toBe(canonical);
    }
    expect(normalizeRepositoryUrl('https://github.com/acme/deploy-evil')).not.toBe(canonical);
  });
});
