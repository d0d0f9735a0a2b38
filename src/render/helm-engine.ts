/**
 * Renders a Helm chart with helm.sh/helm/v4 (hack/helm/) on a verified tree (imperative shell).
 *
 * The chosen engine (docs/helm.md) is the WebAssembly module run in-process with node:wasi through
 * wasm-runner.ts (the same packaging as Kustomize): only a copy of the verified tree (/src) and the
 * request (/req) are visible; no sockets, no exec; `spec.timeout`, output size and linear memory
 * bound each render. The native `helm` binary of the same version runs `helm template` as a
 * subprocess with the same inputs; it is the reference for the differential tests and the benchmarks.
 */
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HelmTree } from './helm-policy.ts';
import { runNative } from './native-runner.ts';
import {
  ENGINE_ABI,
  engineInstances,
  lazyModule,
  materialiseTree,
  pinAndMemoryFromEnv,
  requestRoot,
  runExclusive,
  sandboxRoot,
  type WasmErrors,
  type WasmRunOptions,
} from './wasm-runner.ts';

export const HELM_VERSION = 'v4.3.2';

/** One render: what `helm template` is given. Paths are relative to the tree's root. */
export interface HelmRenderRequest {
  readonly chart: string;
  readonly releaseName: string;
  readonly namespace: string;
  readonly valuesFiles: readonly string[];
  readonly values: Readonly<Record<string, unknown>>;
  readonly includeCRDs: boolean;
  /** The API server's version (e.g. v1.36.0); absent: Helm's default. */
  readonly kubeVersion?: string;
  /** Exactly .Capabilities.APIVersions (the API server's discovery); absent: Helm's defaults. */
  readonly apiVersions?: readonly string[];
  /** Added to Helm's defaults, as `helm template --api-versions` (tests). */
  readonly extraApiVersions?: readonly string[];
}

export type HelmRunOptions = WasmRunOptions;

export interface HelmEngine {
  readonly name: string;
  render(tree: HelmTree, request: HelmRenderRequest, options: HelmRunOptions): Promise<Uint8Array>;
}

const errors: WasmErrors = {
  label: 'helm template',
  failed: 'HelmBuildFailed',
  timeout: 'HelmTimeout',
  tooLarge: 'HelmOutputTooLarge',
  unavailable: 'HelmEngineUnavailable',
};

/** The cache directory hack/helm/build.sh fills (SIGNET_CACHE as in the script). */
export function helmCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.SIGNET_CACHE ?? join(homedir(), '.cache', 'signet');
  return join(cache, 'helm', `${HELM_VERSION}-abi${ENGINE_ABI}`);
}

/** SIGNET_HELM_ENGINE; else helm-engine.wasm beside dist/ (the image's /app); else the build cache. */
export function defaultHelmEnginePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SIGNET_HELM_ENGINE !== undefined && env.SIGNET_HELM_ENGINE !== '') return env.SIGNET_HELM_ENGINE;
  const installed = fileURLToPath(new URL('../../helm-engine.wasm', import.meta.url));
  if (existsSync(installed)) return installed;
  return join(helmCacheDir(env), 'helm-engine.wasm');
}

const inTree = (path: string): string => (path === '' ? sandboxRoot : `${sandboxRoot}/${path}`);

export interface WasmHelmEngineOptions {
  readonly path?: string;
  readonly sha256?: string;
  /**
   * Linear memory of one render, bytes (default 256 MiB: a 2,000-object chart renders within 64 MiB;
   * renders and Kustomize builds share one queue, so one of them runs under the Deployment's 1 GiB).
   */
  readonly maxMemoryBytes?: number;
  /** A pre-warmed spare instance unused this long is released (wasm-runner.ts; 0: no spare). */
  readonly spareIdleMs?: number;
  /** Told when a spare has initialised and when it is released. */
  readonly observeSpare?: (event: 'ready' | 'released') => void;
}

/**
 * The WebAssembly engine; the module is read, checked and compiled once, on first use. Each render
 * is a single-use instance; after each, the next one is started and initialised in advance.
 */
export function wasmHelmEngine(
  options: WasmHelmEngineOptions = {},
): HelmEngine & { sha256(): Promise<string>; release(): Promise<void> } {
  const path = options.path ?? defaultHelmEnginePath();
  const maxMemoryBytes = options.maxMemoryBytes ?? 256 * 1024 * 1024;
  const load = lazyModule(path, maxMemoryBytes, errors, options.sha256);
  const instances = engineInstances(load, {
    program: 'helm-engine',
    env: { GOMEMLIMIT: `${Math.floor((maxMemoryBytes * 3) / 4)}B` },
    ...(options.spareIdleMs === undefined ? {} : { spareIdleMs: options.spareIdleMs }),
    ...(options.observeSpare === undefined ? {} : { observeSpare: options.observeSpare }),
  });
  const renderNow = async (
    tree: HelmTree,
    request: HelmRenderRequest,
    runOptions: HelmRunOptions,
  ): Promise<Uint8Array> => {
    const body = {
      chart: inTree(request.chart),
      releaseName: request.releaseName,
      namespace: request.namespace,
      valuesFiles: request.valuesFiles.map(inTree),
      values: request.values,
      includeCRDs: request.includeCRDs,
      kubeVersion: request.kubeVersion ?? '',
      apiVersions: request.apiVersions ?? null,
      extraApiVersions: request.extraApiVersions ?? [],
    };
    return instances.run(
      {
        args: [`${requestRoot}/request.json`],
        tree,
        request: { 'request.json': JSON.stringify(body) },
      },
      runOptions,
      errors,
    );
  };
  return {
    name: `helm ${HELM_VERSION} (wasm)`,
    sha256: async () => (await load()).sha256,
    release: () => instances.release(),
    render(tree, request, runOptions) {
      // One render or Kustomize build at a time (one queue for both): each may take its maximum.
      return runExclusive(() => renderNow(tree, request, runOptions));
    },
  };
}

/** SIGNET_HELM_ENGINE_SHA256 pins the digest; SIGNET_HELM_MAX_MEMORY_MIB the memory of one render. */
export function helmEngineOptionsFromEnv(env: NodeJS.ProcessEnv): WasmHelmEngineOptions {
  return {
    path: defaultHelmEnginePath(env),
    ...pinAndMemoryFromEnv(env.SIGNET_HELM_ENGINE_SHA256, env.SIGNET_HELM_MAX_MEMORY_MIB),
  };
}

let shared: HelmEngine | undefined;

/** The process's engine (helmEngineOptionsFromEnv), created on first use. */
export function sharedHelmEngine(): HelmEngine {
  shared ??= wasmHelmEngine(helmEngineOptionsFromEnv(process.env));
  return shared;
}

/** `helm template` arguments for a request (the native reference). */
export function helmTemplateArgs(root: string, request: HelmRenderRequest, valuesJsonFile: string): string[] {
  if (request.apiVersions !== undefined)
    throw new Error('the native helm cannot replace its default API versions: use extraApiVersions');
  return [
    'template',
    request.releaseName,
    join(root, request.chart),
    '--namespace',
    request.namespace,
    ...(request.includeCRDs ? ['--include-crds'] : []),
    ...request.valuesFiles.flatMap((file) => ['--values', join(root, file)]),
    '--values',
    valuesJsonFile,
    ...(request.kubeVersion === undefined ? [] : ['--kube-version', request.kubeVersion]),
    ...(request.extraApiVersions ?? []).flatMap((v) => ['--api-versions', v]),
  ];
}

/** The native `helm` binary running `helm template` (the reference; not what the operator runs). */
export function nativeHelmEngine(binary = join(helmCacheDir(), 'helm')): HelmEngine {
  return {
    name: `helm ${HELM_VERSION} (native)`,
    async render(tree, request, options) {
      const root = await materialiseTree(tree, 'signet-helm-native-', errors);
      const home = await fs.promises.mkdtemp(join(tmpdir(), 'signet-helm-home-'));
      try {
        // Inline values as the last values file: a JSON document is YAML, merged like --set-json '{...}'.
        const valuesFile = join(home, 'inline-values.json');
        await fs.promises.writeFile(valuesFile, JSON.stringify(request.values));
        const env = {
          PATH: '/nonexistent',
          HOME: home,
          HELM_CACHE_HOME: home,
          HELM_CONFIG_HOME: home,
          HELM_DATA_HOME: home,
        };
        const args = helmTemplateArgs(root, request, valuesFile);
        return await runNative({ binary, args, root, env, program: 'helm' }, options, errors);
      } finally {
        await fs.promises.rm(root, { recursive: true, force: true });
        await fs.promises.rm(home, { recursive: true, force: true });
      }
    },
  };
}
