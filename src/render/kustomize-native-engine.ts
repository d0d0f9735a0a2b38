/**
 * The sandboxed native Kustomize engine (imperative shell): hack/kustomize/engine built for linux,
 * the same Go program as the WebAssembly engine plus landlock_linux.go, which confines the process
 * with Landlock before it reads anything (docs/kustomize.md, "The native engine"):
 * - readable: only the materialised copy of the verified tree (SIGNET_ENGINE_ROOT); nothing is
 *   writable or executable; TCP bind and connect are denied; no DNS;
 * - it refuses to run (exit status 3, before reading the kustomization) when the kernel cannot
 *   enforce all of that; `probe` tells, and the operator then uses the WebAssembly engine;
 * - bounded here: `spec.timeout` and the caller's AbortSignal stop it, stdout past
 *   `maxOutputBytes` kills it, GOMEMLIMIT and a hard RLIMIT_AS (set by the engine on itself before
 *   confining) bound its memory, and its environment holds nothing but those settings;
 * - one build or Helm render at a time, in the same queue as the WebAssembly engines.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RenderError } from './errors.ts';
import { KUSTOMIZE_VERSION, type KustomizeEngine, kustomizeCacheDir } from './kustomize-engine.ts';
import type { KustomizeTree } from './kustomize-policy.ts';
import { runNative } from './native-runner.ts';
import { materialiseTree, runExclusive, type WasmErrors, type WasmRunOptions } from './wasm-runner.ts';

/** The engine's exit status when it could not confine itself (landlock_linux.go). */
export const UNCONFINED_EXIT_STATUS = 3;

const errors: WasmErrors = {
  label: 'kustomize build',
  engine: 'native Kustomize',
  buildHint: 'build it with hack/kustomize/build.sh engine',
  failed: 'KustomizeBuildFailed',
  timeout: 'KustomizeTimeout',
  tooLarge: 'KustomizeOutputTooLarge',
  unavailable: 'KustomizeEngineUnavailable',
};

export interface NativeEngineOptions {
  /** Path of the native kustomize-engine (default: defaultNativeEnginePath()). */
  readonly path?: string;
  /** When set, the binary's sha256 (hex) must equal it before it is run. */
  readonly sha256?: string;
  /** Memory of one build, bytes (default 512 MiB, as the WebAssembly engine's linear memory). */
  readonly maxMemoryBytes?: number;
  /** Told when a build starts and ends (tests and metrics). */
  readonly observe?: (event: 'start' | 'end') => void;
}

/**
 * Address space the Go runtime reserves beyond its heap, added to the memory bound for RLIMIT_AS
 * so that the heap, not the reservations, is what the limit stops. Measured on linux/amd64 with
 * Go 1.26.8: VmPeak 1.21 GiB for a 3-object and for a 500-object build, and the 500-object build
 * fails ("runtime: cannot allocate memory") under 1.22 GiB and succeeds at 1.27 GiB. Should a
 * runtime reserve more, the engine fails at start, the probe fails, and the WebAssembly engine is used.
 */
export const GO_RUNTIME_ADDRESS_SPACE = 1280 * 1024 * 1024;

/** The environment of one build: the tree and the memory bounds, nothing inherited. */
export function nativeEngineEnv(root: string, maxMemoryBytes: number): Record<string, string> {
  return {
    SIGNET_ENGINE_ROOT: root,
    GOMEMLIMIT: `${Math.floor((maxMemoryBytes * 3) / 4)}B`,
    SIGNET_ENGINE_MAX_ADDRESS_SPACE: String(maxMemoryBytes + GO_RUNTIME_ADDRESS_SPACE),
  };
}

/**
 * Where the native engine is: SIGNET_KUSTOMIZE_NATIVE_ENGINE; else kustomize-engine at the top of
 * the installed tree (beside dist/: the image's /app); else the build cache.
 */
export function defaultNativeEnginePath(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.SIGNET_KUSTOMIZE_NATIVE_ENGINE;
  if (configured !== undefined && configured !== '') return configured;
  const installed = fileURLToPath(new URL('../../kustomize-engine', import.meta.url));
  if (existsSync(installed)) return installed;
  return join(kustomizeCacheDir(env), 'kustomize-engine');
}

export interface ProbeResult {
  readonly confined: boolean;
  /** Why not, when not confined (the engine's own message, or why it could not run). */
  readonly reason: string;
}

export type LandlockKustomizeEngine = KustomizeEngine & {
  /** Builds a one-object kustomization: confined when the engine ran and built it. */
  probe(timeoutMs?: number): Promise<ProbeResult>;
};

/** A tree with one ConfigMap: what the probe builds. */
const probeTree: KustomizeTree = {
  files: [
    { path: 'kustomization.yaml', content: new TextEncoder().encode('resources:\n- probe.yaml\n') },
    {
      path: 'probe.yaml',
      content: new TextEncoder().encode(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: signet-landlock-probe\ndata:\n  ok: "1"\n',
      ),
    },
  ],
};

export function landlockKustomizeEngine(options: NativeEngineOptions = {}): LandlockKustomizeEngine {
  const path = options.path ?? defaultNativeEnginePath();
  const maxMemoryBytes = options.maxMemoryBytes ?? 512 * 1024 * 1024;
  const checked = pinChecker(path, options.sha256);
  const engine: LandlockKustomizeEngine = {
    name: `kustomize ${KUSTOMIZE_VERSION} (native, landlock)`,
    build(tree, dir, buildOptions) {
      return runExclusive(() => buildNow(tree, dir, buildOptions));
    },
    async probe(timeoutMs = 10_000) {
      try {
        const out = await engine.build(probeTree, '', { timeoutMs, maxOutputBytes: 64 * 1024 });
        const built = new TextDecoder().decode(out).includes('signet-landlock-probe');
        return built
          ? { confined: true, reason: '' }
          : { confined: false, reason: 'the probe build was empty' };
      } catch (error) {
        return { confined: false, reason: error instanceof Error ? error.message : String(error) };
      }
    },
  };
  return engine;

  async function buildNow(tree: KustomizeTree, dir: string, buildOptions: WasmRunOptions) {
    buildOptions.signal?.throwIfAborted();
    await checked();
    options.observe?.('start');
    const root = await materialiseTree(tree, 'signet-kustomize-', errors);
    try {
      const env = nativeEngineEnv(root, maxMemoryBytes);
      return await runNative(
        { binary: path, args: [dir === '' ? root : join(root, dir)], root, env, program: 'kustomize-engine' },
        buildOptions,
        errors,
      );
    } finally {
      options.observe?.('end');
      await fs.promises.rm(root, { recursive: true, force: true });
    }
  }
}

/** Checks the binary's digest once (again after a failure); `unavailable` naming the path. */
function pinChecker(path: string, expectedSha256: string | undefined): () => Promise<void> {
  let checked: Promise<void> | undefined;
  return () => {
    checked ??= checkPin(path, expectedSha256);
    checked.catch(() => {
      checked = undefined;
    });
    return checked;
  };
}

async function checkPin(path: string, expectedSha256: string | undefined): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(path);
  } catch (cause) {
    throw new RenderError(
      errors.unavailable,
      `the native Kustomize engine ${path} cannot be read (${errors.buildHint}): ${String(cause)}`,
    );
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (expectedSha256 !== undefined && sha256 !== expectedSha256)
    throw new RenderError(
      errors.unavailable,
      `the native Kustomize engine ${path} has sha256 ${sha256}, expected ${expectedSha256}`,
    );
}
