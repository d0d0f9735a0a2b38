/**
 * Which Kustomize engine the process runs (imperative shell): the native engine confined by
 * Landlock where the kernel can confine it, else the WebAssembly engine (docs/kustomize.md).
 *
 * SIGNET_KUSTOMIZE_ENGINE_MODE chooses: `auto` (default) probes the native engine once (a build of
 * one ConfigMap; it refuses to run unconfined) and falls back to WebAssembly; `wasm` never runs
 * the native engine; `native` requires it: if it cannot be confined, every build fails with
 * KustomizeEngineUnavailable (fail closed) instead of falling back.
 */
import { RenderError } from './errors.ts';
import { type KustomizeEngine, sharedKustomizeEngine as sharedWasmEngine } from './kustomize-engine.ts';
import {
  defaultNativeEnginePath,
  type LandlockKustomizeEngine,
  landlockKustomizeEngine,
  type NativeEngineOptions,
} from './kustomize-native-engine.ts';
import { pinAndMemoryFromEnv } from './wasm-runner.ts';

export type EngineMode = 'auto' | 'wasm' | 'native';
export type EngineKind = 'native-landlock' | 'wasm';

export interface EngineChoice {
  readonly kind: EngineKind;
  readonly engine: KustomizeEngine;
  /** Why this engine: for the native one its path; for WebAssembly why the native one is not used. */
  readonly reason: string;
}

/** The mode from the environment; anything but `wasm` or `native` is `auto`. */
export function engineModeFromEnv(env: NodeJS.ProcessEnv): EngineMode {
  const mode = env.SIGNET_KUSTOMIZE_ENGINE_MODE;
  return mode === 'wasm' || mode === 'native' ? mode : 'auto';
}

/** The native engine's options the deployment sets (the same memory setting as the wasm engine). */
export function nativeEngineOptionsFromEnv(env: NodeJS.ProcessEnv): NativeEngineOptions {
  return {
    path: defaultNativeEnginePath(env),
    ...pinAndMemoryFromEnv(env.SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256, env.SIGNET_KUSTOMIZE_MAX_MEMORY_MIB),
  };
}

/** Decides from a mode and a probe of the native engine (the probe is not run in `wasm` mode). */
export async function chooseEngine(
  mode: EngineMode,
  native: LandlockKustomizeEngine,
  wasm: () => KustomizeEngine,
): Promise<EngineChoice> {
  if (mode === 'wasm') return { kind: 'wasm', engine: wasm(), reason: 'SIGNET_KUSTOMIZE_ENGINE_MODE=wasm' };
  const probe = await native.probe();
  if (probe.confined) return { kind: 'native-landlock', engine: native, reason: native.name };
  if (mode === 'native')
    return { kind: 'native-landlock', engine: refusing(probe.reason), reason: probe.reason };
  return { kind: 'wasm', engine: wasm(), reason: `native engine not used: ${probe.reason}` };
}

/** An engine whose every build fails: `native` mode where the native engine cannot be confined. */
function refusing(reason: string): KustomizeEngine {
  return {
    name: 'kustomize (native, unavailable)',
    build: () =>
      Promise.reject(
        new RenderError(
          'KustomizeEngineUnavailable',
          `SIGNET_KUSTOMIZE_ENGINE_MODE=native, but the native engine cannot be confined: ${reason}`,
        ),
      ),
  };
}

let shared: Promise<EngineChoice> | undefined;

/** The process's choice, made once (on first use) from the environment. */
export function sharedEngineChoice(env: NodeJS.ProcessEnv = process.env): Promise<EngineChoice> {
  shared ??= chooseEngine(
    engineModeFromEnv(env),
    landlockKustomizeEngine(nativeEngineOptionsFromEnv(env)),
    sharedWasmEngine,
  );
  return shared;
}

/** The process's engine: builds wait for the choice, then run on the chosen engine. */
export function sharedKustomizeEngine(): KustomizeEngine {
  return {
    name: 'kustomize (chosen at start)',
    build: async (tree, dir, options) => (await sharedEngineChoice()).engine.build(tree, dir, options),
  };
}
