/**
 * Differential test: Signet's Helm engine (WebAssembly, in-process) against `helm template` of the
 * same Helm version (native, hack/helm/build.sh), byte for byte, over the charts of helm-corpus.ts;
 * refusals (required, fail, values.schema.json) fail in both with the same message. Then Signet's
 * rendered objects are helm's plus owner labels.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { RenderError } from '../../src/render/errors.ts';
import { renderHelmChart } from '../../src/render/helm.ts';
import {
  type HelmEngine,
  type HelmRenderRequest,
  nativeHelmEngine,
  wasmHelmEngine,
} from '../../src/render/helm-engine.ts';
import type { HelmTree } from '../../src/render/helm-policy.ts';
import { ownerLabels } from '../../src/render/labels.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../support/helm.ts';
import { type HelmCase, helmCases } from './helm-corpus.ts';

const options = { timeoutMs: 120_000, maxOutputBytes: 64 * 1024 * 1024 };
const owner = { name: 'repo', namespace: 'apps' };
let wasm: HelmEngine;
let native: HelmEngine;
let packed: Uint8Array<ArrayBuffer>;

async function packageChart(cli: string): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-helm-pack-'));
  try {
    await mkdir(join(dir, 'packed/templates'), { recursive: true });
    await writeFile(join(dir, 'packed/Chart.yaml'), 'apiVersion: v2\nname: packed\nversion: 0.1.0\n');
    await writeFile(join(dir, 'packed/values.yaml'), 'word: from-archive\n');
    await writeFile(
      join(dir, 'packed/templates/cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: packed\ndata:\n  word: {{ .Values.word }}\n',
    );
    await promisify(execFile)(cli, ['package', join(dir, 'packed'), '--destination', dir], {
      env: { HOME: dir, PATH: '/nonexistent' },
      timeout: 60_000,
    });
    return new Uint8Array(await readFile(join(dir, 'packed-0.1.0.tgz')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function treeOf(c: HelmCase): HelmTree {
  const encoder = new TextEncoder();
  const files = Object.entries(c.files).map(([path, content]) => ({
    path,
    content: encoder.encode(content),
  }));
  if (c.name.includes('.tgz')) files.push({ path: `${c.chart}/charts/packed-0.1.0.tgz`, content: packed });
  return { files };
}

function requestOf(c: HelmCase): HelmRenderRequest {
  return {
    chart: c.chart,
    releaseName: 'rel',
    namespace: 'apps',
    valuesFiles: c.valuesFiles ?? [],
    values: c.values ?? {},
    includeCRDs: c.includeCRDs ?? true,
    kubeVersion: 'v1.36.0',
    extraApiVersions: c.extraApiVersions ?? [],
  };
}

async function outcome(engine: HelmEngine, c: HelmCase): Promise<{ ok: string } | { error: string }> {
  try {
    return { ok: new TextDecoder().decode(await engine.render(treeOf(c), requestOf(c), options)) };
  } catch (error) {
    if (!(error instanceof RenderError)) throw error;
    // The CLI's own hint after a render error is not part of the error.
    return {
      error: error.message
        .replace(/^helm template: (Error: )?/, '')
        .replace(/\n\nUse --debug flag to render out invalid YAML$/, ''),
    };
  }
}

beforeAll(async () => {
  const binaries = await ensureHelm();
  wasm = wasmHelmEngine({ path: binaries.engine });
  native = nativeHelmEngine(binaries.cli);
  packed = await packageChart(binaries.cli);
}, helmBuildTimeoutMs);

describe('Signet Helm engine vs native helm template', () => {
  it('has at least 10 charts', () => {
    expect(helmCases.filter((c) => c.fails === undefined).length).toBeGreaterThanOrEqual(10);
  });

  it.each(helmCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const expected = await outcome(native, c);
    const actual = await outcome(wasm, c);
    if (c.fails !== undefined) {
      expect(expected).toHaveProperty('error', expect.stringMatching(c.fails));
      expect(actual).toEqual(expected);
      return;
    }
    expect(expected).toHaveProperty('ok');
    expect(actual).toEqual(expected);
  });

  it('renders the objects helm template prints, with owner labels, in the same order', async () => {
    for (const c of helmCases.filter((x) => x.fails === undefined)) {
      const expected = await outcome(native, c);
      if (!('ok' in expected)) throw new Error(`${c.name}: ${JSON.stringify(expected)}`);
      const objects = parseAllDocuments(expected.ok)
        .map((d) => d.toJS())
        .filter((o) => o !== null);
      const request = requestOf(c);
      const rendered = await renderHelmChart(
        treeOf(c),
        {
          chart: c.chart,
          releaseName: 'rel',
          valuesFiles: request.valuesFiles,
          values: request.values,
          includeCRDs: request.includeCRDs,
        },
        {
          owner,
          engine: wasm,
          namespace: 'apps',
          capabilities: { kubeVersion: 'v1.36.0', apiVersions: [] },
          timeoutMs: 120_000,
        },
      ).catch((error: unknown) => {
        throw new Error(`${c.name}: ${String(error)}`);
      });
      if (c.extraApiVersions !== undefined) continue; // other capabilities: compared above
      const labels = ownerLabels(owner);
      expect(
        rendered.map((r) => r.object),
        c.name,
      ).toEqual(
        objects.map((object) => {
          const o = object as { metadata: { labels?: Record<string, string> } };
          return { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...labels } } };
        }),
      );
    }
  });
});
