/**
 * What the Helm (helm.ts) and Kustomize (kustomize.ts) renderings share around their engines
 * (pure): the engine's bounds from spec.timeout and the render limits, and the engine's output
 * read as one stream with the same parsing, limits and owner labels as plain manifests.
 */
import { type RenderedObject, type RenderLimits, type RenderOptions, renderManifests } from './render.ts';
import type { WasmRunOptions } from './wasm-runner.ts';

export interface EngineRenderOptions extends RenderOptions {
  /** spec.timeout: the whole build or render. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** The name objects produced from `dir` are reported under, e.g. `a/(kustomize build).yaml`. */
export function streamName(dir: string, command: string): string {
  return dir === '' ? `(${command}).yaml` : `${dir}/(${command}).yaml`;
}

/** The engine's bounds: spec.timeout, the total bytes of the render limits, the caller's signal. */
export function engineRunOptions(options: EngineRenderOptions, limits: RenderLimits): WasmRunOptions {
  return {
    timeoutMs: options.timeoutMs,
    maxOutputBytes: limits.maxTotalBytes,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

/** The engine's output, parsed as one file of up to the total bytes. */
export function renderStream(
  name: string,
  content: Uint8Array,
  options: RenderOptions,
  limits: RenderLimits,
): RenderedObject[] {
  return renderManifests(
    { files: [{ path: name, content }] },
    { owner: options.owner, limits: { ...limits, maxFileBytes: limits.maxTotalBytes } },
  );
}
