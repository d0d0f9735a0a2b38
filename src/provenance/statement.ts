// Policy checks on an in-toto statement carried by a DSSE bundle. Sigstore only verifies the envelope;
// everything about the statement's meaning is checked here. Pure.
import { ProvenanceError } from './errors.ts';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
export const SLSA_PROVENANCE_V02 = 'https://slsa.dev/provenance/v0.2';
const STATEMENT_TYPES = new Set(['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1']);

export interface StatementPolicy {
  /** Accepted predicate types. */
  readonly predicateTypes: readonly string[];
  /** Accepted builder ids (SLSA v1 runDetails.builder.id, v0.2 builder.id); unset: any builder. */
  readonly builderIds?: readonly string[];
}

export interface StatementSource {
  /** The GitRepository URL the manifests were fetched from. */
  readonly url: string;
  /** The commit the manifests were read at. */
  readonly commit: string;
}

export interface StatementFacts {
  readonly predicateType: string;
  readonly builderId?: string;
  /** How the statement's source claims related to the fetched source. */
  readonly source: 'commit-matched' | 'repository-matched' | 'not-stated';
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

function fail(message: string): never {
  throw new ProvenanceError('StatementMismatch', message);
}

/**
 * Normalizes a repository URL for comparison: drops `git+`, scheme, user info, `.git`, trailing `/` and a
 * trailing `@<ref>` (as in SLSA `git+https://host/org/repo@refs/heads/main`); scp-style `git@host:org/repo`
 * becomes `host/org/repo`. The host is lower-cased; the path keeps its case.
 */
export function normalizeRepositoryUrl(url: string): string {
  let rest = url.trim().replace(/^git\+/, '');
  const scp = /^(?:[^@/:]+@)?([^/:]+):(?!\/\/)(.+)$/.exec(rest);
  let host: string;
  let path: string;
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    host = scp[1] ?? '';
    path = scp[2] ?? '';
  } else {
    rest = rest.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
    const slash = rest.indexOf('/');
    const authority = slash === -1 ? rest : rest.slice(0, slash);
    path = slash === -1 ? '' : rest.slice(slash + 1);
    host = authority.replace(/^[^@]*@/, '');
  }
  const at = path.indexOf('@');
  if (at !== -1) path = path.slice(0, at);
  path = path
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .replace(/^\/+/, '');
  return `${host.toLowerCase().replace(/:(443|22|80)$/, '')}/${path}`;
}

interface GitClaim {
  readonly uri: string;
  readonly commit?: string;
  readonly where: string;
}

function gitCommitOf(digest: unknown): string | undefined {
  if (!isObject(digest)) return undefined;
  return str(digest.gitCommit) ?? str(digest.sha1);
}

function sourceClaims(predicateType: string, predicate: Json): GitClaim[] {
  const claims: GitClaim[] = [];
  if (predicateType === SLSA_PROVENANCE_V1) {
    const definition = isObject(predicate.buildDefinition) ? predicate.buildDefinition : {};
    const dependencies = Array.isArray(definition.resolvedDependencies)
      ? definition.resolvedDependencies
      : [];
    dependencies.forEach((dependency, index) => {
      if (!isObject(dependency)) return;
      const uri = str(dependency.uri);
      const commit = gitCommitOf(dependency.digest);
      if (uri && commit) claims.push({ uri, commit, where: `resolvedDependencies[${index}]` });
    });
    const external = isObject(definition.externalParameters) ? definition.externalParameters : {};
    const workflow = isObject(external.workflow) ? external.workflow : undefined;
    const repository = str(workflow?.repository);
    if (repository) claims.push({ uri: repository, where: 'externalParameters.workflow.repository' });
    const source = external.source;
    if (typeof source === 'string') claims.push({ uri: source, where: 'externalParameters.source' });
    if (isObject(source) && str(source.uri)) {
      claims.push({
        uri: str(source.uri) ?? '',
        commit: gitCommitOf(source.digest),
        where: 'externalParameters.source',
      });
    }
  } else if (predicateType === SLSA_PROVENANCE_V02) {
    const invocation = isObject(predicate.invocation) ? predicate.invocation : {};
    const configSource = isObject(invocation.configSource) ? invocation.configSource : undefined;
    const uri = str(configSource?.uri);
    if (uri)
      claims.push({ uri, commit: gitCommitOf(configSource?.digest), where: 'invocation.configSource' });
  }
  return claims;
}

function checkSource(claims: readonly GitClaim[], source: StatementSource): StatementFacts['source'] {
  if (claims.length === 0) return 'not-stated';
  const wanted = normalizeRepositoryUrl(source.url);
  const sameRepository = claims.filter((claim) => normalizeRepositoryUrl(claim.uri) === wanted);
  const withCommit = claims.filter((claim) => claim.commit !== undefined);
  const uriOnly = claims.filter((claim) => claim.commit === undefined);
  for (const claim of uriOnly) {
    if (normalizeRepositoryUrl(claim.uri) !== wanted) {
      fail(
        `provenance ${claim.where} names repository ${claim.uri}, but the manifests come from ${source.url}`,
      );
    }
  }
  if (withCommit.length > 0 && !withCommit.some((claim) => normalizeRepositoryUrl(claim.uri) === wanted)) {
    fail(
      `provenance was built from ${withCommit.map((c) => c.uri).join(', ')}, not from ${source.url} ` +
        '(the statement names no revision of the synced repository)',
    );
  }
  let commitMatched = false;
  for (const claim of sameRepository) {
    if (claim.commit === undefined) continue;
    if (claim.commit.toLowerCase() !== source.commit.toLowerCase()) {
      fail(
        `provenance ${claim.where} says ${source.url} was built at ${claim.commit}, but the manifests were read at ${source.commit}`,
      );
    }
    commitMatched = true;
  }
  return commitMatched ? 'commit-matched' : 'repository-matched';
}

/** Parses and checks an in-toto statement against the tree digest, predicate types, builders and source. */
export function checkInTotoStatement(
  payloadType: string,
  payload: Uint8Array,
  treeSha256: string,
  policy: StatementPolicy,
  source: StatementSource,
): StatementFacts {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE)
    fail(`DSSE payloadType is ${payloadType}, expected ${IN_TOTO_PAYLOAD_TYPE}`);
  let statement: unknown;
  try {
    statement = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    fail('the DSSE payload is not JSON');
  }
  if (!isObject(statement)) fail('the in-toto statement is not a JSON object');
  if (!STATEMENT_TYPES.has(str(statement._type) ?? '')) {
    fail(`unsupported in-toto statement _type ${String(statement._type)}`);
  }
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const matches = subjects.some(
    (subject) =>
      isObject(subject) &&
      isObject(subject.digest) &&
      str(subject.digest.sha256)?.toLowerCase() === treeSha256,
  );
  if (!matches) {
    fail(`no subject of the provenance statement has digest sha256:${treeSha256} (the manifest tree digest)`);
  }
  const predicateType = str(statement.predicateType) ?? '';
  if (!policy.predicateTypes.includes(predicateType)) {
    fail(
      `predicateType ${predicateType || '(none)'} is not accepted (allowed: ${policy.predicateTypes.join(', ')})`,
    );
  }
  const predicate = isObject(statement.predicate) ? statement.predicate : {};
  let builderId: string | undefined;
  if (predicateType === SLSA_PROVENANCE_V1) {
    const runDetails = isObject(predicate.runDetails) ? predicate.runDetails : {};
    builderId = isObject(runDetails.builder) ? str(runDetails.builder.id) : undefined;
  } else if (predicateType === SLSA_PROVENANCE_V02) {
    builderId = isObject(predicate.builder) ? str(predicate.builder.id) : undefined;
  }
  if (policy.builderIds && policy.builderIds.length > 0 && !policy.builderIds.includes(builderId ?? '')) {
    fail(
      `builder ${builderId ?? '(none)'} is not an accepted builder (allowed: ${policy.builderIds.join(', ')})`,
    );
  }
  const facts: StatementFacts = {
    predicateType,
    source: checkSource(sourceClaims(predicateType, predicate), source),
  };
  return builderId === undefined ? facts : { ...facts, builderId };
}
