import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ParsedCommit, parseCommit, reinsertCommitSignature } from '../../src/verify/signed-object.ts';
import { loadTrustMaterial, type TrustMaterial } from '../../src/verify/trust.ts';
import type { Verdict } from '../../src/verify/types.ts';
import { type VerifyRevisionInput, verifyRevision } from '../../src/verify/verify-revision.ts';
import {
  allowedSignersLine,
  createRepo,
  GitCliRevisionReader,
  generateSshKey,
  makeTempDir,
  runCommand,
  type SshKeyFixture,
  sshKeygenVerify,
  type TestRepo,
} from '../support/git-fixtures.ts';

const NOW = new Date('2026-01-01T00:00:00Z');

let repo: TestRepo;
let keyDir: string;
let keys: Record<'ed25519' | 'p256' | 'p384' | 'p521' | 'rsa' | 'untrusted' | 'windowed', SshKeyFixture>;
let allowedSigners: string;
let trust: TrustMaterial;
let reader: GitCliRevisionReader;

function verify(partial: Partial<VerifyRevisionInput> & { commit: string }): Promise<Verdict> {
  return verifyRevision({
    reader,
    mode: 'HEAD',
    allowRollback: false,
    matchCommitter: false,
    trust,
    now: NOW,
    ...partial,
  });
}

function expectRejected(verdict: Verdict, reason: string, commit?: string): void {
  expect(verdict.verified, JSON.stringify(verdict)).toBe(false);
  if (!verdict.verified) {
    expect(verdict.reason, verdict.message).toBe(reason);
    if (commit !== undefined) expect(verdict.commit).toBe(commit);
    expect(verdict.message.length).toBeGreaterThan(20);
  }
}

async function fingerprintOf(key: SshKeyFixture): Promise<string> {
  const out = await runCommand('ssh-keygen', ['-l', '-E', 'sha256', '-f', key.publicKeyPath]);
  return out.stdout.toString().split(' ')[1] ?? '';
}

beforeAll(async () => {
  keyDir = await makeTempDir('sshkeys');
  const [ed25519, p256, p384, p521, rsa, untrusted, windowed] = await Promise.all([
    generateSshKey(keyDir, 'ed25519', 'alice@example.com'),
    generateSshKey(keyDir, 'ecdsa-p256'),
    generateSshKey(keyDir, 'ecdsa-p384'),
    generateSshKey(keyDir, 'ecdsa-p521'),
    generateSshKey(keyDir, 'rsa'),
    generateSshKey(keyDir, 'ed25519', 'mallory@example.com'),
    generateSshKey(keyDir, 'ed25519', 'windowed@example.com'),
  ]);
  keys = { ed25519, p256, p384, p521, rsa, untrusted, windowed };
  allowedSigners = [
    '# team signers',
    allowedSignersLine('alice@example.com,committer@example.com', ed25519, 'namespaces="git"'),
    allowedSignersLine('*@example.com', p256),
    allowedSignersLine('committer@example.com', p384),
    allowedSignersLine('committer@example.com', p521),
    allowedSignersLine('"committer@example.com"', rsa, 'namespaces="file,git"'),
    allowedSignersLine('committer@example.com', windowed, 'valid-after="20231101Z",valid-before="20231201Z"'),
  ].join('\n');
  trust = await loadTrustMaterial({ allowed_signers: allowedSigners });
  expect(trust.problems).toEqual([]);
  repo = await createRepo();
  reader = new GitCliRevisionReader(repo.dir);
});

afterAll(async () => {
  await repo?.close();
  if (keyDir) await runCommand('rm', ['-rf', keyDir]);
});

describe('SSH-signed HEAD', () => {
  it.each(['ed25519', 'p256', 'p384', 'p521', 'rsa'] as const)(
    'accepts a commit signed with %s',
    async (name) => {
      const commit = await repo.commit({ sign: { format: 'ssh', key: keys[name] } });
      const verdict = await verify({ commit });
      expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
      if (verdict.verified) {
        expect(verdict.evidence.commit).toBe(commit);
        expect(verdict.evidence.mode).toBe('HEAD');
        expect(verdict.evidence.verifiedAt).toBe(NOW.toISOString());
        expect(verdict.evidence.signer).toEqual({
          type: 'ssh',
          keyFingerprint: await fingerprintOf(keys[name]),
          principal: 'committer@example.com',
        });
      }
    },
  );

  it('rejects an unsigned HEAD as Unsigned', async () => {
    const commit = await repo.commit();
    expectRejected(await verify({ commit }), 'Unsigned', commit);
  });

  it('rejects a commit signed by an unknown key as UntrustedSigner', async () => {
    const commit = await repo.commit({ sign: { format: 'ssh', key: keys.untrusted } });
    const verdict = await verify({ commit });
    expectRejected(verdict, 'UntrustedSigner', commit);
    if (!verdict.verified) expect(verdict.message).toContain(await fingerprintOf(keys.untrusted));
  });

  it('accepts a plain .pub key file, which names no principal: it matches no committer', async () => {
    const commit = await repo.commit({ sign: { format: 'ssh', key: keys.untrusted } });
    const pubTrust = await loadTrustMaterial({ 'mallory.pub': `${keys.untrusted.publicKeyLine}\n` });
    const verdict = await verify({ commit, trust: pubTrust });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    if (verdict.verified) expect(verdict.evidence.signer.principal).toBe('');
    const matched = await verify({ commit, trust: pubTrust, matchCommitter: true });
    expectRejected(matched, 'CommitterMismatch', commit);
    if (!matched.verified) expect(matched.message).toContain('*.pub file, which names no principal');
  });

  it('rejects a signature moved onto another commit', async () => {
    const signed = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const unsigned = await repo.commit();
    const donor = parseCommit(await repo.readRaw(signed));
    const target = parseCommit(await repo.readRaw(unsigned));
    if (donor.signature === undefined) throw new Error('donor unsigned');
    const forged = reinsertCommitSignature(target.payload, { ...donor.signature, offset: headerEnd(target) });
    const forgedOid = await repo.writeRaw('commit', forged);
    expectRejected(await verify({ commit: forgedOid }), 'InvalidSignature', forgedOid);
  });

  it('rejects a tampered commit body', async () => {
    const signed = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 }, message: 'deploy v1\n' });
    const raw = Buffer.from(await repo.readRaw(signed));
    const tampered = Buffer.from(raw.toString('latin1').replace('deploy v1', 'deploy v2'), 'latin1');
    const oid = await repo.writeRaw('commit', tampered);
    expectRejected(await verify({ commit: oid }), 'InvalidSignature', oid);
  });

  it('rejects malformed signature blocks as InvalidSignature (never throws)', async () => {
    const signed = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const parsed = parseCommit(await repo.readRaw(signed));
    const sig = parsed.signature;
    if (sig === undefined) throw new Error('unsigned');
    const variants = [
      '-----BEGIN SSH SIGNATURE-----\nnot base64 at all!!\n-----END SSH SIGNATURE-----\n',
      '-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n',
      `${sig.armored.split('\n').slice(0, 3).join('\n')}\n`,
      '-----BEGIN SOMETHING ELSE-----\nAAAA\n-----END SOMETHING ELSE-----\n',
    ];
    for (const armored of variants) {
      const bytes = new TextEncoder().encode(armored);
      const raw = reinsertCommitSignature(parsed.payload, { ...sig, armored, bytes });
      const oid = await repo.writeRaw('commit', raw);
      expectRejected(await verify({ commit: oid }), 'InvalidSignature', oid);
    }
  });

  it('keeps a CRLF message verbatim', async () => {
    const commit = await repo.commit({
      sign: { format: 'ssh', key: keys.ed25519 },
      message: 'line one\r\nline two\r\n\r\n\r\n',
      verbatim: true,
    });
    const raw = await repo.readRaw(commit);
    expect(raw.includes('\r\n')).toBe(true);
    const verdict = await verify({ commit });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
  });

  it('requires the principal to equal the committer email with matchCommitter', async () => {
    const commit = await repo.commit({
      sign: { format: 'ssh', key: keys.p384 },
      committerEmail: 'bob@example.com',
    });
    expectRejected(await verify({ commit, matchCommitter: true }), 'CommitterMismatch', commit);
    expect((await verify({ commit, matchCommitter: false })).verified).toBe(true);
    // A glob principal matching the committer satisfies matchCommitter.
    const globbed = await repo.commit({
      sign: { format: 'ssh', key: keys.p256 },
      committerEmail: 'bob@example.com',
    });
    const verdict = await verify({ commit: globbed, matchCommitter: true });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    if (verdict.verified) expect(verdict.evidence.signer.principal).toBe('bob@example.com');
  });

  it('judges valid-after/valid-before at the committer timestamp', async () => {
    const inside = await repo.commit({ sign: { format: 'ssh', key: keys.windowed }, date: 1_700_000_000 }); // 2023-11-14
    const before = await repo.commit({ sign: { format: 'ssh', key: keys.windowed }, date: 1_690_000_000 }); // 2023-07
    const after = await repo.commit({ sign: { format: 'ssh', key: keys.windowed }, date: 1_710_000_000 }); // 2024-03
    expect((await verify({ commit: inside })).verified).toBe(true);
    expectRejected(await verify({ commit: before }), 'UntrustedSigner', before);
    expectRejected(await verify({ commit: after }), 'UntrustedSigner', after);
  });

  it('refuses a key whose namespaces exclude git', async () => {
    const fileOnly = await loadTrustMaterial({
      allowed_signers: allowedSignersLine('committer@example.com', keys.ed25519, 'namespaces="file"'),
    });
    const commit = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    expectRejected(await verify({ commit, trust: fileOnly }), 'UntrustedSigner', commit);
  });

  it('reports bad signers lines naming the key and line, and refuses cert-authority', async () => {
    const material = await loadTrustMaterial({
      allowed_signers: [
        allowedSignersLine('ok@example.com', keys.ed25519),
        allowedSignersLine('ca@example.com', keys.p256, 'cert-authority'),
        'broken@example.com ssh-ed25519 AAAA',
      ].join('\n'),
      'other.txt': 'ignored',
    });
    expect(material.ssh).toHaveLength(1);
    expect(material.ignoredKeys).toEqual(['other.txt']);
    expect(material.problems.map((p) => [p.code, p.context.keyName, p.context.line])).toEqual([
      ['UnsupportedOption', 'allowed_signers', 2],
      ['MalformedKey', 'allowed_signers', 3],
    ]);
  });
});

/** Offset right after the last header of a commit (where git puts gpgsig). */
function headerEnd(commit: ParsedCommit): number {
  const blank = Buffer.from(commit.payload).indexOf('\n\n');
  return blank + 1;
}

describe('ssh-keygen parity', () => {
  it('agrees with ssh-keygen -Y verify on good, tampered, untrusted and out-of-window signatures', async () => {
    const cases: { oid: string; principal: string }[] = [];
    for (const name of ['ed25519', 'p256', 'p384', 'p521', 'rsa', 'untrusted', 'windowed'] as const) {
      cases.push({
        oid: await repo.commit({ sign: { format: 'ssh', key: keys[name] } }),
        principal: 'committer@example.com',
      });
    }
    cases.push({
      oid: await repo.commit({ sign: { format: 'ssh', key: keys.windowed }, date: 1_690_000_000 }),
      principal: 'committer@example.com',
    });
    cases.push({
      oid: await repo.commit({
        sign: { format: 'ssh', key: keys.p256 },
        committerEmail: 'nobody@elsewhere.org',
      }),
      principal: 'nobody@elsewhere.org',
    });
    const signed = cases[0]?.oid ?? '';
    const tampered = Buffer.from(
      (await repo.readRaw(signed)).toString('latin1').replace('commit', 'kommit'),
      'latin1',
    );
    cases.push({ oid: await repo.writeRaw('commit', tampered), principal: 'committer@example.com' });
    const dir = await makeTempDir('parity');
    const outcomes = new Set<boolean>();
    try {
      for (const { oid, principal } of cases) {
        const parsed = parseCommit(await repo.readRaw(oid));
        // ssh-keygen -I <committer email> corresponds to matchCommitter: true
        expect(principal).toBe(parsed.committer.email);
        const ours = await verify({ commit: oid, matchCommitter: true });
        const theirs = await sshKeygenVerify({
          allowedSigners: `${allowedSigners}\n`,
          principal,
          signature: parsed.signature?.armored ?? '',
          payload: parsed.payload,
          verifyTime: parsed.committer.timestamp,
          dir,
        });
        expect(ours.verified, `${oid}: ${JSON.stringify(ours)}`).toBe(theirs);
        outcomes.add(theirs);
      }
    } finally {
      await runCommand('rm', ['-rf', dir]);
    }
    expect([...outcomes].sort()).toEqual([false, true]);
  });

  it('verifies the same signature bytes git stores (git verify-commit agrees)', async () => {
    const commit = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const signersFile = `${keyDir}/git-allowed`;
    await runCommand('sh', ['-c', `cat > '${signersFile}'`], { input: `${allowedSigners}\n` });
    await repo.git(['-c', `gpg.ssh.allowedSignersFile=${signersFile}`, 'verify-commit', commit]);
    expect((await verify({ commit })).verified).toBe(true);
    expect((await readFile(signersFile, 'utf8')).length).toBeGreaterThan(0);
  });
});

describe('Range, rollback and tags (SSH)', () => {
  it('rejects an unsigned commit inside a Range, and one brought in by a merge', async () => {
    const base = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const unsigned = await repo.commit();
    const head = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    expectRejected(
      await verify({ mode: 'Range', commit: head, lastAppliedCommit: base }),
      'Unsigned',
      unsigned,
    );
    expect((await verify({ mode: 'HEAD', commit: head, lastAppliedCommit: base })).verified).toBe(true);

    // via a merge: side branch holds an unsigned commit, the merge itself is signed
    const mainStart = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    await repo.git(['checkout', '-q', '-b', 'side']);
    const sideUnsigned = await repo.commit();
    await repo.git(['checkout', '-q', 'main']);
    await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const merge = await repo.merge('side', { sign: { format: 'ssh', key: keys.ed25519 } });
    expectRejected(
      await verify({ mode: 'Range', commit: merge, lastAppliedCommit: mainStart }),
      'Unsigned',
      sideUnsigned,
    );
  });

  it('accepts a fully signed Range including merges', async () => {
    const start = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    await repo.git(['checkout', '-q', '-b', 'side2']);
    await repo.commit({ sign: { format: 'ssh', key: keys.p256 } });
    await repo.git(['checkout', '-q', 'main']);
    await repo.commit({ sign: { format: 'ssh', key: keys.rsa } });
    const merge = await repo.merge('side2', { sign: { format: 'ssh', key: keys.ed25519 } });
    const verdict = await verify({ mode: 'Range', commit: merge, lastAppliedCommit: start });
    expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    if (verdict.verified) expect(verdict.evidence.commitsVerified).toBe(3);
    expectRejected(
      await verify({ mode: 'Range', commit: merge, lastAppliedCommit: start, maxRangeCommits: 2 }),
      'RangeTooLarge',
      merge,
    );
  });

  it('rejects a rollback to an older signed commit unless allowRollback', async () => {
    const older = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const newer = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    expectRejected(await verify({ commit: older, lastAppliedCommit: newer }), 'RollbackRejected', older);
    expect((await verify({ commit: older, lastAppliedCommit: newer, allowRollback: true })).verified).toBe(
      true,
    );
    const range = await verify({
      mode: 'Range',
      commit: older,
      lastAppliedCommit: newer,
      allowRollback: true,
    });
    expect(range.verified, JSON.stringify(range)).toBe(true);
    expect((await verify({ commit: newer, lastAppliedCommit: older })).verified).toBe(true);
    expect((await verify({ commit: newer, lastAppliedCommit: newer })).verified).toBe(true);
  });

  it('verifies signed tags and rejects a moved tag', async () => {
    const released = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const tagOid = await repo.tag('v1.0.0', released, { sign: { format: 'ssh', key: keys.ed25519 } });
    const ok = await verify({ mode: 'Tag', commit: released, tagObject: tagOid, tagName: 'v1.0.0' });
    expect(ok.verified, JSON.stringify(ok)).toBe(true);
    if (ok.verified) expect(ok.evidence.tag?.name).toBe('v1.0.0');
    expect(
      (await verify({ mode: 'TagAndHEAD', commit: released, tagObject: tagOid, tagName: 'v1.0.0' })).verified,
    ).toBe(true);

    // the tag re-pointed to another commit, signed by an untrusted key
    const other = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const moved = await repo.tag('v1.0.0', other, {
      sign: { format: 'ssh', key: keys.untrusted },
      force: true,
    });
    expectRejected(
      await verify({ mode: 'Tag', commit: other, tagObject: moved, tagName: 'v1.0.0' }),
      'UntrustedSigner',
      moved,
    );
    // the old (trusted) tag object presented for a different commit
    expectRejected(
      await verify({ mode: 'Tag', commit: other, tagObject: tagOid, tagName: 'v1.0.0' }),
      'InvalidSignature',
      tagOid,
    );
    // unsigned annotated tag, lightweight tag, and unsigned head under TagAndHEAD
    const unsignedTag = await repo.tag('v1.0.1', other);
    expectRejected(
      await verify({ mode: 'Tag', commit: other, tagObject: unsignedTag, tagName: 'v1.0.1' }),
      'Unsigned',
      unsignedTag,
    );
    expectRejected(await verify({ mode: 'Tag', commit: other }), 'Unsigned', other);
    const unsignedHead = await repo.commit();
    const tagOnUnsigned = await repo.tag('v1.0.2', unsignedHead, {
      sign: { format: 'ssh', key: keys.ed25519 },
    });
    expect(
      (await verify({ mode: 'Tag', commit: unsignedHead, tagObject: tagOnUnsigned, tagName: 'v1.0.2' }))
        .verified,
    ).toBe(true);
    expectRejected(
      await verify({ mode: 'TagAndHEAD', commit: unsignedHead, tagObject: tagOnUnsigned, tagName: 'v1.0.2' }),
      'Unsigned',
      unsignedHead,
    );
  });

  it('reports a missing object as FetchFailed', async () => {
    const verdict = await verify({ commit: 'f'.repeat(40) });
    expectRejected(verdict, 'FetchFailed');
  });

  it('rethrows an abort instead of returning a verdict', async () => {
    const head = await repo.commit({ sign: { format: 'ssh', key: keys.ed25519 } });
    const controller = new AbortController();
    controller.abort(new Error('shutting down'));
    await expect(verify({ commit: head, signal: controller.signal })).rejects.toThrow('shutting down');
  });
});
