import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { fetchAndVerify, type PipelineDeps, renderDesired, resolveRevision } from '../controller/pipeline.ts';
import { createGitSource, createLocalSource } from '../controller/source-adapter.ts';
import { loadKubeClient } from '../kube/load.ts';
import { createLogger } from '../util/logger.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { builtinScopeOf } from './builtin-scopes.ts';
import { loadPolicyFile, PolicyFileError, referenceReader, requireReferences } from './policy-file.ts';

export const buildUsage = `Usage: signet build -f <GitRepository YAML> [--repo-dir <local clone>] [--since <commit>] [--kubeconfig <path>]

Verifies the GitRepository's revision exactly as the operator does, renders it (plain manifests, the
Kustomize build of spec.path, or the Helm chart of spec.helm, with the operator's engines) and prints the objects as the operator
would apply them (owner labels, namespaces), as a YAML stream. Without --kubeconfig, scopes come
from a table of built-in kinds and the CustomResourceDefinitions in the set, and a chart sees Helm's
default .Capabilities; with it, the cluster's version and API versions, as the operator.
Exit status: 0 built, 1 the revision is rejected or the build refused, 2 bad input or error.
`;

export async function buildCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      file: { type: 'string', short: 'f' },
      'repo-dir': { type: 'string' },
      since: { type: 'string' },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(buildUsage);
    return 0;
  }
  if (values.file === undefined) throw new PolicyFileError('-f <GitRepository YAML> is required');
  if (values.since !== undefined && !/^[0-9a-f]{40}$/.test(values.since))
    throw new PolicyFileError('--since must be a full commit SHA');
  const file = await loadPolicyFile(values.file);
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-build-'));
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
          ? createGitSource({ cacheDir, logger })
          : createLocalSource(values['repo-dir']),
      readReference: referenceReader(file, client),
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const signal = AbortSignal.timeout(10 * 60_000);
    await requireReferences(file.repo, deps.readReference, signal);
    const resolution = await resolveRevision(file.repo, deps, signal);
    if (!resolution.ok) throw new Error(resolution.message);
    const verified = await fetchAndVerify(
      file.repo,
      'cli',
      resolution.remote,
      resolution.resolved,
      resolution.revision,
      values.since,
      deps,
      signal,
    );
    if (!verified.ok) {
      process.stderr.write(
        `rejected ${verified.revision ?? resolution.revision}: ${verified.reason}: ${verified.message}\n`,
      );
      return verified.stage === 'fetch' ? 2 : 1;
    }
    const discovery =
      values.kubeconfig === undefined
        ? {
            resolve: async (): Promise<never> => {
              throw new Error('no cluster: scopes come from the built-in table');
            },
            scopeOf: builtinScopeOf,
          }
        : (await client()).discovery;
    const rendering = await renderDesired(file.repo, verified.files, discovery, 10_000, signal);
    if (!rendering.ok) {
      process.stderr.write(`refused ${verified.revision}: ${rendering.reason}: ${rendering.message}\n`);
      return 1;
    }
    process.stdout.write(rendering.desired.map((object) => stringify(object)).join('---\n'));
    process.stderr.write(
      `built ${verified.revision} (${rendering.desired.length} objects), signed by ${verified.signer}\n`,
    );
    return 0;
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}
