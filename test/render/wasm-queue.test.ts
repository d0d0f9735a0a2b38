/**
 * The Helm and Kustomize engines share one queue (wasm-runner.ts runExclusive): a Kustomize build
 * asked for while a Helm render runs starts only after the render has finished, so the engines'
 * linear memory at any time is one run's (docs/helm.md, docs/kustomize.md).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { wasmHelmEngine } from '../../src/render/helm-engine.ts';
import { wasmKustomizeEngine } from '../../src/render/kustomize-engine.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../support/helm.ts';
import { ensureKustomize, kustomizeBuildTimeoutMs } from '../support/kustomize.ts';

const encoder = new TextEncoder();
const options = { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 };
const files = (entries: Record<string, string>) =>
  Object.entries(entries).map(([path, text]) => ({ path, content: encoder.encode(text) }));
const configMap = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n';

let helmPath: string;
let kustomizePath: string;

beforeAll(
  async () => {
    helmPath = (await ensureHelm()).engine;
    kustomizePath = (await ensureKustomize()).engine;
  },
  Math.max(helmBuildTimeoutMs, kustomizeBuildTimeoutMs),
);

describe('the WebAssembly engines', () => {
  it('run one Helm render or Kustomize build at a time, across both engines', async () => {
    const events: string[] = [];
    const helm = wasmHelmEngine({ path: helmPath });
    const kustomize = wasmKustomizeEngine({ path: kustomizePath, observe: (event) => events.push(event) });
    const render = helm
      .render(
        {
          files: files({
            'c/Chart.yaml': 'apiVersion: v2\nname: c\nversion: 0.1.0\n',
            'c/templates/cm.yaml': configMap,
          }),
        },
        { chart: 'c', releaseName: 'rel', namespace: 'ns', valuesFiles: [], values: {}, includeCRDs: true },
        options,
      )
      .then((out) => {
        events.push('helm done');
        return out;
      });
    const build = kustomize.build(
      { files: files({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': configMap }) },
      '',
      options,
    );
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    expect(text(await render)).toContain('name: cm');
    expect(text(await build)).toContain('name: cm');
    expect(events).toEqual(['helm done', 'start', 'end']);
  });
});
