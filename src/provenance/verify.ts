// Verifies the Sigstore provenance bundle that accompanies a manifest tree, offline, against a pinned
// trusted root (keyless identities) and/or named public keys. Pure apart from crypto; never throws.
import { createHash } from 'node:crypto';
import { type Bundle, bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import type { PublicKeysByHint, TrustedRootJSON } from '../trust-root/index.ts';
import { quote } from '../util/quote.ts';
import {
  assertKeylessIdentities,
  classifyVerificationFailure,
  describeIdentities,
  type KeylessIdentity,
  type KeylessSigner,
  keylessSignerOf,
  matchKeylessIdentity,
  spkiFingerprint,
  verifierFor,
} from '../verify/keyless.ts';
import { ProvenanceError } from './errors.ts';
import { checkInTotoStatement, SLSA_PROVENANCE_V1, type StatementFacts } from './statement.ts';
import {
  assertRelativePosixPath,
  bundlePathProblem,
  relativeTo,
  SIGNET_DIR,
  type TreeFile,
  type TreeSymlink,
  treeDigest,
} from './tree-digest.ts';

export const DEFAULT_BUNDLE_PATH = `${SIGNET_DIR}/provenance.sigstore.json`;
export const DEFAULT_PREDICATE_TYPES: readonly string[] = [SLSA_PROVENANCE_V1];

export interface ProvenancePolicy {
  /** Allowed keyless signers (Fulcio certificates). */
  identities?: KeylessIdentity[];
  /** Allowed keys for keyed bundles: key hint (bundle verificationMaterial.publicKey.hint) → SPKI PEM. */
  keys?: PublicKeysByHint;
  trustedRoot: TrustedRootJSON;
  /** Accepted in-toto predicate types (DSSE bundles). Default: SLSA provenance v1. */
  predicateTypes?: string[];
  /** Accepted builder ids; when set, only DSSE provenance bundles are accepted. */
  builderIds?: string[];
}

export interface ProvenanceInput {
  /** Files of the repository (or of the manifest directory when `root` is unset). */
  files: readonly TreeFile[];
  symlinks?: readonly TreeSymlink[];
  /** The manifest directory (spec.path) inside the repository; paths of files are taken relative to it. */
  root?: string;
  /** Bundle location relative to `root`. Default `.signet/provenance.sigstore.json`. */
  bundlePath?: string;
  /** The bundle (parsed JSON or its text). When omitted it is read from `files` at `bundlePath`. */
  bundleJson?: unknown;
  policy: ProvenancePolicy;
  source: { url: string; commit: string };
  signal?: AbortSignal;
}

export type ProvenanceSigner = KeylessSigner | { type: 'key'; hint: string; keyFingerprint: string };

export interface ProvenanceEvidence {
  /** `sha256:<hex>` tree digest the bundle was checked against. */
  treeDigest: string;
  fileCount: number;
  bundlePath: string;
  bundleKind: 'message-signature' | 'dsse';
  signer: ProvenanceSigner;
  /** DSSE only. */
  predicateType?: string;
  builderId?: string;
  /** DSSE only: whether the statement named the synced repository/commit. */
  source?: StatementFacts['source'];
  /** Earliest verified time (Rekor SET or RFC 3161), ISO-8601, when the bundle carries one. */
  signedAt?: string;
  tlogEntries: number;
}

export type ProvenanceResult =
  | { ok: true; evidence: ProvenanceEvidence }
  | { ok: false; reason: 'ProvenanceFailed'; message: string };

function failed(message: string): ProvenanceResult {
  return { ok: false, reason: 'ProvenanceFailed', message };
}

function loadBundleJSON(input: ProvenanceInput, bundlePath: string): unknown {
  let raw: unknown = input.bundleJson;
  if (raw === undefined) {
    const file = input.files.find((f) => relativeTo(input.root, f.path) === bundlePath);
    if (!file) {
      throw new ProvenanceError(
        'BundleMissing',
        `no provenance bundle at ${input.root ? `${input.root}/` : ''}${bundlePath}; publish one with the manifests or disable provenance`,
      );
    }
    raw = Buffer.from(file.content).toString('utf8');
  }
  if (typeof raw === 'string' || raw instanceof Uint8Array) {
    try {
      return JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
    } catch (error) {
      throw new ProvenanceError(
        'BundleMalformed',
        `the provenance bundle is not JSON: ${(error as Error).message}`,
      );
    }
  }
  return raw;
}

function parseBundle(json: unknown): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (error) {
    throw new ProvenanceError(
      'BundleMalformed',
      `the provenance file is not a valid Sigstore bundle: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function earliestTime(bundle: Bundle): string | undefined {
  const times = bundle.verificationMaterial.tlogEntries
    .filter((entry) => entry.inclusionPromise !== undefined)
    .map((entry) => Number(entry.integratedTime) * 1000);
  return times.length > 0 ? new Date(Math.min(...times)).toISOString() : undefined;
}

/**
 * Verify the provenance of the manifest tree. Message-signature bundles must sign the ASCII bytes of the
 * tree digest (`sha256:<hex>`); DSSE bundles must carry an in-toto statement with a subject whose
 * sha256 is the tree digest, an accepted predicate type, builder and source. Never throws.
 */
export async function verifyProvenance(input: ProvenanceInput): Promise<ProvenanceResult> {
  if (input.signal?.aborted) return failed('provenance verification was aborted before it completed');
  const bundlePath = input.bundlePath ?? DEFAULT_BUNDLE_PATH;
  try {
    assertRelativePosixPath(bundlePath, 'bundle path');
    const refusal = bundlePathProblem(bundlePath);
    if (refusal !== undefined)
      return failed(`the provenance bundle path ${JSON.stringify(bundlePath)} ${refusal}`);
    const bundleLink = (input.symlinks ?? []).find(
      (link) => relativeTo(input.root, link.path) === bundlePath,
    );
    if (bundleLink) {
      return failed(
        `the provenance bundle ${bundleLink.path} is a symbolic link; it must be a regular file (symlinks are refused)`,
      );
    }
    const tree = treeDigest(input.files, input.symlinks ?? [], { root: input.root, exclude: [bundlePath] });
    const bundle = parseBundle(loadBundleJSON(input, bundlePath));
    const policy = input.policy;
    const keyed = bundle.verificationMaterial.content.$case === 'publicKey';
    const tlogCount = bundle.verificationMaterial.tlogEntries.length;
    if (keyed) {
      if (!policy.keys || Object.keys(policy.keys).length === 0) {
        return failed('the provenance bundle is signed with a key, but the policy names no keys (keysRef)');
      }
    } else {
      if (!policy.identities || policy.identities.length === 0) {
        return failed(
          'the provenance bundle is keyless (Fulcio certificate), but the policy allows no identities',
        );
      }
      assertKeylessIdentities(policy.identities);
    }
    const isDsse = bundle.content.$case === 'dsseEnvelope';
    if (!isDsse && policy.builderIds && policy.builderIds.length > 0) {
      return failed(
        'the policy restricts builders, so the bundle must be an in-toto (DSSE) provenance statement',
      );
    }
    let artifact: Buffer<ArrayBuffer> | undefined;
    if (bundle.content.$case === 'messageSignature') {
      artifact = Buffer.from(tree.digest, 'ascii');
      const expected = createHash('sha256').update(artifact).digest();
      const messageDigest = bundle.content.messageSignature.messageDigest?.digest;
      if (!messageDigest || !expected.equals(messageDigest)) {
        return failed(
          `the bundle signs a different artifact than the manifest tree ${tree.digest} ` +
            '(re-sign the tree digest after changing the manifests)',
        );
      }
    }
    // Keyed signatures stand on the key alone: an absent tlog entry is allowed (cosign --tlog-upload=false),
    // a present one must verify. Keyless ones need SCT, tlog entry and a verified time.
    const verifier = keyed
      ? verifierFor(
          policy.trustedRoot,
          { tlogThreshold: tlogCount > 0 ? 1 : 0, ctlogThreshold: 0, timestampThreshold: 0 },
          policy.keys,
        )
      : verifierFor(policy.trustedRoot, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
    if (input.signal?.aborted) return failed('provenance verification was aborted before it completed');
    const verified = verifier.verify(toSignedEntity(bundle, artifact));
    let signer: ProvenanceSigner;
    if (keyed) {
      const hint =
        bundle.verificationMaterial.content.$case === 'publicKey'
          ? bundle.verificationMaterial.content.publicKey.hint
          : '';
      signer = {
        type: 'key',
        hint,
        keyFingerprint: spkiFingerprint(verified.key.export({ format: 'der', type: 'spki' })),
      };
    } else {
      const keyless = keylessSignerOf(verified);
      if (!keyless) return failed('the signing certificate has no SAN or OIDC issuer extension');
      if (!matchKeylessIdentity(policy.identities ?? [], keyless.identity, keyless.issuer)) {
        return failed(
          `provenance signer ${quote(keyless.identity)} (issuer ${quote(keyless.issuer)}) is not an allowed identity (${describeIdentities(policy.identities ?? [])})`,
        );
      }
      signer = keyless;
    }
    const evidence: ProvenanceEvidence = {
      treeDigest: tree.digest,
      fileCount: tree.fileCount,
      bundlePath: input.root ? `${input.root.replace(/\/+$/, '')}/${bundlePath}` : bundlePath,
      bundleKind: isDsse ? 'dsse' : 'message-signature',
      signer,
      tlogEntries: tlogCount,
    };
    const signedAt = earliestTime(bundle);
    if (signedAt) evidence.signedAt = signedAt;
    if (bundle.content.$case === 'dsseEnvelope') {
      const envelope = bundle.content.dsseEnvelope;
      const facts = checkInTotoStatement(
        envelope.payloadType,
        envelope.payload,
        tree.sha256,
        { predicateTypes: policy.predicateTypes ?? DEFAULT_PREDICATE_TYPES, builderIds: policy.builderIds },
        input.source,
      );
      evidence.predicateType = facts.predicateType;
      evidence.source = facts.source;
      if (facts.builderId !== undefined) evidence.builderId = facts.builderId;
    }
    return { ok: true, evidence };
  } catch (error) {
    if (error instanceof ProvenanceError) return failed(error.message);
    return failed(`provenance bundle verification failed: ${classifyVerificationFailure(error).message}`);
  }
}
