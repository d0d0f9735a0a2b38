import { describe, expect, it } from 'vitest';
import { matchPatternList, parseAllowedSigners, parseSshTime } from '../../src/verify/allowed-signers.ts';
import { checkSignature, type X509Checker } from '../../src/verify/check.ts';
import { parseCommit } from '../../src/verify/signed-object.ts';
import { parseSshSignature } from '../../src/verify/sshsig.ts';
import { createTrustMaterialCache, loadTrustMaterial } from '../../src/verify/trust.ts';
import { buildCommitObject, createInProcessSshSigner } from '../support/git-fixtures.ts';

const NOW = new Date();
const TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

function commitSignedWith(signature: (payload: Buffer) => string, email = 'dev@example.com') {
  const object = buildCommitObject({
    tree: TREE,
    parents: [],
    email,
    timestamp: 1_700_000_000,
    message: 'm\n',
  });
  return parseCommit(object.withSignature(signature(object.payload)));
}

describe('checkSignature (synthetic SSHSIG)', () => {
  it('accepts a good in-process ed25519 signature and reports principal/committer match', async () => {
    const signer = createInProcessSshSigner();
    const trust = await loadTrustMaterial({ allowed_signers: `dev@example.com ${signer.publicKeyLine}` });
    const check = await checkSignature(commitSignedWith(signer.sign), trust, { now: NOW });
    expect(check).toMatchObject({
      ok: true,
      committerMatches: true,
      signer: { type: 'ssh', principal: 'dev@example.com' },
    });
  });

  it('rejects a signature made for another namespace', async () => {
    const signer = createInProcessSshSigner();
    const trust = await loadTrustMaterial({ allowed_signers: `dev@example.com ${signer.publicKeyLine}` });
    const check = await checkSignature(
      commitSignedWith((p) => signer.sign(p, { namespace: 'file' })),
      trust,
      { now: NOW },
    );
    expect(check).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    if (!check.ok) expect(check.message).toContain('namespace');
  });

  it('verifies FIDO sk-ssh-ed25519 signatures and requires user presence unless no-touch-required', async () => {
    const signer = createInProcessSshSigner('ssh:');
    const strict = await loadTrustMaterial({ allowed_signers: `dev@example.com ${signer.publicKeyLine}` });
    const lenient = await loadTrustMaterial({
      allowed_signers: `dev@example.com no-touch-required ${signer.publicKeyLine}`,
    });
    expect(strict.problems).toEqual([]);
    expect((await checkSignature(commitSignedWith(signer.sign), strict, { now: NOW })).ok).toBe(true);
    const noTouch = commitSignedWith((p) => signer.sign(p, { skFlags: 0 }));
    expect(await checkSignature(noTouch, strict, { now: NOW })).toMatchObject({
      ok: false,
      reason: 'InvalidSignature',
    });
    expect((await checkSignature(noTouch, lenient, { now: NOW })).ok).toBe(true);
  });

  it('refuses SHA-1 ssh-rsa signature blobs', async () => {
    const signer = createInProcessSshSigner();
    const trust = await loadTrustMaterial({ allowed_signers: `dev@example.com ${signer.publicKeyLine}` });
    // Rebuild a valid SSHSIG whose inner signature type says ssh-rsa: refused before any crypto.
    const commit = commitSignedWith((payload) => {
      const armored = signer.sign(payload);
      const parsed = parseSshSignature(armored);
      const blob = Buffer.from(armored.split('\n').slice(1, -2).join(''), 'base64');
      const sigType = Buffer.from('ssh-ed25519');
      const at = blob.lastIndexOf(sigType);
      const swapped = Buffer.concat([
        blob.subarray(0, at - 8),
        u32(4 + 7 + 4 + parsed.signatureBytes.length),
        u32(7),
        Buffer.from('ssh-rsa'),
        blob.subarray(at + sigType.length),
      ]);
      return `-----BEGIN SSH SIGNATURE-----\n${swapped.toString('base64')}\n-----END SSH SIGNATURE-----\n`;
    });
    const check = await checkSignature(commit, trust, { now: NOW });
    expect(check).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    if (!check.ok) expect(check.message).toContain('SHA-1');
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

describe('x509 plumbing', () => {
  const armored = '-----BEGIN SIGNED MESSAGE-----\nMIAG\n-----END SIGNED MESSAGE-----\n';
  const commit = commitSignedWith(() => armored);

  it('is UntrustedSigner without a checker', async () => {
    const check = await checkSignature(commit, await loadTrustMaterial({}), { now: NOW });
    expect(check).toMatchObject({ ok: false, reason: 'UntrustedSigner' });
  });

  it('delegates to the checker with payload, armor and committer, and fails closed on a throw', async () => {
    const seen: unknown[] = [];
    const checker: X509Checker = async (payload, text, identity) => {
      seen.push(Buffer.from(payload).toString(), text, identity?.email);
      return {
        ok: true,
        signer: { type: 'x509', identity: 'dev@example.com', principal: 'dev@example.com' },
        committerMatches: true,
      };
    };
    const check = await checkSignature(commit, await loadTrustMaterial({}), {
      now: NOW,
      x509Checker: checker,
    });
    expect(check.ok).toBe(true);
    expect(seen[0]).not.toContain('gpgsig');
    expect(seen.slice(1)).toEqual([armored, 'dev@example.com']);
    const throwing: X509Checker = async () => {
      throw new Error('boom');
    };
    expect(
      await checkSignature(commit, await loadTrustMaterial({}), { now: NOW, x509Checker: throwing }),
    ).toMatchObject({ ok: false, reason: 'InvalidSignature' });
  });
});

describe('allowed signers parsing', () => {
  it('parses options, quoted principals, globs and times', () => {
    const signer = createInProcessSshSigner();
    const result = parseAllowedSigners(
      `"a@x,*@team.example" namespaces="git,file",valid-after="20240101",valid-before="20250102030405Z" ${signer.publicKeyLine}\n`,
      'allowed_signers',
    );
    expect(result.problems).toEqual([]);
    const entry = result.entries[0];
    expect(entry?.principals).toEqual(['a@x', '*@team.example']);
    expect(entry?.namespaces).toEqual(['git', 'file']);
    expect(entry?.validAfter?.toISOString()).toBe('2024-01-01T00:00:00.000Z');
    expect(entry?.validBefore?.toISOString()).toBe('2025-01-02T03:04:05.000Z');
    expect(parseSshTime('202401011230').toISOString()).toBe('2024-01-01T12:30:00.000Z');
    expect(matchPatternList('bob@team.example', ['*@team.example'])).toBe(true);
    expect(matchPatternList('bob@team.example', ['*@team.example', '!bob@*'])).toBe(false);
    expect(matchPatternList('Bob@x', ['bob@x'])).toBe(false);
  });

  it('reports unknown options and key type mismatches with key name and line', () => {
    const signer = createInProcessSshSigner();
    const [, base64] = signer.publicKeyLine.split(' ');
    const result = parseAllowedSigners(
      `a@x frobnicate ${signer.publicKeyLine}\n\nb@x ecdsa-sha2-nistp256 ${base64}\n`,
      'team.pub',
    );
    expect(result.entries).toEqual([]);
    expect(result.problems.map((p) => [p.code, p.context.keyName, p.context.line])).toEqual([
      ['UnsupportedOption', 'team.pub', 1],
      ['MalformedKey', 'team.pub', 3],
    ]);
  });

  it('refuses private OpenPGP key material and reports empty .asc files', async () => {
    const trust = await loadTrustMaterial({
      'leak.asc': '-----BEGIN PGP PRIVATE KEY BLOCK-----\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n',
      'empty.asc': 'nothing here',
    });
    expect(trust.openpgp).toEqual([]);
    expect(trust.problems.map((p) => [p.code, p.context.keyName])).toEqual([
      ['MalformedKey', 'empty.asc'],
      ['PrivateKeyMaterial', 'leak.asc'],
    ]);
    expect(trust.problems.every((p) => !p.message.includes('xx'))).toBe(true);
  });
});

describe('createTrustMaterialCache', () => {
  it('parses once per content and evicts the least recently used', async () => {
    const cache = createTrustMaterialCache(2);
    const signer = createInProcessSshSigner();
    const a = { allowed_signers: `a@x ${signer.publicKeyLine}` };
    const first = await cache.load(a);
    expect(await cache.load({ ...a })).toBe(first);
    await cache.load({ allowed_signers: `b@x ${signer.publicKeyLine}` });
    await cache.load({ allowed_signers: `c@x ${signer.publicKeyLine}` });
    expect(cache.size).toBe(2);
    expect(await cache.load(a)).not.toBe(first);
  });
});
