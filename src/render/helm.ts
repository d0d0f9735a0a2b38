/**
 * Rendering a Helm chart: the pre-render check (helm-policy.ts), the engine (helm-engine.ts), then
 * the same parsing, limits and owner labels as plain manifests (renderManifests over the stream).
 */
import type { HelmSpec } from '../api/gitrepository.ts';
import { type EngineRenderOptions, engineRunOptions, renderStream, streamName } from './engine-stream.ts';
import type { HelmEngine } from './helm-engine.ts';
import { checkHelmChart, type HelmTree } from './helm-policy.ts';
import { defaultRenderLimits, type RenderedObject, type RenderLimits } from './render.ts';

export interface HelmCapabilities {
  readonly kubeVersion: string;
  readonly apiVersions: readonly string[];
}

export interface HelmRenderOptions extends EngineRenderOptions {
  readonly engine: HelmEngine;
  /** .Release.Namespace: spec.targetNamespace, else the GitRepository's namespace. */
  readonly namespace: string;
  /** From the API server's discovery; absent (`signet build` without a cluster): Helm's defaults. */
  readonly capabilities?: HelmCapabilities;
}

/** The name objects rendered from `chart` are reported under (errors, ObjectSource.file). */
export function renderedStreamName(chart: string): string {
  return streamName(chart, 'helm template');
}

export async function renderHelmChart(
  tree: HelmTree,
  spec: HelmSpec,
  options: HelmRenderOptions,
): Promise<RenderedObject[]> {
  const limits: RenderLimits = { ...defaultRenderLimits, ...options.limits };
  checkHelmChart(tree, spec, limits);
  const rendered = await options.engine.render(
    tree,
    {
      chart: spec.chart,
      releaseName: spec.releaseName,
      namespace: options.namespace,
      valuesFiles: spec.valuesFiles,
      values: spec.values,
      includeCRDs: spec.includeCRDs,
      ...(options.capabilities === undefined
        ? {}
        : { kubeVersion: options.capabilities.kubeVersion, apiVersions: options.capabilities.apiVersions }),
    },
    engineRunOptions(options, limits),
  );
  return renderStream(renderedStreamName(spec.chart), rendered, options, limits);
}
