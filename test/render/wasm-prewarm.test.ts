/**
 * Pre-warmed engine instances (wasm-runner.ts engineInstances), with the real modules: after a run
 * the next instance initialises with no request (its `ready` comes from inside the Go main, after
 * every package's initialisation), it sees only the next request's tree (single use, fresh
 * directories), its output is byte-identical to an instance started on demand, a timeout on it
 * leaves the engine usable, an idle spare is released, and a spare never keeps the process alive.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { type HelmRenderRequest, wasmHelmEngine } from '../../src/render/helm-engine.ts';
import type { HelmTree } from '../../src/render/helm-policy.ts';
import { wasmKustomizeEngine } from '../../src/render/kustomize-engine.ts';
import { makeTempDir } from '../support/git-fixtures.ts';
import { ensureHelm, helmBuildTimeoutMs } from '../support/helm.ts';
import { ensureKustomize } from '../support/kustomize.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const runOptions = { timeoutMs: 60_000, maxOutputBytes: 1 << 20 };
let helmEnginePath = '';
let kustomizeEnginePath = '';

function tree(files: Record<string, string>): HelmTree {
  return { files: Object.entries(files).map(([path, text]) => ({ path, content: encoder.encode(text) })) };
}

const chartYaml = { 'c/Chart.yaml': 'apiVersion: v2\nname: c\nversion: 0.1.0\n' };
const configMap = (name: string) =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  extra: {{ .Files.Get "extra-a.txt" | quote }}\n`;
const request: HelmRenderRequest = {
  chart: 'c',
  releaseName: 'rel',
  namespace: 'ns',
  valuesFiles: [],
  values: {},
  includeCRDs: true,
};

/** Events of a spare as a queue a test can await one at a time (no sleeps). */
function spareEvents() {
  const seen: string[] = [];
  const waiters: { event: string; resolve: () => void }[] = [];
  return {
    observe(event: 'ready' | 'released'): void {
      seen.push(event);
      for (const waiter of waiters.filter((w) => w.event === event)) waiter.resolve();
    },
    next(event: 'ready' | 'released', after: number): Promise<void> {
      return new Promise((resolve) => {
        if (seen.filter((e) => e === event).length > after) resolve();
        else
          waiters.push({
            event,
            resolve: () => {
              if (seen.filter((e) => e === event).length > after) resolve();
            },
          });
      });
    },
    count: (event: string) => seen.filter((e) => e === event).length,
  };
}

beforeAll(async () => {
  helmEnginePath = (await ensureHelm()).engine;
  kustomizeEnginePath = (await ensureKustomize()).engine;
}, helmBuildTimeoutMs);

// Each engine compiles its 60-80 MiB module on its first render: seconds on a loaded 2-core machine.
const testTimeoutMs = 180_000;

describe('pre-warmed Helm instances', { timeout: testTimeoutMs }, () => {
  it('initialise before a request, see only their own request tree, and render what an instance started on demand renders', async () => {
    const events = spareEvents();
    const warm = wasmHelmEngine({ path: helmEnginePath, observeSpare: events.observe });
    const cold = wasmHelmEngine({ path: helmEnginePath, spareIdleMs: 0 });
    try {
      const first = tree({ ...chartYaml, 'c/templates/a.yaml': configMap('a'), 'c/extra-a.txt': 'x' });
      const second = tree({ ...chartYaml, 'c/templates/b.yaml': configMap('b') });
      const firstOut = decoder.decode(await warm.render(first, request, runOptions));
      expect(firstOut).toContain('name: a');
      // The spare reports ready from inside Go's main package init, with no request written yet.
      await events.next('ready', 0);
      const secondOut = decoder.decode(await warm.render(second, request, runOptions));
      // Only the second tree: nothing of the first run's files is visible to the spare.
      expect(secondOut).toContain('name: b');
      expect(secondOut).not.toContain('name: a');
      expect(firstOut).toContain('extra: "x"');
      expect(secondOut).toContain('extra: ""');
      expect(secondOut).toBe(decoder.decode(await cold.render(second, request, runOptions)));
      await events.next('ready', 1);
      expect(events.count('ready')).toBe(2);
    } finally {
      await warm.release();
      await cold.release();
    }
  });

  it('stops a looping template on a pre-warmed instance at the timeout, and renders again after it', async () => {
    const events = spareEvents();
    const engine = wasmHelmEngine({ path: helmEnginePath, observeSpare: events.observe });
    try {
      const plain = tree({ ...chartYaml, 'c/templates/a.yaml': configMap('a') });
      await engine.render(plain, request, runOptions);
      await events.next('ready', 0);
      const looping = tree({
        ...chartYaml,
        'c/templates/loop.yaml':
          '{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- end }}{{- end }}',
      });
      const error = await engine.render(looping, request, { ...runOptions, timeoutMs: 1_500 }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(RenderError);
      expect((error as RenderError).code).toBe('HelmTimeout');
      expect(decoder.decode(await engine.render(plain, request, runOptions))).toContain('name: a');
    } finally {
      await engine.release();
    }
  });

  it('releases a spare left idle, and release() stops one at once', async () => {
    const events = spareEvents();
    const engine = wasmHelmEngine({ path: helmEnginePath, spareIdleMs: 1_000, observeSpare: events.observe });
    const plain = tree({ ...chartYaml, 'c/templates/a.yaml': configMap('a') });
    await engine.render(plain, request, runOptions);
    // Released unused after 1 s (whether or not it had finished initialising by then).
    await events.next('released', 0);
    const readyBefore = events.count('ready');
    await engine.render(plain, request, runOptions);
    await engine.release();
    expect(events.count('released')).toBe(2);
    // A released spare never reports ready afterwards.
    expect(events.count('ready')).toBeLessThanOrEqual(readyBefore + 1);
  });

  it('a spare does not keep the process alive (a CLI exits after its render)', async () => {
    const script = `
      import { wasmHelmEngine } from ${JSON.stringify(new URL('../../src/render/helm-engine.ts', import.meta.url).href)};
      const engine = wasmHelmEngine({ path: ${JSON.stringify(helmEnginePath)} });
      const files = [['c/Chart.yaml', 'apiVersion: v2\\nname: c\\nversion: 0.1.0\\n'], ['c/templates/a.yaml', 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: a\\n']];
      const out = await engine.render({ files: files.map(([path, text]) => ({ path, content: new TextEncoder().encode(text) })) },
        { chart: 'c', releaseName: 'r', namespace: 'n', valuesFiles: [], values: {}, includeCRDs: true },
        { timeoutMs: 60000, maxOutputBytes: 1 << 20 });
      process.stdout.write(new TextDecoder().decode(out));
    `;
    const file = join(await makeTempDir('signet-prewarm-cli'), 'render.mjs');
    await writeFile(file, script);
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 120_000 });
    expect(stdout).toContain('name: a');
  });
});

describe('pre-warmed Kustomize instances', { timeout: testTimeoutMs }, () => {
  it('take their kustomization directory with the request: two directories on warm instances', async () => {
    const events = spareEvents();
    const engine = wasmKustomizeEngine({ path: kustomizeEnginePath, observeSpare: events.observe });
    const overlay = (name: string) => ({
      [`${name}/kustomization.yaml`]: `resources: [cm.yaml]\nnamePrefix: ${name}-\n`,
      [`${name}/cm.yaml`]: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n',
    });
    const files = tree({ ...overlay('one'), ...overlay('two') });
    try {
      expect(decoder.decode(await engine.build(files, 'one', runOptions))).toContain('name: one-cm');
      await events.next('ready', 0);
      expect(decoder.decode(await engine.build(files, 'two', runOptions))).toContain('name: two-cm');
      await events.next('ready', 1);
    } finally {
      await engine.release();
    }
  });
});
