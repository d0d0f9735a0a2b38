/**
 * The part `signet verify` and `signet build` share: the -f/--since checks, the policy file, a
 * temporary Git cache, the operator's pipeline dependencies (references from the file, else from
 * the cluster of --kubeconfig) and the revision the GitRepository resolves to.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fetchAndVerify,
  type PipelineDeps,
  type Refusal,
  type RenderDiscovery,
  resolveRevision,
  type VerifiedRevision,
} from '../controller/pipeline.ts';
import { createGitSource, createLocalSource } from '../controller/source-adapter.ts';
import type { KubeClient } from '../kube/client.ts';
import { loadKubeClient } from '../kube/load.ts';
import type { SourceLimits } from '../source/git-source.ts';
import { createLogger } from '../util/logger.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { builtinScopeOf } from './builtin-scopes.ts';
import {
  loadPolicyFile,
  type PolicyFile,
  PolicyFileError,
  referenceReader,
  requireReferences,
} from './policy-file.ts';

/** The parseArgs options both commands take. */
export const revisionOptions = {
  file: { type: 'string', short: 'f' },
  'repo-dir': { type: 'string' },
  since: { type: 'string' },
  kubeconfig: { type: 'string' },
} as const;

export interface RevisionValues {
  readonly file?: string | undefined;
  readonly 'repo-dir'?: string | undefined;
  readonly since?: string | undefined;
  readonly kubeconfig?: string | undefined;
}

/** The -f path; refuses a missing -f or a --since that is not a full commit SHA. */
export function requireRevisionArgs(values: RevisionValues): string {
  if (values.file === undefined) throw new PolicyFileError('-f <GitRepository YAML> is required');
  if (values.since !== undefined && !/^[0-9a-f]{40}$/.test(values.since))
    throw new PolicyFileError('--since must be a full commit SHA');
  return values.file;
}

type Resolution = Awaited<ReturnType<typeof resolveRevision>>;

export interface RevisionRun {
  readonly file: PolicyFile;
  readonly resolution: Resolution;
  readonly client: () => Promise<KubeClient>;
  readonly signal: AbortSignal;
  /** The operator's pipeline dependencies, as the CLI wires them. */
  readonly deps: PipelineDeps;
  /** Fetches and verifies the resolved revision, --since standing in for the last applied one. */
  readonly verify: (resolved: Extract<Resolution, { ok: true }>) => Promise<VerifiedRevision | Refusal>;
}

export interface RevisionRequest {
  /** Names the temporary Git cache directory. */
  readonly command: string;
  /** The -f path, from requireRevisionArgs. */
  readonly path: string;
  readonly values: RevisionValues;
  readonly limits?: SourceLimits | undefined;
}

/** Runs `use` with the resolved revision of -f; the temporary Git cache is removed afterwards. */
export async function withRevision(
  { command, path, values, limits }: RevisionRequest,
  use: (run: RevisionRun) => Promise<number>,
): Promise<number> {
  const file = await loadPolicyFile(path);
  const cacheDir = await mkdtemp(join(tmpdir(), `signet-${command}-`));
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const client = () =>
    loadKubeClient({
      ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
      userAgent: 'signet-cli',
    });
  try {
    const deps: PipelineDeps = {
      source:
        values['repo-dir'] === undefined
          ? createGitSource({ cacheDir, logger, limits })
          : createLocalSource(values['repo-dir'], limits),
      readReference: referenceReader(file, client),
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const signal = AbortSignal.timeout(10 * 60_000);
    await requireReferences(file.repo, deps.readReference, signal);
    const resolution = await resolveRevision(file.repo, deps, signal);
    const verify: RevisionRun['verify'] = (resolved) =>
      fetchAndVerify(
        file.repo,
        'cli',
        resolved.remote,
        resolved.resolved,
        resolved.revision,
        values.since,
        deps,
        signal,
      );
    return await use({ file, resolution, client, signal, verify, deps });
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/** Scopes from the cluster of --kubeconfig, else from the built-in table (and the set's CRDs). */
export async function cliDiscovery(
  values: RevisionValues,
  client: () => Promise<KubeClient>,
): Promise<RenderDiscovery> {
  if (values.kubeconfig !== undefined) return (await client()).discovery;
  return {
    resolve: async (): Promise<never> => {
      throw new Error('no cluster: scopes come from the built-in table');
    },
    scopeOf: builtinScopeOf,
  };
}
