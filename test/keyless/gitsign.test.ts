import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  gitsignHashedRekordBody,
  ONLINE_MODE_MESSAGE,
  parseGitsignSignature,
  verifyGitsignSignature,
} from '../../src/verify/gitsign.ts';
import type { KeylessPolicy } from '../../src/verify/keyless.ts';
import {
  armorSignedMessage,
  createScratchRepo,
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeGitsignSignature,
  OIDC_ISSUER,
  OTHER_ISSUER,
  opensslVerifyCms,
  type SignedCommit,
  type SigstoreTestbed,
  writeSignedCommit,
} from '../support/sigstore-fixtures.ts';

let bed: SigstoreTestbed;
let repo: string;
let policy: KeylessPolicy;

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  repo = await createScratchRepo();
  policy = { trustedRoot: bed.trustedRoot, identities: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }] };
});

async function signedCommit(message: string, options: Parameters<typeof makeGitsignSignature>[2] = {}) {
  let der: Buffer = Buffer.alloc(0);
  const commit: SignedCommit = await writeSignedCommit(repo, message, async (payload) => {
    const signature = await makeGitsignSignature(bed, payload, options);
    der = signature.der;
    return signature.armored;
  });
  return { commit, der };
}

describe('verifyGitsignSignature', () => {
  it('accepts a keyless commit signed in offline mode, and openssl agrees on the CMS', async () => {
    const { commit, der } = await signedCommit('valid keyless commit\n');
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result).toMatchObject({
      ok: true,
      signer: { type: 'x509', identity: DEFAULT_SUBJECT, issuer: OIDC_ISSUER },
    });
    if (!result.ok) return;
    expect(result.signer.keyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(Math.abs(result.integratedTime.getTime() - Date.now())).toBeLessThan(120_000);
    const openssl = await opensslVerifyCms(bed, der, commit.payload);
    expect(openssl.output).toMatch(/Verification successful/);
    expect(openssl.ok).toBe(true);
  });

  it('accepts a subject matched by an anchored regexp', async () => {
    const { commit } = await signedCommit('regexp\n');
    const result = await verifyGitsignSignature(commit.payload, commit.armored, {
      ...policy,
      identities: [
        { issuer: OIDC_ISSUER, subjectRegExp: 'https://github\\.com/acme/deploy/.+@refs/heads/main' },
      ],
    });
    expect(result.ok).toBe(true);
  });

  it('accepts an entry plus an RFC 3161 timestamp', async () => {
    const { commit } = await signedCommit('with tsa\n', { withTimestamp: true });
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result.ok).toBe(true);
  });

  it('accepts an RFC 3161 timestamp without a log entry', async () => {
    const { commit } = await signedCommit('tsa only\n', { withTimestamp: true, log: 'none' });
    const parsed = parseGitsignSignature(commit.armored);
    expect(parsed.tlogEntry).toBeUndefined();
    expect(parsed.timestampToken).toBeDefined();
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result.ok).toBe(true);
  });

  it('rebuilds the cleared hashedrekord body byte for byte', async () => {
    const { commit } = await signedCommit('body\n');
    const parsed = parseGitsignSignature(commit.armored);
    expect(parsed.tlogEntry?.canonicalizedBody.length).toBe(0);
    const body = JSON.parse(gitsignHashedRekordBody(parsed).toString());
    expect(body.spec.data.hash.value).toBe(
      createHash('sha256').update(parsed.signedAttributes).digest('hex'),
    );
    expect(Buffer.from(body.spec.signature.publicKey.content, 'base64').toString()).toMatch(
      /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/,
    );
  });

  it('rejects a wrong issuer', async () => {
    const { commit } = await signedCommit('other issuer\n', { issuer: OTHER_ISSUER });
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
    if (!result.ok) expect(result.message).toContain(OTHER_ISSUER);
  });

  it('rejects a SAN that matches neither exactly nor by anchored regexp', async () => {
    const { commit } = await signedCommit('other subject\n', {
      subject: 'https://github.com/evil/deploy/.github/workflows/release.yml@refs/heads/main',
    });
    expect(await verifyGitsignSignature(commit.payload, commit.armored, policy)).toMatchObject({
      ok: false,
      reason: 'UntrustedSigner',
    });
    // Unanchored this pattern would match the evil SAN as a substring.
    const regexpPolicy: KeylessPolicy = {
      ...policy,
      identities: [
        { issuer: OIDC_ISSUER, subjectRegExp: 'deploy/\\.github/workflows/release\\.yml@refs/heads/main' },
      ],
    };
    expect(await verifyGitsignSignature(commit.payload, commit.armored, regexpPolicy)).toMatchObject({
      ok: false,
      reason: 'UntrustedSigner',
    });
  });

  it('rejects a certificate that had expired when the log integrated the signature', async () => {
    const { commit } = await signedCommit('expired\n', { integratedAt: new Date(Date.now() + 20 * 60_000) });
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
    if (!result.ok) expect(result.message).toMatch(/CERTIFICATE_ERROR/);
  });

  it('rejects a tampered payload', async () => {
    const { commit } = await signedCommit('tamper me\n');
    const tampered = Buffer.from(commit.payload.toString().replace('tamper me', 'tampered!'));
    const result = await verifyGitsignSignature(tampered, commit.armored, policy);
    expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    if (!result.ok) expect(result.message).toMatch(/messageDigest/);
  });

  it('rejects a signature whose signed digest is for other content', async () => {
    const { commit } = await signedCommit('other content\n', {
      signedPayloadOverride: Buffer.from('not this commit'),
    });
    expect(await verifyGitsignSignature(commit.payload, commit.armored, policy)).toMatchObject({
      ok: false,
      reason: 'InvalidSignature',
    });
  });

  it('rejects a corrupted CMS signature value', async () => {
    const { commit } = await signedCommit('bad signature\n');
    const parsed = parseGitsignSignature(commit.armored);
    const der = Buffer.from(commit.armored.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const at = der.indexOf(parsed.signature);
    expect(at).toBeGreaterThan(0);
    const last = at + parsed.signature.length - 1;
    der[last] = (der[last] ?? 0) ^ 0x01;
    const result = await verifyGitsignSignature(commit.payload, armorSignedMessage(der), policy);
    expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature' });
  });

  it('rejects an entry from a transparency log that is not in the trusted root', async () => {
    const { commit } = await signedCommit('foreign log\n', { log: 'foreign' });
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
    if (!result.ok) expect(result.message).toMatch(/TLOG|log/);
  });

  it('needs a verified time: an entry with only an inclusion proof needs an RFC 3161 timestamp too', async () => {
    const proofOnly = await signedCommit('proof only\n', { withoutInclusionPromise: true });
    const rejected = await verifyGitsignSignature(proofOnly.commit.payload, proofOnly.commit.armored, policy);
    expect(rejected).toMatchObject({
      ok: false,
      reason: 'UntrustedSigner',
      message: expect.stringMatching(/TIMESTAMP_ERROR/),
    });
    const withTsa = await signedCommit('proof and tsa\n', {
      withoutInclusionPromise: true,
      withTimestamp: true,
    });
    const accepted = await verifyGitsignSignature(withTsa.commit.payload, withTsa.commit.armored, policy);
    expect(accepted.ok).toBe(true);
  });

  it('rejects an online-mode commit (no embedded entry) and says how to sign instead', async () => {
    const { commit } = await signedCommit('online mode\n', { log: 'none' });
    const result = await verifyGitsignSignature(commit.payload, commit.armored, policy);
    expect(result).toEqual({ ok: false, reason: 'UntrustedSigner', message: ONLINE_MODE_MESSAGE });
    expect(ONLINE_MODE_MESSAGE).toContain('git config gitsign.rekorMode offline');
  });

  it('rejects a commit checked against the public-good root', async () => {
    const { publicGoodTrustedRoot } = await import('../../src/trust-root/index.ts');
    const { commit } = await signedCommit('wrong root\n');
    const result = await verifyGitsignSignature(commit.payload, commit.armored, {
      ...policy,
      trustedRoot: publicGoodTrustedRoot(),
    });
    expect(result).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
  });

  it('reports Unsigned, malformed and non-gitsign input without throwing', async () => {
    expect(await verifyGitsignSignature(Buffer.from('x'), '', policy)).toMatchObject({
      ok: false,
      reason: 'Unsigned',
    });
    expect(
      await verifyGitsignSignature(
        Buffer.from('x'),
        '-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n',
        policy,
      ),
    ).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    expect(
      await verifyGitsignSignature(
        Buffer.from('x'),
        '-----BEGIN SIGNED MESSAGE-----\nMIIB\n-----END SIGNED MESSAGE-----\n',
        policy,
      ),
    ).toMatchObject({ ok: false, reason: 'InvalidSignature' });
  });

  it('refuses an identity without a subject and honours an aborted signal', async () => {
    const { commit } = await signedCommit('policy\n');
    expect(
      await verifyGitsignSignature(commit.payload, commit.armored, {
        ...policy,
        identities: [{ issuer: OIDC_ISSUER }],
      }),
    ).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
    const controller = new AbortController();
    controller.abort();
    expect(
      await verifyGitsignSignature(commit.payload, commit.armored, policy, { signal: controller.signal }),
    ).toMatchObject({ ok: false, message: expect.stringMatching(/aborted/) });
  });
});
