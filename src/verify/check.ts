/** checkSignature: one signed object against the trust material. Never throws; every error fails closed. */
import { entryAllows, matchPatternList } from './allowed-signers.ts';
import { describeError } from './errors.ts';
import { verifyOpenPgpSignature } from './openpgp.ts';
import { type SignedObject, signingIdentity } from './signed-object.ts';
import { parseSshSignature, type SshSignature, sshFingerprint, verifySshSignature } from './sshsig.ts';
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
  return obj.kind === 'commit' ? 'commit' : `tag ${obj.tagName}`;
}

function checkSsh(obj: SignedObject, trust: TrustMaterial, namespace: string): SignatureCheck {
  const armored = obj.signature?.armored ?? '';
  let signature: SshSignature;
  try {
    signature = parseSshSignature(armored);
  } catch (error) {
    return {
      ok: false,
      reason: 'InvalidSignature',
      message: `malformed SSH signature: ${describeError(error)}`,
    };
  }
  const entries = trust.sshByKey.get(signature.publicKeyBase64);
  const first = entries?.[0];
  if (entries === undefined || first === undefined) {
    const fingerprint = sshFingerprint(signature.publicKeyBlob);
    return {
      ok: false,
      reason: 'UntrustedSigner',
      message: `signed by SSH key ${fingerprint}, which is not in the allowed signers`,
    };
  }
  try {
    const good = verifySshSignature(signature, obj.payload, first.key, {
      namespace,
      allowNoTouch: entries.some((e) => e.noTouchRequired),
    });
    if (!good) {
      return {
        ok: false,
        reason: 'InvalidSignature',
        message: `SSH signature by ${first.key.fingerprint} does not match the ${describeObject(obj)} content`,
      };
    }
  } catch (error) {
    return {
      ok: false,
      reason: 'InvalidSignature',
      message: `SSH signature rejected: ${describeError(error)}`,
    };
  }
  const identity = signingIdentity(obj);
  // Like git's -Overify-time: key validity windows are judged at the committer (tagger) timestamp.
  const at = new Date((identity?.timestamp ?? 0) * 1000);
  const usable = entries.filter((entry) => entryAllows(entry, namespace, at) === undefined);
  if (usable.length === 0) {
    return {
      ok: false,
      reason: 'UntrustedSigner',
      message: `SSH key ${first.key.fingerprint} is not valid here: ${entryAllows(first, namespace, at)}`,
    };
  }
  const email = identity?.email;
  const matching =
    email === undefined ? undefined : usable.find((e) => matchPatternList(email, e.principals));
  const chosen = matching ?? usable[0] ?? first;
  const principal =
    matching !== undefined && email !== undefined
      ? email
      : (chosen.principals.find((p) => !/[*?!]/.test(p)) ??
        chosen.source.comment ??
        chosen.principals.join(','));
  return {
    ok: true,
    signer: { type: 'ssh', keyFingerprint: chosen.key.fingerprint, principal },
    committerMatches: matching !== undefined,
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
        return checkSsh(obj, trust, options.sshNamespace ?? GIT_NAMESPACE);
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
