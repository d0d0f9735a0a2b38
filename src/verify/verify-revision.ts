/**
 * The verification orchestrator (imperative shell): reads objects through a RevisionReader, checks
 * signatures, gathers ancestry facts and lets the pure policy decide. Never throws except when aborted
 * (the abort reason is rethrown, which can never be mistaken for a verified revision).
 */
import { type CheckOptions, checkSignature, type X509Checker } from './check.ts';
import { describeError } from './errors.ts';
import { type CheckedObject, type CheckedTag, decideVerdict } from './policy.ts';
import {
  MalformedObjectError,
  type ObjectFormat,
  parseCommit,
  parseTag,
  type SignedObject,
} from './signed-object.ts';
import type { TrustMaterial } from './trust.ts';
import type { SignatureCheck, Verdict, VerifyMode } from './types.ts';

export type GitObjectType = 'commit' | 'tag' | 'tree' | 'blob';

export interface RevisionReader {
  readObject(oid: string, signal?: AbortSignal): Promise<{ type: GitObjectType; raw: Uint8Array }>;
  /** commits reachable from `head` and not from `since` (since undefined: all), merges included, newest first */
  listRange(head: string, since: string | undefined, signal?: AbortSignal): Promise<string[]>;
  /** true when `ancestor` is `descendant` or one of its ancestors */
  isAncestor(ancestor: string, descendant: string, signal?: AbortSignal): Promise<boolean>;
}

export interface VerifyRevisionInput {
  readonly reader: RevisionReader;
  readonly mode: VerifyMode;
  /** The new revision (commit oid, lower-case hex). */
  readonly commit: string;
  /** The annotated tag object oid when the ref is a tag. */
  readonly tagObject?: string;
  /**
   * The tag's ref name (`v1.2.0` for `refs/tags/v1.2.0`) with `tagObject`: the signed object's `tag` header
   * must equal it (a tag signed as `v2.0.0-rc1` is not `v2.0.0`). Missing: the tag is refused.
   */
  readonly tagName?: string;
  readonly lastAppliedCommit?: string;
  readonly allowRollback: boolean;
  readonly matchCommitter: boolean;
  readonly trust: TrustMaterial;
  readonly x509Checker?: X509Checker;
  readonly now: Date;
  readonly signal?: AbortSignal;
  /** Range mode: most commits verified in one step (default 10,000); more gives RangeTooLarge. */
  readonly maxRangeCommits?: number;
  /** Repository hash algorithm (default sha1). */
  readonly objectFormat?: ObjectFormat;
}

export const DEFAULT_MAX_RANGE_COMMITS = 10_000;
const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

class ReaderFailure extends Error {
  readonly oid: string;
  constructor(oid: string, message: string) {
    super(message);
    this.name = 'ReaderFailure';
    this.oid = oid;
  }
}

function fetchFailed(oid: string, message: string): Verdict {
  return {
    verified: false,
    reason: 'FetchFailed',
    commit: oid,
    message: `${message}; the repository could not be read completely, retry the fetch`,
  };
}

async function readTyped(
  reader: RevisionReader,
  oid: string,
  expected: 'commit' | 'tag',
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  let object: { type: GitObjectType; raw: Uint8Array };
  try {
    object = await reader.readObject(oid, signal);
  } catch (error) {
    signal?.throwIfAborted();
    throw new ReaderFailure(oid, `could not read ${expected} ${oid}: ${describeError(error)}`);
  }
  if (object.type !== expected) {
    throw new ReaderFailure(oid, `object ${oid} is a ${object.type}, expected a ${expected}`);
  }
  return object.raw;
}

async function checkObject(
  input: VerifyRevisionInput,
  oid: string,
  kind: 'commit' | 'tag',
  options: CheckOptions,
): Promise<{ check: SignatureCheck; parsed: SignedObject | undefined }> {
  const raw = await readTyped(input.reader, oid, kind, input.signal);
  let parsed: SignedObject;
  try {
    parsed =
      kind === 'commit'
        ? parseCommit(raw, { oid, objectFormat: input.objectFormat })
        : parseTag(raw, { oid, objectFormat: input.objectFormat });
  } catch (error) {
    const fsck = error instanceof MalformedObjectError ? ` (git fsck would flag it: ${error.fsckCause})` : '';
    return {
      check: {
        ok: false,
        reason: 'InvalidSignature',
        message: `malformed ${kind} object${fsck}: ${describeError(error)}`,
      },
      parsed: undefined,
    };
  }
  return { check: await checkSignature(parsed, input.trust, options), parsed };
}

/** Verifies `input.commit` (and tag / range) according to `input.mode`. */
export async function verifyRevision(input: VerifyRevisionInput): Promise<Verdict> {
  const { mode, commit, signal } = input;
  signal?.throwIfAborted();
  if (!OID.test(commit))
    return fetchFailed(commit, `revision ${JSON.stringify(commit)} is not a full object id`);
  const options: CheckOptions = { now: input.now, x509Checker: input.x509Checker };
  const policyBase = {
    mode,
    commit,
    lastAppliedCommit: input.lastAppliedCommit,
    allowRollback: input.allowRollback,
    matchCommitter: input.matchCommitter,
    now: input.now,
  };
  try {
    // Ancestry first: a rollback is rejected before any expensive work.
    let descendsFromLastApplied: boolean | undefined;
    let ancestryDetail: string | undefined;
    const last = input.lastAppliedCommit;
    if (last !== undefined && last !== commit && !input.allowRollback) {
      try {
        descendsFromLastApplied = await input.reader.isAncestor(last, commit, signal);
      } catch (error) {
        signal?.throwIfAborted();
        ancestryDetail = describeError(error);
      }
      if (descendsFromLastApplied !== true) {
        return decideVerdict({ ...policyBase, descendsFromLastApplied, ancestryDetail });
      }
    }

    let tag: CheckedTag | undefined;
    if ((mode === 'Tag' || mode === 'TagAndHEAD') && input.tagObject !== undefined) {
      const { check, parsed } = await checkObject(input, input.tagObject, 'tag', options);
      tag = {
        oid: input.tagObject,
        check,
        name: parsed?.kind === 'tag' ? parsed.tagName : '(unparseable)',
        refName: input.tagName,
        target: parsed?.kind === 'tag' ? parsed.object : '',
        targetType: parsed?.kind === 'tag' ? parsed.objectType : 'unknown',
      };
    }

    let head: CheckedObject | undefined;
    if (mode !== 'Tag') {
      head = { oid: commit, check: (await checkObject(input, commit, 'commit', options)).check };
    }

    let range: CheckedObject[] | undefined;
    let rangeTruncated = false;
    if (mode === 'Range' && head?.check.ok === true) {
      const limit = input.maxRangeCommits ?? DEFAULT_MAX_RANGE_COMMITS;
      let oids: string[];
      try {
        oids = await input.reader.listRange(commit, last, signal);
      } catch (error) {
        signal?.throwIfAborted();
        throw new ReaderFailure(
          commit,
          `could not list the commits from ${last ?? 'the root'} to ${commit}: ${describeError(error)}`,
        );
      }
      range = [];
      if (oids.length > limit) {
        rangeTruncated = true;
      } else {
        for (const oid of oids) {
          if (oid === commit) {
            range.push(head);
            continue;
          }
          signal?.throwIfAborted();
          const checked = { oid, check: (await checkObject(input, oid, 'commit', options)).check };
          range.push(checked);
          if (!checked.check.ok || (input.matchCommitter && !checked.check.committerMatches)) break;
        }
      }
    }

    return decideVerdict({
      ...policyBase,
      descendsFromLastApplied,
      ancestryDetail,
      ...(tag === undefined ? {} : { tag }),
      ...(head === undefined ? {} : { head }),
      ...(range === undefined ? {} : { range, rangeTruncated }),
    });
  } catch (error) {
    signal?.throwIfAborted();
    if (error instanceof ReaderFailure) return fetchFailed(error.oid, error.message);
    return fetchFailed(commit, `verification of ${commit} failed unexpectedly: ${describeError(error)}`);
  }
}
