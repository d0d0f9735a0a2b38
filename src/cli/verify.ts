import { parseArgs } from 'node:util';
import { evidenceStatus } from '../controller/status.ts';
import { requireRevisionArgs, revisionOptions, withRevision } from './revision-run.ts';
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
      ...revisionOptions,
      output: { type: 'string', short: 'o', default: 'text' },
      ...sourceLimitOptions,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(verifyUsage);
    return 0;
  }
  const path = requireRevisionArgs(values);
  const json = values.output === 'json';
  const limits = sourceLimitsOf(values);
  return withRevision({ command: 'verify', path, values, limits }, async ({ file, resolution, verify }) => {
    if (!resolution.ok) {
      process.stderr.write(`error: ${resolution.message}\n`);
      return 2;
    }
    const result = await verify(resolution);
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
  });
}
