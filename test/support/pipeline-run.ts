// The pipeline tests' resolve → fetch → verify (test/pipeline/keyless, gitsign-hostile), exactly as the
// reconciler and the CLI run it, with references read from a map instead of the cluster.
import type { GitRepository, TypedReference } from '../../src/api/gitrepository.ts';
import {
  fetchAndVerify,
  type PipelineDeps,
  type ReferenceReader,
  type Refusal,
  resolveRevision,
  type VerifiedRevision,
} from '../../src/controller/pipeline.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { createLogger } from '../../src/util/logger.ts';
import { createTrustMaterialCache } from '../../src/verify/trust.ts';

/** Reads `Kind/name` from `references`; a missing one is an error, as a missing object would be. */
export function mapReferenceReader(references: ReadonlyMap<string, Record<string, string>>): ReferenceReader {
  return async (ref: TypedReference) => {
    const data = references.get(`${ref.kind}/${ref.name}`);
    if (data === undefined) throw new Error(`${ref.kind} ${ref.name} not found`);
    return data;
  };
}

export interface PipelineSetup {
  /** The Git cache directory (read at each run, so it may be set in beforeAll). */
  readonly cacheDir: () => string;
  readonly readReference: ReferenceReader;
  readonly timeoutMs: number;
}

export type PipelineRun = (repository: GitRepository, since?: string) => Promise<VerifiedRevision | Refusal>;

/** A run in a cache of its own each time (`team-a/<name>-<n>`), fresh dependencies, `since` as last applied. */
export function pipelineRunner(setup: PipelineSetup): PipelineRun {
  const logger = createLogger({ level: 'silent' });
  let cacheKeys = 0;
  return async (repository, since) => {
    const deps: PipelineDeps = {
      source: createGitSource({ cacheDir: setup.cacheDir(), logger }),
      readReference: setup.readReference,
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const signal = AbortSignal.timeout(setup.timeoutMs);
    const resolution = await resolveRevision(repository, deps, signal);
    if (!resolution.ok) throw new Error(`resolve failed: ${resolution.message}`);
    cacheKeys += 1;
    return fetchAndVerify(
      repository,
      `team-a/${repository.metadata.name}-${cacheKeys}`,
      resolution.remote,
      resolution.resolved,
      resolution.revision,
      since,
      deps,
      signal,
    );
  };
}
