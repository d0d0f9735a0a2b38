// Shared fixtures for operator e2e tests: a signed Git repository served over HTTPS, the CRD,
// an in-process operator on the test cluster, and small typed readers of GitRepository status.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { type OperatorOptions, type RunningOperator, startOperator } from '../../src/controller/operator.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { loadKubeClient } from '../../src/kube/load.ts';
import type { KubeObject } from '../../src/render/object.ts';
import { createGitSource } from '../../src/source/git-source.ts';
import { createLogger, type Logger } from '../../src/util/logger.ts';
import {
  allowedSignersLine,
  createRepo,
  generateSshKey,
  type SshKeyFixture,
  type TestRepo,
} from '../../test/support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../../test/support/git-server.ts';
import { kubeconfigPath, waitFor } from './kube.ts';
import { openLogSink, registerSecret } from './secret-scan.ts';

export const crdPath = new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url);

export async function adminClient(userAgent = 'signet-e2e/0.1.0'): Promise<KubeClient> {
  return loadKubeClient({ kubeconfig: kubeconfigPath(), userAgent });
}

/** Installs the GitRepository CRD (server-side apply) and waits until it is Established. */
export async function installCrd(client: KubeClient): Promise<void> {
  const { parse } = await import('yaml');
  const crd = parse(await readFile(crdPath, 'utf8')) as KubeObject;
  await client.apply(crd, { fieldManager: 'signet-e2e', force: true });
  await waitFor(
    async () => {
      const live = await client.get({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        name: 'gitrepositories.signet.dev',
      });
      const conditions =
        (live?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
      return conditions.some((c) => c.type === 'Established' && c.status === 'True');
    },
    { timeoutMs: 30_000, description: 'the GitRepository CRD to be Established' },
  );
  client.discovery.invalidate();
}

export interface SignedRepo {
  readonly repo: TestRepo;
  readonly key: SshKeyFixture;
  readonly server: GitServer;
  readonly url: string;
  readonly allowedSigners: string;
  /** Writes files (relative to the repo root; `null` deletes) and commits, signed unless `unsigned`. */
  commit(
    files: Record<string, string | null>,
    options?: { unsigned?: boolean; message?: string },
  ): Promise<string>;
  close(): Promise<void>;
}

export async function createSignedRepo(name = 'apps'): Promise<SignedRepo> {
  const server = await startGitServer();
  const repo = await createRepo();
  const keyDir = await mkdtemp(join(tmpdir(), 'signet-keys-'));
  const key = await generateSshKey(keyDir, 'ed25519', 'release@example.com');
  registerSecret(`${name}: SSH signing private key`, await readFile(key.privateKeyPath, 'utf8'));
  const url = server.serve(name, join(repo.dir, '.git'));
  return {
    repo,
    key,
    server,
    url,
    allowedSigners: `${allowedSignersLine('release@example.com', key)}\n`,
    async commit(files, options = {}) {
      for (const [path, content] of Object.entries(files)) {
        const full = join(repo.dir, path);
        if (content === null) {
          await rm(full, { force: true });
          await repo.git(['add', '-A', path]);
        } else {
          await mkdir(dirname(full), { recursive: true });
          await writeFile(full, content);
          await repo.git(['add', path]);
        }
      }
      return repo.commit({
        files: {},
        ...(options.message === undefined ? {} : { message: options.message }),
        ...(options.unsigned ? {} : { sign: { format: 'ssh', key } }),
      });
    },
    async close() {
      await server.close();
      await repo.close();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}

export function configMapYaml(name: string, data: Record<string, string>): string {
  const lines = Object.entries(data).map(([k, v]) => `  ${k}: "${v}"`);
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${lines.join('\n')}\n`;
}

/**
 * Log lines the operator wrote, so tests can scan them (e.g. for leaked secrets). Every line is also
 * copied to a sink of the suite-wide secret scan (e2e/support/secret-scan.ts).
 */
export function capturingLogger(name = 'captured'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = openLogSink(`in-process-${name}`);
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = chunk.toString();
      lines.push(text);
      sink.append(text);
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

/**
 * The logger of an operator a test does not capture: warnings and errors on stdout as before, and
 * every line (debug level) in a sink of the suite-wide secret scan.
 */
export function defaultTestLogger(): Logger {
  const sink = openLogSink('in-process-default');
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = chunk.toString();
      sink.append(text);
      const level = /"level":(\d+)/.exec(text)?.[1];
      if (level !== undefined && Number(level) >= 40) process.stdout.write(text);
      callback();
    },
  });
  return createLogger({ level: 'debug', destination });
}

/** The Git source of a test operator: a given cache directory (kept by stop()) and a request hook. */
export interface TestSourceOptions {
  /** Reused across operators (a restart on the same node); stop() then leaves it in place. */
  readonly cacheDir?: string;
  readonly onRequest?: (method: string, url: string) => void;
  /** Git requests in flight per host (the operator's --git-host-concurrency). */
  readonly hostConcurrency?: number;
}

export async function startTestOperator(
  overrides: Partial<OperatorOptions> = {},
  logger: Logger = defaultTestLogger(),
  sourceOptions: TestSourceOptions = {},
): Promise<{ operator: RunningOperator; cacheDir: string; stop(): Promise<void> }> {
  const ownCache = sourceOptions.cacheDir === undefined;
  const cacheDir = sourceOptions.cacheDir ?? (await mkdtemp(join(tmpdir(), 'signet-cache-')));
  const operator = await startOperator(
    {
      kubeconfig: kubeconfigPath(),
      concurrent: 2,
      applyConcurrency: 8,
      leaderElect: false,
      leaseNamespace: 'default',
      leaseName: 'signet-e2e',
      clusterName: 'e2e',
      userAgent: 'signet/e2e',
      maxObjects: 10_000,
      alertBatchWindowMs: 300,
      ...overrides,
    },
    createGitSource({
      cacheDir,
      logger,
      ...(sourceOptions.onRequest === undefined ? {} : { onRequest: sourceOptions.onRequest }),
      ...(sourceOptions.hostConcurrency === undefined
        ? {}
        : { hostConcurrency: sourceOptions.hostConcurrency }),
    }),
    logger,
  );
  return {
    operator,
    cacheDir,
    async stop() {
      await operator.stop(5_000);
      if (ownCache) await rm(cacheDir, { recursive: true, force: true });
    },
  };
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export interface RepoStatus {
  conditions?: Condition[];
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  observedGeneration?: number;
  inventory?: { entries: { id: string; v: string }[] };
  verification?: { commit: string; signer: { type: string; keyFingerprint?: string; principal?: string } };
  drift?: {
    objects: { id: string; subject: string; fields: string[]; manager?: string; deleted: boolean }[];
  };
}

export async function repoStatus(client: KubeClient, namespace: string, name: string): Promise<RepoStatus> {
  const live = await client.get({
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    name,
    namespace,
  });
  return (live?.status ?? {}) as RepoStatus;
}

export function condition(status: RepoStatus, type: string): Condition | undefined {
  return status.conditions?.find((c) => c.type === type);
}

/** Polls the GitRepository's status until `accept` holds, and returns that status. */
export async function waitRepoStatus(
  client: KubeClient,
  namespace: string,
  name: string,
  accept: (status: RepoStatus) => boolean,
  options: { readonly timeoutMs: number; readonly description: string },
): Promise<RepoStatus> {
  return waitFor(async () => {
    const now = await repoStatus(client, namespace, name);
    return accept(now) ? now : undefined;
  }, options);
}

/** Polls until `main@sha1:<commit>` is the applied revision and Ready is True. */
export function waitCommitApplied(
  client: KubeClient,
  namespace: string,
  name: string,
  commit: string,
): Promise<RepoStatus> {
  return waitRepoStatus(
    client,
    namespace,
    name,
    (s) => s.lastAppliedRevision === `main@sha1:${commit}` && condition(s, 'Ready')?.status === 'True',
    { timeoutMs: 60_000, description: `main@sha1:${commit} applied and Ready` },
  );
}

/** Polls until `main@sha1:<commit>` was attempted and refused with Verified=False `reason`. */
export function waitCommitRefused(
  client: KubeClient,
  namespace: string,
  name: string,
  commit: string,
  reason: string,
): Promise<RepoStatus> {
  return waitRepoStatus(
    client,
    namespace,
    name,
    (s) => s.lastAttemptedRevision === `main@sha1:${commit}` && condition(s, 'Verified')?.reason === reason,
    { timeoutMs: 60_000, description: `main@sha1:${commit} refused with Verified=False ${reason}` },
  );
}

/** Waits until each named GitRepository in `namespace` has condition Ready=True, one after the other. */
export async function waitAllReady(
  client: KubeClient,
  namespace: string,
  names: readonly string[],
  timeoutMs = 60_000,
): Promise<void> {
  for (const name of names) {
    await waitFor(
      async () => condition(await repoStatus(client, namespace, name), 'Ready')?.status === 'True',
      {
        timeoutMs,
        description: `GitRepository ${name} Ready`,
      },
    );
  }
}
