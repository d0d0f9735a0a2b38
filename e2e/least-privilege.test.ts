// The built operator (`bin/signet run`, a separate process) holding nothing but a TokenRequest
// token of its own ServiceAccount, under exactly the RBAC that manifests/ renders, reconciles for
// real: the default flavour end to end (and, for a GitRepository naming spec.serviceAccountName,
// as that ServiceAccount only), and the tenant flavour through impersonation of the namespace's
// signet-tenant ServiceAccount, refusing what that account may not do.
//
// The cluster is shared by the whole test run, so each flavour is rendered through a kustomize
// overlay that only renames it (as in e2e/install.test.ts): namespace signet-system ->
// signet-sys{d,t}-<hex>, cluster-scoped names get the suffix -<hex>. The Deployment, Service,
// PodDisruptionBudget and NetworkPolicy are left out (no pod runs here); the operator process gets
// the Deployment's flags (--leader-elect, and --default-service-account=signet-tenant in the tenant
// flavour) plus --shard <unique>, so it only picks up this file's GitRepositories.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { repoRoot, resolveBinDir } from './support/controlplane.ts';
import {
  createObjects,
  deleteGitRepositoryAndWait,
  gitRepositoryObject,
  releaseGitRepositories,
  trustObjects,
} from './support/fixtures.ts';
import { adminKubeConfig, kubeconfigPath, tokenKubeConfig, waitFor } from './support/kube.ts';
import {
  allowed,
  type ManifestObject,
  parseObjects,
  rbacKinds,
  renameOverlay,
  toYamlStream,
} from './support/manifests.ts';
import { useTestNamespace } from './support/namespace.ts';
import { ensureBuilt, type OperatorProcess, startOperatorProcess } from './support/operator-process.ts';
import { runProcess } from './support/run.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
} from './support/signet.ts';

const suffix = randomBytes(3).toString('hex');
const workDir = join(repoRoot, '.signet', 'e2e-least-privilege', suffix);
const defaultSystem = `signet-sysd-${suffix}`;
const tenantSystem = `signet-syst-${suffix}`;
const tenantNamespace = `team-a-${suffix}`;
const otherNamespace = `team-b-${suffix}`;
const operatorServiceAccount = `signet-${suffix}`;
const defaultApps = useTestNamespace('signet-lp-default');

class KubectlError extends Error {
  readonly code = 'KUBECTL_FAILED';
  constructor(args: readonly string[], code: number | null, stderr: string) {
    super(`kubectl ${args.join(' ')} exited ${code}: ${stderr.slice(-2_000)}`);
    this.name = 'KubectlError';
  }
}

let kubectlPath = '';
let signetBin = '';
let admin: KubeClient;
let signed: SignedRepo;
const applied: ManifestObject[] = [];
const processes: OperatorProcess[] = [];

async function kubectl(args: readonly string[], input = ''): Promise<string> {
  const fullArgs = ['--kubeconfig', kubeconfigPath(), '--request-timeout=30s', ...args];
  const result = await runProcess(kubectlPath, fullArgs, { cwd: repoRoot, input, timeoutMs: 60_000 });
  if (result.code !== 0) throw new KubectlError(args, result.code, result.stderr);
  return result.stdout;
}

/** The RBAC (and Namespace, ServiceAccount) of `manifests/<flavour>`, renamed into `namespace`. */
async function renderRbac(flavourDir: string, namespace: string): Promise<ManifestObject[]> {
  const overlay = await renameOverlay(workDir, flavourDir, namespace, suffix);
  return parseObjects(await kubectl(['kustomize', overlay])).filter((o) => rbacKinds.has(o.kind));
}

/** The Deployment's container args of a rendered flavour (the flags the operator process gets). */
async function deploymentArgs(flavourDir: string): Promise<string[]> {
  const deployment = parseObjects(await kubectl(['kustomize', flavourDir])).find(
    (o) => o.kind === 'Deployment',
  ) as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  return deployment.spec.template.spec.containers[0]?.args ?? [];
}

async function applyObjects(objects: readonly ManifestObject[]): Promise<void> {
  applied.push(...objects);
  await kubectl(
    ['apply', '--server-side', '--field-manager=signet-lp-e2e', '-f', '-'],
    toYamlStream(objects),
  );
}

/** A kubeconfig file holding only a TokenRequest token of `namespace/signet-<hex>`. */
async function operatorKubeconfig(namespace: string): Promise<{ path: string; config: KubeConfig }> {
  const config = await tokenKubeConfig(adminKubeConfig(), {
    namespace,
    serviceAccountName: operatorServiceAccount,
  });
  const path = join(workDir, `${namespace}.kubeconfig`);
  await writeFile(path, config.exportConfig(), { mode: 0o600 });
  return { path, config };
}

/**
 * `bin/signet run` with the Deployment's flags (the in-cluster addresses replaced by loopback
 * port 0, the Lease in the renamed namespace) and this file's shard.
 */
async function startOperator(
  flavourDir: string,
  kubeconfig: string,
  systemNamespace: string,
  shard: string,
): Promise<OperatorProcess> {
  const inCluster = await deploymentArgs(flavourDir);
  const kept = inCluster.filter((arg) => !/^--(metrics-addr|health-addr|cache-dir|concurrent)=/.test(arg));
  const cacheDir = join(workDir, `cache-${shard}`);
  const running = startOperatorProcess(
    signetBin,
    [
      'run',
      ...kept,
      '--kubeconfig',
      kubeconfig,
      '--lease-namespace',
      systemNamespace,
      '--shard',
      shard,
      '--metrics-addr',
      '127.0.0.1:0',
      '--health-addr',
      '127.0.0.1:0',
      '--cache-dir',
      cacheDir,
      '--concurrent',
      '4',
    ],
    { logPath: join(repoRoot, '.signet', 'e2e-logs', `least-privilege-${shard}.log`) },
  );
  processes.push(running);
  await running.metricsPort();
  return running;
}

async function secretsAndSigners(namespace: string): Promise<void> {
  await createObjects(admin, trustObjects(signed, namespace));
}

async function createGitRepository(
  namespace: string,
  name: string,
  path: string,
  shard: string,
  spec: { serviceAccountName?: string } = {},
) {
  await admin.apply(
    gitRepositoryObject(
      signed,
      namespace,
      name,
      { interval: '2s', path, ...spec },
      { 'signet.dev/shard': shard },
    ),
    { fieldManager: 'signet-lp-e2e' },
  );
}

/** A ServiceAccount that may read and write ConfigMaps in `namespace` and nothing else. */
function configMapWriter(namespace: string, name: string): ManifestObject[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: `${name}-configmaps`, namespace },
      rules: [
        {
          apiGroups: [''],
          resources: ['configmaps'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `${name}-configmaps`, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-configmaps` },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  ];
}

function waitReady(namespace: string, name: string, status: 'True' | 'False'): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await repoStatus(admin, namespace, name);
      return condition(s, 'Ready')?.status === status ? s : undefined;
    },
    { timeoutMs: 60_000, description: `GitRepository ${namespace}/${name} Ready=${status}` },
  );
}

/** Log lines in which the API server refused the operator's own identity (not an impersonated one). */
function refusalsOfOperator(running: OperatorProcess, systemNamespace: string): string[] {
  const self = `system:serviceaccount:${systemNamespace}:${operatorServiceAccount}`;
  return running.lines.filter((line) => /forbidden/i.test(line) && line.includes(self));
}

beforeAll(async () => {
  kubectlPath = join(await resolveBinDir(AbortSignal.timeout(60 * 60_000)), 'kubectl');
  await mkdir(workDir, { recursive: true });
  signetBin = await ensureBuilt();
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo();
  await signed.commit({
    'deploy/app.yaml': configMapYaml('app', { color: 'blue' }),
    'own/app.yaml': configMapYaml('own', { by: 'deployer' }),
    'cross/app.yaml': `${configMapYaml('intruder', { reach: 'other' }).replace(
      'metadata:\n',
      `metadata:\n  namespace: ${otherNamespace}\n`,
    )}`,
    'escalate/crb.yaml': [
      'apiVersion: rbac.authorization.k8s.io/v1',
      'kind: ClusterRoleBinding',
      'metadata:',
      `  name: lp-escalation-${suffix}`,
      'roleRef:',
      '  apiGroup: rbac.authorization.k8s.io',
      '  kind: ClusterRole',
      '  name: cluster-admin',
      'subjects:',
      '  - kind: ServiceAccount',
      '    name: signet-tenant',
      `    namespace: ${tenantNamespace}`,
      '',
    ].join('\n'),
  });
  // Exists from the start, so a manifest aimed at it is refused for want of rights, not of a namespace.
  await kubectl(['create', 'namespace', otherNamespace]);
}, 300_000);

afterAll(async () => {
  for (const running of processes) await running.stop('SIGTERM');
  // GitRepositories left with the finalizer (the refused ones) would keep their namespace.
  for (const namespace of [tenantNamespace, defaultApps.name]) {
    await releaseGitRepositories(admin, namespace);
  }
  if (kubectlPath !== '') {
    if (applied.length > 0) {
      await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], toYamlStream(applied)).catch(
        () => undefined,
      );
    }
    await kubectl(['delete', 'namespace', '--ignore-not-found', '--wait=false', otherNamespace]).catch(
      () => undefined,
    );
  }
  await signed?.close();
  await admin?.close();
  await rm(workDir, { recursive: true, force: true });
});

describe('default flavour: bin/signet run as its ServiceAccount, with manifests/ RBAC only', () => {
  const shard = `lpd-${suffix}`;
  const deployerUser = `system:serviceaccount:${defaultApps.name}:deployer`;
  let operator: OperatorProcess;
  let operatorConfig: KubeConfig;

  beforeAll(async () => {
    await applyObjects(await renderRbac('manifests', defaultSystem));
    const { path, config } = await operatorKubeconfig(defaultSystem);
    operatorConfig = config;
    await waitFor(
      () => allowed(config, { group: 'signet.dev', resource: 'gitrepositories', verb: 'watch' }),
      {
        timeoutMs: 30_000,
        description: 'the default ClusterRoleBinding to take effect',
      },
    );
    await secretsAndSigners(defaultApps.name);
    await applyObjects(configMapWriter(defaultApps.name, 'deployer'));
    operator = await startOperator('manifests', path, defaultSystem, shard);
    await createGitRepository(defaultApps.name, 'apps', './deploy', shard);
    // No --default-service-account in this flavour: these two name their ServiceAccount themselves.
    await createGitRepository(defaultApps.name, 'own', './own', shard, { serviceAccountName: 'deployer' });
    await createGitRepository(defaultApps.name, 'cross', './cross', shard, {
      serviceAccountName: 'deployer',
    });
  }, 120_000);

  it('reconciles a signed GitRepository end to end (Ready=True, objects applied), leading on its Lease', async () => {
    const commit = await signed.repo.git(['rev-parse', 'HEAD']);
    const status = await waitReady(defaultApps.name, 'apps', 'True');
    expect(status.lastAppliedRevision).toBe(`main@sha1:${commit}`);
    const app = await admin.get({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'app',
      namespace: defaultApps.name,
    });
    expect(app?.data).toEqual({ color: 'blue' });
    expect(app?.metadata.managedFields?.some((f) => f.manager === 'signet' && f.operation === 'Apply')).toBe(
      true,
    );
    // The Deployment's --leader-elect: the Lease signet-leader-<shard> in the controller's namespace.
    const lease = await admin.get({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      name: `signet-leader-${shard}`,
      namespace: defaultSystem,
    });
    expect((lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity).toBeTruthy();
    expect(refusalsOfOperator(operator, defaultSystem)).toEqual([]);
    const username = operator.logs.find((l) => l.msg === 'signet operator starting')?.username;
    expect(username).toBe(`system:serviceaccount:${defaultSystem}:${operatorServiceAccount}`);
  });

  it('reverts an out-of-band edit (its watches run as itself)', async () => {
    const app = { apiVersion: 'v1', kind: 'ConfigMap', name: 'app', namespace: defaultApps.name };
    await admin.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${defaultApps.name}/configmaps/app?fieldManager=kubectl-edit`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { color: 'red' } }),
      timeoutMs: 15_000,
    });
    await waitFor(
      async () => ((await admin.get(app))?.data as { color?: string } | undefined)?.color === 'blue',
      {
        timeoutMs: 15_000,
        description: 'the edit reverted',
      },
    );
  });

  it('was started without --default-service-account', () => {
    expect(operator.child.spawnargs.some((arg) => arg.startsWith('--default-service-account'))).toBe(false);
  });

  it('spec.serviceAccountName: applies as that ServiceAccount in its own namespace (Ready=True)', async () => {
    const status = await waitReady(defaultApps.name, 'own', 'True');
    expect(status.inventory?.entries.map((e) => e.id)).toEqual([`${defaultApps.name}_own__ConfigMap`]);
    const own = await admin.get({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'own',
      namespace: defaultApps.name,
    });
    expect(own?.data).toEqual({ by: 'deployer' });
  });

  it('spec.serviceAccountName: a manifest aimed at another namespace is refused as that ServiceAccount, though the controller itself could write it', async () => {
    const status = await waitReady(defaultApps.name, 'cross', 'False');
    const ready = condition(status, 'Ready');
    expect(ready?.reason).toBe('ApplyFailed');
    expect(ready?.message).toMatch(/forbidden/i);
    expect(ready?.message).toContain(`ConfigMap/${otherNamespace}/intruder`);
    expect(ready?.message).toContain(deployerUser);
    expect(status.lastAppliedRevision).toBeUndefined();
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'intruder', namespace: otherNamespace }),
    ).toBeUndefined();
    // Control: the operator's own identity (manifests/ default RBAC) may create exactly that object,
    // so the refusal above is the impersonated ServiceAccount's.
    expect(
      await allowed(operatorConfig, { resource: 'configmaps', verb: 'create', namespace: otherNamespace }),
    ).toBe(true);
    expect(refusalsOfOperator(operator, defaultSystem)).toEqual([]);
  });

  it('spec.serviceAccountName: prunes as that ServiceAccount when the GitRepository is deleted', async () => {
    await deleteGitRepositoryAndWait(admin, defaultApps.name, 'own');
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'own', namespace: defaultApps.name }),
    ).toBeUndefined();
  });

  afterAll(async () => {
    await deleteGitRepositoryAndWait(admin, defaultApps.name, 'apps');
    const exit = await operator.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });
});

describe('tenant flavour: bin/signet run --default-service-account=signet-tenant, with manifests/tenant RBAC only', () => {
  const shard = `lpt-${suffix}`;
  let operator: OperatorProcess;
  const tenantUser = `system:serviceaccount:${tenantNamespace}:signet-tenant`;

  beforeAll(async () => {
    const rbac = await renderRbac('manifests/tenant', tenantSystem);
    // manifests/examples/tenant-rbac.yaml for team-a-<hex>, bound to the renamed controller identity.
    const example = parseObjects(
      await readFile(join(repoRoot, 'manifests', 'examples', 'tenant-rbac.yaml'), 'utf8'),
    ).map(
      (object) =>
        JSON.parse(
          JSON.stringify(object)
            .replaceAll('"team-a"', JSON.stringify(tenantNamespace))
            .replaceAll('"signet-system"', JSON.stringify(tenantSystem))
            .replaceAll('"name":"signet","namespace"', `"name":"${operatorServiceAccount}","namespace"`)
            .replaceAll('"signet-tenant-references"', JSON.stringify(`signet-tenant-references-${suffix}`)),
        ) as ManifestObject,
    );
    const references = example.find((o) => o.metadata.name === 'signet-references') as unknown as {
      subjects: { name: string; namespace: string }[];
    };
    expect(references.subjects).toEqual([
      { kind: 'ServiceAccount', name: operatorServiceAccount, namespace: tenantSystem },
    ]);
    await applyObjects(rbac);
    await applyObjects(example);
    // The example binds the built-in `admin` ClusterRole. Its rules come from clusterrole
    // aggregation (admin aggregates edit and view), and the test plane runs that controller as every
    // real cluster does, so the tenant gets exactly what the shipped example gives it.
    const tenantConfig = await tokenKubeConfig(adminKubeConfig(), {
      namespace: tenantNamespace,
      serviceAccountName: 'signet-tenant',
    });
    await waitFor(
      async () => {
        for (const verb of ['get', 'list', 'watch', 'create', 'patch', 'delete']) {
          if (!(await allowed(tenantConfig, { resource: 'configmaps', verb, namespace: tenantNamespace })))
            return false;
        }
        return true;
      },
      { timeoutMs: 30_000, description: 'the aggregated admin role to reach signet-tenant' },
    );
    const { path, config } = await operatorKubeconfig(tenantSystem);
    await waitFor(
      () => allowed(config, { resource: 'configmaps', verb: 'get', namespace: tenantNamespace }),
      {
        timeoutMs: 30_000,
        description: 'the tenant references RoleBinding to take effect',
      },
    );
    await waitFor(
      () => allowed(config, { group: 'signet.dev', resource: 'gitrepositories', verb: 'watch' }),
      {
        timeoutMs: 30_000,
        description: 'the tenant ClusterRoleBinding to take effect',
      },
    );
    // Control: the controller itself may not write a ConfigMap anywhere.
    expect(
      await allowed(config, { resource: 'configmaps', verb: 'create', namespace: tenantNamespace }),
    ).toBe(false);
    await secretsAndSigners(tenantNamespace);
    operator = await startOperator('manifests/tenant', path, tenantSystem, shard);
    await createGitRepository(tenantNamespace, 'apps', './deploy', shard);
    await createGitRepository(tenantNamespace, 'cross', './cross', shard);
    await createGitRepository(tenantNamespace, 'escalate', './escalate', shard);
  }, 120_000);

  it('was started with the flavour flag', () => {
    expect(operator.child.spawnargs).toContain('--default-service-account=signet-tenant');
  });

  it("applies the tenant's own namespace through impersonation (Ready=True)", async () => {
    const commit = await signed.repo.git(['rev-parse', 'HEAD']);
    const status = await waitReady(tenantNamespace, 'apps', 'True');
    expect(status.lastAppliedRevision).toBe(`main@sha1:${commit}`);
    expect(status.inventory?.entries.map((e) => e.id)).toEqual([`${tenantNamespace}_app__ConfigMap`]);
    const app = await admin.get({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'app',
      namespace: tenantNamespace,
    });
    expect(app?.data).toEqual({ color: 'blue' });
    expect(app?.metadata.labels).toMatchObject({
      'signet.dev/name': 'apps',
      'signet.dev/namespace': tenantNamespace,
    });
  });

  it('watches the managed objects as the tenant too: an out-of-band edit is reverted', async () => {
    const app = { apiVersion: 'v1', kind: 'ConfigMap', name: 'app', namespace: tenantNamespace };
    await admin.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${tenantNamespace}/configmaps/app?fieldManager=kubectl-edit`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ data: { color: 'red' } }),
      timeoutMs: 15_000,
    });
    await waitFor(
      async () => ((await admin.get(app))?.data as { color?: string } | undefined)?.color === 'blue',
      {
        timeoutMs: 15_000,
        description: 'the edit reverted',
      },
    );
  });

  it('refuses a manifest aiming at another namespace: Ready=False naming Forbidden and the object, nothing created', async () => {
    const status = await waitReady(tenantNamespace, 'cross', 'False');
    const ready = condition(status, 'Ready');
    expect(ready?.reason).toBe('ApplyFailed');
    expect(ready?.message).toMatch(/forbidden/i);
    expect(ready?.message).toContain(`ConfigMap/${otherNamespace}/intruder`);
    expect(ready?.message).toContain(tenantUser);
    expect(status.lastAppliedRevision).toBeUndefined();
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'intruder', namespace: otherNamespace }),
    ).toBeUndefined();
  });

  it('refuses a ClusterRoleBinding to cluster-admin: Ready=False naming Forbidden and the object, nothing created', async () => {
    const status = await waitReady(tenantNamespace, 'escalate', 'False');
    const ready = condition(status, 'Ready');
    expect(ready?.reason).toBe('ApplyFailed');
    expect(ready?.message).toMatch(/forbidden/i);
    expect(ready?.message).toContain(`ClusterRoleBinding/lp-escalation-${suffix}`);
    expect(ready?.message).toContain(tenantUser);
    expect(
      await admin.get({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        name: `lp-escalation-${suffix}`,
      }),
    ).toBeUndefined();
  });

  it('the controller itself was never refused (every refusal was the impersonated tenant)', () => {
    expect(refusalsOfOperator(operator, tenantSystem)).toEqual([]);
  });

  it('prunes as the tenant and removes its finalizer when the GitRepository is deleted', async () => {
    await deleteGitRepositoryAndWait(admin, tenantNamespace, 'apps');
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'app', namespace: tenantNamespace }),
    ).toBeUndefined();
  });

  it('stops cleanly on SIGTERM', async () => {
    const exit = await operator.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
