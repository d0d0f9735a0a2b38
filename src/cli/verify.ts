import { parseArgs } from 'node:util';
import { type ImageCheck, renderDesired, verifyDesiredImages } from '../controller/pipeline.ts';
import { evidenceStatus } from '../controller/status.ts';
import {
  cliDiscovery,
  type RevisionRun,
  requireRevisionArgs,
  revisionOptions,
  withRevision,
} from './revision-run.ts';
import { sourceLimitOptions, sourceLimitsOf, sourceLimitUsage } from './source-limits.ts';

export const verifyUsage = `Usage: signet verify -f <GitRepository YAML> [--repo-dir <local clone>] [--since <commit>] [--output json]

Runs exactly the operator's verification (commit/tag signatures, mode, rollback, provenance and, with
spec.verify.images, the signatures of every image the rendered manifests name) on the repository the
file names, or on a local clone. Verified images are printed pinned to their digests. The file may also hold the Secrets and ConfigMaps the
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
  return withRevision({ command: 'verify', path, values, limits }, async (run) => {
    const { file, resolution } = run;
    if (!resolution.ok) {
      process.stderr.write(`error: ${resolution.message}\n`);
      return 2;
    }
    const verifiedRevision = await run.verify(resolution);
    const checked = verifiedRevision.ok ? await checkImages(run, verifiedRevision.files, values) : undefined;
    const result =
      checked === undefined || checked.ok ? verifiedRevision : { ...checked, revision: resolution.revision };
    const images = checked?.ok ? checked.images : [];
    if (json) {
      process.stdout.write(
        `${JSON.stringify(
          result.ok
            ? {
                verified: true,
                revision: result.revision,
                evidence: evidenceStatus(result.evidence),
                signer: result.signer,
                ...(images.length === 0 ? {} : { images }),
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
      for (const image of images) process.stdout.write(`image ${image.image} signed by ${image.signer}\n`);
    } else {
      process.stdout.write(
        `rejected ${result.revision ?? resolution.revision}: ${result.reason}: ${result.message}\n`,
      );
    }
    if (result.ok) return 0;
    return result.stage === 'verify' ? 1 : 2;
  });
}

/** spec.verify.images: render the verified tree and check its images, as the operator does. */
async function checkImages(
  run: RevisionRun,
  files: Parameters<typeof renderDesired>[1],
  values: Parameters<typeof cliDiscovery>[0],
): Promise<ImageCheck | undefined> {
  if (run.file.repo.spec.verify.images === undefined) return undefined;
  const discovery = await cliDiscovery(values, run.client);
  const rendering = await renderDesired(run.file.repo, files, discovery, 10_000, run.signal);
  if (!rendering.ok) return rendering;
  return verifyDesiredImages(run.file.repo, rendering.desired, run.deps, run.signal);
}
