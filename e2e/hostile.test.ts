// Hostile input against the real API server: every case is a signed revision (so verification
// passes) whose manifests must be refused as a whole, with a clear error in status and NOTHING
// applied from it. Each case lives in its own directory (one GitRepository per case, spec.path)
// next to a harmless ConfigMap that must not appear. Git credentials and the Slack webhook are
// real secrets here, and every log line the operators wrote is scanned for them at the end.
import { randomBytes } from 'node:crypto';
import { open, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { KubeApiError } from '../src/kube/errors.ts';
import { defaultRenderLimits } from '../src/render/render.ts';
import { Receiver, secretPath } from '../test/notify/support.ts';
import { type GitServer, startGitServer } from '../test/support/git-server.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { registerSecret } from './support/secret-scan.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-hostile');
const gitPassword = `git-password-${randomBytes(12).toString('hex')}`;
const wrongPassword = `wrong-password-${randomBytes(12).toString('hex')}`;
const bearerToken = `bearer-token-${randomBytes(12).toString('hex')}`;
const maxObjects = 100;

let admin: KubeClient;
let signed: SignedRepo;
let basicServer: GitServer;
let bearerServer: GitServer;
let slack: Receiver;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let tenantOperator: Awaited<ReturnType<typeof startTestOperator>>;
/** Shard `bulk`, with the default object limit: refuses the 100,000-object revision. */
let bulkOperator: Awaited<ReturnType<typeof startTestOperator>>;
let bulkCommit = '';
/** 100,000 tiny ConfigMaps in 100 files of 1,000 documents, on their own branch. */
const bulkFiles = 100;
const bulkPerFile = 1_000;
const captured = capturingLogger();
let hostileCommit = '';
let hugeCommit = '';
/** API server answers and timings seen in this file, printed at the end for docs/reliability.md. */
const observedRefusals: Record<string, string> = {};

/** Harmless objects: each case directory holds one, and it must never be created. */
const canary = (name: string) => configMapYaml(`canary-${name}`, { applied: 'yes' });

function aliasBomb(): string {
  const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const next = String.fromCharCode(97 + i);
    levels.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
}

function manyObjects(count: number): string {
  return Array.from({ length: count }, (_, i) => configMapYaml(`many-${i}`, { i: String(i) })).join('---\n');
}

const hostileFiles: Record<string, string> = {
  'cases/alias/canary.yaml': canary('alias'),
  'cases/alias/bomb.yaml': aliasBomb(),
  'cases/toomany/canary.yaml': canary('toomany'),
  'cases/toomany/objects.yaml': manyObjects(maxObjects),
  'cases/deep/canary.yaml': canary('deep'),
  'cases/deep/deep.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: ${'['.repeat(100)}${']'.repeat(100)}\n`,
  'cases/dup/canary.yaml': canary('dup'),
  'cases/dup/a.yaml': configMapYaml('dup', { owner: 'a' }),
  'cases/dup/b.yaml': configMapYaml('dup', { owner: 'b' }),
  'cases/unknown/canary.yaml': canary('unknown'),
  'cases/unknown/widget.yaml': 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {}\n',
  'cases/symlink/canary.yaml': canary('symlink'),
  'cases/tenant/crb.yaml': [
    'apiVersion: rbac.authorization.k8s.io/v1',
    'kind: ClusterRoleBinding',
    'metadata:',
    '  name: signet-hostile-escalation',
    'roleRef:',
    '  apiGroup: rbac.authorization.k8s.io',
    '  kind: ClusterRole',
    '  name: cluster-admin',
    'subjects:',
    '  - kind: ServiceAccount',
    '    name: default',
    '    namespace: default',
    '',
  ].join('\n'),
  'cases/ok/canary.yaml': canary('ok'),
};

function gitRepository(
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name, namespace: ns.name, labels },
    spec: {
      url: basicServer.serve('hostile', join(signed.repo.dir, '.git')),
      ref: { branch: 'main' },
      interval: '2s',
      timeout: '30s',
      secretRef: { name: 'git-basic' },
      verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers' } },
      alerts: { slack: { secretRef: { name: 'slack' } } },
      ...spec,
    },
  };
}

beforeAll(async () => {
  // For the suite-wide scan (e2e/zz-secret-scan.test.ts); this file also scans its own logs below.
  registerSecret('hostile: Git password', gitPassword);
  registerSecret('hostile: wrong Git password', wrongPassword);
  registerSecret('hostile: Git bearer token', bearerToken);
  registerSecret('hostile: Git basic credentials', `signet:${gitPassword}`);
  registerSecret('hostile: wrong Git basic credentials', `signet:${wrongPassword}`);
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('hostile');
  basicServer = await startGitServer({ basicAuth: { username: 'signet', password: gitPassword } });
  bearerServer = await startGitServer({ bearerToken });
  slack = new Receiver();
  await slack.listen();
  registerSecret('hostile: Slack webhook URL', slack.url('http'));

  // The huge manifest lives on its own branch so that only its GitRepository fetches it. 100 MB,
  // written sparse (a header, then a hole): never held in memory by the test.
  await signed.commit({ 'README.md': 'hostile cases\n' });
  await signed.repo.git(['checkout', '-q', '-b', 'huge']);
  const hugePath = join(signed.repo.dir, 'cases/huge/huge.yaml');
  await signed.commit({
    'cases/huge/canary.yaml': canary('huge'),
    'cases/huge/huge.yaml': 'apiVersion: v1\n',
  });
  const handle = await open(hugePath, 'r+');
  await handle.truncate(100 * 1024 * 1024);
  await handle.close();
  await signed.repo.git(['add', 'cases/huge/huge.yaml']);
  hugeCommit = await signed.commit({});
  await signed.repo.git(['checkout', '-q', 'main']);

  // 100,000 objects live on their own branch too, so that only the bulk GitRepository fetches them.
  await signed.repo.git(['checkout', '-q', '-b', 'bulk', 'main']);
  const bulk: Record<string, string> = { 'cases/bulk/canary.yaml': canary('bulk') };
  for (let file = 0; file < bulkFiles; file++) {
    const docs: string[] = [];
    for (let i = file * bulkPerFile; i < (file + 1) * bulkPerFile; i++)
      docs.push(`apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk-${i}\n`);
    bulk[`cases/bulk/objects-${String(file).padStart(3, '0')}.yaml`] = docs.join('---\n');
  }
  bulkCommit = await signed.commit(bulk);
  await signed.repo.git(['checkout', '-q', 'main']);

  await signed.commit(hostileFiles);
  await symlink('../../../etc/passwd', join(signed.repo.dir, 'cases/symlink/passwd.yaml'));
  await signed.repo.git(['add', 'cases/symlink/passwd.yaml']);
  hostileCommit = await signed.commit({});

  const secrets = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'signers', namespace: ns.name },
      data: { allowed_signers: signed.allowedSigners },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-basic', namespace: ns.name },
      stringData: { username: 'signet', password: gitPassword, 'ca.crt': basicServer.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-wrong', namespace: ns.name },
      stringData: { username: 'signet', password: wrongPassword, 'ca.crt': basicServer.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-bearer', namespace: ns.name },
      stringData: { bearerToken, 'ca.crt': bearerServer.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'slack', namespace: ns.name },
      stringData: { address: slack.url('http') },
    },
    // The tenant: a ServiceAccount with only the namespace `edit` role.
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'tenant', namespace: ns.name } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'tenant-edit', namespace: ns.name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
      subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: ns.name }],
    },
  ];
  for (const object of secrets) await admin.create(object as never);

  operator = await startTestOperator({ namespace: ns.name, maxObjects }, captured.logger);
  tenantOperator = await startTestOperator(
    { namespace: ns.name, shard: 'tenant', defaultServiceAccount: 'tenant', userAgent: 'signet/e2e-tenant' },
    captured.logger,
  );
  bulkOperator = await startTestOperator(
    {
      namespace: ns.name,
      shard: 'bulk',
      maxObjects: defaultRenderLimits.maxObjects,
      userAgent: 'signet/e2e-bulk',
    },
    captured.logger,
  );
  const repos = [
    ...['alias', 'toomany', 'deep', 'dup', 'unknown', 'symlink', 'ok'].map((c) =>
      gitRepository(c, { path: `./cases/${c}` }),
    ),
    gitRepository('huge', { path: './cases/huge', ref: { branch: 'huge' } }),
    gitRepository('tenant', { path: './cases/tenant' }, { 'signet.dev/shard': 'tenant' }),
    gitRepository('bearer', {
      url: bearerServer.serve('hostile', join(signed.repo.dir, '.git')),
      secretRef: { name: 'git-bearer' },
      path: './cases/dup',
    }),
    gitRepository('wrongpass', { secretRef: { name: 'git-wrong' }, path: './cases/ok' }),
  ];
  for (const repo of repos) await admin.apply(repo as never, { fieldManager: 'e2e' });
}, 180_000);

afterAll(async () => {
  console.log(`hostile.test.ts observed: ${JSON.stringify(observedRefusals, null, 2)}`);
  await operator?.stop();
  await tenantOperator?.stop();
  await bulkOperator?.stop();
  await slack?.close();
  await basicServer?.close();
  await bearerServer?.close();
  await signed?.close();
  await admin?.close();
});

async function waitRefused(name: string, reason: string): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await repoStatus(admin, ns.name, name);
      const ready = condition(s, 'Ready');
      return ready?.status === 'False' && ready.reason === reason ? s : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 200, description: `${name}: Ready=False ${reason}` },
  );
}

async function expectNothingApplied(name: string, status: RepoStatus): Promise<void> {
  expect(status.lastAppliedRevision).toBeUndefined();
  expect(status.inventory?.entries ?? []).toEqual([]);
  const owned = await admin.list('v1', 'ConfigMap', {
    namespace: ns.name,
    labelSelector: `signet.dev/name=${name}`,
  });
  expect(owned.items.map((o) => o.metadata.name)).toEqual([]);
}

describe('hostile manifests in a signed revision', () => {
  it('a harmless case in the same commit is applied (the fixture works)', async () => {
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'ok');
        return condition(s, 'Ready')?.status === 'True' ? s : undefined;
      },
      { timeoutMs: 90_000, description: 'ok: Ready' },
    );
    expect(status.lastAppliedRevision).toBe(`main@sha1:${hostileCommit}`);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'canary-ok', namespace: ns.name }),
    ).toBeDefined();
  });

  const cases: { name: string; reason: string; message: RegExp }[] = [
    {
      name: 'alias',
      reason: 'BuildFailed',
      message: /bomb\.yaml \(document 0\): YAML aliases expand more than 100 times/,
    },
    { name: 'toomany', reason: 'BuildFailed', message: /more than 100 objects/ },
    {
      name: 'deep',
      reason: 'BuildFailed',
      message: /deep\.yaml \(document 0\): nesting is deeper than 64 levels/,
    },
    {
      name: 'dup',
      reason: 'BuildFailed',
      message:
        /b\.yaml \(document 0\): ConfigMap\/dup is also defined in a\.yaml \(document 0\) with different content/,
    },
    {
      name: 'unknown',
      reason: 'BuildFailed',
      message: /widget\.yaml \(document 0\): no API resource for example\.com\/v1 Widget/,
    },
    { name: 'symlink', reason: 'BuildFailed', message: /passwd\.yaml: symlink points outside the tree/ },
    {
      name: 'huge',
      reason: 'BuildFailed',
      message: /huge\.yaml: 104857600 bytes is over the 4194304-byte file limit/,
    },
  ];
  for (const hostile of cases) {
    it(`${hostile.name}: refused with a clear message, nothing applied`, async () => {
      const status = await waitRefused(hostile.name, hostile.reason);
      const ready = condition(status, 'Ready');
      expect(ready?.message).toMatch(
        hostile.name === 'huge'
          ? /^reading cases\/huge at huge@sha1:[0-9a-f]{40}: /
          : /^building main@sha1:[0-9a-f]{40} signed by ssh key SHA256:\S+( \([^)]*\))?: /,
      );
      expect(ready?.message).toMatch(hostile.message);
      const commit = hostile.name === 'huge' ? hugeCommit : hostileCommit;
      expect(status.lastAttemptedRevision).toBe(
        `${hostile.name === 'huge' ? 'huge' : 'main'}@sha1:${commit}`,
      );
      await expectNothingApplied(hostile.name, status);
    });
  }

  it('--max-objects 100 refuses 101 objects: the whole revision, the canary too', async () => {
    // 100 objects + the canary = 101 > --max-objects 100: the whole revision is refused, the canary too.
    const status = await waitRefused('toomany', 'BuildFailed');
    expect(condition(status, 'Ready')?.message).toContain(`more than ${maxObjects} objects`);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'many-0', namespace: ns.name }),
    ).toBeUndefined();
  });

  it('100,000 objects in one revision (100 files of 1,000) are refused by the default limit: nothing applied, within 60 s', async () => {
    // The default of `signet run --max-objects` and of the renderer, not a limit set for the test.
    expect(defaultRenderLimits.maxObjects).toBe(10_000);
    const startedAt = Date.now();
    await admin.apply(
      gitRepository(
        'bulk',
        { path: './cases/bulk', ref: { branch: 'bulk' }, interval: '1h' },
        { 'signet.dev/shard': 'bulk' },
      ) as never,
      { fieldManager: 'e2e' },
    );
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'bulk');
        const ready = condition(s, 'Ready');
        return ready?.status === 'False' && ready.reason === 'BuildFailed' ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, description: 'bulk: Ready=False BuildFailed' },
    );
    const refusedMs = Date.now() - startedAt;
    const message = condition(status, 'Ready')?.message ?? '';
    observedRefusals['100,000 objects: refusal'] = message;
    observedRefusals['100,000 objects: GitRepository applied → Ready=False (ms)'] = String(refusedMs);
    // Files render in path order: canary.yaml, then objects-000.yaml…; object 10,001 is refused.
    expect(message).toMatch(
      /^building bulk@sha1:[0-9a-f]{40} signed by ssh key SHA256:\S+( \([^)]*\))?: objects-009\.yaml \(document 999\): more than 10000 objects/,
    );
    expect(status.lastAttemptedRevision).toBe(`bulk@sha1:${bulkCommit}`);
    await expectNothingApplied('bulk', status);
    for (const name of ['canary-bulk', 'bulk-0', 'bulk-99999'])
      expect(
        await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name }),
      ).toBeUndefined();
    expect(refusedMs).toBeLessThan(60_000);
  });

  it('a bearer-token repository with a conflicting duplicate is refused the same way', async () => {
    const status = await waitRefused('bearer', 'BuildFailed');
    expect(condition(status, 'Ready')?.message).toContain('with different content');
    await expectNothingApplied('bearer', status);
  });

  it("a tenant's ClusterRoleBinding to cluster-admin is Forbidden for its ServiceAccount: nothing created", async () => {
    const status = await waitRefused('tenant', 'ApplyFailed');
    const message = condition(status, 'Ready')?.message ?? '';
    expect(message).toContain('ClusterRoleBinding');
    expect(message).toContain('signet-hostile-escalation');
    expect(message.toLowerCase()).toContain('forbidden');
    expect(message).toContain(`system:serviceaccount:${ns.name}:tenant`);
    expect(status.lastAppliedRevision).toBeUndefined();
    expect(
      await admin.get({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        name: 'signet-hostile-escalation',
      }),
    ).toBeUndefined();
  });

  it('a wrong Git password is reported as an authentication failure without the password', async () => {
    const status = await waitRefused('wrongpass', 'FetchFailed');
    const message = condition(status, 'Ready')?.message ?? '';
    expect(message).toContain('401');
    expect(message).toContain('spec.secretRef');
    expect(message).not.toContain(wrongPassword);
    await expectNothingApplied('wrongpass', status);
  });

  it("spec.path with '..' is refused by the API server (CEL), 422 with the rule's message", async () => {
    const error = await admin
      .apply(gitRepository('escape', { path: './cases/../../etc' }) as never, { fieldManager: 'e2e' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(KubeApiError);
    expect((error as KubeApiError).status).toBe(422);
    expect((error as KubeApiError).message).toContain("spec.path must be relative and must not contain '..'");
    expect(
      await admin.get({
        apiVersion: 'signet.dev/v1alpha1',
        kind: 'GitRepository',
        name: 'escape',
        namespace: ns.name,
      }),
    ).toBeUndefined();
  });

  it('a reference to a Secret/ConfigMap in another namespace is refused by the API server (CEL), 422 naming the field', async () => {
    const cases: { field: string; spec: Record<string, unknown> }[] = [
      { field: 'spec.secretRef', spec: { secretRef: { name: 'git-basic', namespace: 'kube-system' } } },
      {
        field: 'spec.verify.signersRef',
        spec: { verify: { signersRef: { kind: 'ConfigMap', name: 'signers', namespace: 'kube-system' } } },
      },
      {
        field: 'spec.verify.trustedRootRef',
        spec: {
          verify: {
            signersRef: { kind: 'ConfigMap', name: 'signers' },
            trustedRootRef: { name: 'root', namespace: 'kube-system' },
          },
        },
      },
      {
        field: 'spec.verify.provenance.keysRef',
        spec: {
          verify: {
            signersRef: { kind: 'ConfigMap', name: 'signers' },
            provenance: { keysRef: { kind: 'Secret', name: 'keys', namespace: 'kube-system' } },
          },
        },
      },
      {
        field: 'spec.alerts.slack.secretRef',
        spec: { alerts: { slack: { secretRef: { name: 'slack', namespace: 'kube-system' } } } },
      },
    ];
    for (const [index, refusal] of cases.entries()) {
      const name = `cross-ns-${index}`;
      const object = gitRepository(name, { path: './cases/ok', ...refusal.spec });
      // Server-side apply for the first, a plain create for the others: both paths validate.
      const error = await (index === 0
        ? admin.apply(object as never, { fieldManager: 'e2e' })
        : admin.create(object as never)
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, refusal.field).toBeInstanceOf(KubeApiError);
      expect((error as KubeApiError).status, refusal.field).toBe(422);
      const message = (error as KubeApiError).message;
      expect(message).toContain(`${refusal.field}.namespace`);
      expect(message).toContain(
        `references are namespace-local: a GitRepository may only use Secrets/ConfigMaps in its own namespace; remove ${refusal.field}.namespace`,
      );
      observedRefusals[refusal.field] = message;
      expect(
        await admin.get({
          apiVersion: 'signet.dev/v1alpha1',
          kind: 'GitRepository',
          name,
          namespace: ns.name,
        }),
      ).toBeUndefined();
    }
  });

  it('alerts went to Slack, and no log line carries a Git password, bearer token or the webhook URL', async () => {
    await waitFor(() => slack.requests.some((r) => JSON.stringify(r.body).includes('ReconcileFailed')), {
      timeoutMs: 15_000,
      description: 'a ReconcileFailed alert',
    });
    const logs = captured.lines.join('\n');
    expect(captured.lines.length).toBeGreaterThan(10);
    for (const secret of [
      gitPassword,
      wrongPassword,
      bearerToken,
      secretPath,
      slack.url('http'),
      Buffer.from(gitPassword).toString('base64'),
      Buffer.from(`signet:${gitPassword}`).toString('base64'),
      Buffer.from(`signet:${wrongPassword}`).toString('base64'),
      Buffer.from(bearerToken).toString('base64'),
    ]) {
      expect(logs).not.toContain(secret);
    }
    // Status messages and Events are readable by anyone with `get` on the namespace: same rule.
    const events = await admin.list('v1', 'Event', { namespace: ns.name });
    const statuses = await admin.list('signet.dev/v1alpha1', 'GitRepository', { namespace: ns.name });
    const visible = JSON.stringify([events.items, statuses.items.map((s) => s.status)]);
    for (const secret of [gitPassword, wrongPassword, bearerToken, secretPath])
      expect(visible).not.toContain(secret);
  });
});
