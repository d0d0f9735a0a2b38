import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fetchAndVerify, type PipelineDeps, resolveRevision } from '../controller/pipeline.ts';
import { createGitSource, createLocalSource } from '../controller/source-adapter.ts';
import { evidenceStatus } from '../controller/status.ts';
import { loadKubeClient } from '../kube/load.ts';
import { createLogger } from '../util/logger.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { loadPolicyFile, PolicyFileError, referenceReader, requireReferences } from './policy-file.ts';
import { sourceLimitOptions, sourceLimitsOf, sourceLimitUsage } from './source-limits.ts';

export const verifyUsage = `Usage: signet verify -f <GitRepository YAML> [--repo-dir <local clone>] [--since <commit>] [--output json]

Runs exactly the operator's verification (commit/tag signatures, mode, rollback, provenance) on the
repository the file names, or on a local clone. The file may also hold the Secrets and ConfigMaps the
GitRepository references; those missing are read from the cluster of the current kubeconfig.
--since stands in for status.lastAppliedRevision.
Exit status: 0 verified, 1 rejected (one line naming the commit and the reason), 2 bad input or error.

Bounds on the repository's content:
${sourceLimitUsage}`;

export async function verifyCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      file: { type: 'string', short: 'f' },
      'repo-dir': { type: 'string' },
      since: { type: 'string' },
      output: { type: 'string', short: 'o', default: 'text' },
      kubeconfig: { type: 'string' },
      ...sourceLimitOptions,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(verifyUsage);
    return 0;
  }
  if (values.file === undefined) throw new PolicyFileError('-f <GitRepository YAML> is required');
  if (values.since !== undefined && !/^[0-9a-f]{40}$/.test(values.since))
    throw new PolicyFileError('--since must be a full commit SHA');
  const json = values.output === 'json';
  const limits = sourceLimitsOf(values);
  const file = await loadPolicyFile(values.file);
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-verify-'));
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  try {
    const deps: PipelineDeps = {
      source:
        values['repo-dir'] === undefined
          ? createGitSource({ cacheDir, logger, limits })
          : createLocalSource(values['repo-dir'], limits),
      readReference: referenceReader(file, () =>
        loadKubeClient({
          ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
          userAgent: 'signet-cli',
        }),
      ),
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const signal = AbortSignal.timeout(10 * 60_000);
    await requireReferences(file.repo, deps.readReference, signal);
    const resolution = await resolveRevision(file.repo, deps, signal);
    if (!resolution.ok) {
      process.stderr.write(`error: ${resolution.message}\n`);
      return 2;
    }
    const result = await fetchAndVerify(
      file.repo,
      'cli',
      resolution.remote,
      resolution.resolved,
      resolution.revision,
      values.since,
      deps,
      signal,
    );
    if (json) {
      process.stdout.write(
        `${JSON.stringify(
          result.ok
            ? {
                verified: true,
                revision: result.revision,
                evidence: evidenceStatus(result.evidence),
                signer: result.signer,
              }
            : {
                verified: false,
                revision: result.revision ?? resolution.revision,
                stage: result.stage,
                reason: result.reason,
                message: result.message,
              },
          null,
          2,
        )}\n`,
      );
    } else if (result.ok) {
      process.stdout.write(
        `verified ${result.revision} (${file.repo.spec.verify.mode}) signed by ${result.signer}\n`,
      );
    } else {
      process.stdout.write(
        `rejected ${result.revision ?? resolution.revision}: ${result.reason}: ${result.message}\n`,
      );
    }
    if (result.ok) return 0;
    return result.stage === 'verify' ? 1 : 2;
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}
