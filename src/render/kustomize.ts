/**
 * Rendering a kustomization: the pre-build check (kustomize-policy.ts), the engine, then the same
 * parsing, limits and owner labels as plain manifests (renderManifests over the built stream).
 */

import { type EngineRenderOptions, engineRunOptions, renderStream, streamName } from './engine-stream.ts';
import type { KustomizeEngine } from './kustomize-engine.ts';
import { checkKustomization, type KustomizeTree, kustomizationFileIn } from './kustomize-policy.ts';
import { defaultRenderLimits, type RenderedObject, type RenderLimits } from './render.ts';

export interface KustomizeRenderOptions extends EngineRenderOptions {
  readonly engine: KustomizeEngine;
}

/** True when `dir` (relative to the tree's root) is built with Kustomize. */
export function isKustomization(tree: Pick<KustomizeTree, 'files'>, dir: string): boolean {
  return kustomizationFileIn(tree.files, dir) !== undefined;
}

/** The name objects built from `dir` are reported under (errors, ObjectSource.file). */
export function builtStreamName(dir: string): string {
  return streamName(dir, 'kustomize build');
}

export async function renderKustomization(
  tree: KustomizeTree,
  dir: string,
  options: KustomizeRenderOptions,
): Promise<RenderedObject[]> {
  const limits: RenderLimits = { ...defaultRenderLimits, ...options.limits };
  checkKustomization(tree, dir, limits);
  const built = await options.engine.build(tree, dir, engineRunOptions(options, limits));
  return renderStream(builtStreamName(dir), built, options, limits);
}
