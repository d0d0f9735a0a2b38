import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommit, reinsertCommitSignature } from '../../src/verify/signed-object.ts';
import { loadTrustMaterial, type TrustMaterial } from '../../src/verify/trust.ts';
import type { Verdict } from '../../src/verify/types.ts';
import { type VerifyRevisionInput, verifyRevision } from '../../src/verify/verify-revision.ts';
import {
  createGpgHome,
  createRepo,
  GitCliRevisionReader,
  type GpgHome,
  runCommand,
  type TestRepo,
} from '../support/git-fixtures.ts';

let gpg: GpgHome;
let repo: TestRepo;
let reader: GitCliRevisionReader;
const fpr: Record<'ed' | 'rsa' | 'untrusted' | 'expiredNow' | 'expiredBefore' | 'revoked', string> = {
  ed: '',
  rsa: '',
  untrusted: '',
  expiredNow: '',
  expiredBefore: '',
  revoked: '',
};
const commits: Record<'expiredNow' | 'expiredBefore' | 'revokedSigned', string> = {
  expiredNow: '',
  expiredBefore: '',
  revokedSigned: '',
};
let trust: TrustMaterial;

function verify(partial: Partial<VerifyRevisionInput> & { commit: string }): Promise<Verdict> {
  return verifyRevision({
    reader,
    mode: 'HEAD',
    allowRollback: false,
    matchCommitter: false,
    trust,
    // The verification's clock, read when it runs (as the operator does): a clock read at module load
    // predates the keys made in beforeAll, whose self-certifications would then be in its future.
    now: new Date(),
    ...partial,
  });
}

function expectRejected(verdict: Verdict, reason: string, pattern?: RegExp): void {
  expect(verdict.verified, JSON.stringify(verdict)).toBe(false);
  if (!verdict.verified) {
    expect(verdict.reason, verdict.message).toBe(reason);
    if (pattern) expect(verdict.message).toMatch(pattern);
  }
}

beforeAll(async () => {
  gpg = await createGpgHome();
  repo = await createRepo();
  reader = new GitCliRevisionReader(repo.dir);
  fpr.ed = await gpg.generateKey('Erin <committer@example.com>');
  fpr.rsa = await gpg.generateKey('Rosa <rosa@example.com>', { algo: 'rsa2048' });
  fpr.untrusted = await gpg.generateKey('Mallory <mallory@example.com>');

  // Valid when it signed (2020-03), expired since (1 year after 2020-01-01).
  fpr.expiredNow = await gpg.generateKey('Old <old@example.com>', {
    expire: '1y',
    fakedTime: '20200101T000000',
  });
  commits.expiredNow = await repo.commit({
    sign: { format: 'openpgp', gpg, fingerprint: fpr.expiredNow, fakedTime: '20200301T000000' },
  });
  // Signs in 2021, but a self-signature dated 2020-05-01 makes it expire on 2020-05-31.
  fpr.expiredBefore = await gpg.generateKey('Late <late@example.com>', { fakedTime: '20200101T000000' });
  commits.expiredBefore = await repo.commit({
    sign: { format: 'openpgp', gpg, fingerprint: fpr.expiredBefore, fakedTime: '20210101T000000' },
  });
  await gpg.setExpiry(fpr.expiredBefore, '30d', '20200501T000000');
  // Signs, then gets revoked.
  fpr.revoked = await gpg.generateKey('Rev <rev@example.com>');
  commits.revokedSigned = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.revoked } });
  await gpg.revoke(fpr.revoked);

  const edAndRsa = `${await gpg.exportPublicKey(fpr.ed)}\n${await gpg.exportPublicKey(fpr.rsa)}`;
  trust = await loadTrustMaterial({
    'team.asc': edAndRsa,
    'old.asc': await gpg.exportPublicKey(fpr.expiredNow),
    'late.asc': await gpg.exportPublicKey(fpr.expiredBefore),
    'rev.asc': await gpg.exportPublicKey(fpr.revoked),
  });
  expect(trust.problems).toEqual([]);
}, 120_000);

afterAll(async () => {
  await repo?.close();
  await gpg?.close();
});

describe('OpenPGP-signed commits', () => {
  it('loads every concatenated key block of one .asc', () => {
    const names = trust.openpgp.filter((k) => k.keyName === 'team.asc').map((k) => k.emails[0]);
    expect(names).toEqual(['committer@example.com', 'rosa@example.com']);
  });

  it.each(['ed', 'rsa'] as const)('accepts a HEAD signed with the %s key', async (name) => {
    const commit = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr[name] } });
    const verdict = await verify({ commit });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    if (verdict.verified) {
      expect(verdict.evidence.signer.type).toBe('openpgp');
      if (verdict.evidence.signer.type === 'openpgp')
        expect(verdict.evidence.signer.keyFingerprint).toBe(fpr[name]);
    }
  });

  it('applies matchCommitter to the user id emails', async () => {
    const ed = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.ed } });
    const rsa = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.rsa } });
    const ok = await verify({ commit: ed, matchCommitter: true });
    expect(ok.verified, JSON.stringify(ok)).toBe(true);
    if (ok.verified) expect(ok.evidence.signer.principal).toBe('committer@example.com');
    expectRejected(await verify({ commit: rsa, matchCommitter: true }), 'CommitterMismatch');
  });

  it('rejects an unknown key, a tampered body and a malformed block', async () => {
    const untrusted = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.untrusted } });
    expectRejected(await verify({ commit: untrusted }), 'UntrustedSigner', /not a trusted signer/);

    const signed = await repo.commit({
      sign: { format: 'openpgp', gpg, fingerprint: fpr.ed },
      message: 'ship it\n',
    });
    const raw = (await repo.readRaw(signed)).toString('latin1').replace('ship it', 'ship that');
    const tampered = await repo.writeRaw('commit', Buffer.from(raw, 'latin1'));
    expectRejected(await verify({ commit: tampered }), 'InvalidSignature');

    const parsed = parseCommit(await repo.readRaw(signed));
    if (parsed.signature === undefined) throw new Error('unsigned');
    const armored = '-----BEGIN PGP SIGNATURE-----\n\nAAAAAAAA\n=AAAA\n-----END PGP SIGNATURE-----\n';
    const broken = reinsertCommitSignature(parsed.payload, {
      ...parsed.signature,
      armored,
      bytes: new TextEncoder().encode(armored),
    });
    expectRejected(await verify({ commit: await repo.writeRaw('commit', broken) }), 'InvalidSignature');
  });

  it('keeps a CRLF message verbatim', async () => {
    const commit = await repo.commit({
      sign: { format: 'openpgp', gpg, fingerprint: fpr.ed },
      message: 'crlf\r\nbody\r\n',
      verbatim: true,
    });
    expect((await repo.readRaw(commit)).includes('\r\n')).toBe(true);
    expect((await verify({ commit })).verified).toBe(true);
  });

  it('judges key expiry at verification time, as git does: a key that has expired since is refused', async () => {
    // Signed 2020-03 while the key was valid (it expires 2021-01): the signer-chosen signature date does
    // not save it once the clock has passed the expiry.
    expectRejected(
      await verify({ commit: commits.expiredNow }),
      'UntrustedSigner',
      /expired at 2020-12-31T.*judged at verification time/,
    );
    const before = await verify({ commit: commits.expiredNow, now: new Date('2020-06-01T00:00:00Z') });
    expect(before.verified, JSON.stringify(before)).toBe(true);
  });

  it('rejects a signature made after the key expired', async () => {
    expectRejected(await verify({ commit: commits.expiredBefore }), 'UntrustedSigner', /expired/);
  });

  it('rejects a revoked key', async () => {
    expectRejected(await verify({ commit: commits.revokedSigned }), 'UntrustedSigner', /revoked/);
  });

  it('verifies a signed annotated tag', async () => {
    const commit = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.ed } });
    const tag = await repo.tag('v2.0.0', commit, { sign: { format: 'openpgp', gpg, fingerprint: fpr.ed } });
    const verdict = await verify({ mode: 'TagAndHEAD', commit, tagObject: tag, tagName: 'v2.0.0' });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    const foreign = await repo.tag('v2.0.1', commit, {
      sign: { format: 'openpgp', gpg, fingerprint: fpr.untrusted },
    });
    expectRejected(
      await verify({ mode: 'Tag', commit, tagObject: foreign, tagName: 'v2.0.1' }),
      'UntrustedSigner',
    );
  });

  it('agrees with git verify-commit for current keys', async () => {
    const commit = await repo.commit({ sign: { format: 'openpgp', gpg, fingerprint: fpr.ed } });
    await runCommand('git', ['-c', `gpg.program=${await gpg.program()}`, 'verify-commit', commit], {
      cwd: repo.dir,
    });
    expect((await verify({ commit })).verified).toBe(true);
  });
});
