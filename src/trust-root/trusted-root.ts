import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { type KeyFinderFunc, type TrustMaterial, toTrustMaterial } from '@sigstore/verify';
import publicGoodTrustedRootJSON from './public-good.trusted_root.json' with { type: 'json' };

/** One time window of a trusted-root entry (RFC 3339 strings, as in trusted_root.json). */
export interface TrustedRootValidity {
  start: string;
  end?: string;
}

/** A transparency log or CT log entry of trusted_root.json (protobuf-specs JSON form). */
export interface TrustedRootLogJSON {
  baseUrl: string;
  hashAlgorithm: string;
  publicKey: { rawBytes: string; keyDetails: string; validFor?: TrustedRootValidity };
  logId: { keyId: string };
}

/** A certificate authority (Fulcio) or timestamp authority entry of trusted_root.json. */
export interface TrustedRootAuthorityJSON {
  subject?: { organization?: string; commonName?: string };
  uri?: string;
  certChain: { certificates: { rawBytes: string }[] };
  validFor?: TrustedRootValidity;
}

/** A parsed Sigstore `trusted_root.json` (media type application/vnd.dev.sigstore.trustedroot+json). */
export interface TrustedRootJSON {
  mediaType: string;
  tlogs: TrustedRootLogJSON[];
  certificateAuthorities: TrustedRootAuthorityJSON[];
  ctlogs: TrustedRootLogJSON[];
  timestampAuthorities?: TrustedRootAuthorityJSON[];
}

/** Named PEM public keys for keyed (non-Fulcio) signatures: bundle key hint → SPKI PEM. */
export type PublicKeysByHint = Readonly<Record<string, string>>;

export class TrustedRootError extends Error {
  readonly code = 'InvalidTrustedRoot' as const;
  constructor(message: string) {
    super(message);
    this.name = 'TrustedRootError';
  }
}

/**
 * The Sigstore public-good trusted root pinned in this repository (extracted from the TUF seed of
 * @sigstore/tuf by hack/update-trusted-root.ts). Returns the same frozen object on every call so the
 * trust-material cache hits by identity.
 */
export function publicGoodTrustedRoot(): TrustedRootJSON {
  return pinnedPublicGood;
}

const pinnedPublicGood: TrustedRootJSON = deepFreeze(parseTrustedRoot(publicGoodTrustedRootJSON));

/** Checks the shape of a trusted_root.json document (text or already-parsed JSON). Throws TrustedRootError. */
export function parseTrustedRoot(input: unknown): TrustedRootJSON {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw new TrustedRootError(`trusted root is not JSON: ${(error as Error).message}`);
    }
  }
  if (typeof value !== 'object' || value === null)
    throw new TrustedRootError('trusted root is not an object');
  const root = value as Partial<TrustedRootJSON>;
  if (
    typeof root.mediaType !== 'string' ||
    !root.mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')
  ) {
    throw new TrustedRootError(
      `trusted root mediaType must be application/vnd.dev.sigstore.trustedroot+json, got ${String(root.mediaType)}`,
    );
  }
  for (const field of ['tlogs', 'certificateAuthorities', 'ctlogs'] as const) {
    if (!Array.isArray(root[field])) throw new TrustedRootError(`trusted root has no ${field} array`);
  }
  if (root.timestampAuthorities !== undefined && !Array.isArray(root.timestampAuthorities)) {
    throw new TrustedRootError('trusted root timestampAuthorities is not an array');
  }
  return root as TrustedRootJSON;
}

// Cache: building TrustMaterial parses every certificate and key of the root (5–9 ms), so it is built
// once per trusted root (by object identity, then by content digest) and per key set.
const byIdentity = new WeakMap<object, Map<string, TrustMaterial>>();
const byContent = new Map<string, TrustMaterial>();
const CONTENT_CACHE_LIMIT = 16;

/**
 * The @sigstore/verify TrustMaterial for a trusted root (and optional keyed-signature keys), built once
 * and cached. Unknown key hints make verification fail with a message naming the hint.
 */
export function trustMaterialFor(root: TrustedRootJSON, keys?: PublicKeysByHint): TrustMaterial {
  const keysId = keys ? keySetId(keys) : '';
  let perRoot = byIdentity.get(root);
  const cached = perRoot?.get(keysId);
  if (cached) return cached;
  const contentId = `${createHash('sha256').update(JSON.stringify(root)).digest('hex')}/${keysId}`;
  let material = byContent.get(contentId);
  if (!material) {
    material = toTrustMaterial(TrustedRoot.fromJSON(root), keys ? keyFinder(keys) : undefined);
    if (byContent.size >= CONTENT_CACHE_LIMIT) {
      const oldest = byContent.keys().next().value;
      if (oldest !== undefined) byContent.delete(oldest);
    }
    byContent.set(contentId, material);
  }
  if (!perRoot) {
    perRoot = new Map();
    byIdentity.set(root, perRoot);
  }
  perRoot.set(keysId, material);
  return material;
}

function keySetId(keys: PublicKeysByHint): string {
  const entries = Object.keys(keys)
    .sort()
    .map((hint) => [hint, keys[hint]]);
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex');
}

/**
 * The hint cosign (v2.4+ `--new-bundle-format`, v3) writes into every keyed bundle it makes:
 * base64(sha256(SubjectPublicKeyInfo DER)) of the signing key. It holds `/`, `+` and `=`, which a
 * Secret or ConfigMap key may not, so keys are also found by it, whatever name they are stored under.
 */
export function cosignKeyHint(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
}

function keyFinder(keys: PublicKeysByHint): KeyFinderFunc {
  const parsed = new Map(Object.entries(keys).map(([hint, pem]) => [hint, createPublicKey(pem)]));
  const byCosignHint = new Map([...parsed.values()].map((key) => [cosignKeyHint(key), key]));
  return (hint: string) => {
    const publicKey = parsed.get(hint) ?? byCosignHint.get(hint);
    if (!publicKey) {
      throw new KeyHintError(hint, [...parsed.keys()]);
    }
    return { publicKey, validFor: () => true };
  };
}

export class KeyHintError extends Error {
  readonly code = 'UnknownKeyHint' as const;
  readonly hint: string;
  constructor(hint: string, known: string[]) {
    super(
      `no public key named ${JSON.stringify(hint)} in the policy keys, by name or by cosign's key hint (known: ${known.join(', ') || 'none'})`,
    );
    this.name = 'KeyHintError';
    this.hint = hint;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
