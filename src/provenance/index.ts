export { ProvenanceError, type ProvenanceErrorCode } from './errors.ts';
export {
  checkInTotoStatement,
  IN_TOTO_PAYLOAD_TYPE,
  normalizeRepositoryUrl,
  SLSA_PROVENANCE_V1,
  SLSA_PROVENANCE_V02,
  type StatementFacts,
  type StatementPolicy,
  type StatementSource,
} from './statement.ts';
export {
  assertRelativePosixPath,
  SIGNET_DIR,
  TREE_DIGEST_DOMAIN,
  type TreeDigest,
  type TreeDigestOptions,
  type TreeFile,
  type TreeSymlink,
  treeDigest,
} from './tree-digest.ts';
export {
  DEFAULT_BUNDLE_PATH,
  DEFAULT_PREDICATE_TYPES,
  type ProvenanceEvidence,
  type ProvenanceInput,
  type ProvenancePolicy,
  type ProvenanceResult,
  type ProvenanceSigner,
  verifyProvenance,
} from './verify.ts';
