/**
 * The Helm engine's sandbox and bounds, straight through the engine (no pre-render check): a chart
 * cannot read outside the verified copy, a template that loops is stopped by the timeout, output
 * and memory are bounded, the object count as for plain manifests, and a module with another
 * digest is refused.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { renderHelmChart } from '../../src/render/helm.ts';
import { type HelmRenderRequest, wasmHelmEngine } from '../../src/render/helm-engine.ts';
import type { HelmTree } from '../../src/render/helm-policy.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../support/helm.ts';

let enginePath: string;
const encoder = new TextEncoder();

function chartTree(templates: Record<string, string>): HelmTree {
  return {
    files: Object.entries({ 'c/Chart.yaml': 'apiVersion: v2\nname: c\nversion: 0.1.0\n', ...templates }).map(
      ([path, text]) => ({ path, content: encoder.encode(text) }),
    ),
  };
}

const request = (extra: Partial<HelmRenderRequest> = {}): HelmRenderRequest => ({
  chart: 'c',
  releaseName: 'rel',
  namespace: 'ns',
  valuesFiles: [],
  values: {},
  includeCRDs: true,
  ...extra,
});

async function refusal(promise: Promise<unknown>): Promise<RenderError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
  throw new Error('not refused');
}

beforeAll(async () => {
  enginePath = (await ensureHelm()).engine;
}, helmBuildTimeoutMs);

describe('wasmHelmEngine', () => {
  it('reads nothing outside the copy of the tree: .Files.Get "../../etc/passwd" is empty, a values file outside fails', async () => {
    const engine = wasmHelmEngine({ path: enginePath });
    const tree = chartTree({
      'c/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  p: {{ .Files.Get "../../etc/passwd" | quote }}\n  q: {{ .Files.Get "/etc/passwd" | quote }}\n',
    });
    const out = new TextDecoder().decode(
      await engine.render(tree, request(), { timeoutMs: 60_000, maxOutputBytes: 1 << 20 }),
    );
    expect(out).toContain('p: ""');
    expect(out).toContain('q: ""');
    expect(out).not.toContain('root:');
    for (const valuesFile of ['../../../../etc/passwd', '../../../../etc']) {
      const error = await refusal(
        engine.render(tree, request({ valuesFiles: [valuesFile] }), {
          timeoutMs: 60_000,
          maxOutputBytes: 1 << 20,
        }),
      );
      expect(error.code).toBe('HelmBuildFailed');
      // WASI refuses a path that climbs out of the preopened copy.
      expect(error.message).toBe(`helm template: Error: open ${valuesFile}: Invalid argument`);
    }
  }, 120_000);

  it('stops a template that loops at the timeout', async () => {
    const engine = wasmHelmEngine({ path: enginePath });
    const tree = chartTree({
      'c/templates/loop.yaml':
        '{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- end }}{{- end }}',
    });
    const started = Date.now();
    const error = await refusal(
      engine.render(tree, request(), { timeoutMs: 4_000, maxOutputBytes: 1 << 20 }),
    );
    expect(error.code).toBe('HelmTimeout');
    expect(error.message).toBe('helm template did not finish within 4000 ms');
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 60_000);

  it("refuses a template that includes itself forever (Helm's own recursion limit)", async () => {
    const engine = wasmHelmEngine({ path: enginePath });
    const tree = chartTree({
      'c/templates/_loop.tpl': '{{- define "loop" }}{{ include "loop" . }}{{- end }}',
      'c/templates/cm.yaml': '{{ include "loop" . }}',
    });
    const error = await refusal(
      engine.render(tree, request(), { timeoutMs: 60_000, maxOutputBytes: 1 << 20 }),
    );
    expect(error.code).toBe('HelmBuildFailed');
    // Helm stops at its include depth; the message is cut at the first 4 KiB of stderr.
    expect(error.message).toMatch(
      /^helm template: Error: template: c\/templates\/cm.yaml:1:3: executing .* error calling include/,
    );
    expect(error.message.length).toBeLessThan(4_200);
  }, 120_000);

  it('bounds the output and the memory', async () => {
    const engine = wasmHelmEngine({ path: enginePath });
    const big = chartTree({
      'c/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{{- range $i := until 50000 }}\n  k{{ $i }}: "{{ repeat 100 "x" }}"\n{{- end }}\n',
    });
    const tooLarge = await refusal(
      engine.render(big, request(), { timeoutMs: 60_000, maxOutputBytes: 1 << 20 }),
    );
    expect(tooLarge.code).toBe('HelmOutputTooLarge');
    const small = wasmHelmEngine({ path: enginePath, maxMemoryBytes: 128 * 1024 * 1024 });
    const hungry = chartTree({
      // 300 distinct 1 MiB strings kept alive in a list: more than 128 MiB of linear memory.
      'c/templates/cm.yaml':
        '{{- $l := list }}{{- range $i := until 300 }}{{- $l = append $l (printf "%d%s" $i (repeat 1048576 "x")) }}{{- end }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  n: "{{ len $l }}"\n',
    });
    const oom = await refusal(
      small.render(hungry, request(), { timeoutMs: 60_000, maxOutputBytes: 1 << 20 }),
    );
    expect(oom.code).toBe('HelmBuildFailed');
    expect(oom.message).toMatch(/^helm template: runtime: out of memory: .*\nfatal error: out of memory$/);
  }, 180_000);

  it('bounds the object count of a chart as of plain manifests (renderHelmChart)', async () => {
    const engine = wasmHelmEngine({ path: enginePath });
    const many = chartTree({
      'c/templates/cms.yaml':
        '{{- range $i := until 12 }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ $i }}\n{{- end }}\n',
    });
    const spec = { chart: 'c', releaseName: 'rel', valuesFiles: [], values: {}, includeCRDs: true };
    const common = { owner: { name: 'repo', namespace: 'ns' }, engine, namespace: 'ns', timeoutMs: 60_000 };
    expect(await renderHelmChart(many, spec, { ...common, limits: { maxObjects: 12 } })).toHaveLength(12);
    const error = await refusal(renderHelmChart(many, spec, { ...common, limits: { maxObjects: 11 } }));
    expect(error.code).toBe('TooManyObjects');
    expect(error.message).toContain('more than 11 objects');
  }, 120_000);

  it('refuses a module whose sha256 is not the pinned one, naming the path', async () => {
    const engine = wasmHelmEngine({ path: enginePath, sha256: '0'.repeat(64) });
    const error = await refusal(
      engine.render(chartTree({}), request(), { timeoutMs: 60_000, maxOutputBytes: 1 << 20 }),
    );
    expect(error.code).toBe('HelmEngineUnavailable');
    expect(error.message).toContain(enginePath);
  });
});
