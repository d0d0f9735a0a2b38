// The Helm engine: render latency of a 200-object chart, Signet's WebAssembly engine in-process vs
// the native `helm template` of the same Helm version as a subprocess (the same materialised tree,
// values and bounds for both), the engine's fixed memory (RSS once compiled) and the RSS after 100
// renders (target: no growth beyond 10 % over the RSS after the first renders). `node bench/run.ts helm`.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type HelmEngine,
  type HelmRenderRequest,
  nativeHelmEngine,
  wasmHelmEngine,
} from '../src/render/helm-engine.ts';
import type { HelmTree } from '../src/render/helm-policy.ts';
import { type BenchRow, mib } from './rows.ts';
import { spareCounter } from './support.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const encoder = new TextEncoder();
const options = { timeoutMs: 300_000, maxOutputBytes: 256 * 1024 * 1024 };

/** A chart rendering `count` objects (Deployment, Service, ConfigMap per app) through helpers and range. */
export function chartTree(count: number): HelmTree {
  const apps = Math.ceil(count / 3);
  const files: Record<string, string> = {
    'chart/Chart.yaml': 'apiVersion: v2\nname: bench\nversion: 1.0.0\nappVersion: "1.27"\n',
    'chart/values.yaml': `apps: ${apps}\nimage: {repository: nginx, tag: "1.25"}\nreplicas: 2\n`,
    'chart/templates/_helpers.tpl':
      '{{- define "bench.labels" -}}\napp.kubernetes.io/name: {{ .name }}\napp.kubernetes.io/instance: {{ .root.Release.Name }}\nhelm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version }}\n{{- end }}\n',
    'chart/templates/apps.yaml': `{{- range $i := until (int .Values.apps) }}
{{- $name := printf "app-%d" $i }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "bench.labels" (dict "name" $name "root" $) | nindent 4 }}
spec:
  replicas: {{ $.Values.replicas }}
  selector:
    matchLabels: {app: {{ $name }}}
  template:
    metadata:
      labels: {app: {{ $name }}}
    spec:
      containers:
        - name: main
          image: "{{ $.Values.image.repository }}:{{ $.Values.image.tag }}"
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
spec:
  selector: {app: {{ $name }}}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
data:
  index: {{ $i | quote }}
{{- end }}
`,
  };
  return { files: Object.entries(files).map(([path, text]) => ({ path, content: encoder.encode(text) })) };
}

const request: HelmRenderRequest = {
  chart: 'chart',
  releaseName: 'bench',
  namespace: 'prod',
  valuesFiles: [],
  values: { image: { tag: '1.27' } },
  includeCRDs: true,
  kubeVersion: 'v1.36.0',
};

type Timed = { first: number; p50: number };

function summarise(times: readonly number[]): Timed {
  const first = times[0] ?? Number.NaN;
  const rest = times.slice(1).sort((x, y) => x - y);
  return { first, p50: rest[Math.floor(rest.length / 2)] ?? first };
}

/**
 * Renders with each engine in turn, `rounds` times (interleaved, so that the machine's load changes
 * hit all alike); before each timed render, `settle` lets the pre-warmed spare finish initialising,
 * so no spare's start-up runs during a timed render of any engine.
 */
async function timeInterleaved<K extends string>(
  engines: Readonly<Record<K, HelmEngine>>,
  input: HelmTree,
  rounds: number,
  settle: (rendered: K) => Promise<void>,
): Promise<Record<K, Timed>> {
  const names = Object.keys(engines) as K[];
  const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const started = performance.now();
      await engines[name].render(input, request, options);
      times[name].push(performance.now() - started);
      await settle(name);
    }
  }
  return Object.fromEntries(names.map((name) => [name, summarise(times[name])])) as Record<K, Timed>;
}

export interface HelmBenchResult {
  /** Renders on a spare that has finished initialising (the next render of an idle operator). */
  readonly wasm: { first: number; p50: number };
  /** The same module without a spare: each render starts its instance (before pre-warming). */
  readonly wasmCold: { first: number; p50: number };
  readonly native: { first: number; p50: number };
  readonly loadAverage: string;
  readonly spareMiB: number;
  readonly objects: number;
  readonly rssBeforeMiB: number;
  readonly rssLoadedMiB: number;
  readonly rssAfterFirstMiB: number;
  readonly rssAfterRendersMiB: number;
  readonly renders: number;
  readonly wasmMiB: number;
  readonly nativeMiB: number;
}

export async function runHelmBench(): Promise<HelmBenchResult> {
  const dir = execFileSync('bash', ['-c', 'PATH="$(hack/go.sh):$PATH" exec hack/helm/build.sh all'], {
    cwd: repoRoot,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop() as string;
  global.gc?.();
  const rssBeforeMiB = mib(process.memoryUsage().rss);
  const spares = spareCounter();
  const wasm = wasmHelmEngine({ path: `${dir}/helm-engine.wasm`, observeSpare: spares.observe });
  await wasm.sha256(); // read, checked and compiled
  // The module's bytes (two 77 MiB copies while it is checked and compiled) are garbage by now.
  await new Promise((resolve) => setTimeout(resolve, 200));
  global.gc?.();
  const rssLoadedMiB = mib(process.memoryUsage().rss);
  const native = nativeHelmEngine(`${dir}/helm`);
  const chart = chartTree(200);
  const out = new TextDecoder().decode(await wasm.render(chart, request, options));
  const objects = out.split('\nkind: ').length - 1;
  let warmRenders = 1;
  const settle = async (rendered: 'wasm' | 'wasmCold' | 'native'): Promise<void> => {
    if (rendered === 'wasm') warmRenders++;
    await spares.readyAtLeast(warmRenders);
  };
  // The same module without spares (lazyModule compiles per engine: compile it before timing), in a
  // scope of its own so that its copy of the module is garbage before the RSS figures below.
  const result = await (async () => {
    const wasmCold = wasmHelmEngine({ path: `${dir}/helm-engine.wasm`, spareIdleMs: 0 });
    await wasmCold.render(chart, request, options);
    return timeInterleaved({ wasm, wasmCold, native }, chart, 11, settle);
  })();
  // RSS with the spare initialised, after GC: after the 24 renders above, then after 100 more.
  const rssNow = async (): Promise<number> => {
    await spares.readyAtLeast(warmRenders);
    await new Promise((resolve) => setTimeout(resolve, 200));
    global.gc?.();
    return mib(process.memoryUsage().rss);
  };
  // The RSS right after the timed renders still holds what the terminated workers and the second
  // copy of the module freed (457-507 MiB, down to 290 MiB later): the growth is judged between
  // two later points, after 100 and after 200 more renders.
  const renders = 100;
  const renderMore = async (): Promise<void> => {
    for (let i = 0; i < renders; i++) {
      await wasm.render(chart, request, options);
      warmRenders++;
    }
  };
  await renderMore();
  const rssAfterFirstMiB = await rssNow();
  await renderMore();
  const rssAfterRendersMiB = await rssNow();
  // What one initialised spare holds: the RSS with it, then after it is released.
  const rssWithSpare = rssAfterRendersMiB;
  await wasm.release();
  global.gc?.();
  const spareMiB = rssWithSpare - mib(process.memoryUsage().rss);
  return {
    ...result,
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    spareMiB,
    objects,
    rssBeforeMiB,
    rssLoadedMiB,
    rssAfterFirstMiB,
    rssAfterRendersMiB,
    renders,
    wasmMiB: mib(statSync(`${dir}/helm-engine.wasm`).size),
    nativeMiB: mib(statSync(`${dir}/helm`).size),
  };
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);

export function benchRows(r: HelmBenchResult): BenchRow[] {
  const ratio = r.wasm.p50 / r.native.p50;
  const growth = (r.rssAfterRendersMiB - r.rssAfterFirstMiB) / r.rssAfterFirstMiB;
  return [
    {
      bench: 'helm',
      figure: `render latency, ${r.objects}-object chart (p50 of 10 after the first; load average ${r.loadAverage})`,
      value: `wasm in-process, pre-warmed instance ${fmt(r.wasm.p50)} ms (first ${fmt(r.wasm.first)} ms)`,
      baseline: `native helm template subprocess ${fmt(r.native.p50)} ms`,
      ratio: `${fmt(ratio, 1)}×`,
      target: '≤ 2× native',
      pass: ratio <= 2,
    },
    {
      bench: 'helm',
      figure: 'render latency: pre-warmed vs started per render (same module, same run)',
      value: `pre-warmed ${fmt(r.wasm.p50)} ms`,
      baseline: `instance started per render ${fmt(r.wasmCold.p50)} ms (${fmt(r.wasmCold.p50 / r.native.p50, 1)}× native)`,
      ratio: `${fmt(r.wasm.p50 / r.wasmCold.p50, 2)}×`,
      target: 'informational: what pre-warming takes off (no target)',
      pass: 'info',
    },
    {
      bench: 'helm',
      figure: 'RSS of one initialised spare instance (after GC)',
      value: `${fmt(r.spareMiB, 1)} MiB`,
      baseline: 'released',
      ratio: '–',
      target: 'informational: the cost of pre-warming (no target)',
      pass: 'info',
    },
    {
      bench: 'helm',
      figure: 'engine fixed memory (RSS once the module is compiled, after GC)',
      value: `+${fmt(r.rssLoadedMiB - r.rssBeforeMiB, 1)} MiB`,
      baseline: `${fmt(r.rssBeforeMiB, 1)} MiB before loading`,
      ratio: '–',
      target: 'informational: the engine fixed cost (no target)',
      pass: 'info',
    },
    {
      bench: 'helm',
      figure: `RSS after ${r.renders} more renders`,
      value: `${fmt(r.rssAfterRendersMiB, 1)} MiB`,
      baseline: `${fmt(r.rssAfterFirstMiB, 1)} MiB after the first 124 renders`,
      ratio: `${growth >= 0 ? '+' : ''}${fmt(growth * 100, 1)} %`,
      target: 'growth ≤ 10 %',
      pass: growth <= 0.1,
    },
    {
      bench: 'helm',
      figure: 'image size of the engine',
      value: `helm-engine.wasm ${fmt(r.wasmMiB, 1)} MiB`,
      baseline: `native helm ${fmt(r.nativeMiB, 1)} MiB`,
      ratio: `${fmt(r.wasmMiB / r.nativeMiB, 1)}×`,
      target: 'informational: image size (no target)',
      pass: 'info',
    },
  ];
}
