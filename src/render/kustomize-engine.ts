/**
 * Runs Kustomize (sigs.k8s.io/kustomize/api, hack/kustomize/) on a verified tree (imperative shell).
 *
 * The chosen engine (docs/kustomize.md) is the WebAssembly module run in-process with node:wasi
 * through wasm-runner.ts (shared with the Helm engine):
 * - the verified files are written to a fresh temporary directory (`/src`), the build's arguments
 *   to another (`/req/args.json`), the only directories preopened; the module has no sockets (Go's
 *   wasip1 port has none), no exec and no other file system;
 * - each build runs in a single-use instance, pre-warmed (started after the build before), in a worker
 *   thread so that `timeoutMs` and the caller's AbortSignal can stop it (worker.terminate), with the V8 heap bounded by resourceLimits and the module's linear
 *   memory bounded by a maximum written into its memory section (`withMemoryMaximum`);
 * - stdout goes to a file whose size is watched: past `maxOutputBytes` the build is stopped;
 * - one build or Helm render at a time across both engines (`runExclusive`).
 * The native `kustomize` binary (same module version) runs as a subprocess with the same inputs
 * and bounds; it is the reference for the differential tests and the benchmarks.
 */
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KustomizeTree } from './kustomize-policy.ts';
import { runNative } from './native-runner.ts';
import {
  ENGINE_ABI,
  engineInstances,
  lazyModule,
  materialiseTree,
  pinAndMemoryFromEnv,
  runExclusive,
  sandboxRoot,
  type WasmErrors,
  type WasmRunOptions,
} from './wasm-runner.ts';

export { withMemoryMaximum } from './wasm-runner.ts';

export const KUSTOMIZE_VERSION = 'v5.8.2';
export const KUSTOMIZE_API_VERSION = 'v0.21.2';

export type KustomizeBuildOptions = WasmRunOptions;

export interface KustomizeEngine {
  readonly name: string;
  /** Builds the kustomization in `dir` (relative to the tree's root); resolves to the YAML stream. */
  build(tree: KustomizeTree, dir: string, options: KustomizeBuildOptions): Promise<Uint8Array>;
}

/** The cache directory hack/kustomize/build.sh fills (SIGNET_CACHE as in the script). */
export function kustomizeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.SIGNET_CACHE ?? join(homedir(), '.cache', 'signet');
  return join(
    cache,
    'kustomize',
    `${KUSTOMIZE_VERSION}-api${KUSTOMIZE_API_VERSION.slice(1)}-abi${ENGINE_ABI}`,
  );
}

/**
 * Where the engine module is: SIGNET_KUSTOMIZE_ENGINE; else kustomize-engine.wasm at the top of the
 * installed tree (beside dist/ and package.json: the image's /app); else the build cache.
 */
export function defaultEnginePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SIGNET_KUSTOMIZE_ENGINE !== undefined && env.SIGNET_KUSTOMIZE_ENGINE !== '')
    return env.SIGNET_KUSTOMIZE_ENGINE;
  const installed = fileURLToPath(new URL('../../kustomize-engine.wasm', import.meta.url));
  if (existsSync(installed)) return installed;
  return join(kustomizeCacheDir(env), 'kustomize-engine.wasm');
}

const errors: WasmErrors = {
  label: 'kustomize build',
  engine: 'Kustomize',
  buildHint: 'build it with hack/kustomize/build.sh',
  failed: 'KustomizeBuildFailed',
  timeout: 'KustomizeTimeout',
  tooLarge: 'KustomizeOutputTooLarge',
  unavailable: 'KustomizeEngineUnavailable',
};

/** Writes the tree under a fresh temporary directory; returns it (the caller removes it). */
const materialise = (tree: KustomizeTree): Promise<string> =>
  materialiseTree(tree, 'signet-kustomize-', errors);

export interface WasmEngineOptions {
  /** Path of kustomize-engine.wasm (default: defaultEnginePath()). */
  readonly path?: string;
  /** When set, the module's sha256 (hex) must equal it. */
  readonly sha256?: string;
  /**
   * Linear memory of one build, bytes (default 512 MiB: the operator's Deployment is limited to 1 GiB;
   * a 500-object overlay builds in 64 MiB, 5,000 objects in 512 MiB).
   */
  readonly maxMemoryBytes?: number;
  /** Told when a build starts and ends (tests and metrics). */
  readonly observe?: (event: 'start' | 'end') => void;
  /** A pre-warmed spare instance unused this long is released (wasm-runner.ts; 0: no spare). */
  readonly spareIdleMs?: number;
  /** Told when a spare has initialised and when it is released. */
  readonly observeSpare?: (event: 'ready' | 'released') => void;
}

/** The WebAssembly engine; the module is read, checked and compiled once, on first use. */
export function wasmKustomizeEngine(
  options: WasmEngineOptions = {},
): KustomizeEngine & { sha256(): Promise<string>; release(): Promise<void> } {
  const path = options.path ?? defaultEnginePath();
  const maxMemoryBytes = options.maxMemoryBytes ?? 512 * 1024 * 1024;
  const load = lazyModule(path, maxMemoryBytes, errors, options.sha256);
  const instances = engineInstances(load, {
    program: 'kustomize-engine',
    env: { GOMEMLIMIT: `${Math.floor((maxMemoryBytes * 3) / 4)}B` },
    ...(options.spareIdleMs === undefined ? {} : { spareIdleMs: options.spareIdleMs }),
    ...(options.observeSpare === undefined ? {} : { observeSpare: options.observeSpare }),
  });
  return {
    name: `kustomize ${KUSTOMIZE_VERSION} (wasm)`,
    sha256: async () => (await load()).sha256,
    release: () => instances.release(),
    build(tree, dir, buildOptions) {
      // One build or Helm render at a time: each may take its maximum; the Deployment's limit holds one.
      return runExclusive(() => buildNow(tree, dir, buildOptions));
    },
  };

  async function buildNow(
    tree: KustomizeTree,
    dir: string,
    buildOptions: KustomizeBuildOptions,
  ): Promise<Uint8Array> {
    buildOptions.signal?.throwIfAborted();
    options.observe?.('start');
    try {
      return await buildIn(tree, dir, buildOptions);
    } finally {
      options.observe?.('end');
    }
  }

  function buildIn(
    tree: KustomizeTree,
    dir: string,
    buildOptions: KustomizeBuildOptions,
  ): Promise<Uint8Array> {
    return instances.run(
      { args: [dir === '' ? sandboxRoot : `${sandboxRoot}/${dir}`], tree, subject: dir || '.' },
      buildOptions,
      errors,
    );
  }
}

let shared: KustomizeEngine | undefined;

/**
 * The engine options the deployment sets: SIGNET_KUSTOMIZE_ENGINE_SHA256 pins the module's digest,
 * SIGNET_KUSTOMIZE_MAX_MEMORY_MIB the memory of one build (a positive integer, else the default).
 */
export function engineOptionsFromEnv(env: NodeJS.ProcessEnv): WasmEngineOptions {
  return {
    path: defaultEnginePath(env),
    ...pinAndMemoryFromEnv(env.SIGNET_KUSTOMIZE_ENGINE_SHA256, env.SIGNET_KUSTOMIZE_MAX_MEMORY_MIB),
  };
}

/** The process's engine (engineOptionsFromEnv), created on first use. */
export function sharedKustomizeEngine(): KustomizeEngine {
  shared ??= wasmKustomizeEngine(engineOptionsFromEnv(process.env));
  return shared;
}

/** The native `kustomize` binary as a subprocess (the reference; not what the operator runs). */
export function nativeKustomizeEngine(binary = join(kustomizeCacheDir(), 'kustomize')): KustomizeEngine {
  return {
    name: `kustomize ${KUSTOMIZE_VERSION} (native)`,
    async build(tree, dir, options) {
      const root = await materialise(tree);
      try {
        const env = { PATH: '/nonexistent', HOME: root };
        return await runNative(
          { binary, args: ['build', join(root, dir)], root, env, program: 'kustomize' },
          options,
          errors,
        );
      } finally {
        await fs.promises.rm(root, { recursive: true, force: true });
      }
    },
  };
}
