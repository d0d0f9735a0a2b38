/** checkSignature: one signed object against the trust material. Never throws; every error fails closed. */

import { quote } from '../util/quote.ts';
import { type AllowedSigner, entryAllows, matchPatternList } from './allowed-signers.ts';
import { describeError } from './errors.ts';
import { verifyOpenPgpSignature } from './openpgp.ts';
import { type SignedObject, signingIdentity } from './signed-object.ts';
import {
  lacksUserPresence,
  parseSshSignature,
  type SshSignature,
  sshFingerprint,
  verifySshSignature,
} from './sshsig.ts';
import type { TrustMaterial } from './trust.ts';
import type { GitIdentity, SignatureCheck } from './types.ts';

/**
 * Verifies an x509 (gitsign / CMS `SIGNED MESSAGE`) signature. `identity` is the committer (tagger for tags).
 * Implementations must not throw; if they do, the throw is turned into InvalidSignature.
 */
export type X509Checker = (
  payload: Uint8Array,
  armored: string,
  identity: GitIdentity | undefined,
) => Promise<SignatureCheck>;

export interface CheckOptions {
  /** Wall-clock time of the verification (OpenPGP future-dated signatures, revocations). */
  readonly now: Date;
  readonly x509Checker?: X509Checker;
  /** SSHSIG namespace, `git` unless overridden. */
  readonly sshNamespace?: string;
}

const GIT_NAMESPACE = 'git';

function describeObject(obj: SignedObject): string {
  return obj.kind === 'commit' ? 'commit' : `tag ${quote(obj.tagName)}`;
}

/**
 * The time validity windows are judged at, like git's -Overify-time: the committer (tagger) timestamp.
 * git passes no time when the object has none (or it is 0), so ssh-keygen uses the current time: so does
 * this. undefined: the timestamp is out of range (refused by any line with a validity window).
 */
function signatureTime(identity: GitIdentity | undefined, now: Date): Date | undefined {
  if (identity === undefined || identity.timestamp === 0) return now;
  const at = new Date(identity.timestamp * 1000);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

function sshFailure(reason: 'UntrustedSigner' | 'InvalidSignature', message: string): SignatureCheck {
  return { ok: false, reason, message };
}

/** Display principal of a line: its first literal principal, else its comment, else the patterns. */
function displayPrincipal(entry: AllowedSigner): string {
  if (entry.principals.length === 0) return '';
  return entry.principals.find((p) => !/[*?!]/.test(p)) ?? entry.source.comment ?? entry.principals.join(',');
}

const NO_PRINCIPAL =
  'the key comes from a *.pub file, which names no principal, so it matches no committer; list it in allowed_signers with the committer email as principal';

function checkSsh(obj: SignedObject, trust: TrustMaterial, options: CheckOptions): SignatureCheck {
  const namespace = options.sshNamespace ?? GIT_NAMESPACE;
  let signature: SshSignature;
  try {
    signature = parseSshSignature(obj.signature?.armored ?? '');
  } catch (error) {
    return sshFailure('InvalidSignature', `malformed SSH signature: ${describeError(error)}`);
  }
  const entries = trust.sshByKey.get(signature.publicKeyBase64);
  const first = entries?.[0];
  if (entries === undefined || first === undefined) {
    const fingerprint = sshFingerprint(signature.publicKeyBlob);
    return sshFailure(
      'UntrustedSigner',
      `signed by SSH key ${fingerprint}, which is not in the allowed signers`,
    );
  }
  try {
    // The touch requirement is judged per allowed-signers line below.
    if (!verifySshSignature(signature, obj.payload, first.key, { namespace, allowNoTouch: true })) {
      return sshFailure(
        'InvalidSignature',
        `SSH signature by ${first.key.fingerprint} does not match the ${describeObject(obj)} content`,
      );
    }
  } catch (error) {
    return sshFailure('InvalidSignature', `SSH signature rejected: ${describeError(error)}`);
  }
  const identity = signingIdentity(obj);
  const at = signatureTime(identity, options.now);
  const usable = entries.filter((entry) => entryAllows(entry, namespace, at) === undefined);
  if (usable.length === 0) {
    return sshFailure(
      'UntrustedSigner',
      `SSH key ${first.key.fingerprint} is not valid here: ${entryAllows(first, namespace, at)}`,
    );
  }
  // no-touch-required counts only on a line that is itself usable here (namespace, window).
  const untouched = lacksUserPresence(signature, first.key);
  const lines = untouched ? usable.filter((entry) => entry.noTouchRequired) : usable;
  if (lines.length === 0) {
    return sshFailure(
      'InvalidSignature',
      `the FIDO signature by ${first.key.fingerprint} lacks the user-presence flag, and no allowed-signers line for this key that is valid here has no-touch-required`,
    );
  }
  const email = identity?.email;
  const matching = email === undefined ? undefined : lines.find((e) => matchPatternList(email, e.principals));
  const chosen = matching ?? lines[0] ?? first;
  const noPrincipal = lines.every((entry) => entry.principals.length === 0);
  return {
    ok: true,
    signer: {
      type: 'ssh',
      keyFingerprint: chosen.key.fingerprint,
      principal: matching !== undefined && email !== undefined ? email : displayPrincipal(chosen),
    },
    committerMatches: matching !== undefined,
    ...(matching === undefined && noPrincipal ? { mismatch: NO_PRINCIPAL } : {}),
  };
}

/** Checks the signature of a parsed commit or tag against `trust`. Never throws. */
export async function checkSignature(
  obj: SignedObject,
  trust: TrustMaterial,
  options: CheckOptions,
): Promise<SignatureCheck> {
  const signature = obj.signature;
  if (signature === undefined) {
    return { ok: false, reason: 'Unsigned', message: `the ${describeObject(obj)} is not signed` };
  }
  try {
    switch (signature.format) {
      case 'ssh':
        return checkSsh(obj, trust, options);
      case 'openpgp':
        return await verifyOpenPgpSignature(
          obj.payload,
          signature.armored,
          trust.openpgp,
          signingIdentity(obj),
          {
            now: options.now,
          },
        );
      case 'x509':
        if (options.x509Checker === undefined) {
          return {
            ok: false,
            reason: 'UntrustedSigner',
            message:
              'the signature is an x509/gitsign (keyless) signature, but no keyless verification is configured; configure keyless identities or sign with SSH/OpenPGP',
          };
        }
        return await options.x509Checker(obj.payload, signature.armored, signingIdentity(obj));
      default:
        return {
          ok: false,
          reason: 'InvalidSignature',
          message: 'the signature is in an unknown format (no SSH, PGP or SIGNED MESSAGE armor)',
        };
    }
  } catch (error) {
    return {
      ok: false,
      reason: 'InvalidSignature',
      message: `signature check failed: ${describeError(error)}`,
    };
  }
}
