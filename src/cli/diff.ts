import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import PQueue from 'p-queue';
import { apiVersion as gitRepositoryApiVersion, gitRepositoryKind } from '../api/gitrepository.ts';
import { DriftBaselines } from '../controller/baselines.ts';
import {
  fetchAndVerify,
  type PipelineDeps,
  renderDesired,
  resolveRevision,
  verifyDesiredImages,
} from '../controller/pipeline.ts';
import { createGitSource } from '../controller/source-adapter.ts';
import { readStatus } from '../controller/status.ts';
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { loadKubeClient } from '../kube/load.ts';
import { inventoryId } from '../plan/inventory.ts';
import { type Plan, type PlanInput, planChanges } from '../plan/plan.ts';
import { formatSubject, identityOf, type KubeObject, objectKey } from '../render/object.ts';
import { createLogger } from '../util/logger.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { loadPolicyFile, PolicyFileError, referenceReader } from './policy-file.ts';
import { sourceLimitOptions, sourceLimitsOf, sourceLimitUsage } from './source-limits.ts';

export const diffUsage = `Usage: signet diff -f <GitRepository YAML> [--kubeconfig <path>]

Verifies, renders and plans the GitRepository's revision against the cluster without applying
anything, and prints the planned changes. An update is confirmed by a server-side-apply dry-run
(a value the server only normalizes is not a change). Exit status: 0 no changes, 1 changes, 2 error (including
a revision that fails verification, and a live object that could not be read: nothing unverified
or unknown is ever planned).

Bounds on the repository's content:
${sourceLimitUsage}`;

/** Most failed live reads named in one error message. */
const maxReportedReadFailures = 5;
/** Server-side-apply dry-runs in flight at once. */
const dryRunConcurrency = 16;

/**
 * Live objects that could not be read (403, timeout, ...). Only a 404 means "absent": planning
 * any other failure as a create would report changes the cluster may not have.
 */
export class LiveReadError extends Error {
  override readonly name = 'LiveReadError';
  readonly code = 'LiveReadFailed';
  readonly failures: readonly { readonly subject: string; readonly error: string }[];
  constructor(failures: readonly { readonly subject: string; readonly error: string }[]) {
    const listed = failures
      .slice(0, maxReportedReadFailures)
      .map((f) => `${f.subject}: ${f.error}`)
      .join('; ');
    const more =
      failures.length > maxReportedReadFailures
        ? `; …and ${failures.length - maxReportedReadFailures} more`
        : '';
    super(`could not read ${failures.length} live object(s), so no plan was made: ${listed}${more}`);
    this.failures = failures;
  }
}

/** The failure without the subject (the caller names the object once). */
function describeRequestFailure(error: unknown): string {
  if (error instanceof KubeApiError) {
    return `${error.reason} (HTTP ${error.status}): ${error.serverMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The plan, with every update whose owned fields differ from Git checked by a server-side-apply
 * dry-run: the difference may be only the server's form of the same value (`cpu: 1000m` is stored
 * as `1`, a Service port gains its defaults). Where the dry-run's answer is what the live object
 * already holds, the object is unchanged, as the operator's stored baseline would say. A refused
 * dry-run (RBAC, a conflict) leaves the update planned and is named on stderr.
 */
async function planWithDryRun(client: KubeClient, input: PlanInput, signal: AbortSignal): Promise<Plan> {
  const first = planChanges(input);
  const candidates = first.entries.filter(
    (entry) =>
      entry.action === 'update' &&
      entry.reason === 'fields-differ' &&
      entry.desired !== undefined &&
      entry.live !== undefined,
  );
  if (candidates.length === 0) return first;
  const baselines = new DriftBaselines();
  const refused: string[] = [];
  const queue = new PQueue({ concurrency: dryRunConcurrency });
  await Promise.all(
    candidates.map((entry) =>
      queue.add(async () => {
        const desired = entry.desired as KubeObject;
        try {
          const answer = await client.apply(desired, {
            fieldManager: input.fieldManager,
            dryRun: true,
            signal,
            timeoutMs: 30_000,
          });
          baselines.record(entry.id, desired, answer.object);
        } catch (error) {
          refused.push(`${entry.subject}: ${describeRequestFailure(error)}`);
        }
      }),
    ),
  );
  if (refused.length > 0) {
    refused.sort();
    process.stderr.write(
      `server-side-apply dry-run refused for ${refused.length} object(s), planned as updates: ${refused
        .slice(0, maxReportedReadFailures)
        .join('; ')}${refused.length > maxReportedReadFailures ? '; …' : ''}\n`,
    );
  }
  return planChanges({
    ...input,
    previous: {
      desired: new Map(input.desired.map((object) => [inventoryId(identityOf(object)), object])),
      baselines: baselines.normalized,
    },
  });
}

export async function diffCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      file: { type: 'string', short: 'f' },
      kubeconfig: { type: 'string' },
      ...sourceLimitOptions,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(diffUsage);
    return 0;
  }
  if (values.file === undefined) throw new PolicyFileError('-f <GitRepository YAML> is required');
  const limits = sourceLimitsOf(values);
  const file = await loadPolicyFile(values.file);
  const repo = file.repo;
  const client = await loadKubeClient({
    ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
    userAgent: 'signet-cli',
  });
  const cacheDir = await mkdtemp(join(tmpdir(), 'signet-diff-'));
  const signal = AbortSignal.timeout(10 * 60_000);
  try {
    const deps: PipelineDeps = {
      source: createGitSource({
        cacheDir,
        logger: createLogger({ level: 'warn', destination: process.stderr }),
        limits,
      }),
      readReference: referenceReader(file, async () => client),
      trustCache: createTrustMaterialCache(),
      now: () => new Date(),
    };
    const live = await client.get(
      {
        apiVersion: gitRepositoryApiVersion,
        kind: gitRepositoryKind,
        name: repo.metadata.name,
        namespace: repo.metadata.namespace,
      },
      { signal },
    );
    const status = readStatus((live?.status ?? {}) as Record<string, unknown>);
    const resolution = await resolveRevision(repo, deps, signal);
    if (!resolution.ok) throw new Error(resolution.message);
    const lastApplied = status.lastAppliedRevision?.split('sha1:')[1];
    const verified = await fetchAndVerify(
      repo,
      'cli',
      resolution.remote,
      resolution.resolved,
      resolution.revision,
      lastApplied,
      deps,
      signal,
    );
    if (!verified.ok) throw new Error(`${verified.reason}: ${verified.message}`);
    const rendered = await renderDesired(repo, verified.files, client.discovery, 10_000, signal);
    if (!rendered.ok) throw new Error(rendered.message);
    // With spec.verify.images, the objects as the operator would apply them: images pinned.
    const rendering = await verifyDesiredImages(repo, rendered.desired, deps, signal);
    if (!rendering.ok) throw new Error(`${rendering.reason}: ${rendering.message}`);
    const liveObjects = new Map<string, KubeObject>();
    const readFailures: { subject: string; error: string }[] = [];
    await Promise.all(
      rendering.desired.map(async (object) => {
        const id = identityOf(object);
        try {
          // undefined only for a 404: the object is absent. Anything else is a failed read.
          const found = await client.get(
            {
              apiVersion: object.apiVersion,
              kind: object.kind,
              name: object.metadata.name,
              ...(object.metadata.namespace === undefined ? {} : { namespace: object.metadata.namespace }),
            },
            { signal },
          );
          if (found !== undefined) liveObjects.set(objectKey(id), found);
        } catch (error) {
          readFailures.push({ subject: formatSubject(id), error: describeRequestFailure(error) });
        }
      }),
    );
    if (readFailures.length > 0) {
      readFailures.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
      throw new LiveReadError(readFailures);
    }
    const plan = await planWithDryRun(
      client,
      {
        desired: rendering.desired,
        inventory: status.inventory,
        live: liveObjects,
        owner: { name: repo.metadata.name, namespace: repo.metadata.namespace },
        fieldManager: 'signet',
        prune: repo.spec.prune,
      },
      signal,
    );
    process.stdout.write(`revision ${verified.revision} verified, signed by ${verified.signer}\n`);
    let changes = 0;
    for (const entry of plan.entries) {
      if (entry.action === 'unchanged' || entry.action === 'skip') continue;
      changes++;
      process.stdout.write(
        `${entry.action.padEnd(7)} ${entry.subject}${entry.reason === undefined ? '' : ` (${entry.reason})`}\n`,
      );
    }
    process.stdout.write(changes === 0 ? 'no changes\n' : `${changes} change(s)\n`);
    return changes === 0 ? 0 : 1;
  } finally {
    await client.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
}
