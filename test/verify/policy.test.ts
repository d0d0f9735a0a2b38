import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CheckedObject, decideVerdict, type PolicyInput } from '../../src/verify/policy.ts';
import type { SignatureCheck } from '../../src/verify/types.ts';

const NOW = new Date('2026-01-01T00:00:00Z');
const oid = (n: number) => n.toString(16).padStart(40, '0');
const good: SignatureCheck = {
  ok: true,
  signer: { type: 'ssh', keyFingerprint: 'SHA256:abc', principal: 'c@x' },
  committerMatches: true,
};
const goodOther: SignatureCheck = { ...good, committerMatches: false };
const bad = (reason: 'Unsigned' | 'UntrustedSigner' | 'InvalidSignature'): SignatureCheck => ({
  ok: false,
  reason,
  message: `it is ${reason}`,
});

const base: PolicyInput = {
  mode: 'HEAD',
  commit: oid(1),
  head: { oid: oid(1), check: good },
  allowRollback: false,
  matchCommitter: false,
  now: NOW,
};

describe('decideVerdict', () => {
  it('accepts a good HEAD with evidence', () => {
    expect(decideVerdict(base)).toEqual({
      verified: true,
      evidence: {
        commit: oid(1),
        mode: 'HEAD',
        signer: good.ok ? good.signer : undefined,
        verifiedAt: NOW.toISOString(),
      },
    });
  });

  it('fails closed on missing facts', () => {
    expect(decideVerdict({ ...base, head: undefined }).verified).toBe(false);
    expect(decideVerdict({ ...base, head: { oid: oid(2), check: good } }).verified).toBe(false);
    expect(decideVerdict({ ...base, mode: 'Range' }).verified).toBe(false);
    const unknownAncestry = decideVerdict({
      ...base,
      lastAppliedCommit: oid(9),
      ancestryDetail: 'object missing',
    });
    expect(unknownAncestry).toMatchObject({ verified: false, reason: 'RollbackRejected' });
    if (!unknownAncestry.verified) expect(unknownAncestry.message).toContain('object missing');
  });

  it('rejects rollback unless allowed, and names what to do', () => {
    const verdict = decideVerdict({ ...base, lastAppliedCommit: oid(9), descendsFromLastApplied: false });
    expect(verdict).toMatchObject({ verified: false, reason: 'RollbackRejected', commit: oid(1) });
    if (!verdict.verified) expect(verdict.message).toContain('allowRollback');
    expect(
      decideVerdict({
        ...base,
        lastAppliedCommit: oid(9),
        descendsFromLastApplied: false,
        allowRollback: true,
      }).verified,
    ).toBe(true);
    expect(decideVerdict({ ...base, lastAppliedCommit: oid(1) }).verified).toBe(true);
  });

  it('checks the tag target and the committer match', () => {
    const tag = { oid: oid(5), name: 'v1', refName: 'v1', target: oid(1), targetType: 'commit', check: good };
    expect(decideVerdict({ ...base, mode: 'Tag', head: undefined, tag }).verified).toBe(true);
    expect(decideVerdict({ ...base, mode: 'Tag', tag: { ...tag, target: oid(2) } })).toMatchObject({
      reason: 'InvalidSignature',
      commit: oid(5),
    });
    expect(
      decideVerdict({ ...base, mode: 'TagAndHEAD', tag, head: { oid: oid(1), check: bad('Unsigned') } }),
    ).toMatchObject({ reason: 'Unsigned', commit: oid(1) });
    expect(
      decideVerdict({ ...base, matchCommitter: true, head: { oid: oid(1), check: goodOther } }),
    ).toMatchObject({
      reason: 'CommitterMismatch',
    });
  });

  it('quotes untrusted tag names and principals escaped and capped, never raw', () => {
    const hostileName = `v1\u001b[2J\u202e${'x'.repeat(20_000)}`;
    const tag = {
      oid: oid(5),
      name: hostileName,
      refName: hostileName,
      target: oid(2),
      targetType: 'commit',
      check: good,
    };
    const wrongTarget = decideVerdict({ ...base, mode: 'Tag', head: undefined, tag });
    const hostilePrincipal: SignatureCheck = {
      ok: true,
      signer: { type: 'ssh', keyFingerprint: 'SHA256:abc', principal: `m@x\n${'y'.repeat(20_000)}` },
      committerMatches: false,
    };
    const mismatch = decideVerdict({
      ...base,
      matchCommitter: true,
      head: { oid: oid(1), check: hostilePrincipal },
    });
    for (const verdict of [wrongTarget, mismatch]) {
      expect(verdict.verified).toBe(false);
      if (verdict.verified) continue;
      expect(verdict.message.length).toBeLessThan(1_000);
      for (const raw of ['\u001b', '\u202e', '\n']) expect(verdict.message).not.toContain(raw);
      expect(verdict.message).toMatch(/more characters\)/);
    }
  });
});

// ---------- property: a Range with any unverified commit is never accepted ----------

const checkArb: fc.Arbitrary<SignatureCheck> = fc.oneof(
  fc.constant(good),
  fc.constant(goodOther),
  fc
    .constantFrom<'Unsigned' | 'UntrustedSigner' | 'InvalidSignature'>(
      'Unsigned',
      'UntrustedSigner',
      'InvalidSignature',
    )
    .map(bad),
);

describe('property: Range policy', () => {
  it('never accepts a Range containing an unverified commit', () => {
    fc.assert(
      fc.property(
        fc.array(checkArb, { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        fc.boolean(),
        fc.option(fc.boolean(), { nil: undefined }),
        fc.boolean(),
        (checks, matchCommitter, allowRollback, descends, truncated) => {
          const range: CheckedObject[] = checks.map((check, i) => ({ oid: oid(i + 1), check }));
          const head = range[0]!;
          const verdict = decideVerdict({
            mode: 'Range',
            commit: head.oid,
            head,
            range,
            rangeTruncated: truncated,
            lastAppliedCommit: oid(999),
            descendsFromLastApplied: descends,
            allowRollback,
            matchCommitter,
            now: NOW,
          });
          const unverified = range.find((c) => !c.check.ok || (matchCommitter && !c.check.committerMatches));
          if (unverified !== undefined || truncated || (!allowRollback && descends !== true)) {
            expect(verdict.verified).toBe(false);
          } else {
            expect(verdict.verified).toBe(true);
          }
          if (
            !verdict.verified &&
            unverified !== undefined &&
            !truncated &&
            (allowRollback || descends === true)
          ) {
            expect(verdict.commit).toBe(unverified.oid);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
