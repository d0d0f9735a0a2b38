// Adapter from verifyGitsignSignature to the pluggable X509Checker of checkSignature (check.ts).
import type { X509Checker } from './check.ts';
import { type GitsignVerifyOptions, verifyGitsignSignature } from './gitsign.ts';
import type { KeylessPolicy } from './keyless.ts';

/**
 * An X509Checker that verifies gitsign signatures offline against `policy`. The signer's principal is
 * the certificate SAN; `committerMatches` is true when the SAN is an email equal (case-insensitively) to
 * the committer/tagger email.
 */
export function keylessX509Checker(policy: KeylessPolicy, opts?: GitsignVerifyOptions): X509Checker {
  return async (payload, armored, identity) => {
    const result = await verifyGitsignSignature(payload, armored, policy, opts);
    if (!result.ok) return result;
    const san = result.signer.identity;
    return {
      ok: true,
      signer: { type: 'x509', identity: san, principal: san, issuer: result.signer.issuer },
      committerMatches:
        identity !== undefined &&
        san.includes('@') &&
        !san.includes('/') &&
        san.toLowerCase() === identity.email.toLowerCase(),
    };
  };
}
