import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { renderDesired, verifyDesiredImages } from '../controller/pipeline.ts';
import { cliDiscovery, requireRevisionArgs, revisionOptions, withRevision } from './revision-run.ts';

export const buildUsage = `Usage: signet build -f <GitRepository YAML> [--repo-dir <local clone>] [--since <commit>] [--kubeconfig <path>]

Verifies the GitRepository's revision exactly as the operator does, renders it (plain manifests, the
Kustomize build of spec.path, or the Helm chart of spec.helm, with the operator's engines), verifies
its images under spec.verify.images, and prints the objects as the operator would apply them (owner
labels, namespaces, images pinned to their verified digests), as a YAML stream. Without --kubeconfig, scopes come
from a table of built-in kinds and the CustomResourceDefinitions in the set, and a chart sees Helm's
default .Capabilities; with it, the cluster's version and API versions, as the operator.
Exit status: 0 built, 1 the revision is rejected or the build refused, 2 bad input or error.
`;

export async function buildCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { ...revisionOptions, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(buildUsage);
    return 0;
  }
  const path = requireRevisionArgs(values);
  return withRevision({ command: 'build', path, values }, async (run) => {
    const { file, resolution, client, signal } = run;
    if (!resolution.ok) throw new Error(resolution.message);
    const verified = await run.verify(resolution);
    if (!verified.ok) {
      process.stderr.write(
        `rejected ${verified.revision ?? resolution.revision}: ${verified.reason}: ${verified.message}\n`,
      );
      return verified.stage === 'fetch' ? 2 : 1;
    }
    const discovery = await cliDiscovery(values, client);
    const rendering = await renderDesired(file.repo, verified.files, discovery, 10_000, signal);
    if (!rendering.ok) {
      process.stderr.write(`refused ${verified.revision}: ${rendering.reason}: ${rendering.message}\n`);
      return 1;
    }
    const images = await verifyDesiredImages(file.repo, rendering.desired, run.deps, signal);
    if (!images.ok) {
      process.stderr.write(`rejected ${verified.revision}: ${images.reason}: ${images.message}\n`);
      return 1;
    }
    for (const image of images.images)
      process.stderr.write(`image ${image.image} signed by ${image.signer}\n`);
    process.stdout.write(images.desired.map((object) => stringify(object)).join('---\n'));
    process.stderr.write(
      `built ${verified.revision} (${rendering.desired.length} objects), signed by ${verified.signer}\n`,
    );
    return 0;
  });
}
