// Helm charts on the real control plane: a chart (values file + inline values) reconciled by the
// operator with the release name and namespace; a values change applied; a removed template pruned;
// drift on a chart object reverted; hooks applied in hook-weight order; signet build prints what was applied; a non-vendored
// dependency, a template that loops and `.Files.Get "../../etc/passwd"` each refused as
// BuildFailed (naming the chart and the field) with nothing applied and the last revision kept.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { KubeClient } from '../src/kube/client.ts';
import { runSignet, yamlDocuments } from '../test/cli/support.ts';
import { makeTempDir } from '../test/support/git-fixtures.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../test/support/helm.ts';
import { localAuditLogPath } from './support/audit.ts';
import { createObjects, gitRepositoryObject, trustObjects } from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-helm');
let admin: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;
const captured = capturingLogger();
let applied = '';
let enginePath = '';
const gitRepository = () =>
  gitRepositoryObject(signed, ns.name, 'apps', {
    interval: '1s',
    timeout: '20s',
    path: './charts/web',
    helm: { valuesFiles: ['env/prod.yaml'], values: { size: 'large' } },
  });

const chart = {
  'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
  'charts/web/values.yaml': 'color: blue\nsize: small\nwho: chart\n',
  'charts/web/templates/_helpers.tpl':
    '{{- define "web.fullname" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end }}',
  'charts/web/templates/settings.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "web.fullname" . }}-settings\n  namespace: {{ .Release.Namespace }}\ndata:\n  color: {{ .Values.color }}\n  size: {{ .Values.size }}\n  who: {{ .Values.who }}\n  namespace: {{ .Release.Namespace }}\n  has-apps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}\n  has-fake: {{ .Capabilities.APIVersions.Has "fake.example.com/v1" | quote }}\n  has-signet: {{ .Capabilities.APIVersions.Has "signet.dev/v1alpha1" | quote }}\n  has-kind: {{ .Capabilities.APIVersions.Has "signet.dev/v1alpha1/GitRepository" | quote }}\n',
  'charts/web/templates/extra.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "web.fullname" . }}-extra\ndata:\n  a: "1"\n',
  'charts/web/templates/NOTES.txt': 'installed {{ .Release.Name }}',
  'env/prod.yaml': 'color: green\nwho: prod\n',
};

async function configMaps(): Promise<Record<string, Record<string, string>>> {
  const list = await admin.request({
    method: 'GET',
    path: `/api/v1/namespaces/${ns.name}/configmaps?labelSelector=signet.dev%2Fname%3Dapps`,
    timeoutMs: 15_000,
  });
  const items = (
    JSON.parse(list.body) as { items: { metadata: { name: string }; data?: Record<string, string> }[] }
  ).items;
  return Object.fromEntries(items.map((item) => [item.metadata.name, item.data ?? {}]));
}

async function appliedRevision(commit: string): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const now = await repoStatus(admin, ns.name, 'apps');
      return now.lastAppliedRevision === `main@sha1:${commit}` ? now : undefined;
    },
    { timeoutMs: 120_000, description: `revision ${commit} applied` },
  );
}

/** Commits `files`; waits until that revision is refused as BuildFailed; returns the message. */
async function expectRefused(files: Record<string, string | null>): Promise<string> {
  const before = await configMaps();
  const commit = await signed.commit(files);
  const status = await waitFor(
    async () => {
      const now = await repoStatus(admin, ns.name, 'apps');
      const ready = condition(now, 'Ready');
      return now.lastAttemptedRevision === `main@sha1:${commit}` && ready?.status === 'False'
        ? now
        : undefined;
    },
    { timeoutMs: 120_000, description: `revision ${commit} refused` },
  );
  expect(condition(status, 'Ready')?.reason).toBe('BuildFailed');
  expect(status.lastAppliedRevision).toBe(applied);
  expect(await configMaps()).toEqual(before);
  return condition(status, 'Ready')?.message ?? '';
}

interface AppliedEvent {
  readonly name: string;
  /** requestReceivedTimestamp and the ResponseComplete stageTimestamp (MicroTime: fixed width). */
  readonly received: string;
  readonly answered: string;
}

/** The operator's first PATCH of each ConfigMap of the test namespace, from the audit log. */
async function appliesOf(auditLog: string, names: readonly string[]): Promise<(AppliedEvent | undefined)[]> {
  const events = (await readFile(auditLog, 'utf8'))
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map(
      (line) =>
        JSON.parse(line) as {
          verb?: string;
          stage?: string;
          userAgent?: string;
          objectRef?: { resource?: string; namespace?: string; name?: string };
          requestReceivedTimestamp?: string;
          stageTimestamp?: string;
        },
    );
  return names.map((name) => {
    const event = events.find(
      (e) =>
        e.verb === 'patch' &&
        e.stage === 'ResponseComplete' &&
        e.userAgent?.startsWith('signet/e2e') === true &&
        e.objectRef?.resource === 'configmaps' &&
        e.objectRef.namespace === ns.name &&
        e.objectRef.name === name,
    );
    return event?.requestReceivedTimestamp === undefined || event.stageTimestamp === undefined
      ? undefined
      : { name, received: event.requestReceivedTimestamp, answered: event.stageTimestamp };
  });
}

beforeAll(async () => {
  enginePath = (await ensureHelm()).engine;
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo();
  await createObjects(admin, trustObjects(signed, ns.name));
}, helmBuildTimeoutMs);

afterAll(async () => {
  await operator?.stop();
  await signed?.close();
  await admin?.close();
});

describe('a Helm chart reconciled by the operator', () => {
  it('renders the chart with values file then inline values, release name, namespace and the cluster capabilities', async () => {
    const commit = await signed.commit(chart);
    operator = await startTestOperator({}, captured.logger);
    await admin.apply(gitRepository(), { fieldManager: 'e2e' });
    const status = await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    expect(condition(status, 'Ready')?.status).toBe('True');
    expect(await configMaps()).toEqual({
      'apps-web-settings': {
        color: 'green',
        size: 'large',
        who: 'prod',
        namespace: ns.name,
        'has-apps': 'true',
        'has-fake': 'false',
        // Served by this API server (the CRD), not in Helm's defaults: .Capabilities is discovery.
        'has-signet': 'true',
        'has-kind': 'true',
      },
      'apps-web-extra': { a: '1' },
    });
  });

  it('applies a values change', async () => {
    const commit = await signed.commit({ 'env/prod.yaml': 'color: red\nwho: prod\n' });
    await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    await waitFor(
      async () => ((await configMaps())['apps-web-settings']?.color === 'red' ? true : undefined),
      { timeoutMs: 30_000, description: 'color red' },
    );
  });

  it('prunes the object of a removed template', async () => {
    const commit = await signed.commit({ 'charts/web/templates/extra.yaml': null });
    await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    await waitFor(async () => (!('apps-web-extra' in (await configMaps())) ? true : undefined), {
      timeoutMs: 30_000,
      description: 'apps-web-extra pruned',
    });
  });

  it('reverts drift on a chart object', async () => {
    await admin.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/apps-web-settings`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { color: 'hacked' } }),
      timeoutMs: 15_000,
    });
    await waitFor(
      async () => ((await configMaps())['apps-web-settings']?.color === 'red' ? true : undefined),
      { timeoutMs: 30_000, description: 'the edit of apps-web-settings reverted' },
    );
  });

  it('applies hooks as objects in hook-weight order within their stage, one weight after the other', async () => {
    // Weight order m, a, z is neither the names' order nor its reverse, so the creations sent
    // concurrently in either name order would not pass. resourceVersions are etcd revisions: the
    // order the API server stored the creations in.
    const hook = (name: string, weight: string): string =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-${name}\n  annotations:\n    helm.sh/hook: post-install\n    helm.sh/hook-weight: "${weight}"\ndata:\n  weight: "${weight}"\n`;
    const commit = await signed.commit({
      'charts/web/templates/hook-late.yaml': hook('z-late', '5'),
      'charts/web/templates/hook-early.yaml': hook('m-early', '-3'),
      'charts/web/templates/plain.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-a-plain\ndata:\n  weight: none\n',
    });
    await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    const created = await Promise.all(
      ['apps-m-early', 'apps-a-plain', 'apps-z-late'].map(async (name) => {
        const live = await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: ns.name, name });
        expect(live, name).toBeDefined();
        return BigInt(live?.metadata.resourceVersion ?? '0');
      }),
    );
    expect(created[0]! < created[1]! && created[1]! < created[2]!, created.join(' < ')).toBe(true);
    // The waits, from the API server's audit log: each weight's PATCH was received only after the
    // previous weight's PATCH had been answered (concurrent applies would all arrive first).
    const auditLog = localAuditLogPath('e2e/helm', 'the hook applies');
    const applies = await waitFor(
      async () => {
        const found = await appliesOf(auditLog, ['apps-m-early', 'apps-a-plain', 'apps-z-late']);
        return found.every((event) => event !== undefined) ? (found as AppliedEvent[]) : undefined;
      },
      { timeoutMs: 30_000, description: 'the three applies in the audit log' },
    );
    for (let index = 1; index < applies.length; index++) {
      const before = applies[index - 1]!;
      const after = applies[index]!;
      expect(
        before.answered <= after.received,
        `${before.name} answered ${before.answered}, ${after.name} received ${after.received}`,
      ).toBe(true);
    }
  });

  it('signet build prints what the operator applied, and signet diff says "no changes"', async () => {
    const policy = join(await makeTempDir('e2e-helm-cli'), 'apps.yaml');
    await writeFile(policy, yamlDocuments([gitRepository()]));
    const env = { SIGNET_HELM_ENGINE: enginePath };
    const args = ['-f', policy, '--kubeconfig', kubeconfigPath()];
    const built = await runSignet(['build', ...args], { env, timeoutMs: 120_000 });
    expect(built.code).toBe(0);
    const printed = parseAllDocuments(built.stdout).map(
      (d) => d.toJS() as { metadata: { name: string }; data: unknown },
    );
    expect(Object.fromEntries(printed.map((o) => [o.metadata.name, o.data]))).toEqual(await configMaps());
    const diff = await runSignet(['diff', ...args], { env, timeoutMs: 120_000 });
    expect(diff.lines).toEqual([
      expect.stringMatching(/^revision main@sha1:[0-9a-f]{40} verified/),
      'no changes',
    ]);
    expect(diff.code).toBe(0);
  });

  it('refuses a dependency that is not vendored, naming the chart and the field', async () => {
    const message = await expectRefused({
      'charts/web/Chart.yaml':
        'apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n  - name: redis\n    version: 1.0.0\n    repository: https://charts.example.com\n',
    });
    expect(message).toContain(
      'charts/web/Chart.yaml: dependencies[0]: "redis" (repository "https://charts.example.com") is not vendored',
    );
  });

  it('refuses .Files.Get "../../etc/passwd"', async () => {
    const message = await expectRefused({
      'charts/web/Chart.yaml': chart['charts/web/Chart.yaml'],
      'charts/web/templates/passwd.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: passwd\ndata:\n  p: {{ .Files.Get "../../etc/passwd" | quote }}\n',
    });
    expect(message).toContain(
      'charts/web/templates/passwd.yaml: .Files.Get: "../../etc/passwd" is outside the chart charts/web',
    );
  });

  it('stops a template that loops at spec.timeout', async () => {
    const message = await expectRefused({
      'charts/web/templates/passwd.yaml': null,
      'charts/web/templates/loop.yaml':
        '{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- end }}{{- end }}',
    });
    expect(message).toContain('helm template did not finish within 20000 ms');
  });
});
