// Kustomize overlays on the real control plane: an overlay of ../base reconciled by the operator, a
// change under the base picked up, a generator's hash-suffixed ConfigMap replaced and the old one
// pruned, drift reverted; a remote base, an exec plugin, helmCharts, an alias bomb and an oversized
// file each refused (BuildFailed naming file and field, a Warning Event, a Slack alert) with nothing applied and the
// last revision kept.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { KubeClient } from '../src/kube/client.ts';
import { runSignet, yamlDocuments } from '../test/cli/support.ts';
import { Receiver } from '../test/notify/support.ts';
import { makeTempDir } from '../test/support/git-fixtures.ts';
import { ensureKustomize, kustomizeBuildTimeoutMs } from '../test/support/kustomize.ts';
import { gitRepositoryObject } from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  capturingLogger,
  condition,
  configMapYaml,
  type RepoStatus,
  type SignedRepo,
  startTestOperator,
  waitRepoStatus,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-kustomize');
let admin: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>> | undefined;
const captured = capturingLogger();
let applied = '';
let enginePath = '';
let slack: Receiver;
const gitRepository = () =>
  gitRepositoryObject(signed, ns.name, 'apps', {
    interval: '1s',
    path: './apps/prod',
    alerts: { slack: { secretRef: { name: 'slack' } } },
  });

const overlay = 'resources: [../../base]\nnamePrefix: prod-\ncommonLabels: {env: prod}\n';
const base = (color: string) => ({
  'base/kustomization.yaml': `resources: [app.yaml]\nconfigMapGenerator:\n- name: settings\n  literals: [color=${color}]\n`,
  'base/app.yaml': configMapYaml('app', { tier: 'web' }),
});

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
  return waitRepoStatus(admin, ns.name, 'apps', (now) => now.lastAppliedRevision === `main@sha1:${commit}`, {
    timeoutMs: 90_000,
    description: `revision ${commit} applied`,
  });
}

/** Commits `files`; waits until that revision is refused as BuildFailed; returns the message. */
async function expectRefused(files: Record<string, string | null>): Promise<string> {
  const before = await configMaps();
  const commit = await signed.commit(files);
  const status = await waitRepoStatus(
    admin,
    ns.name,
    'apps',
    (now) =>
      now.lastAttemptedRevision === `main@sha1:${commit}` && condition(now, 'Ready')?.status === 'False',
    { timeoutMs: 90_000, description: `revision ${commit} refused` },
  );
  expect(condition(status, 'Ready')?.reason).toBe('BuildFailed');
  expect(status.lastAppliedRevision).toBe(applied);
  expect(await configMaps()).toEqual(before);
  const message = condition(status, 'Ready')?.message ?? '';
  // The same refusal as a Warning Event on the GitRepository.
  await waitFor(
    async () => {
      const events = await admin.list('v1', 'Event', {
        namespace: ns.name,
        fieldSelector: 'involvedObject.name=apps',
      });
      return events.items.some(
        (e) => e.type === 'Warning' && String(e.message).includes(message.slice(0, 60)),
      )
        ? true
        : undefined;
    },
    { timeoutMs: 15_000, description: `a Warning Event for ${commit}` },
  );
  // And as a Slack alert naming the revision.
  await waitFor(
    () =>
      slack.requests.find((r) => {
        const body = JSON.stringify(r.body);
        return body.includes(commit.slice(0, 12)) && body.includes(message.slice(0, 28));
      }),
    { timeoutMs: 15_000, description: `a Slack alert for ${commit}` },
  );
  return message;
}

beforeAll(async () => {
  enginePath = (await ensureKustomize()).engine;
  slack = new Receiver();
  ({ admin, signed } = await startSuite({ namespace: ns.name, slack }));
}, kustomizeBuildTimeoutMs);

afterAll(async () => {
  await closeAll(operator, slack, signed, admin);
});

describe('a Kustomize overlay reconciled by the operator', () => {
  it('builds the overlay of ../base and applies it with owner labels and the namespace', async () => {
    const commit = await signed.commit({ ...base('blue'), 'apps/prod/kustomization.yaml': overlay });
    operator = await startTestOperator({}, captured.logger);
    await admin.apply(gitRepository(), { fieldManager: 'e2e' });
    const status = await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    expect(condition(status, 'Ready')?.status).toBe('True');
    const live = await configMaps();
    expect(Object.keys(live).sort()).toEqual([
      'prod-app',
      expect.stringMatching(/^prod-settings-[a-z0-9]{10}$/),
    ]);
    const settings = Object.entries(live).find(([name]) => name.startsWith('prod-settings-'));
    expect(settings?.[1]).toEqual({ color: 'blue' });
    // Built by the native engine confined by Landlock (this kernel has it), logged once.
    const chosen = captured.lines.filter((line) => line.includes('kustomize engine chosen'));
    expect(chosen).toHaveLength(1);
    expect(JSON.parse(chosen[0] ?? '{}')).toMatchObject({ engine: 'native-landlock' });
  });

  it('picks up a change under ../base (outside spec.path): the new hash-suffixed ConfigMap replaces the old, which is pruned', async () => {
    const old = Object.keys(await configMaps()).find((name) => name.startsWith('prod-settings-'));
    const commit = await signed.commit(base('green'));
    await appliedRevision(commit);
    applied = `main@sha1:${commit}`;
    const live = await waitFor(
      async () => {
        const now = await configMaps();
        return old !== undefined && !(old in now) ? now : undefined;
      },
      { timeoutMs: 30_000, description: `${old} pruned` },
    );
    const settings = Object.entries(live).filter(([name]) => name.startsWith('prod-settings-'));
    expect(settings).toHaveLength(1);
    expect(settings[0]?.[0]).not.toBe(old);
    expect(settings[0]?.[1]).toEqual({ color: 'green' });
  });

  it('reverts drift on a kustomized object', async () => {
    await admin.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/prod-app`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { tier: 'hacked' } }),
      timeoutMs: 15_000,
    });
    await waitFor(async () => ((await configMaps())['prod-app']?.tier === 'web' ? true : undefined), {
      timeoutMs: 30_000,
      description: 'the edit of prod-app reverted',
    });
  });

  it('signet build prints what the operator applied, and signet diff (same engine) says "no changes"', async () => {
    const policy = join(await makeTempDir('e2e-kustomize-cli'), 'apps.yaml');
    await writeFile(policy, yamlDocuments([gitRepository()]));
    const env = { SIGNET_KUSTOMIZE_ENGINE: enginePath };
    const args = ['-f', policy, '--kubeconfig', kubeconfigPath()];
    const built = await runSignet(['build', ...args], { env, timeoutMs: 90_000 });
    expect(built.code).toBe(0);
    const printed = parseAllDocuments(built.stdout).map(
      (d) => d.toJS() as { metadata: { name: string }; data: unknown },
    );
    expect(Object.fromEntries(printed.map((o) => [o.metadata.name, o.data]))).toEqual(await configMaps());
    const diff = await runSignet(['diff', ...args], { env, timeoutMs: 90_000 });
    expect(diff.lines).toEqual([
      expect.stringMatching(/^revision main@sha1:[0-9a-f]{40} verified/),
      'no changes',
    ]);
    expect(diff.code).toBe(0);
  });

  it('refuses a remote base, naming the file and the field, and keeps the last revision', async () => {
    const message = await expectRefused({
      'apps/prod/kustomization.yaml':
        'resources: [../../base, "https://github.com/example/repo//base?ref=v1"]\nnamePrefix: prod-\n',
    });
    expect(message).toContain('apps/prod/kustomization.yaml: resources[1]');
    expect(message).toContain('is remote');
  });

  it('refuses an exec plugin', async () => {
    const message = await expectRefused({
      'apps/prod/kustomization.yaml': `${overlay}generators: [gen.yaml]\n`,
      'apps/prod/gen.yaml':
        'apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: g\n  annotations:\n    config.kubernetes.io/function: |\n      exec: {path: ./gen.sh}\n',
    });
    expect(message).toContain('apps/prod/kustomization.yaml: generators[0]');
  });

  it('refuses helmCharts', async () => {
    const message = await expectRefused({
      'apps/prod/gen.yaml': null,
      'apps/prod/kustomization.yaml': `${overlay}helmCharts:\n- name: redis\n  repo: https://charts.example.com\n`,
    });
    expect(message).toContain('apps/prod/kustomization.yaml: helmCharts');
  });

  it('bounds an alias bomb in the kustomization and an oversized file inside the overlay', async () => {
    const bomb = `${overlay}x-a: &a [x, x, x, x, x, x, x, x, x, x]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nx-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
    expect(await expectRefused({ 'apps/prod/kustomization.yaml': bomb })).toMatch(/alias/i);
    const large = await expectRefused({
      'apps/prod/kustomization.yaml': overlay,
      'apps/prod/huge.yaml': `# ${'x'.repeat(5 * 1024 * 1024)}\n`,
    });
    expect(large).toMatch(/huge\.yaml/);
  });
});
