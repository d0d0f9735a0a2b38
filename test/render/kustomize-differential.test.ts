/**
 * Differential test: Signet's Kustomize engines (WebAssembly in-process, and the native engine
 * confined by Landlock) against the native `kustomize build` of the same module version, object
 * for object and in the same order, over the layouts of kustomize-corpus.ts; and Signet's rendered
 * objects are kustomize's plus owner labels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { renderKustomization } from '../../src/render/kustomize.ts';
import {
  type KustomizeEngine,
  nativeKustomizeEngine,
  wasmKustomizeEngine,
} from '../../src/render/kustomize-engine.ts';
import { landlockKustomizeEngine } from '../../src/render/kustomize-native-engine.ts';
import type { KustomizeTree } from '../../src/render/kustomize-policy.ts';
import { ownerLabels } from '../../src/render/labels.ts';
import { ensureKustomize, kustomizeBuildTimeoutMs } from '../support/kustomize.ts';
import { layouts } from './kustomize-corpus.ts';

const owner = { name: 'repo', namespace: 'flux' };
const options = { timeoutMs: 60_000, maxOutputBytes: 64 * 1024 * 1024 };
let wasm: KustomizeEngine;
let native: KustomizeEngine;
let landlock: KustomizeEngine;

function treeOf(files: Readonly<Record<string, string>>): KustomizeTree {
  const encoder = new TextEncoder();
  return {
    files: Object.entries(files).map(([path, content]) => ({ path, content: encoder.encode(content) })),
  };
}

function objects(bytes: Uint8Array): unknown[] {
  return parseAllDocuments(new TextDecoder().decode(bytes)).map((document) => document.toJS());
}

beforeAll(async () => {
  const binaries = await ensureKustomize();
  wasm = wasmKustomizeEngine({ path: binaries.engine });
  native = nativeKustomizeEngine(binaries.cli);
  landlock = landlockKustomizeEngine({ path: binaries.native });
}, kustomizeBuildTimeoutMs);

describe('Signet Kustomize engine vs native kustomize build', () => {
  it('has at least 15 layouts', () => {
    expect(layouts.length).toBeGreaterThanOrEqual(15);
  });

  it.each(layouts.map((layout) => [layout.name, layout] as const))('%s', async (_name, layout) => {
    const tree = treeOf(layout.files);
    const expected = objects(await native.build(tree, layout.dir, options));
    expect(expected.length).toBeGreaterThan(0);
    expect(objects(await wasm.build(tree, layout.dir, options))).toEqual(expected);
    expect(objects(await landlock.build(tree, layout.dir, options))).toEqual(expected);

    const rendered = await renderKustomization(tree, layout.dir, { engine: wasm, timeoutMs: 60_000, owner });
    const labels = ownerLabels(owner);
    expect(rendered.map((r) => r.object)).toEqual(
      expected.map((object) => {
        const o = object as { metadata: { labels?: Record<string, string> } };
        return { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...labels } } };
      }),
    );
  });
});
