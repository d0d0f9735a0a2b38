/**
 * Parser for ssh-keygen's allowed-signers format (`principals [options] keytype base64 [comment]`) and for
 * `*.pub` files (`keytype base64 comment`). Pure: returns entries plus per-line problems.
 *
 * Principals, as ssh-keygen sees them:
 * - In an allowed-signers file the first field is always the principals. A `.pub`-format line there
 *   (`ssh-ed25519 AAAA… mallory@example.com`) has none: ssh-keygen reports it as an invalid line
 *   and skips it, and so does this parser (with the line number).
 * - A key from a `*.pub` file names no principal at all (its comment is not one): it verifies signatures,
 *   but with matchCommitter it matches no committer.
 *
 * Differences from ssh-keygen, on purpose:
 * - `valid-after`/`valid-before` without a trailing `Z` are read as UTC (ssh-keygen uses local time).
 * - `cert-authority` (SSH certificates) is refused as unsupported; the line is skipped and reported.
 */
import { VerificationError } from './errors.ts';
import { decodeStrictBase64, isSshKeyType, parseSshPublicKeyBlob, type SshPublicKey } from './sshsig.ts';

export interface AllowedSigner {
  /** Principal patterns (`*`, `?` globs, `!` negation) as in ssh-keygen's match_pattern_list; empty for a `*.pub` key. */
  readonly principals: readonly string[];
  /** Namespace patterns from `namespaces="..."`; undefined means every namespace. */
  readonly namespaces: readonly string[] | undefined;
  readonly validAfter: Date | undefined;
  readonly validBefore: Date | undefined;
  readonly noTouchRequired: boolean;
  readonly key: SshPublicKey;
  /** Where the entry came from. */
  readonly source: { readonly keyName: string; readonly line: number; readonly comment: string | undefined };
}

/** `allowed_signers`: ssh-keygen's format. `pub`: a `*.pub` file (keys without principals). */
export type SignersFileFormat = 'allowed_signers' | 'pub';

export interface AllowedSignersParseResult {
  readonly entries: readonly AllowedSigner[];
  readonly problems: readonly VerificationError[];
}

/** Splits on whitespace, keeping double-quoted sections (with their quotes) inside one token. */
function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of line) {
    if (char === '"') quoted = !quoted;
    if (!quoted && (char === ' ' || char === '\t')) {
      if (current !== '') tokens.push(current);
      current = '';
      continue;
    }
    current += char;
  }
  if (quoted) throw new VerificationError('MalformedKey', 'unterminated quote');
  if (current !== '') tokens.push(current);
  return tokens;
}

function splitOptions(options: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of options) {
    if (char === '"') quoted = !quoted;
    if (char === ',' && !quoted) {
      out.push(current);
      current = '';
      continue;
    }
    current += char;
  }
  out.push(current);
  return out;
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

/** Parses `YYYYMMDD[HHMM[SS]][Z]` as UTC. */
export function parseSshTime(value: string): Date {
  const match = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?Z?$/i.exec(value);
  if (match === null) throw new VerificationError('MalformedKey', `invalid time ${JSON.stringify(value)}`);
  const [, y, mo, d, h, mi, s] = match;
  const date = new Date(
    Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h ?? '0'), Number(mi ?? '0'), Number(s ?? '0')),
  );
  if (Number.isNaN(date.getTime())) throw new VerificationError('MalformedKey', `invalid time ${value}`);
  return date;
}

const compiledPatterns = new Map<string, RegExp>();

/** Compiles an ssh glob (`*`, `?`), case-sensitive like ssh-keygen; memoised (patterns come from trust files). */
function globToRegExp(pattern: string): RegExp {
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    let source = '';
    for (const char of pattern) {
      if (char === '*') source += '.*';
      else if (char === '?') source += '.';
      else source += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
    compiled = new RegExp(`^${source}$`, 's');
    if (compiledPatterns.size > 10_000) compiledPatterns.clear();
    compiledPatterns.set(pattern, compiled);
  }
  return compiled;
}

/** ssh's match_pattern_list: true when a positive pattern matches and no negated one does. */
export function matchPatternList(value: string, patterns: readonly string[]): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (globToRegExp(body).test(value)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function parseKey(keyType: string, base64: string): SshPublicKey {
  if (keyType.includes('-cert-v01@openssh.com')) {
    throw new VerificationError('UnsupportedKeyType', `SSH certificates (${keyType}) are not supported`);
  }
  if (!isSshKeyType(keyType))
    throw new VerificationError('UnsupportedKeyType', `unsupported key type ${keyType}`);
  const key = parseSshPublicKeyBlob(decodeStrictBase64(base64, 'MalformedKey'));
  if (key.keyType !== keyType) {
    throw new VerificationError(
      'MalformedKey',
      `key type ${keyType} does not match the encoded ${key.keyType}`,
    );
  }
  return key;
}

function parseLine(
  tokens: readonly string[],
  keyName: string,
  lineNumber: number,
  format: SignersFileFormat,
): AllowedSigner {
  const first = tokens[0] ?? '';
  const source = (comment: string | undefined) => ({ keyName, line: lineNumber, comment });
  if (isSshKeyType(first) || first.includes('-cert-v01@openssh.com')) {
    if (format === 'allowed_signers') {
      throw new VerificationError(
        'MalformedKey',
        `the line starts with the key type ${JSON.stringify(first)}, so it names no principal; an allowed_signers line is "principals [options] keytype key" (e.g. "alice@example.com ${first} AAAA…"), ssh-keygen refuses this line too`,
      );
    }
    // A *.pub key: no principal (the comment is kept for display only).
    const key = parseKey(first, tokens[1] ?? '');
    const comment = tokens.slice(2).join(' ') || undefined;
    return {
      principals: [],
      namespaces: undefined,
      validAfter: undefined,
      validBefore: undefined,
      noTouchRequired: false,
      key,
      source: source(comment),
    };
  }
  const principals = unquote(first)
    .split(',')
    .filter((p) => p !== '');
  if (principals.length === 0) throw new VerificationError('MalformedKey', 'empty principals');
  let index = 1;
  let namespaces: string[] | undefined;
  let validAfter: Date | undefined;
  let validBefore: Date | undefined;
  let noTouchRequired = false;
  const maybeOptions = tokens[index] ?? '';
  if (!isSshKeyType(maybeOptions) && !maybeOptions.includes('-cert-v01@openssh.com')) {
    index++;
    for (const option of splitOptions(maybeOptions)) {
      const eq = option.indexOf('=');
      const name = (eq === -1 ? option : option.slice(0, eq)).toLowerCase();
      const value = eq === -1 ? undefined : unquote(option.slice(eq + 1));
      if (name === 'cert-authority') {
        throw new VerificationError(
          'UnsupportedOption',
          'cert-authority (SSH certificates) is not supported',
        );
      } else if (name === 'namespaces' && value !== undefined) {
        namespaces = value.split(',').filter((n) => n !== '');
      } else if (name === 'valid-after' && value !== undefined) {
        validAfter = parseSshTime(value);
      } else if (name === 'valid-before' && value !== undefined) {
        validBefore = parseSshTime(value);
      } else if (name === 'no-touch-required' && value === undefined) {
        noTouchRequired = true;
      } else {
        throw new VerificationError('UnsupportedOption', `unsupported option ${JSON.stringify(name)}`);
      }
    }
  }
  const keyType = tokens[index] ?? '';
  const key = parseKey(keyType, tokens[index + 1] ?? '');
  const comment = tokens.slice(index + 2).join(' ') || undefined;
  return { principals, namespaces, validAfter, validBefore, noTouchRequired, key, source: source(comment) };
}

/** Parses one allowed-signers (or `.pub`) file. Bad lines are skipped and reported, naming the key and line. */
export function parseAllowedSigners(
  text: string,
  keyName: string,
  format: SignersFileFormat = 'allowed_signers',
): AllowedSignersParseResult {
  const entries: AllowedSigner[] = [];
  const problems: VerificationError[] = [];
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const lineNumber = index + 1;
    try {
      entries.push(parseLine(tokenize(line), keyName, lineNumber, format));
    } catch (error) {
      const code = error instanceof VerificationError ? error.code : 'MalformedKey';
      const detail = error instanceof Error ? error.message : String(error);
      problems.push(
        new VerificationError(code, `signers key ${JSON.stringify(keyName)} line ${lineNumber}: ${detail}`, {
          keyName,
          line: lineNumber,
        }),
      );
    }
  });
  return { entries, problems };
}

/** The latest time ssh-keygen can be asked about (git passes `-Overify-time=YYYYMMDDHHMMSS`). */
const LAST_SSH_TIME = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * Is `entry` usable for `namespace` at `at` (the committer timestamp, like git's -Overify-time)? `at`
 * undefined means the timestamp is out of range: a line with a validity window then refuses it.
 */
export function entryAllows(
  entry: AllowedSigner,
  namespace: string,
  at: Date | undefined,
): string | undefined {
  if (entry.namespaces !== undefined && !matchPatternList(namespace, entry.namespaces)) {
    return `namespace ${namespace} is not allowed for this key (namespaces="${entry.namespaces.join(',')}")`;
  }
  if (entry.validAfter === undefined && entry.validBefore === undefined) return undefined;
  const time = at?.getTime();
  if (time === undefined || !Number.isFinite(time) || time < 0 || time > LAST_SSH_TIME) {
    return 'the signature time (committer timestamp) is out of range, so the valid-after/valid-before window of this key cannot be judged';
  }
  if (entry.validAfter !== undefined && time < entry.validAfter.getTime()) {
    return `key is only valid after ${entry.validAfter.toISOString()}, signature time is ${new Date(time).toISOString()}`;
  }
  if (entry.validBefore !== undefined && time > entry.validBefore.getTime()) {
    return `key was only valid before ${entry.validBefore.toISOString()}, signature time is ${new Date(time).toISOString()}`;
  }
  return undefined;
}
