// The image's runtime tree without a container engine: hack/runtime-tree.sh assembles exactly what
// the Dockerfile's final stage copies to /app (production node_modules, dist, package.json), and
// `node /app/dist/cli/main.js run` from it, as the image's ENTRYPOINT runs it, reconciles a signed
// GitRepository (plain manifests, and a kustomization with the tree's engine) on the test cluster and exits cleanly on SIGTERM. As in the image, the tree is
// read-only to the process, the environment holds only what the Dockerfile sets (NODE_ENV,
// HOME, SIGNET_CACHE_DIR), and, when the test runs as root, the process runs as 65532:65532
// with its own copy of node (like distroless's /nodejs/bin/node).
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { KubeClient } from '../src/kube/client.ts';
import {
  entrypointNodeFlags,
  readDockerfile,
  runtimeStage,
  runtimeTree,
} from '../test/support/dockerfile.ts';
import { repoRoot } from './support/controlplane.ts';
import {
  createObjects,
  deleteGitRepositoryAndWait,
  gitRepositoryObject,
  trustObjects,
} from './support/fixtures.ts';
import { kubeconfigPath, waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import { type OperatorProcess, startOperatorProcess } from './support/operator-process.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
} from './support/signet.ts';

const run = promisify(execFile);
const ns = useTestNamespace('signet-runtime-tree');
// The Dockerfile's runtime stage (USER, ENV, the COPYs under /app), read rather than restated.
const dockerfile = readDockerfile(repoRoot);
const image = runtimeStage(dockerfile);
const imageUser = (() => {
  const match = /^(\d+):(\d+)$/.exec(image.user ?? '');
  if (match === null) throw new Error(`the Dockerfile's USER is not numeric uid:gid: ${image.user}`);
  return { uid: Number(match[1]), gid: Number(match[2]) };
})();
const asImageUser = process.getuid?.() === 0;

let base = '';
let app = '';
let node = '';
let writable = '';
let kubeconfig = '';
let admin: KubeClient;
let signed: SignedRepo;

/** Runs a command to completion with a deadline; resolves with its output and exit code. */
async function runTo(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(command, [...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
      ...(asImageUser ? imageUser : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : -1,
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? String(error),
    };
  }
}

/** The HTTP paths of the shipped Deployment's liveness and readiness probes. */
async function deploymentProbePaths(): Promise<{ liveness?: string; readiness?: string }> {
  const deployment = parse(
    await readFile(join(repoRoot, 'manifests', 'base', 'deployment.yaml'), 'utf8'),
  ) as V1Deployment;
  const container = deployment.spec?.template.spec?.containers[0];
  return {
    ...(container?.livenessProbe?.httpGet?.path === undefined
      ? {}
      : { liveness: container.livenessProbe.httpGet.path }),
    ...(container?.readinessProbe?.httpGet?.path === undefined
      ? {}
      : { readiness: container.readinessProbe.httpGet.path }),
  };
}

/** What the Dockerfile's ENV sets, and nothing else; its two writable paths (emptyDirs in the pod) are moved here. */
function imageEnv(): Record<string, string> {
  expect(Object.keys(image.env)).toEqual(expect.arrayContaining(['HOME', 'SIGNET_CACHE_DIR']));
  return { ...image.env, HOME: join(writable, 'tmp'), SIGNET_CACHE_DIR: join(writable, 'cache') };
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'signet-runtime-tree-'));
  await chmod(base, 0o755);
  app = join(base, 'app');
  const nodeBinDir = (await run(join(repoRoot, 'hack', 'node.sh'), [], { timeout: 600_000 })).stdout.trim();
  await run(join(repoRoot, 'hack', 'runtime-tree.sh'), [app], {
    cwd: repoRoot,
    timeout: 900_000,
    env: { ...process.env, PATH: `${nodeBinDir}:${process.env.PATH ?? ''}` },
    maxBuffer: 64 * 1024 * 1024,
  });
  // The interpreter, outside the tree (distroless: /nodejs/bin/node).
  node = join(base, 'nodejs', 'bin', 'node');
  await mkdir(join(base, 'nodejs', 'bin'), { recursive: true, mode: 0o755 });
  await chmod(join(base, 'nodejs'), 0o755);
  await copyFile(join(nodeBinDir, 'node'), node);
  await chmod(node, 0o755);
  // The tree is read-only (the image: root-owned, readOnlyRootFilesystem in the Deployment).
  await run('chmod', ['-R', 'a-w,a+rX', app]);
  // The emptyDirs: the cache and /tmp, the only writable places.
  writable = join(base, 'volumes');
  for (const dir of [writable, join(writable, 'tmp'), join(writable, 'cache')]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (asImageUser) await chown(dir, imageUser.uid, imageUser.gid);
  }
  // The mounted ServiceAccount credentials' stand-in: a kubeconfig the process can read.
  kubeconfig = join(writable, 'kubeconfig');
  await copyFile(kubeconfigPath(), kubeconfig);
  await chmod(kubeconfig, 0o400);
  if (asImageUser) await chown(kubeconfig, imageUser.uid, imageUser.gid);

  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo();
  await signed.commit({
    'deploy/app.yaml': configMapYaml('from-image', { built: 'runtime-tree' }),
    'base/kustomization.yaml': 'resources: [cm.yaml]\n',
    'base/cm.yaml': configMapYaml('from-image', { built: 'kustomize' }),
    'overlay/kustomization.yaml': 'resources: [../base]\nnamePrefix: k-\n',
    'chart/Chart.yaml': 'apiVersion: v2\nname: chart\nversion: 0.1.0\n',
    'chart/templates/cm.yaml':
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-from-image\ndata:\n  built: {{ .Values.built }}\n',
  });
  await createObjects(admin, trustObjects(signed, ns.name));
}, 900_000);

afterAll(async () => {
  await signed?.close();
  await admin?.close();
  if (app !== '') await run('chmod', ['-R', 'u+w', app]).catch(() => undefined);
  if (base !== '') await rm(base, { recursive: true, force: true });
});

describe('the runtime tree of the image', () => {
  it('holds exactly node_modules (production only), dist, package.json and the Kustomize and Helm engines', async () => {
    expect((await readdir(app)).sort()).toEqual(
      runtimeTree(dockerfile)
        .map((copied) => copied.entry)
        .sort(),
    );
    expect((await readdir(app)).sort()).toEqual([
      'dist',
      'helm-engine.wasm',
      'kustomize-engine',
      'kustomize-engine.wasm',
      'node_modules',
      'package.json',
    ]);
    const modules = await readdir(join(app, 'node_modules'));
    const manifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const dependency of Object.keys(manifest.dependencies)) {
      const [scope, name] = dependency.startsWith('@') ? dependency.split('/') : [dependency, undefined];
      const present =
        name === undefined
          ? modules.includes(dependency)
          : (await readdir(join(app, 'node_modules', scope ?? ''))).includes(name);
      expect(present, dependency).toBe(true);
    }
    // The dev tools and the libraries only tests and hack/ use are not there (a devDependency a
    // production package also needs would legitimately be).
    for (const tool of [
      'typescript',
      'vitest',
      '@biomejs/biome',
      'fast-check',
      '@sigstore/mock',
      '@sigstore/sign',
      'sigstore',
      'pkijs',
      'asn1js',
    ]) {
      const [top, rest] = tool.startsWith('@') ? tool.split('/') : [tool, undefined];
      const present =
        modules.includes(top ?? tool) &&
        (rest === undefined || (await readdir(join(app, 'node_modules', top ?? ''))).includes(rest));
      expect(present, `${tool} in the production tree`).toBe(false);
    }
    expect(await readdir(join(app, 'dist', 'cli'))).toContain('main.js');
  });

  it('`node dist/cli/main.js run --help` exits 0 with the usage, and `version` reads package.json', async () => {
    const help = await runTo(node, [join(app, 'dist', 'cli', 'main.js'), 'run', '--help'], {
      cwd: app,
      env: imageEnv(),
    });
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: signet run [flags]');
    expect(help.stdout).toContain('--leader-elect');
    const version = await runTo(node, [join(app, 'dist', 'cli', 'main.js'), 'version'], {
      cwd: app,
      env: imageEnv(),
    });
    const { version: expected } = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(version.stdout).toContain(`signet ${expected} (node 24.`);
    // The tree's native Kustomize engine, its digest checked against the image's pin, confines itself.
    expect(version.stdout).toContain('kustomize engine: native-landlock');
  });

  it('`run` from the tree reconciles a signed GitRepository, is ready, and exits 0 on SIGTERM', async () => {
    const operator: OperatorProcess = startOperatorProcess(
      node,
      [
        // The image's V8 flags, as its ENTRYPOINT passes them.
        ...entrypointNodeFlags(image.entrypoint ?? []),
        join(app, 'dist', 'cli', 'main.js'),
        'run',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        ns.name,
        '--metrics-addr',
        '127.0.0.1:0',
        '--health-addr',
        '127.0.0.1:0',
      ],
      {
        cwd: app,
        cleanEnv: true,
        env: imageEnv(),
        ...(asImageUser ? imageUser : {}),
        logPath: join(repoRoot, '.signet', 'e2e-logs', `runtime-tree-${ns.name}.log`),
      },
    );
    try {
      await operator.metricsPort();
      await admin.apply(gitRepositoryObject(signed, ns.name, 'apps', { interval: '1m', path: './deploy' }), {
        fieldManager: 'signet-runtime-tree-e2e',
      });
      const commit = await signed.repo.git(['rev-parse', 'HEAD']);
      const status = await waitFor(
        async () => {
          const s = await repoStatus(admin, ns.name, 'apps');
          return condition(s, 'Ready')?.status === 'True' ? s : undefined;
        },
        { timeoutMs: 60_000, description: 'GitRepository Ready from the runtime tree' },
      );
      expect(status.lastAppliedRevision).toBe(`main@sha1:${commit}`);
      expect(
        (await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'from-image', namespace: ns.name }))
          ?.data,
      ).toEqual({ built: 'runtime-tree' });
      const ports = operator.logs.find((l) => l.msg === 'signet operator running')?.ports as {
        health: number;
        metrics: number;
      };
      // The kubelet's view: the Deployment's liveness and readiness probes, on the health port.
      const probes = await deploymentProbePaths();
      expect(probes).toEqual({ liveness: '/healthz', readiness: '/readyz' });
      for (const path of [probes.liveness, probes.readiness]) {
        const answer = await fetch(`http://127.0.0.1:${ports.health}${path}`, {
          signal: AbortSignal.timeout(5_000),
        });
        expect(answer.status, path).toBe(200);
        expect(await answer.text(), path).toBe('ok');
      }
      // The port the Service and the NetworkPolicy open serves /metrics.
      expect(await operator.metrics()).toContain('signet_reconciles_total');
      // The Git cache went to SIGNET_CACHE_DIR (the cache emptyDir), nowhere in the tree.
      expect((await readdir(join(writable, 'cache'))).length).toBeGreaterThan(0);
      // A kustomization is built with the engine of the tree, its digest checked against the image's pin.
      await admin.apply(
        gitRepositoryObject(signed, ns.name, 'kapps', { interval: '1m', path: './overlay' }),
        {
          fieldManager: 'signet-runtime-tree-e2e',
        },
      );
      await waitFor(
        async () => {
          const s = await repoStatus(admin, ns.name, 'kapps');
          const ready = condition(s, 'Ready');
          return ready?.status === 'True' ? s : ready?.reason === 'BuildFailed' ? ready.message : undefined;
        },
        { timeoutMs: 60_000, description: 'the kustomization Ready from the runtime tree' },
      ).then((result) => expect(result).toMatchObject({ lastAppliedRevision: `main@sha1:${commit}` }));
      expect(
        (await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'k-from-image', namespace: ns.name }))
          ?.data,
      ).toEqual({ built: 'kustomize' });
      // It was built by the tree's native engine, confined by Landlock (this kernel has Landlock
      // ABI 7; where it has none, the metric says wasm).
      expect(await operator.metrics()).toContain('signet_kustomize_engine_info{engine="native-landlock"} 1');
      // A chart is rendered with the Helm engine of the tree, its digest checked against the image's pin.
      await admin.apply(
        gitRepositoryObject(signed, ns.name, 'happs', {
          interval: '1m',
          path: './chart',
          helm: { values: { built: 'helm' } },
        }),
        { fieldManager: 'signet-runtime-tree-e2e' },
      );
      await waitFor(
        async () => {
          const s = await repoStatus(admin, ns.name, 'happs');
          const ready = condition(s, 'Ready');
          return ready?.status === 'True' ? s : ready?.reason === 'BuildFailed' ? ready.message : undefined;
        },
        { timeoutMs: 90_000, description: 'the chart Ready from the runtime tree' },
      ).then((result) => expect(result).toMatchObject({ lastAppliedRevision: `main@sha1:${commit}` }));
      expect(
        (
          await admin.get({
            apiVersion: 'v1',
            kind: 'ConfigMap',
            name: 'happs-from-image',
            namespace: ns.name,
          })
        )?.data,
      ).toEqual({ built: 'helm' });
      // The finalizer is removed by the operator while it still runs (no Terminating leftovers).
      await deleteGitRepositoryAndWait(admin, ns.name, 'happs');
      await deleteGitRepositoryAndWait(admin, ns.name, 'kapps');
      await deleteGitRepositoryAndWait(admin, ns.name, 'apps');
    } finally {
      const exit = await operator.stop('SIGTERM');
      expect(exit, operator.lines.slice(-20).join('\n')).toEqual({ code: 0, signal: null });
    }
    expect(operator.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
    expect(operator.lines.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
    expect(operator.lines.some((line) => /EACCES|EROFS/.test(line))).toBe(false);
  });
});
