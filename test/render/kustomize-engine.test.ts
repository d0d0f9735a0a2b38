import { beforeAll, describe, expect, it } from 'vitest';
import {
  engineOptionsFromEnv,
  type KustomizeEngine,
  wasmKustomizeEngine,
  withMemoryMaximum,
} from '../../src/render/kustomize-engine.ts';
import type { KustomizeTree } from '../../src/render/kustomize-policy.ts';
import { engineTree, ensureKustomize, kustomizeBuildTimeoutMs, renderFailure } from '../support/kustomize.ts';

const _encoder = new TextEncoder();
const options = { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 };
let enginePath: string;
let engine: KustomizeEngine;

const cms = (count: number): string =>
  Array.from(
    { length: count },
    (_, i) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  k: "${'x'.repeat(100)}"\n`,
  ).join('---\n');

beforeAll(async () => {
  enginePath = (await ensureKustomize()).engine;
  engine = wasmKustomizeEngine({ path: enginePath });
}, kustomizeBuildTimeoutMs);

describe('withMemoryMaximum', () => {
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  it('adds a maximum to a memory without one, keeping the other sections', () => {
    const module = new Uint8Array([...header, 5, 3, 1, 0x00, 2, 0, 1, 0]);
    expect([...withMemoryMaximum(module, 3 * 65536)]).toEqual([...header, 5, 4, 1, 0x01, 2, 3, 0, 1, 0]);
  });
  it('replaces an existing maximum, with multi-byte LEB128 sizes', () => {
    const module = new Uint8Array([...header, 5, 5, 1, 0x01, 1, 0x80, 0x01]);
    expect([...withMemoryMaximum(module, 200 * 65536)]).toEqual([...header, 5, 5, 1, 0x01, 1, 0xc8, 0x01]);
  });
  it('refuses a module without memory or needing more than the maximum', () => {
    expect(() => withMemoryMaximum(new Uint8Array(header), 65536)).toThrow(/no memory section/);
    expect(() => withMemoryMaximum(new Uint8Array([...header, 5, 3, 1, 0x00, 9]), 65536)).toThrow(
      /needs 9 pages/,
    );
  });
});

describe('the WebAssembly Kustomize engine', () => {
  it('builds inside the sandbox and reports kustomize errors with relative paths', async () => {
    const out = await engine.build(
      engineTree({ 'a/kustomization.yaml': 'resources: [cm.yaml]\n', 'a/cm.yaml': cms(1) }),
      'a',
      options,
    );
    expect(new TextDecoder().decode(out)).toContain('name: cm-0');
    const error = await renderFailure(
      engine.build(engineTree({ 'a/kustomization.yaml': 'resources: [missing.yaml]\n' }), 'a', options),
    );
    expect(error.code).toBe('KustomizeBuildFailed');
    expect(error.message).toContain('missing.yaml');
    expect(error.message).not.toContain('signet-kustomize-');
  });

  it('cannot read outside the preopened tree nor reach the network, even without the pre-build check', async () => {
    for (const ref of [
      '/etc/passwd',
      '../../../../etc',
      'https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.8.2',
    ]) {
      const error = await renderFailure(
        engine.build(engineTree({ 'a/kustomization.yaml': `resources: ["${ref}"]\n` }), 'a', options),
      );
      expect(error.code).toBe('KustomizeBuildFailed');
    }
  });

  it('stops a build past spec.timeout', async () => {
    const error = await renderFailure(
      engine.build(engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(1) }), '', {
        ...options,
        timeoutMs: 5,
      }),
    );
    expect(error.code).toBe('KustomizeTimeout');
  });

  it('stops a build whose output passes the bound', async () => {
    const error = await renderFailure(
      engine.build(engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(200) }), '', {
        ...options,
        maxOutputBytes: 4096,
      }),
    );
    expect(error.code).toBe('KustomizeOutputTooLarge');
  });

  it('bounds the module memory', async () => {
    const small = wasmKustomizeEngine({ path: enginePath, maxMemoryBytes: 16 * 1024 * 1024 });
    const error = await renderFailure(
      small.build(engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(2000) }), '', {
        ...options,
        maxOutputBytes: 64 * 1024 * 1024,
      }),
    );
    expect(error.code).toBe('KustomizeBuildFailed');
    expect(error.message).toContain('out of memory');
  });

  it('stops when the caller aborts', async () => {
    const controller = new AbortController();
    const build = engine.build(
      engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(1) }),
      '',
      { ...options, signal: controller.signal },
    );
    controller.abort(new Error('shutting down'));
    await expect(build).rejects.toThrow('shutting down');
  });

  it('checks the module digest when one is pinned', async () => {
    const pinned = wasmKustomizeEngine({ path: enginePath, sha256: '0'.repeat(64) });
    const error = await renderFailure(
      pinned.build(engineTree({ 'kustomization.yaml': 'resources: []\n' }), '', options),
    );
    expect(error.code).toBe('KustomizeEngineUnavailable');
  });
});

describe('engineOptionsFromEnv', () => {
  it('takes the path, the pinned digest and the memory from the deployment', () => {
    expect(
      engineOptionsFromEnv({
        SIGNET_KUSTOMIZE_ENGINE: '/opt/engine.wasm',
        SIGNET_KUSTOMIZE_ENGINE_SHA256: 'ab'.repeat(32),
        SIGNET_KUSTOMIZE_MAX_MEMORY_MIB: '256',
      }),
    ).toEqual({ path: '/opt/engine.wasm', sha256: 'ab'.repeat(32), maxMemoryBytes: 256 * 1024 * 1024 });
  });
  it('falls back to the cache and the defaults; a malformed memory is ignored', () => {
    const options = engineOptionsFromEnv({ SIGNET_CACHE: '/c', SIGNET_KUSTOMIZE_MAX_MEMORY_MIB: '1.5e3x' });
    expect(options).toEqual({ path: '/c/kustomize/v5.8.2-api0.21.2-abi2/kustomize-engine.wasm' });
  });
});

describe('the engine writes only inside its temporary directory', () => {
  it('refuses a tree path that is absolute or climbs out, before writing anything', async () => {
    for (const path of ['../escape.yaml', '/abs.yaml', 'a/../../b.yaml', 'a//b.yaml']) {
      const error = await renderFailure(
        engine.build(engineTree({ [path]: 'x: 1\n', 'kustomization.yaml': 'resources: []\n' }), '', options),
      );
      expect(error.code).toBe('InvalidPath');
    }
  });
});

describe('builds of one engine', () => {
  it('run one at a time, each with its own tree; a waiting build aborted meanwhile never runs', async () => {
    const events: string[] = [];
    const one = wasmKustomizeEngine({ path: enginePath, observe: (event) => events.push(event) });
    const trees = [0, 1, 2].map((i) =>
      engineTree({ 'kustomization.yaml': `namePrefix: p${i}-\nresources: [cm.yaml]\n`, 'cm.yaml': cms(1) }),
    );
    const controller = new AbortController();
    const [a, b, aborted, c] = [
      one.build(trees[0] as KustomizeTree, '', options),
      one.build(trees[1] as KustomizeTree, '', options),
      one.build(trees[2] as KustomizeTree, '', { ...options, signal: controller.signal }),
      one.build(trees[2] as KustomizeTree, '', options),
    ];
    controller.abort(new Error('reconcile cancelled'));
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    expect(text(await a)).toContain('name: p0-cm-0');
    expect(text(await b)).toContain('name: p1-cm-0');
    await expect(aborted).rejects.toThrow('reconcile cancelled');
    expect(text(await c)).toContain('name: p2-cm-0');
    expect(events).toEqual(['start', 'end', 'start', 'end', 'start', 'end']);
  });
});
