/**
 * The native engine as Signet runs it (landlockKustomizeEngine): its bounds (output, memory,
 * timeout, abort, pinned digest, environment) and the choice between it and the WebAssembly
 * engine (kustomize-select.ts), with a stand-in binary that cannot confine itself.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KustomizeEngine } from '../../src/render/kustomize-engine.ts';
import {
  GO_RUNTIME_ADDRESS_SPACE,
  landlockKustomizeEngine,
  nativeEngineEnv,
} from '../../src/render/kustomize-native-engine.ts';
import {
  chooseEngine,
  engineModeFromEnv,
  nativeEngineOptionsFromEnv,
} from '../../src/render/kustomize-select.ts';
import { engineTree, ensureKustomize, kustomizeBuildTimeoutMs, renderFailure } from '../support/kustomize.ts';

const _encoder = new TextEncoder();
const options = { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 };
let nativePath: string;
let scratch: string;
/** A stand-in for an engine on a kernel without Landlock: says so and exits 3, as the real one. */
let unconfinedPath: string;

const cms = (count: number, value = 'x'.repeat(100)): string =>
  Array.from(
    { length: count },
    (_, i) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  k: "${value}"\n`,
  ).join('---\n');

beforeAll(async () => {
  nativePath = (await ensureKustomize()).native;
  scratch = fs.mkdtempSync(join(tmpdir(), 'signet-native-engine-'));
  unconfinedPath = join(scratch, 'kustomize-engine');
  fs.writeFileSync(
    unconfinedPath,
    '#!/bin/sh\necho "kustomize-engine: refusing to run unconfined: landlock is not available in this kernel" >&2\nexit 3\n',
  );
  fs.chmodSync(unconfinedPath, 0o755);
}, kustomizeBuildTimeoutMs);

afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the native engine', () => {
  it('builds an overlay of ../base, as kustomize build', async () => {
    const engine = landlockKustomizeEngine({ path: nativePath });
    const out = await engine.build(
      engineTree({
        'base/kustomization.yaml': 'resources: [cm.yaml]\n',
        'base/cm.yaml': cms(2),
        'overlay/kustomization.yaml': 'resources: [../base]\nnamePrefix: prod-\n',
      }),
      'overlay',
      options,
    );
    const text = new TextDecoder().decode(out);
    expect(text).toContain('name: prod-cm-0');
    expect(text).toContain('name: prod-cm-1');
  });

  it('stops a build whose output passes the bound', async () => {
    const engine = landlockKustomizeEngine({ path: nativePath });
    const error = await renderFailure(
      engine.build(engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(200) }), '', {
        ...options,
        maxOutputBytes: 4096,
      }),
    );
    expect(error.code).toBe('KustomizeOutputTooLarge');
  });

  it('bounds its memory (RLIMIT_AS above the Go runtime reservation, GOMEMLIMIT)', async () => {
    const small = landlockKustomizeEngine({ path: nativePath, maxMemoryBytes: 16 * 1024 * 1024 });
    const big = engineTree({
      'kustomization.yaml': 'resources: [cm.yaml]\n',
      'cm.yaml': cms(64, 'x'.repeat(512 * 1024)),
    });
    const error = await renderFailure(small.build(big, '', { ...options, maxOutputBytes: 64 * 1024 * 1024 }));
    expect(error.code).toBe('KustomizeBuildFailed');
    expect(error.message).toContain('out of memory');
  });

  it('stops at the timeout, and when the caller aborts', async () => {
    const engine = landlockKustomizeEngine({ path: nativePath });
    const slow = engineTree({ 'kustomization.yaml': 'resources: [cm.yaml]\n', 'cm.yaml': cms(3000) });
    const timedOut = await renderFailure(engine.build(slow, '', { ...options, timeoutMs: 200 }));
    expect(timedOut.code).toBe('KustomizeTimeout');
    const controller = new AbortController();
    const build = engine.build(slow, '', { ...options, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('shutting down')), 100);
    await expect(build).rejects.toThrow(/aborted|shutting down/);
  });

  it('checks the binary digest when one is pinned', async () => {
    const pinned = landlockKustomizeEngine({ path: nativePath, sha256: '0'.repeat(64) });
    const error = await renderFailure(
      pinned.build(engineTree({ 'kustomization.yaml': 'resources: []\n' }), '', options),
    );
    expect(error.code).toBe('KustomizeEngineUnavailable');
    expect(error.message).toContain('expected 0000');
  });

  it('gets nothing from the environment but the tree and its memory bounds', () => {
    expect(nativeEngineEnv('/tmp/t', 512 * 1024 * 1024)).toEqual({
      SIGNET_ENGINE_ROOT: '/tmp/t',
      GOMEMLIMIT: `${384 * 1024 * 1024}B`,
      SIGNET_ENGINE_MAX_ADDRESS_SPACE: String(512 * 1024 * 1024 + GO_RUNTIME_ADDRESS_SPACE),
    });
  });
});

describe('choosing the engine', () => {
  const wasm: KustomizeEngine = { name: 'wasm stand-in', build: () => Promise.resolve(new Uint8Array()) };

  it('uses the native engine where it confines itself', async () => {
    const choice = await chooseEngine('auto', landlockKustomizeEngine({ path: nativePath }), () => wasm);
    expect(choice.kind).toBe('native-landlock');
  });

  it('falls back to WebAssembly when the native engine refuses to run unconfined, saying why', async () => {
    const choice = await chooseEngine('auto', landlockKustomizeEngine({ path: unconfinedPath }), () => wasm);
    expect(choice.kind).toBe('wasm');
    expect(choice.engine).toBe(wasm);
    expect(choice.reason).toContain('refusing to run unconfined: landlock is not available');
  });

  it('falls back when the native engine is missing', async () => {
    const choice = await chooseEngine(
      'auto',
      landlockKustomizeEngine({ path: join(scratch, 'missing') }),
      () => wasm,
    );
    expect(choice.kind).toBe('wasm');
    expect(choice.reason).toContain('cannot be read');
  });

  it('in native mode, fails every build closed instead of falling back', async () => {
    const choice = await chooseEngine(
      'native',
      landlockKustomizeEngine({ path: unconfinedPath }),
      () => wasm,
    );
    const error = await renderFailure(
      choice.engine.build(engineTree({ 'kustomization.yaml': '' }), '', options),
    );
    expect(error.code).toBe('KustomizeEngineUnavailable');
    expect(error.message).toContain('refusing to run unconfined');
  });

  it('in wasm mode, never runs the native engine', async () => {
    const choice = await chooseEngine('wasm', landlockKustomizeEngine({ path: unconfinedPath }), () => wasm);
    expect(choice).toEqual({ kind: 'wasm', engine: wasm, reason: 'SIGNET_KUSTOMIZE_ENGINE_MODE=wasm' });
  });

  it('reads the mode, path, pin and memory from the deployment', () => {
    expect(engineModeFromEnv({ SIGNET_KUSTOMIZE_ENGINE_MODE: 'native' })).toBe('native');
    expect(engineModeFromEnv({ SIGNET_KUSTOMIZE_ENGINE_MODE: 'other' })).toBe('auto');
    expect(
      nativeEngineOptionsFromEnv({
        SIGNET_KUSTOMIZE_NATIVE_ENGINE: '/app/kustomize-engine',
        SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256: 'ab'.repeat(32),
        SIGNET_KUSTOMIZE_MAX_MEMORY_MIB: '256',
      }),
    ).toEqual({ path: '/app/kustomize-engine', sha256: 'ab'.repeat(32), maxMemoryBytes: 256 * 1024 * 1024 });
  });
});
