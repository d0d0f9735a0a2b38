/**
 * Runs the `signet` CLI as a child process with this Node (24, which strips TypeScript types), the way
 * a CI job runs it, and builds policy files (a GitRepository plus the Secrets/ConfigMaps it names).
 */
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeTempDir, runCommand } from '../support/git-fixtures.ts';

export const repoRoot: string = fileURLToPath(new URL('../..', import.meta.url));
const mainPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Non-empty stdout lines. */
  readonly lines: readonly string[];
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** `signet <args>` as a child process; any exit code is returned (never thrown). */
export async function runSignet(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  // An empty HOME and no KUBECONFIG: no cluster unless a test passes --kubeconfig.
  const home = await makeTempDir('cli-home');
  const result = await runCommand(process.execPath, [mainPath, ...args], {
    cwd: repoRoot,
    env: { HOME: home, NODE_NO_WARNINGS: '1', ...options.env },
    timeoutMs: options.timeoutMs ?? 60_000,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    okCodes: [0, 1, 2],
  });
  const stdout = result.stdout.toString();
  return {
    code: result.code,
    stdout,
    stderr: result.stderr,
    lines: stdout.split('\n').filter((line) => line !== ''),
  };
}

export interface PolicyOptions {
  readonly name?: string;
  readonly namespace?: string;
  readonly url: string;
  readonly ref?: Record<string, string>;
  readonly path?: string;
  readonly verify: Record<string, unknown>;
  /** Further spec fields (e.g. prune, targetNamespace). */
  readonly spec?: Record<string, unknown>;
  readonly secretRef?: string;
}

export function gitRepositoryObject(options: PolicyOptions): Record<string, unknown> {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name: options.name ?? 'apps', namespace: options.namespace ?? 'default' },
    spec: {
      url: options.url,
      ref: options.ref ?? { branch: 'main' },
      ...(options.path === undefined ? {} : { path: options.path }),
      ...(options.secretRef === undefined ? {} : { secretRef: { name: options.secretRef } }),
      verify: options.verify,
      ...options.spec,
    },
  };
}

export function configMapObject(name: string, data: Record<string, string>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data };
}

export function secretObject(name: string, stringData: Record<string, string>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData };
}

/**
 * The Secret `provenance-keys` holding `keyed`'s public key under its hint, base64 in `data:` as
 * kubectl writes it (spec.verify.provenance.keysRef).
 */
export function provenanceKeysSecret(keyed: {
  readonly hint: string;
  readonly publicKeyPEM: string;
}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'provenance-keys' },
    type: 'Opaque',
    data: { [keyed.hint]: Buffer.from(keyed.publicKeyPEM).toString('base64') },
  };
}

/** Several objects as one multi-document YAML file (what `kubectl apply -f` takes). */
export function yamlDocuments(objects: readonly Record<string, unknown>[]): string {
  return objects.map((object) => `---\n${stringify(object)}`).join('');
}
