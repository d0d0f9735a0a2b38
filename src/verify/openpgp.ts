/**
 * OpenPGP detached signatures over git payloads, with openpgp.js.
 *
 * Key validity policy (documented behaviour, as git sees it):
 * - Key expiry is judged at verification time (`now`, an injected clock), not at the signature's own
 *   creation time (which the signer chooses). gpg reports a signature by a key that has expired since as
 *   EXPKEYSIG ("Good signature ... [expired]", `%G?` = `Y`) and `git verify-commit` exits non-zero for it;
 *   Signet refuses it too (UntrustedSigner). Extending the key's expiry (and re-publishing the public key
 *   in the signers Secret) makes such history deployable again.
 * - A revoked primary key or signing subkey is rejected whatever the signature time (UntrustedSigner).
 * - A signature dated in the future beyond a 5-minute clock skew is rejected (InvalidSignature).
 * - matchCommitter compares the committer email with the user IDs that have a valid, unexpired and
 *   unrevoked self-certification at verification time; a user ID without one (added to the key by anyone,
 *   or revoked) is no identity of the key.
 */
import type * as OpenPgp from 'openpgp';
import type { KeyID, PublicKey, Signature, Subkey } from 'openpgp';
import { quote } from '../util/quote.ts';
import { describeError, VerificationError } from './errors.ts';
import type { GitIdentity, SignatureCheck } from './types.ts';

let openpgpModule: Promise<typeof OpenPgp> | undefined;

/** openpgp.js (2.4 MB of source and its key tables), loaded when the first OpenPGP key or signature is read. */
function openpgp(): Promise<typeof OpenPgp> {
  openpgpModule ??= import('openpgp');
  return openpgpModule;
}

export interface OpenPgpKeyEntry {
  readonly key: PublicKey;
  readonly keyName: string;
  /**
   * Lower-cased emails of every user ID, certified or not: for display only. matchCommitter uses
   * certifiedEmails() (self-certified user IDs at verification time).
   */
  readonly emails: readonly string[];
}

export interface OpenPgpKeysParseResult {
  readonly keys: readonly OpenPgpKeyEntry[];
  readonly problems: readonly VerificationError[];
}

const PUBLIC_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g;
const EMAIL_IN_USER_ID = /<([^<>]+)>\s*$/;

function emailOf(userId: string): string | undefined {
  const match = EMAIL_IN_USER_ID.exec(userId);
  return (match?.[1] ?? (userId.includes('@') ? userId.trim() : undefined))?.toLowerCase();
}

function emailsOf(key: PublicKey): string[] {
  return key.getUserIDs().flatMap((userId) => emailOf(userId) ?? []);
}

/**
 * Emails of the user IDs that have a valid self-certification at `now`, neither expired nor revoked
 * (openpgp.js User.verify). User IDs without one are not the key owner's word and never count.
 */
export function certifiedEmails(key: PublicKey, now: Date): Promise<string[]> {
  // One verification (one `now`) checks many commits by the same key: certify its user IDs once.
  const cached = certifiedCache.get(key);
  if (cached !== undefined && cached.at === now.getTime()) return cached.emails;
  const emails = readCertifiedEmails(key, now);
  certifiedCache.set(key, { at: now.getTime(), emails });
  return emails;
}

const certifiedCache = new WeakMap<PublicKey, { readonly at: number; readonly emails: Promise<string[]> }>();

async function readCertifiedEmails(key: PublicKey, now: Date): Promise<string[]> {
  const emails: string[] = [];
  for (const user of key.users) {
    const userId = user.userID?.userID;
    if (userId === undefined) continue;
    const certified = await user.verify(now).then(
      () => true,
      () => false,
    );
    const email = certified ? emailOf(userId) : undefined;
    if (email !== undefined) emails.push(email);
  }
  return emails;
}

/** Reads every armored public-key block in `text` (openpgp.readKeys alone reads only the first block). */
export async function parseArmoredPublicKeys(text: string, keyName: string): Promise<OpenPgpKeysParseResult> {
  const problems: VerificationError[] = [];
  const keys: OpenPgpKeyEntry[] = [];
  if (text.includes('PRIVATE KEY BLOCK')) {
    problems.push(
      new VerificationError(
        'PrivateKeyMaterial',
        `signers key ${JSON.stringify(keyName)} contains an OpenPGP PRIVATE key block; only public keys belong there (the private block was ignored)`,
        { keyName },
      ),
    );
  }
  const blocks = text.match(PUBLIC_BLOCK) ?? [];
  if (blocks.length === 0 && problems.length === 0) {
    problems.push(
      new VerificationError(
        'MalformedKey',
        `signers key ${JSON.stringify(keyName)} holds no armored public key`,
        {
          keyName,
        },
      ),
    );
  }
  for (const [index, block] of blocks.entries()) {
    try {
      for (const key of await (await openpgp()).readKeys({ armoredKeys: block })) {
        if (key.isPrivate()) throw new VerificationError('PrivateKeyMaterial', 'private key found');
        keys.push({ key, keyName, emails: emailsOf(key) });
      }
    } catch (error) {
      problems.push(
        new VerificationError(
          'MalformedKey',
          `signers key ${JSON.stringify(keyName)} public key block ${index + 1}: ${describeError(error)}`,
          { keyName },
        ),
      );
    }
  }
  return { keys, problems };
}

/** Subkey.isRevoked as implemented: without a signature it checks every revocation signature of the subkey. */
type SubkeyRevocationCheck = (
  this: Subkey,
  signature?: undefined,
  key?: undefined,
  date?: Date,
) => Promise<boolean>;

/**
 * Any valid revocation (hard or soft, e.g. "key retired") dated before `now` rejects the key, whatever the
 * signature time: stricter than RFC 4880's soft-revocation semantics, on purpose (fail closed).
 */
async function isRevoked(key: PublicKey | Subkey, now: Date): Promise<boolean> {
  if ('mainKey' in key) {
    // openpgp.js 6.3 declares `signature` as required but its implementation accepts none.
    const check = key.isRevoked as unknown as SubkeyRevocationCheck;
    return check.call(key, undefined, undefined, now);
  }
  return key.isRevoked(undefined, undefined, now);
}

/** The primary key or the signing subkey, when it has expired at `now`. */
async function expiryBefore(
  key: PublicKey,
  keyIds: readonly KeyID[],
  now: Date,
): Promise<{ what: string; at: Date } | undefined> {
  const primary = await key.getExpirationTime();
  if (primary instanceof Date && primary.getTime() <= now.getTime()) {
    return { what: `key ${key.getFingerprint().toUpperCase()}`, at: primary };
  }
  for (const id of keyIds) {
    for (const subkey of key.getSubkeys(id)) {
      const expires = await subkey.getExpirationTime(now);
      if (expires instanceof Date && expires.getTime() <= now.getTime()) {
        return { what: `signing subkey ${subkey.getFingerprint().toUpperCase()}`, at: expires };
      }
    }
  }
  return undefined;
}

function fail(reason: 'UntrustedSigner' | 'InvalidSignature', message: string): SignatureCheck {
  return { ok: false, reason, message };
}

export interface OpenPgpVerifyOptions {
  readonly now: Date;
  /** Tolerated clock skew for signatures dated in the future (default 5 minutes). */
  readonly clockSkewMs?: number;
}

/** Verifies an armored detached OpenPGP signature over `payload`. Never throws. */
export async function verifyOpenPgpSignature(
  payload: Uint8Array,
  armored: string,
  keyring: readonly OpenPgpKeyEntry[],
  identity: GitIdentity | undefined,
  options: OpenPgpVerifyOptions,
): Promise<SignatureCheck> {
  let signature: Signature;
  try {
    signature = await (await openpgp()).readSignature({ armoredSignature: armored });
  } catch (error) {
    return fail('InvalidSignature', `unreadable OpenPGP signature: ${describeError(error)}`);
  }
  const packets = [...signature.packets];
  if (packets.length !== 1 || packets[0] === undefined) {
    return fail('InvalidSignature', `expected exactly one OpenPGP signature packet, found ${packets.length}`);
  }
  const packet = packets[0];
  const keyIds = signature.getSigningKeyIDs();
  const keyIdHex = keyIds.map((id) => id.toHex().toUpperCase()).join(', ');
  const entry = keyring.find((candidate) => keyIds.some((id) => candidate.key.getKeys(id).length > 0));
  if (entry === undefined) {
    return fail(
      'UntrustedSigner',
      `signed by OpenPGP key ${keyIdHex || '(no issuer)'}, which is not a trusted signer`,
    );
  }
  const fingerprint = entry.key.getFingerprint().toUpperCase();
  const created = packet.created;
  try {
    if (await isRevoked(entry.key, options.now)) {
      return fail('UntrustedSigner', `OpenPGP key ${fingerprint} is revoked`);
    }
    for (const id of keyIds) {
      for (const subkey of entry.key.getSubkeys(id)) {
        if (await isRevoked(subkey, options.now)) {
          return fail(
            'UntrustedSigner',
            `OpenPGP signing subkey ${subkey.getFingerprint().toUpperCase()} is revoked`,
          );
        }
      }
    }
    const expired = await expiryBefore(entry.key, keyIds, options.now);
    if (expired !== undefined) {
      return fail(
        'UntrustedSigner',
        `OpenPGP ${expired.what} expired at ${expired.at.toISOString()}; keys are judged at verification time (${options.now.toISOString()}), as git does, whatever the signature's own date${created === null ? '' : ` (${created.toISOString()})`}: extend the key's expiry and update the signers Secret`,
      );
    }
  } catch (error) {
    return fail('UntrustedSigner', `OpenPGP key ${fingerprint} is not usable: ${describeError(error)}`);
  }
  try {
    const { createMessage, verify } = await openpgp();
    const message = await createMessage({ binary: payload });
    const result = await verify({
      message,
      signature,
      verificationKeys: [entry.key],
      date: new Date(options.now.getTime() + (options.clockSkewMs ?? 300_000)),
    });
    if (result.signatures.length !== 1) {
      return fail('InvalidSignature', `expected one verification result, got ${result.signatures.length}`);
    }
    for (const one of result.signatures) await one.verified;
  } catch (error) {
    return fail(
      'InvalidSignature',
      `OpenPGP signature by ${fingerprint} does not verify: ${describeError(error)}`,
    );
  }
  const emails = await certifiedEmails(entry.key, options.now);
  const committerEmail = identity?.email.toLowerCase();
  const committerMatches = committerEmail !== undefined && emails.includes(committerEmail);
  const principal = committerMatches && committerEmail !== undefined ? committerEmail : (emails[0] ?? '');
  const uncertified =
    !committerMatches && committerEmail !== undefined && entry.emails.includes(committerEmail)
      ? {
          mismatch: `the key's user ID ${quote(committerEmail)} has no valid, unexpired, unrevoked self-certification, so it is not an identity of the key`,
        }
      : {};
  return {
    ok: true,
    signer: { type: 'openpgp', keyFingerprint: fingerprint, principal },
    committerMatches,
    ...uncertified,
  };
}
