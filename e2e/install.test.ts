// Installing Signet: the CRD and both RBAC flavours of manifests/ pass a server-side dry-run on a
// real API server, and the RBAC each flavour grants, really applied, allows exactly what
// docs/install.md says (SelfSubjectAccessReviews and real requests made with a TokenRequest token).
// README.md's install blocks (both flavours) are run word for word with the built kubectl.
//
// The cluster is shared by the whole test run, so the manifests are rendered through a kustomize
// overlay that only renames them: namespace signet-system -> signet-system-<hex> (and a tenant
// namespace team-a-<hex>), cluster-scoped names get the suffix -<hex>. Rules and structure are the
// shipped ones. The README blocks are the exception: they use the fixed names a reader gets
// (signet-system, team-a, signet-manager, ...), one flavour at a time, removed before and after.
// Everything created here is deleted in afterAll.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Deployment,
  type V1NetworkPolicy,
  type V1PodDisruptionBudget,
  type V1Service,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseListenAddress, startProbeServer } from '../src/controller/http-server.ts';
import { repoRoot, resolveBinDir } from './support/controlplane.ts';
import {
  adminKubeConfig,
  isApiError,
  kubeconfigPath,
  requestOptions,
  tokenKubeConfig as tokenKubeConfigFor,
  waitFor,
} from './support/kube.ts';
import {
  allowed,
  type ManifestObject,
  parseObjects,
  rbacKinds,
  renameOverlay,
  toYamlStream,
} from './support/manifests.ts';
import { type ProcessResult, runProcess } from './support/run.ts';

const execFileAsync = promisify(execFile);
const suffix = randomBytes(3).toString('hex');
const operatorNamespace = `signet-system-${suffix}`;
const defaultFlavourNamespace = `signet-sysd-${suffix}`;
const tenantNamespace = `team-a-${suffix}`;
const otherNamespace = `team-b-${suffix}`;
const operatorServiceAccount = `signet-${suffix}`;
const tenantServiceAccount = 'signet-tenant';
const workDir = join(repoRoot, '.signet', 'e2e-install', suffix);

const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);

class KubectlError extends Error {
  readonly code = 'KUBECTL_FAILED';
  readonly args: readonly string[];
  readonly stderr: string;
  constructor(args: readonly string[], result: ProcessResult) {
    super(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr.slice(-2000)}`);
    this.name = 'KubectlError';
    this.args = args;
    this.stderr = result.stderr;
  }
}

let kubectlPath = '';

/** Runs the built kubectl with the run's admin kubeconfig (unless `kubeconfig` is given). */
function kubectl(
  args: readonly string[],
  options: { input?: string; kubeconfig?: string; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  const fullArgs = ['--kubeconfig', options.kubeconfig ?? kubeconfigPath(), '--request-timeout=30s', ...args];
  return runProcess(kubectlPath, fullArgs, {
    cwd: repoRoot,
    input: options.input ?? '',
    timeoutMs: options.timeoutMs ?? 60_000,
  });
}

async function kubectlOk(args: readonly string[], options: { input?: string } = {}): Promise<ProcessResult> {
  const result = await kubectl(args, options);
  if (result.code !== 0) throw new KubectlError(args, result);
  return result;
}

/** Renders `manifests/<flavour>` through an overlay that only renames namespace and cluster-scoped names. */
async function renderFlavour(flavourDir: string, namespace: string): Promise<ManifestObject[]> {
  const overlay = await renameOverlay(workDir, flavourDir, namespace, suffix);
  const rendered = await kubectlOk(['kustomize', overlay]);
  return parseObjects(rendered.stdout);
}

/** manifests/examples/tenant-rbac.yaml for team-a-<hex>, bound to the renamed operator identity. */
async function tenantExample(): Promise<ManifestObject[]> {
  const text = await readFile(join(repoRoot, 'manifests', 'examples', 'tenant-rbac.yaml'), 'utf8');
  return parseObjects(text).map((object) => {
    const renamed = JSON.parse(
      JSON.stringify(object)
        .replaceAll('"team-a"', JSON.stringify(tenantNamespace))
        .replaceAll('"signet-system"', JSON.stringify(operatorNamespace))
        .replaceAll('"signet-tenant-references"', JSON.stringify(`signet-tenant-references-${suffix}`)),
    ) as ManifestObject & { subjects?: { kind: string; name: string; namespace: string }[] };
    for (const subject of renamed.subjects ?? []) {
      if (subject.namespace === operatorNamespace && subject.name === 'signet') {
        subject.name = operatorServiceAccount;
      }
    }
    return renamed;
  });
}

function tokenKubeConfig(namespace: string, serviceAccountName: string): Promise<KubeConfig> {
  return tokenKubeConfigFor(kubeConfig, { namespace, serviceAccountName });
}

async function writeKubeconfig(config: KubeConfig, name: string): Promise<string> {
  const path = join(workDir, `${name}.kubeconfig`);
  await writeFile(path, config.exportConfig(), { mode: 0o600 });
  return path;
}

const gitRepository = {
  apiVersion: 'signet.dev/v1alpha1',
  kind: 'GitRepository',
  metadata: { name: 'install-check' },
  spec: {
    url: 'https://git.example.com/team-a/apps.git',
    ref: { branch: 'main' },
    verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
  },
};

async function deleteIgnoringMissing(remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (error) {
    if (!isApiError(error, 404)) throw error;
  }
}

beforeAll(async () => {
  kubectlPath = join(await resolveBinDir(AbortSignal.timeout(60 * 60_000)), 'kubectl');
  await mkdir(workDir, { recursive: true });
});

afterAll(async () => {
  const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  // The GitRepository got a finalizer in the test; remove it so the namespace can go.
  await deleteIgnoringMissing(() =>
    customObjects.patchNamespacedCustomObject(
      {
        group: 'signet.dev',
        version: 'v1alpha1',
        namespace: tenantNamespace,
        plural: 'gitrepositories',
        name: gitRepository.metadata.name,
        // client-node sends a JSON Patch (application/json-patch+json).
        body: [{ op: 'add', path: '/metadata/finalizers', value: [] }],
      },
      requestOptions(),
    ),
  );
  for (const name of [`signet-tenant-operator-${suffix}`, `signet-manager-${suffix}`]) {
    await deleteIgnoringMissing(() => rbac.deleteClusterRoleBinding({ name }, requestOptions()));
  }
  for (const name of [
    `signet-tenant-operator-${suffix}`,
    `signet-tenant-references-${suffix}`,
    `signet-manager-${suffix}`,
  ]) {
    await deleteIgnoringMissing(() => rbac.deleteClusterRole({ name }, requestOptions()));
  }
  for (const name of [operatorNamespace, defaultFlavourNamespace, tenantNamespace, otherNamespace]) {
    await deleteIgnoringMissing(() => core.deleteNamespace({ name }, requestOptions()));
  }
  await rm(workDir, { recursive: true, force: true });
});

describe('manifests as shipped', () => {
  it('render with kustomize: default and tenant differ only in RBAC and the tenant flag', async () => {
    const defaultObjects = parseObjects((await kubectlOk(['kustomize', 'manifests'])).stdout);
    const tenantObjects = parseObjects((await kubectlOk(['kustomize', 'manifests/tenant'])).stdout);
    const names = (objects: ManifestObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names(defaultObjects)).toEqual([
      'ClusterRole/signet-manager',
      'ClusterRoleBinding/signet-manager',
      'Deployment/signet',
      'Namespace/signet-system',
      'NetworkPolicy/signet',
      'PodDisruptionBudget/signet',
      'Role/signet-leader-election',
      'RoleBinding/signet-leader-election',
      'Service/signet-metrics',
      'ServiceAccount/signet',
    ]);
    expect(names(tenantObjects)).toEqual([
      'ClusterRole/signet-tenant-operator',
      'ClusterRole/signet-tenant-references',
      'ClusterRoleBinding/signet-tenant-operator',
      'Deployment/signet',
      'Namespace/signet-system',
      'NetworkPolicy/signet',
      'PodDisruptionBudget/signet',
      'Role/signet-leader-election',
      'RoleBinding/signet-leader-election',
      'Service/signet-metrics',
      'ServiceAccount/signet',
    ]);
    const argsOf = (objects: ManifestObject[]): unknown =>
      (
        objects.find((o) => o.kind === 'Deployment') as unknown as {
          spec: { template: { spec: { containers: { args: string[] }[] } } };
        }
      ).spec.template.spec.containers[0]?.args;
    expect(argsOf(defaultObjects)).toContain('--leader-elect');
    expect(argsOf(defaultObjects)).not.toContain('--default-service-account=signet-tenant');
    expect(argsOf(tenantObjects)).toContain('--default-service-account=signet-tenant');
  });

  for (const [flavour, dir] of [
    ['default', 'manifests'],
    ['tenant', 'manifests/tenant'],
  ] as const) {
    it(`${flavour} flavour: the Deployment, Service, PDB and NetworkPolicy are hardened as docs/install.md says`, async () => {
      const objects = parseObjects((await kubectlOk(['kustomize', dir])).stdout);
      const one = <T>(kind: string): T => {
        const found = objects.filter((o) => o.kind === kind);
        expect(found, kind).toHaveLength(1);
        return found[0] as unknown as T;
      };
      const deployment = one<V1Deployment>('Deployment');
      const pod = deployment.spec?.template;
      const container = pod?.spec?.containers[0];
      if (deployment.spec === undefined || pod?.spec === undefined || container === undefined) {
        throw new Error('the Deployment has no pod template or container');
      }
      expect(pod.spec.containers).toHaveLength(1);
      expect(deployment.spec.replicas).toBe(2);
      expect(deployment.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
      const args = container.args ?? [];
      expect(args).toContain('--leader-elect');
      // Pod and container: non-root, no privilege escalation, no capabilities, read-only root, seccomp.
      expect(pod.spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(container.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(container.securityContext?.capabilities?.add).toBeUndefined();
      expect(container.securityContext?.privileged).not.toBe(true);
      // Requests and limits for both CPU and memory, limits not below requests.
      expect(container.resources).toEqual({
        requests: { cpu: '100m', memory: '256Mi' },
        limits: { cpu: '1', memory: '1Gi' },
      });
      // The only writable places are emptyDirs.
      expect(container.volumeMounts?.map((m) => m.mountPath).sort()).toEqual(['/tmp', '/var/cache/signet']);
      expect(pod.spec.volumes?.every((v) => v.emptyDir !== undefined)).toBe(true);

      // Ports: the flags' ports are the container ports the probes, Service and NetworkPolicy name.
      const flag = (name: string): string => {
        const value = args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
        if (value === undefined) throw new Error(`the Deployment has no --${name}`);
        return value;
      };
      const containerPort = (name: string): number => {
        const port = container.ports?.find((p) => p.name === name);
        expect(port?.protocol, name).toBe('TCP');
        return port?.containerPort ?? -1;
      };
      const healthPort = parseListenAddress(flag('health-addr')).port;
      const metricsPort = parseListenAddress(flag('metrics-addr')).port;
      expect(containerPort('health')).toBe(healthPort);
      expect(containerPort('metrics')).toBe(metricsPort);
      expect(container.ports).toHaveLength(2);
      const resolve = (port: number | string | undefined): number =>
        typeof port === 'number' ? port : containerPort(port ?? '');
      expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(resolve(container.livenessProbe?.httpGet?.port)).toBe(healthPort);
      expect(resolve(container.readinessProbe?.httpGet?.port)).toBe(healthPort);
      // ...and the operator's probe server (src/controller/http-server.ts) serves exactly those paths:
      // liveness does not depend on readiness, readiness follows the caches.
      let ready = false;
      const probes = await startProbeServer({ address: '127.0.0.1:0', isReady: () => ready });
      try {
        const get = async (path: string | undefined): Promise<number> =>
          (
            await fetch(`http://127.0.0.1:${probes.port}${path ?? ''}`, {
              signal: AbortSignal.timeout(5_000),
            })
          ).status;
        expect(await get(container.livenessProbe?.httpGet?.path)).toBe(200);
        expect(await get(container.readinessProbe?.httpGet?.path)).toBe(503);
        ready = true;
        expect(await get(container.readinessProbe?.httpGet?.path)).toBe(200);
        expect(await get('/no-such-probe')).toBe(404);
      } finally {
        await new Promise((resolveClose) => probes.server.close(resolveClose));
      }

      const podLabels = pod.metadata?.labels ?? {};
      const selects = (selector: Record<string, string> | undefined): boolean =>
        selector !== undefined &&
        Object.keys(selector).length > 0 &&
        Object.entries(selector).every(([key, value]) => podLabels[key] === value);
      expect(selects(deployment.spec.selector.matchLabels)).toBe(true);

      const service = one<V1Service>('Service');
      expect(selects(service.spec?.selector)).toBe(true);
      expect(service.spec?.ports?.map((p) => [p.name, resolve(p.targetPort), p.protocol])).toEqual([
        ['metrics', metricsPort, 'TCP'],
      ]);

      const pdb = one<V1PodDisruptionBudget>('PodDisruptionBudget');
      expect(pdb.spec?.minAvailable).toBe(1);
      expect(pdb.spec?.maxUnavailable).toBeUndefined();
      expect(selects(pdb.spec?.selector?.matchLabels)).toBe(true);

      const policy = one<V1NetworkPolicy>('NetworkPolicy');
      expect(selects(policy.spec?.podSelector?.matchLabels)).toBe(true);
      expect(policy.spec?.policyTypes?.sort()).toEqual(['Egress', 'Ingress']);
      // Ingress: one rule, the metrics port only (from anywhere: Prometheus runs wherever it runs).
      expect(policy.spec?.ingress).toHaveLength(1);
      expect(policy.spec?.ingress?.[0]?.ports?.map((p) => [resolve(p.port), p.protocol])).toEqual([
        [metricsPort, 'TCP'],
      ]);
      expect(policy.spec?.ingress?.[0]?.ports?.some((p) => resolve(p.port) === healthPort)).toBe(false);
      // Egress: DNS, the API server (443 Service, 6443 endpoints), HTTPS and SSH (Git); nothing else.
      expect(
        policy.spec?.egress
          ?.flatMap((rule) => (rule.ports ?? []).map((p) => `${p.port}/${p.protocol}`))
          .sort(),
      ).toEqual(['22/TCP', '443/TCP', '53/TCP', '53/UDP', '6443/TCP']);
      expect(policy.spec?.egress?.every((rule) => (rule.ports ?? []).length > 0)).toBe(true);

      // The namespace enforces the restricted Pod Security Standard.
      expect(one<ManifestObject>('Namespace').metadata.labels).toMatchObject({
        'pod-security.kubernetes.io/enforce': 'restricted',
      });
    });
  }
});

describe('tenant example as shipped', () => {
  it('binds signet-tenant to the built-in admin role, and the references role to the controller, in team-a only', async () => {
    const objects = parseObjects(
      await readFile(join(repoRoot, 'manifests', 'examples', 'tenant-rbac.yaml'), 'utf8'),
    );
    const bindings = objects.filter((o) => o.kind === 'RoleBinding');
    expect(objects.filter((o) => o.kind === 'ClusterRoleBinding')).toEqual([]);
    expect(bindings.map((b) => [b.metadata.namespace, b.roleRef, b.subjects])).toEqual([
      [
        'team-a',
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
        [{ kind: 'ServiceAccount', name: 'signet-tenant', namespace: 'team-a' }],
      ],
      [
        'team-a',
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'signet-tenant-references' },
        [{ kind: 'ServiceAccount', name: 'signet', namespace: 'signet-system' }],
      ],
    ]);
  });
});

// ---------- README.md's install commands, run word for word ----------

/**
 * The ```sh block under `### <heading>` of README.md's "## Install in a cluster" section, as
 * written. Every non-empty line must be one plain kubectl command (no pipes, substitutions or
 * continuations), so running the block with bash runs exactly what a reader would type.
 */
function readmeInstallBlock(readme: string, heading: string): string {
  const section = readme.split(/^## /m).find((part) => part.startsWith('Install in a cluster\n'));
  if (section === undefined) throw new Error('README.md has no "## Install in a cluster" section');
  const sub = section.split(/^### /m).find((part) => part.startsWith(`${heading}\n`));
  if (sub === undefined) throw new Error(`README.md's install section has no "### ${heading}"`);
  const block = /^```sh\n([\s\S]*?)^```$/m.exec(sub)?.[1];
  if (block === undefined) throw new Error(`"### ${heading}" in README.md has no sh code block`);
  for (const line of block.split('\n').filter((l) => l.trim() !== '')) {
    const command = line.replace(/\s+#.*$/, '');
    if (!/^kubectl [^|;&$`<>\\'"]+$/.test(command)) {
      throw new Error(`README.md "### ${heading}": not a plain kubectl command: ${line}`);
    }
  }
  return block;
}

interface NamedObject {
  metadata?: { managedFields?: { manager?: string; operation?: string }[] };
}

const readmeNamespaces = ['team-a', 'signet-system'];
const readmeClusterRoleBindings = ['signet-manager', 'signet-tenant-operator'];
const readmeClusterRoles = ['signet-manager', 'signet-tenant-operator', 'signet-tenant-references'];
/** The example GitRepository of the README's install blocks, as CustomObjectsApi names it. */
const readmeExample = {
  group: 'signet.dev',
  version: 'v1alpha1',
  namespace: 'team-a',
  plural: 'gitrepositories',
  name: 'team-a-apps',
};

/** Deletes what the README's commands created under their fixed names (not the shared CRD) and waits until it is gone. */
async function removeReadmeInstall(): Promise<void> {
  await deleteIgnoringMissing(() =>
    kubeConfig.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject(readmeExample, requestOptions()),
  );
  for (const name of readmeClusterRoleBindings) {
    await deleteIgnoringMissing(() => rbac.deleteClusterRoleBinding({ name }, requestOptions()));
  }
  for (const name of readmeClusterRoles) {
    await deleteIgnoringMissing(() => rbac.deleteClusterRole({ name }, requestOptions()));
  }
  for (const name of readmeNamespaces) {
    await deleteIgnoringMissing(() => core.deleteNamespace({ name }, requestOptions()));
  }
  for (const name of readmeNamespaces) {
    await waitFor(
      async () => {
        try {
          await core.readNamespace({ name }, requestOptions());
          return false;
        } catch (error) {
          if (isApiError(error, 404)) return true;
          throw error;
        }
      },
      { timeoutMs: 90_000, intervalMs: 250, description: `namespace ${name} to be deleted` },
    );
  }
}

describe("README.md's install commands, word for word", () => {
  let readme = '';
  let cwd = '';
  let allowedSigners = '';

  beforeAll(async () => {
    readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
    // A reader's working directory: the checkout's crds/ and manifests/, and their allowed_signers file.
    cwd = join(workDir, 'readme');
    await mkdir(cwd, { recursive: true });
    for (const dir of ['crds', 'manifests']) await symlink(join(repoRoot, dir), join(cwd, dir));
    const key = join(cwd, 'alice');
    await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice', '-f', key]);
    allowedSigners = `alice@example.com namespaces="git" ${(await readFile(`${key}.pub`, 'utf8')).trim()}\n`;
    await writeFile(join(cwd, 'allowed_signers'), allowedSigners);
    await removeReadmeInstall();
  });

  afterAll(async () => {
    await removeReadmeInstall();
  });

  /** Runs the block with bash (exit on the first failing command), the built kubectl first on PATH. */
  async function runBlock(heading: string): Promise<void> {
    const block = readmeInstallBlock(readme, heading);
    const result = await runProcess('bash', ['-euo', 'pipefail', '-x', '-c', block], {
      cwd,
      env: {
        ...process.env,
        PATH: `${dirname(kubectlPath)}:${process.env.PATH ?? ''}`,
        KUBECONFIG: kubeconfigPath(),
      },
      timeoutMs: 120_000,
    });
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    // Nothing but bash's trace of each command: no warnings (PodSecurity, last-applied, deprecations).
    expect(result.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('+ '))).toEqual([]);
    const commands = block.split('\n').filter((line) => line.trim() !== '').length;
    expect(result.stderr.split('\n').filter((line) => line.startsWith('+ kubectl '))).toHaveLength(commands);
  }

  /** The webhook address as the README's `create secret` command sets it. */
  function readmeWebhookAddress(heading: string): string {
    const address = /--from-literal=address=(\S+)/.exec(readmeInstallBlock(readme, heading))?.[1];
    if (address === undefined) throw new Error(`"### ${heading}" creates no slack-webhook address`);
    return address;
  }

  /** What both flavours must leave: the user's signers and webhook untouched, the example stored without serviceAccountName. */
  async function expectUserObjectsAndExample(heading: string): Promise<void> {
    const signers = await core.readNamespacedConfigMap(
      { name: 'signers', namespace: 'team-a' },
      requestOptions(),
    );
    expect(signers.data).toEqual({ allowed_signers: allowedSigners });
    const webhook = await core.readNamespacedSecret(
      { name: 'slack-webhook', namespace: 'team-a' },
      requestOptions(),
    );
    expect(Buffer.from(webhook.data?.address ?? '', 'base64').toString('utf8')).toBe(
      readmeWebhookAddress(heading),
    );
    // Written once, by `kubectl create`: no later apply took the fields over.
    for (const object of [signers, webhook] as NamedObject[]) {
      expect(object.metadata?.managedFields?.map((f) => [f.manager, f.operation])).toEqual([
        ['kubectl-create', 'Update'],
      ]);
    }
    const example = (await kubeConfig
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject(readmeExample, requestOptions())) as ManifestObject & {
      spec: {
        serviceAccountName?: string;
        verify: { signersRef: { kind: string; name: string } };
        alerts: { slack: { secretRef: { name: string } } };
      };
    };
    expect(example.spec.serviceAccountName).toBeUndefined();
    expect(example.spec.verify.signersRef).toEqual({ kind: 'ConfigMap', name: 'signers' });
    expect(example.spec.alerts.slack.secretRef).toEqual({ name: 'slack-webhook' });
  }

  it('default flavour: installs, and the controller itself may apply in team-a', async () => {
    await runBlock('Default flavour');
    await expectUserObjectsAndExample('Default flavour');
    const deployment = await kubeConfig
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: 'signet', namespace: 'signet-system' }, requestOptions());
    const args = deployment.spec?.template.spec?.containers[0]?.args ?? [];
    expect(args).toContain('--leader-elect');
    expect(args.some((arg) => arg.startsWith('--default-service-account'))).toBe(false);
    // Applies run as the controller (the example names no ServiceAccount): a real write as its token.
    const controller = await writeKubeconfig(
      await tokenKubeConfig('signet-system', 'signet'),
      'readme-default',
    );
    await waitFor(
      async () =>
        (
          await kubectl(['auth', 'can-i', 'create', 'configmaps', '-n', 'team-a'], { kubeconfig: controller })
        ).stdout.trim() === 'yes',
      { timeoutMs: 30_000, description: 'the signet-manager ClusterRoleBinding to take effect' },
    );
    const created = await kubectl(
      ['create', 'configmap', 'applied-by-signet', '-n', 'team-a', '--dry-run=server'],
      { kubeconfig: controller },
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    // The example's references resolve.
    for (const reference of ['configmap/signers', 'secret/slack-webhook']) {
      expect((await kubectl(['get', reference, '-n', 'team-a'], { kubeconfig: controller })).code).toBe(0);
    }
  });

  it('tenant flavour: installs, and applies run as team-a/signet-tenant', async () => {
    await removeReadmeInstall();
    await runBlock('Tenant flavour');
    await expectUserObjectsAndExample('Tenant flavour');
    const deployment = await kubeConfig
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: 'signet', namespace: 'signet-system' }, requestOptions());
    expect(deployment.spec?.template.spec?.containers[0]?.args).toContain(
      '--default-service-account=signet-tenant',
    );
    const controller = await writeKubeconfig(
      await tokenKubeConfig('signet-system', 'signet'),
      'readme-tenant',
    );
    const tenant = 'system:serviceaccount:team-a:signet-tenant';
    // The built-in admin role the example binds gets its rules from clusterrole aggregation.
    await waitFor(
      async () =>
        (
          await kubectl(['--as', tenant, 'auth', 'can-i', 'create', 'configmaps', '-n', 'team-a'], {
            kubeconfig: controller,
          })
        ).stdout.trim() === 'yes',
      { timeoutMs: 30_000, description: 'signet-tenant-admin and signet-tenant-operator to take effect' },
    );
    const asTenant = await kubectl(
      ['--as', tenant, 'create', 'configmap', 'applied-by-signet', '-n', 'team-a', '--dry-run=server'],
      { kubeconfig: controller },
    );
    expect(asTenant.stderr).toBe('');
    expect(asTenant.code).toBe(0);
    const itself = await kubectl(
      ['create', 'configmap', 'applied-by-signet', '-n', 'team-a', '--dry-run=server'],
      {
        kubeconfig: controller,
      },
    );
    expect(itself.code).not.toBe(0);
    expect(itself.stderr).toMatch(/forbidden/i);
    for (const reference of ['configmap/signers', 'secret/slack-webhook']) {
      expect((await kubectl(['get', reference, '-n', 'team-a'], { kubeconfig: controller })).code).toBe(0);
    }
  });
});

describe('server-side dry-run', () => {
  it('accepts the CRD', async () => {
    const result = await kubectlOk([
      'apply',
      '--server-side',
      '--field-manager=signet-install-e2e',
      '--dry-run=server',
      '-f',
      'crds/',
    ]);
    expect(result.stdout).toContain(
      'customresourcedefinition.apiextensions.k8s.io/gitrepositories.signet.dev',
    );
  });

  for (const [flavour, dir, namespace] of [
    ['default', 'manifests', defaultFlavourNamespace],
    ['tenant', 'manifests/tenant', operatorNamespace],
  ] as const) {
    it(`accepts every object of the ${flavour} flavour, with no PodSecurity (restricted) warning`, async () => {
      const objects = await renderFlavour(dir, namespace);
      // Namespaced objects can only be dry-run into an existing namespace.
      const namespaceObject = objects.filter((o) => o.kind === 'Namespace');
      expect(namespaceObject).toHaveLength(1);
      await kubectlOk(['apply', '--server-side', '--field-manager=signet-install-e2e', '-f', '-'], {
        input: toYamlStream(namespaceObject),
      });
      const result = await kubectlOk(
        ['apply', '--server-side', '--field-manager=signet-install-e2e', '--dry-run=server', '-f', '-'],
        { input: toYamlStream(objects) },
      );
      expect(result.stdout.trim().split('\n')).toHaveLength(objects.length);
      expect(result.stdout).toContain(`deployment.apps/signet-${suffix} serverside-applied (server dry run)`);
      expect(result.stderr).not.toMatch(/PodSecurity|would violate/i);
      // Control: the same Deployment with an added capability draws the restricted-level warning.
      const deployment = structuredClone(objects.find((o) => o.kind === 'Deployment')) as ManifestObject & {
        spec: { template: { spec: { containers: { securityContext: Record<string, unknown> }[] } } };
      };
      const container = deployment.spec.template.spec.containers[0];
      if (container === undefined) throw new Error('the Deployment has no container');
      container.securityContext = { ...container.securityContext, capabilities: { add: ['NET_ADMIN'] } };
      const privileged = await kubectlOk(
        ['apply', '--server-side', '--field-manager=signet-install-e2e', '--dry-run=server', '-f', '-'],
        { input: toYamlStream([deployment]) },
      );
      expect(privileged.stderr).toMatch(/would violate PodSecurity "restricted:latest"/);
    });
  }
});

describe('tenant flavour RBAC, really applied', () => {
  let operator: KubeConfig;
  let operatorKubeconfig = '';

  beforeAll(async () => {
    // The CRD for real (server-side apply is idempotent if another test installed it already).
    await kubectlOk(['apply', '--server-side', '--field-manager=signet-install-e2e', '-f', 'crds/']);
    await kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      'crd/gitrepositories.signet.dev',
    ]);
    const objects = (await renderFlavour('manifests/tenant', operatorNamespace)).filter((o) =>
      rbacKinds.has(o.kind),
    );
    await kubectlOk(['apply', '--server-side', '--field-manager=signet-install-e2e', '-f', '-'], {
      input: toYamlStream([...objects, ...(await tenantExample())]),
    });
    // The example binds the built-in `admin` ClusterRole, whose rules come from clusterrole
    // aggregation (admin aggregates edit and view). The test plane runs that controller, as every
    // real cluster does, so the tenant gets exactly what the shipped example gives it.
    const tenant = await tokenKubeConfig(tenantNamespace, tenantServiceAccount);
    await waitFor(
      async () => {
        for (const verb of ['get', 'list', 'create']) {
          if (!(await allowed(tenant, { resource: 'configmaps', verb, namespace: tenantNamespace })))
            return false;
        }
        return true;
      },
      { timeoutMs: 30_000, description: 'the aggregated admin role to reach the tenant ServiceAccount' },
    );
    await core.createNamespace({ body: { metadata: { name: otherNamespace } } }, requestOptions());
    for (const namespace of [tenantNamespace, otherNamespace, 'kube-system']) {
      await deleteIgnoringMissing(() =>
        core.deleteNamespacedSecret({ name: `probe-${suffix}`, namespace }, requestOptions()),
      );
    }
    for (const namespace of [tenantNamespace, otherNamespace]) {
      await core.createNamespacedSecret(
        { namespace, body: { metadata: { name: `probe-${suffix}` }, stringData: { key: 'value' } } },
        requestOptions(),
      );
    }
    await kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject(
      {
        group: 'signet.dev',
        version: 'v1alpha1',
        namespace: tenantNamespace,
        plural: 'gitrepositories',
        body: gitRepository,
      },
      requestOptions(),
    );
    operator = await tokenKubeConfig(operatorNamespace, operatorServiceAccount);
    operatorKubeconfig = await writeKubeconfig(operator, 'operator');
    // The RBAC authorizer works from an informer cache: wait until the bindings are visible.
    await waitFor(
      () => allowed(operator, { group: 'signet.dev', resource: 'gitrepositories', verb: 'list' }),
      { timeoutMs: 30_000, description: 'the tenant ClusterRoleBinding to take effect' },
    );
    await waitFor(() => allowed(operator, { resource: 'secrets', verb: 'get', namespace: tenantNamespace }), {
      timeoutMs: 30_000,
      description: 'the tenant references RoleBinding to take effect',
    });
  });

  it('can list, patch (finalizer) and patch the status of GitRepositories', async () => {
    const customObjects = operator.makeApiClient(CustomObjectsApi);
    const target = { group: 'signet.dev', version: 'v1alpha1', plural: 'gitrepositories' };
    const listed = (await customObjects.listClusterCustomObject(target, requestOptions())) as {
      items: ManifestObject[];
    };
    expect(listed.items.map((item) => `${item.metadata.namespace}/${item.metadata.name}`)).toContain(
      `${tenantNamespace}/${gitRepository.metadata.name}`,
    );
    const named = { ...target, namespace: tenantNamespace, name: gitRepository.metadata.name };
    const withFinalizer = (await customObjects.patchNamespacedCustomObject(
      { ...named, body: [{ op: 'add', path: '/metadata/finalizers', value: ['signet.dev/finalizer'] }] },
      requestOptions(),
    )) as ManifestObject;
    expect(withFinalizer.metadata.finalizers).toEqual(['signet.dev/finalizer']);
    const withStatus = (await customObjects.patchNamespacedCustomObjectStatus(
      {
        ...named,
        body: [
          {
            op: 'add',
            path: '/status',
            value: { observedGeneration: 1, lastAttemptedRevision: 'main@sha1:0' },
          },
        ],
      },
      requestOptions(),
    )) as ManifestObject & { status?: { observedGeneration?: number } };
    expect(withStatus.status?.observedGeneration).toBe(1);
    const withoutFinalizer = (await customObjects.patchNamespacedCustomObject(
      { ...named, body: [{ op: 'remove', path: '/metadata/finalizers' }] },
      requestOptions(),
    )) as ManifestObject;
    expect(withoutFinalizer.metadata.finalizers).toBeUndefined();
    expect(
      await allowed(operator, {
        group: 'signet.dev',
        resource: 'gitrepositories',
        subresource: 'finalizers',
        verb: 'update',
        namespace: tenantNamespace,
      }),
    ).toBe(true);
  });

  it('accepts the example GitRepository (server-side dry-run): no Secret, ConfigMap or serviceAccountName in it', async () => {
    const text = await readFile(join(repoRoot, 'manifests', 'examples', 'gitrepository.yaml'), 'utf8');
    const objects = parseObjects(text).map((object) => ({
      ...object,
      metadata: { ...object.metadata, namespace: tenantNamespace },
    }));
    // The signers ConfigMap and the Slack Secret are the user's (README.md creates them); the
    // example must not overwrite them, and must work in the default flavour too.
    expect(objects.map((o) => o.kind)).toEqual(['GitRepository']);
    expect(objects[0]).toHaveProperty('spec.verify.signersRef.name', 'signers');
    expect(objects[0]).not.toHaveProperty('spec.serviceAccountName');
    const result = await kubectlOk(
      ['apply', '--server-side', '--field-manager=signet-install-e2e', '--dry-run=server', '-f', '-'],
      { input: toYamlStream(objects) },
    );
    expect(result.stdout).toContain(
      'gitrepository.signet.dev/team-a-apps serverside-applied (server dry run)',
    );
  });

  it('cannot create, update or delete GitRepositories', async () => {
    for (const verb of ['create', 'update', 'delete', 'deletecollection']) {
      expect(
        await allowed(operator, {
          group: 'signet.dev',
          resource: 'gitrepositories',
          verb,
          namespace: tenantNamespace,
        }),
      ).toBe(false);
    }
  });

  it('can create Events (core and events.k8s.io) in a tenant namespace', async () => {
    const created = await operator.makeApiClient(CoreV1Api).createNamespacedEvent(
      {
        namespace: tenantNamespace,
        body: {
          metadata: { generateName: `${gitRepository.metadata.name}.` },
          involvedObject: {
            apiVersion: 'signet.dev/v1alpha1',
            kind: 'GitRepository',
            name: gitRepository.metadata.name,
            namespace: tenantNamespace,
          },
          type: 'Normal',
          reason: 'InstallCheck',
          message: 'RBAC check from e2e/install.test.ts',
          source: { component: 'signet' },
        },
      },
      requestOptions(),
    );
    expect(created.metadata?.name).toMatch(/^install-check\./);
    for (const group of ['', 'events.k8s.io']) {
      expect(
        await allowed(operator, { group, resource: 'events', verb: 'patch', namespace: tenantNamespace }),
      ).toBe(true);
    }
  });

  it('can get, create and update its Lease in its own namespace only', async () => {
    const leases = operator.makeApiClient(CoordinationV1Api);
    const lease = await leases.createNamespacedLease(
      {
        namespace: operatorNamespace,
        body: {
          metadata: { name: 'signet-leader' },
          spec: { holderIdentity: 'replica-a', leaseDurationSeconds: 15 },
        },
      },
      requestOptions(),
    );
    const updated = await leases.replaceNamespacedLease(
      {
        name: 'signet-leader',
        namespace: operatorNamespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: 'replica-b' } },
      },
      requestOptions(),
    );
    expect(updated.spec?.holderIdentity).toBe('replica-b');
    const read = await leases.readNamespacedLease(
      { name: 'signet-leader', namespace: operatorNamespace },
      requestOptions(),
    );
    expect(read.spec?.holderIdentity).toBe('replica-b');
    for (const verb of ['create', 'update', 'get']) {
      expect(
        await allowed(operator, {
          group: 'coordination.k8s.io',
          resource: 'leases',
          verb,
          namespace: 'kube-system',
        }),
      ).toBe(false);
    }
    expect(
      await allowed(operator, {
        group: 'coordination.k8s.io',
        resource: 'leases',
        verb: 'delete',
        namespace: operatorNamespace,
      }),
    ).toBe(false);
  });

  it('reads, lists and watches Secrets and ConfigMaps of onboarded namespaces only', async () => {
    const asOperator = operator.makeApiClient(CoreV1Api);
    const secret = await asOperator.readNamespacedSecret(
      { name: `probe-${suffix}`, namespace: tenantNamespace },
      requestOptions(),
    );
    expect(secret.metadata?.name).toBe(`probe-${suffix}`);
    await expect(
      asOperator.readNamespacedSecret(
        { name: `probe-${suffix}`, namespace: otherNamespace },
        requestOptions(),
      ),
    ).rejects.toMatchObject({ code: 403 });
    await expect(
      asOperator.listNamespacedSecret({ namespace: 'kube-system' }, requestOptions()),
    ).rejects.toMatchObject({
      code: 403,
    });
    await expect(
      asOperator.listNamespacedSecret({ namespace: otherNamespace }, requestOptions()),
    ).rejects.toMatchObject({ code: 403 });
    // The reference cache's metadata-only watch of an onboarded namespace (docs/install.md).
    const listed = await asOperator.listNamespacedSecret({ namespace: tenantNamespace }, requestOptions());
    expect(listed.items.map((s) => s.metadata?.name)).toContain(`probe-${suffix}`);
    expect(await allowed(operator, { resource: 'configmaps', verb: 'get', namespace: tenantNamespace })).toBe(
      true,
    );
    expect(await allowed(operator, { resource: 'secrets', verb: 'get', namespace: 'kube-system' })).toBe(
      false,
    );
    expect(
      await allowed(operator, { resource: 'configmaps', verb: 'watch', namespace: tenantNamespace }),
    ).toBe(true);
    expect(await allowed(operator, { resource: 'secrets', verb: 'watch', namespace: otherNamespace })).toBe(
      false,
    );
    expect(await allowed(operator, { resource: 'secrets', verb: 'watch', namespace: 'kube-system' })).toBe(
      false,
    );
  });

  it('cannot write anything itself: ConfigMaps, namespaces, ClusterRoleBindings', async () => {
    const asOperator = operator.makeApiClient(CoreV1Api);
    await expect(
      asOperator.createNamespacedConfigMap(
        { namespace: tenantNamespace, body: { metadata: { name: 'forbidden' } } },
        requestOptions(),
      ),
    ).rejects.toMatchObject({ code: 403 });
    // dryRun: even if the request were allowed nothing would be deleted or created.
    await expect(
      asOperator.deleteNamespace({ name: tenantNamespace, dryRun: 'All' }, requestOptions()),
    ).rejects.toMatchObject({ code: 403 });
    await expect(
      operator.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding(
        {
          dryRun: 'All',
          body: {
            metadata: { name: `escalate-${suffix}` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
            subjects: [
              { kind: 'ServiceAccount', name: operatorServiceAccount, namespace: operatorNamespace },
            ],
          },
        },
        requestOptions(),
      ),
    ).rejects.toMatchObject({ code: 403 });
    for (const [group, resource] of [
      ['', 'pods'],
      ['apps', 'deployments'],
      ['rbac.authorization.k8s.io', 'rolebindings'],
      ['admissionregistration.k8s.io', 'validatingadmissionpolicies'],
    ] as const) {
      expect(await allowed(operator, { group, resource, verb: 'create', namespace: tenantNamespace })).toBe(
        false,
      );
    }
  });

  it("impersonates a tenant ServiceAccount (which gets that account's rights and groups), but no user or group", async () => {
    const tenantUser = `system:serviceaccount:${tenantNamespace}:${tenantServiceAccount}`;
    expect(
      await allowed(operator, {
        resource: 'serviceaccounts',
        verb: 'impersonate',
        namespace: tenantNamespace,
        name: tenantServiceAccount,
      }),
    ).toBe(true);
    // As the tenant: its rights in its namespace (the aggregated `admin` role, see beforeAll)...
    const created = await kubectl(
      [
        '--as',
        tenantUser,
        'create',
        'configmap',
        `as-tenant-${suffix}`,
        '-n',
        tenantNamespace,
        '--dry-run=server',
      ],
      { kubeconfig: operatorKubeconfig },
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    // ...with the groups the API server derives for a ServiceAccount...
    const whoAmI = await kubectl(['--as', tenantUser, 'auth', 'whoami', '-o', 'json'], {
      kubeconfig: operatorKubeconfig,
    });
    expect(whoAmI.code).toBe(0);
    const review = JSON.parse(whoAmI.stdout) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    expect(review.status.userInfo.username).toBe(tenantUser);
    expect(review.status.userInfo.groups.sort()).toEqual(
      ['system:authenticated', 'system:serviceaccounts', `system:serviceaccounts:${tenantNamespace}`].sort(),
    );
    // ...and nothing outside it.
    const outside = await kubectl(['--as', tenantUser, 'get', 'configmaps', '-n', 'kube-system'], {
      kubeconfig: operatorKubeconfig,
    });
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/forbidden/i);
    // No Impersonate-Group (system:masters would be cluster-admin), no users.
    for (const args of [
      ['--as', tenantUser, '--as-group', 'system:masters', 'get', 'configmaps', '-n', 'kube-system'],
      [
        '--as',
        tenantUser,
        '--as-group',
        `system:serviceaccounts:${tenantNamespace}`,
        'get',
        'configmaps',
        '-n',
        tenantNamespace,
      ],
      ['--as', 'admin', 'get', 'configmaps', '-n', 'kube-system'],
    ]) {
      const refused = await kubectl(args, { kubeconfig: operatorKubeconfig });
      expect(refused.code, args.join(' ')).not.toBe(0);
      expect(refused.stderr).toMatch(/cannot impersonate/i);
    }
    for (const resource of ['users', 'groups', 'uids', 'userextras']) {
      expect(
        await allowed(operator, {
          group: resource === 'userextras' ? 'authentication.k8s.io' : '',
          resource,
          verb: 'impersonate',
        }),
      ).toBe(false);
    }
  });
});

describe('default flavour RBAC, really applied', () => {
  it('lets the controller create a ConfigMap in any namespace', async () => {
    const objects = (await renderFlavour('manifests', defaultFlavourNamespace)).filter((o) =>
      rbacKinds.has(o.kind),
    );
    await kubectlOk(['apply', '--server-side', '--field-manager=signet-install-e2e', '-f', '-'], {
      input: toYamlStream(objects),
    });
    const manager = await tokenKubeConfig(defaultFlavourNamespace, operatorServiceAccount);
    await waitFor(
      () => allowed(manager, { resource: 'configmaps', verb: 'create', namespace: 'kube-system' }),
      {
        timeoutMs: 30_000,
        description: 'the default ClusterRoleBinding to take effect',
      },
    );
    const asManager = manager.makeApiClient(CoreV1Api);
    await core.createNamespace(
      { body: { metadata: { name: `${defaultFlavourNamespace}-x` } } },
      requestOptions(),
    );
    try {
      const created = await asManager.createNamespacedConfigMap(
        {
          namespace: `${defaultFlavourNamespace}-x`,
          body: { metadata: { name: 'anywhere' }, data: { a: 'b' } },
        },
        requestOptions(),
      );
      expect(created.metadata?.namespace).toBe(`${defaultFlavourNamespace}-x`);
      const dryRun = await asManager.createNamespacedConfigMap(
        { namespace: 'kube-system', dryRun: 'All', body: { metadata: { name: `anywhere-${suffix}` } } },
        requestOptions(),
      );
      expect(dryRun.metadata?.namespace).toBe('kube-system');
      expect(
        await allowed(manager, {
          resource: 'serviceaccounts',
          verb: 'impersonate',
          namespace: 'kube-system',
        }),
      ).toBe(true);
    } finally {
      await deleteIgnoringMissing(() =>
        core.deleteNamespace({ name: `${defaultFlavourNamespace}-x` }, requestOptions()),
      );
    }
  });
});
