/**
 * Loads a GitRepository policy file for `signet verify` / `signet diff`: the GitRepository plus,
 * optionally, the Secrets and ConfigMaps it references as further YAML documents (as
 * `kubectl apply -f` takes them). References missing from the file are read from the cluster.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { type GitRepository, parseGitRepository, type TypedReference } from '../api/gitrepository.ts';
import type { ReferenceReader } from '../controller/pipeline.ts';
import { secretData } from '../controller/reconciler.ts';
import type { KubeClient } from '../kube/client.ts';
import type { KubeObject } from '../render/object.ts';

export class PolicyFileError extends Error {
  override readonly name = 'PolicyFileError';
  readonly code = 'BadInput' as const;
}

export interface PolicyFile {
  readonly repo: GitRepository;
  readonly references: ReadonlyMap<string, Record<string, string>>;
}

const maxPolicyFileBytes = 4 * 1024 * 1024;

function referenceKey(kind: string, name: string): string {
  return `${kind}/${name}`;
}

function stringData(object: Record<string, unknown>, field: string): Record<string, string> {
  const data = object[field];
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return {};
  return Object.fromEntries(
    Object.entries(data).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

export async function loadPolicyFile(path: string): Promise<PolicyFile> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw new PolicyFileError(
      `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
  if (text.length > maxPolicyFileBytes)
    throw new PolicyFileError(`${path} is larger than ${maxPolicyFileBytes} bytes`);
  const documents = parseAllDocuments(text, { uniqueKeys: true });
  let repo: GitRepository | undefined;
  const references = new Map<string, Record<string, string>>();
  for (const [index, document] of (Array.isArray(documents) ? documents : [documents]).entries()) {
    if (document.errors.length > 0)
      throw new PolicyFileError(
        `${path} document ${index}: ${document.errors[0]?.message ?? 'invalid YAML'}`,
      );
    const value: unknown = document.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new PolicyFileError(`${path} document ${index}: not an object`);
    const object = value as Record<string, unknown>;
    const kind = object.kind;
    const metadata = (object.metadata ?? {}) as Record<string, unknown>;
    const name = typeof metadata.name === 'string' ? metadata.name : '';
    if (kind === 'GitRepository') {
      if (repo !== undefined) throw new PolicyFileError(`${path}: more than one GitRepository`);
      try {
        repo = parseGitRepository(object, { defaultNamespace: 'default' });
      } catch (error) {
        throw new PolicyFileError(
          `${path} document ${index}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    } else if (kind === 'Secret' && object.apiVersion === 'v1') {
      const decoded = secretData(object as unknown as KubeObject);
      references.set(referenceKey('Secret', name), { ...decoded, ...stringData(object, 'stringData') });
    } else if (kind === 'ConfigMap' && object.apiVersion === 'v1') {
      references.set(referenceKey('ConfigMap', name), stringData(object, 'data'));
    } else {
      throw new PolicyFileError(
        `${path} document ${index}: unexpected ${String(object.apiVersion)} ${String(kind)}`,
      );
    }
  }
  if (repo === undefined) throw new PolicyFileError(`${path}: no GitRepository document`);
  return { repo, references };
}

/** Every Secret and ConfigMap the GitRepository names, each once. */
export function namedReferences(repo: GitRepository): TypedReference[] {
  const verify = repo.spec.verify;
  const refs: TypedReference[] = [
    ...(repo.spec.secretRef === undefined
      ? []
      : [{ kind: 'Secret' as const, name: repo.spec.secretRef.name }]),
    ...(verify.signersRef === undefined ? [] : [verify.signersRef]),
    ...(verify.trustedRootRef === undefined
      ? []
      : [{ kind: 'ConfigMap' as const, name: verify.trustedRootRef.name }]),
    ...(verify.provenance?.keysRef === undefined ? [] : [verify.provenance.keysRef]),
  ];
  return refs.filter(
    (ref, index) => refs.findIndex((other) => other.kind === ref.kind && other.name === ref.name) === index,
  );
}

/**
 * Reads every reference the GitRepository names, up front: for the CLI a reference that cannot be read
 * is bad input (exit 2), not a rejected revision.
 */
export async function requireReferences(
  repo: GitRepository,
  read: ReferenceReader,
  signal: AbortSignal,
): Promise<void> {
  for (const ref of namedReferences(repo)) {
    try {
      await read(ref, signal);
    } catch (error) {
      if (error instanceof PolicyFileError) throw error;
      throw new PolicyFileError(
        `${ref.kind} ${ref.name} is not in the file and could not be read from the cluster: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
  }
}

/** References from the file first, then from the cluster (when a client is given). */
export function referenceReader(
  file: PolicyFile,
  cluster: (() => Promise<KubeClient>) | undefined,
): ReferenceReader {
  return async (ref: TypedReference, signal: AbortSignal) => {
    const local = file.references.get(referenceKey(ref.kind, ref.name));
    if (local !== undefined) return local;
    if (cluster === undefined) {
      throw new PolicyFileError(
        `${ref.kind} ${ref.name} is not in the file and no cluster is available to read it`,
      );
    }
    const client = await cluster();
    const object = await client.get(
      { apiVersion: 'v1', kind: ref.kind, name: ref.name, namespace: file.repo.metadata.namespace },
      { signal, timeoutMs: 15_000 },
    );
    if (object === undefined)
      throw new PolicyFileError(`${ref.kind} ${file.repo.metadata.namespace}/${ref.name} not found`);
    if (ref.kind === 'Secret') return secretData(object);
    return stringData(object as unknown as Record<string, unknown>, 'data');
  };
}
