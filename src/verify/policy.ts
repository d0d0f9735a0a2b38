/** The verification policy: a pure decision from signature checks and ancestry facts to a Verdict. */

import { quote } from '../util/quote.ts';
import type { SignatureCheck, Signer, Verdict, VerdictReason, VerifyMode } from './types.ts';

export interface CheckedObject {
  readonly oid: string;
  readonly check: SignatureCheck;
}

export interface CheckedTag extends CheckedObject {
  /** The `tag` header of the tag object. */
  readonly name: string;
  /** The name of the ref the tag was reached through (`v1.2.0` for `refs/tags/v1.2.0`); undefined when unknown. */
  readonly refName: string | undefined;
  /** The object the tag points to, and its type, as written in the tag. */
  readonly target: string;
  readonly targetType: string;
}

export interface PolicyInput {
  readonly mode: VerifyMode;
  /** The new revision (commit oid). */
  readonly commit: string;
  /** Check of the head commit (required for HEAD, TagAndHEAD and Range). */
  readonly head?: CheckedObject;
  /** Tag and TagAndHEAD: the annotated tag (undefined when the ref is not an annotated tag). */
  readonly tag?: CheckedTag;
  /** Range: checks of every commit reachable from `commit` and not from `lastAppliedCommit`. */
  readonly range?: readonly CheckedObject[];
  /** Range: true when the range was cut at maxRangeCommits. */
  readonly rangeTruncated?: boolean;
  readonly lastAppliedCommit?: string;
  /** Fact: does `commit` descend from `lastAppliedCommit`? undefined when unknown (fails closed). */
  readonly descendsFromLastApplied?: boolean;
  /** Extra detail when ancestry could not be established. */
  readonly ancestryDetail?: string;
  readonly allowRollback: boolean;
  readonly matchCommitter: boolean;
  readonly now: Date;
}

const short = (oid: string) => oid.slice(0, 12);
/** A tag name from the (untrusted) tag object, quoted and cut to a readable length. */

function reject(reason: VerdictReason, commit: string, message: string): Verdict {
  return { verified: false, reason, commit, message };
}

const ADVICE: Record<'Unsigned' | 'UntrustedSigner' | 'InvalidSignature', string> = {
  Unsigned: 'sign it (git commit -S / git tag -s) with a key listed in the signers Secret',
  UntrustedSigner:
    "if this signer should be trusted, add its public key to the signers Secret; otherwise don't deploy it",
  InvalidSignature: 'the object or its signature was altered or is malformed; re-sign it with a trusted key',
};

function describe(what: string, oid: string): string {
  return `${what} ${short(oid)}`;
}

/** Fails when the check is not ok or (matchCommitter) the signer does not match the committer. */
function judge(
  what: string,
  checked: CheckedObject,
  matchCommitter: boolean,
  identityWord: string,
): { ok: true; signer: Signer } | { ok: false; verdict: Verdict } {
  const check = checked.check;
  if (!check.ok) {
    return {
      ok: false,
      verdict: reject(
        check.reason,
        checked.oid,
        `${describe(what, checked.oid)}: ${check.message}; ${ADVICE[check.reason]}`,
      ),
    };
  }
  if (matchCommitter && !check.committerMatches) {
    const who = check.signer.principal === '' ? 'the signer' : `principal ${quote(check.signer.principal)}`;
    return {
      ok: false,
      verdict: reject(
        'CommitterMismatch',
        checked.oid,
        `${describe(what, checked.oid)} is signed by ${who}, which does not match the ${identityWord} email${check.mismatch === undefined ? '' : ` (${check.mismatch})`}; with matchCommitter the signing identity must equal the ${identityWord} email (fix the allowed-signers principal / key user id, or the ${identityWord} email)`,
      ),
    };
  }
  return { ok: true, signer: check.signer };
}

/** Decides the verdict. Pure and total: missing facts fail closed. */
export function decideVerdict(input: PolicyInput): Verdict {
  const { mode, commit, matchCommitter } = input;
  const last = input.lastAppliedCommit;
  if (
    last !== undefined &&
    last !== commit &&
    !input.allowRollback &&
    input.descendsFromLastApplied !== true
  ) {
    const why =
      input.descendsFromLastApplied === false
        ? 'does not descend from'
        : `could not be shown to descend from${input.ancestryDetail ? ` (${input.ancestryDetail})` : ''}`;
    return reject(
      'RollbackRejected',
      commit,
      `revision ${short(commit)} ${why} the last applied revision ${short(last)}; push a commit on top of ${short(last)}, or set spec.verify.allowRollback: true to allow going back`,
    );
  }

  let tagEvidence: { oid: string; name: string; signer: Signer } | undefined;
  if (mode === 'Tag' || mode === 'TagAndHEAD') {
    const tag = input.tag;
    if (tag === undefined) {
      return reject(
        'Unsigned',
        commit,
        `revision ${short(commit)} was not reached through an annotated tag; mode ${mode} needs a signed annotated tag (git tag -s), lightweight tags cannot be signed`,
      );
    }
    if (tag.targetType !== 'commit' || tag.target !== commit) {
      return reject(
        'InvalidSignature',
        tag.oid,
        `tag ${quote(tag.name)} (${short(tag.oid)}) points to ${tag.targetType} ${short(tag.target)}, not to the revision ${short(commit)}; re-create the signed tag on the intended commit`,
      );
    }
    const judged = judge(`tag ${quote(tag.name)}`, tag, matchCommitter, 'tagger');
    if (!judged.ok) return judged.verdict;
    if (tag.refName !== tag.name) {
      const ref = tag.refName === undefined ? 'a tag ref whose name is unknown' : `refs/tags/${tag.refName}`;
      return reject(
        'InvalidSignature',
        tag.oid,
        `the signed tag object ${short(tag.oid)} is named ${quote(tag.name)} but was reached through ${ref}; a signed tag is only valid under its own name (sign a tag named ${quote(tag.refName ?? tag.name)}, or point spec.ref at ${quote(tag.name)})`,
      );
    }
    tagEvidence = { oid: tag.oid, name: tag.name, signer: judged.signer };
  }

  let headSigner: Signer | undefined;
  if (mode === 'HEAD' || mode === 'TagAndHEAD' || mode === 'Range') {
    const head = input.head;
    if (head === undefined || head.oid !== commit) {
      return reject(
        'InvalidSignature',
        commit,
        `commit ${short(commit)} was not checked; refusing to deploy it`,
      );
    }
    const judged = judge('commit', head, matchCommitter, 'committer');
    if (!judged.ok) return judged.verdict;
    headSigner = judged.signer;
  }

  let commitsVerified: number | undefined;
  if (mode === 'Range') {
    const range = input.range;
    if (range === undefined) {
      return reject(
        'InvalidSignature',
        commit,
        `the commits before ${short(commit)} were not checked; refusing`,
      );
    }
    if (input.rangeTruncated === true) {
      return reject(
        'RangeTooLarge',
        commit,
        `more than ${range.length} new commits lead to ${short(commit)}; verify a smaller step (deploy an intermediate commit first) or raise the range limit`,
      );
    }
    for (const checked of range) {
      const judged = judge('commit', checked, matchCommitter, 'committer');
      if (!judged.ok) {
        const verdict = judged.verdict;
        if (verdict.verified || checked.oid === commit) return verdict;
        return { ...verdict, message: `${verdict.message} (in the range leading to ${short(commit)})` };
      }
    }
    const oids = new Set(range.map((c) => c.oid));
    oids.add(commit);
    commitsVerified = oids.size;
  }

  const signer = mode === 'Tag' ? tagEvidence?.signer : headSigner;
  if (signer === undefined)
    return reject('InvalidSignature', commit, `no signer established for ${short(commit)}`);
  return {
    verified: true,
    evidence: {
      commit,
      mode,
      signer,
      verifiedAt: input.now.toISOString(),
      ...(tagEvidence === undefined ? {} : { tag: tagEvidence }),
      ...(commitsVerified === undefined ? {} : { commitsVerified }),
    },
  };
}
