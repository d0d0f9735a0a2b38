/**
 * Runs Kustomize (sigs.k8s.io/kustomize/api, hack/kustomize/) on a verified tree (imperative shell).
 *
 * The chosen engine (docs/kustomize.md) is the WebAssembly module run in-process with node:wasi:
 * - the verified files are written to a fresh temporary directory, the only directory preopened;
 *   the module has no sockets (Go's wasip1 port has none), no exec and no other file system;
 * - each build runs in a worker thread so that `timeoutMs` and the caller's AbortSignal can stop
 *   it (worker.terminate), with the V8 heap bounded by resourceLimits and the module's linear
 *   memory bounded by a maximum written into its memory section (`withMemoryMaximum`);
 * - stdout goes to a file whose size is watched: past `maxOutputBytes` the build is stopped.
 * The native `kustomize` binary (same module version) runs as a subprocess with the same inputs
 * and bounds; it is the reference for the differential tests and the benchmarks.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { RenderError } from './errors.ts';
import type { KustomizeTree } from './kustomize-policy.ts';

export const KUSTOMIZE_VERSION = 'v5.8.2';
export const KUSTOMIZE_API_VERSION = 'v0.21.2';

export interface KustomizeBuildOptions {
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly signal?: AbortSignal;
}

export interface KustomizeEngine {
  readonly name: string;
  /** Builds the kustomization in `dir` (relative to the tree's root); resolves to the YAML stream. */
  build(tree: KustomizeTree, dir: string, options: KustomizeBuildOptions): Promise<Uint8Array>;
}

/** The cache directory hack/kustomize/build.sh fills (SIGNET_CACHE as in the script). */
export function kustomizeCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.SIGNET_CACHE ?? join(homedir(), '.cache', 'signet');
  return join(cache, 'kustomize', `${KUSTOMIZE_VERSION}-api${KUSTOMIZE_API_VERSION.slice(1)}`);
}

/**
 * Where the engine module is: SIGNET_KUSTOMIZE_ENGINE; else kustomize-engine.wasm at the top of the
 * installed tree (beside dist/ and package.json: the image's /app); else the build cache.
 */
export function defaultEnginePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SIGNET_KUSTOMIZE_ENGINE !== undefined && env.SIGNET_KUSTOMIZE_ENGINE !== '')
    return env.SIGNET_KUSTOMIZE_ENGINE;
  const installed = fileURLToPath(new URL('../../kustomize-engine.wasm', import.meta.url));
  if (existsSync(installed)) return installed;
  return join(kustomizeCacheDir(env), 'kustomize-engine.wasm');
}

const wasmPageBytes = 64 * 1024;

/** A compiled WebAssembly.Module (opaque here; @types/node declares no WebAssembly global). */
type CompiledModule = object;
const wasm = (
  globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<CompiledModule> } }
).WebAssembly;

function readLeb(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    const byte = bytes[i++];
    if (byte === undefined || shift > 28) throw new Error('malformed LEB128 in the WebAssembly module');
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: i };
    shift += 7;
  }
}

function leb(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    const byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    out.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return out;
}

/**
 * Returns the module with the maximum of its (single, defined) memory set to `maxBytes`, so that
 * memory.grow fails past it and the Go runtime exits with "out of memory" instead of growing.
 * Pure; throws when the module has no memory section of the expected form.
 */
export function withMemoryMaximum(module: Uint8Array, maxBytes: number): Uint8Array {
  const maxPages = Math.max(1, Math.floor(maxBytes / wasmPageBytes));
  let at = 8; // magic + version
  while (at < module.length) {
    const id = module[at] as number;
    const size = readLeb(module, at + 1);
    const end = size.next + size.value;
    if (id === 5) {
      const count = readLeb(module, size.next);
      if (count.value !== 1) throw new Error('the WebAssembly module defines more than one memory');
      const flags = module[count.next];
      if (flags !== 0 && flags !== 1) throw new Error('unexpected memory limits in the WebAssembly module');
      const min = readLeb(module, count.next + 1);
      if (min.value > maxPages)
        throw new Error(`the module needs ${min.value} pages, above the maximum ${maxPages}`);
      const body = [...leb(1), 0x01, ...leb(min.value), ...leb(maxPages)];
      const section = [5, ...leb(body.length), ...body];
      const out = new Uint8Array(module.length - (end - at) + section.length);
      out.set(module.subarray(0, at), 0);
      out.set(section, at);
      out.set(module.subarray(end), at + section.length);
      return out;
    }
    at = end;
  }
  throw new Error('the WebAssembly module has no memory section');
}

/** A relative posix path without `.`/`..`/empty segments, or a RenderError (never written outside). */
function assertTreePath(path: string): void {
  const segments = path.split('/');
  if (
    path.startsWith('/') ||
    path.includes('\\') ||
    path.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new RenderError('InvalidPath', 'path must be relative, posix, without "." or ".." segments', {
      file: path,
    });
  }
}

/** Writes the tree under a fresh temporary directory; returns it (the caller removes it). */
async function materialise(tree: KustomizeTree): Promise<string> {
  for (const entry of [...tree.files, ...(tree.symlinks ?? [])]) assertTreePath(entry.path);
  const root = await fs.promises.mkdtemp(join(tmpdir(), 'signet-kustomize-'));
  try {
    const dirs = new Set<string>();
    for (const file of tree.files) dirs.add(dirname(join(root, file.path)));
    for (const link of tree.symlinks ?? []) dirs.add(dirname(join(root, link.path)));
    for (const dir of dirs) await fs.promises.mkdir(dir, { recursive: true });
    for (const file of tree.files)
      await fs.promises.writeFile(join(root, file.path), file.content, { mode: 0o600 });
    // Only links inside the root reach here (checkKustomization refuses the others).
    for (const link of tree.symlinks ?? []) await fs.promises.symlink(link.target, join(root, link.path));
    return root;
  } catch (cause) {
    await fs.promises.rm(root, { recursive: true, force: true });
    throw new RenderError(
      'KustomizeBuildFailed',
      `writing the verified tree for the Kustomize build: ${cause instanceof Error ? cause.message : String(cause)}`,
      {},
      cause,
    );
  }
}

async function readBounded(path: string, maxBytes: number): Promise<Uint8Array> {
  const stat = await fs.promises.stat(path);
  if (stat.size > maxBytes) {
    throw new RenderError('KustomizeOutputTooLarge', `kustomize build wrote more than ${maxBytes} bytes`);
  }
  return new Uint8Array(await fs.promises.readFile(path));
}

async function errorText(path: string, root: string): Promise<string> {
  const handle = await fs.promises.open(path, 'r');
  try {
    const buffer = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer
      .subarray(0, bytesRead)
      .toString('utf8')
      .trim()
      .replaceAll(`${root}/`, '')
      .replaceAll(`${sandboxRoot}/`, '');
  } finally {
    await handle.close();
  }
}

const sandboxRoot = '/src';

// The worker: CommonJS evaluated from a string, so it works from src/ (tests) and dist/ alike.
const workerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  if (/WASI is an experimental feature/.test(String(warning))) return; // once per build otherwise
  emitWarning.call(process, warning, ...rest);
};
const { WASI } = require('node:wasi');
const fs = require('node:fs');
const stdout = fs.openSync(workerData.stdout, 'w');
const stderr = fs.openSync(workerData.stderr, 'w');
const wasi = new WASI({
  version: 'preview1',
  args: ['kustomize-engine', workerData.dir],
  env: { GOMEMLIMIT: workerData.goMemLimit },
  preopens: { [workerData.sandboxRoot]: workerData.root },
  stdin: fs.openSync('/dev/null', 'r'), stdout, stderr,
  returnOnExit: true,
});
const instance = new WebAssembly.Instance(workerData.module, wasi.getImportObject());
const code = wasi.start(instance);
fs.closeSync(stdout);
fs.closeSync(stderr);
parentPort.postMessage({ code });
`;

export interface WasmEngineOptions {
  /** Path of kustomize-engine.wasm (default: defaultEnginePath()). */
  readonly path?: string;
  /** When set, the module's sha256 (hex) must equal it. */
  readonly sha256?: string;
  /**
   * Linear memory of one build, bytes (default 512 MiB: the operator's Deployment is limited to 1 GiB;
   * a 500-object overlay builds in 64 MiB, 5,000 objects in 512 MiB).
   */
  readonly maxMemoryBytes?: number;
  /** Told when a build starts and ends (tests and metrics). */
  readonly observe?: (event: 'start' | 'end') => void;
}

/** The WebAssembly engine; the module is read, checked and compiled once, on first use. */
export function wasmKustomizeEngine(
  options: WasmEngineOptions = {},
): KustomizeEngine & { sha256(): Promise<string> } {
  const path = options.path ?? defaultEnginePath();
  const maxMemoryBytes = options.maxMemoryBytes ?? 512 * 1024 * 1024;
  let loaded: Promise<{ module: CompiledModule; sha256: string }> | undefined;
  let queue: Promise<void> = Promise.resolve();
  const load = (): Promise<{ module: CompiledModule; sha256: string }> => {
    loaded ??= (async () => {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await fs.promises.readFile(path));
      } catch (cause) {
        throw new RenderError(
          'KustomizeEngineUnavailable',
          `the Kustomize engine ${path} cannot be read (build it with hack/kustomize/build.sh): ${String(cause)}`,
        );
      }
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      // V8 runs new wasm code in its baseline tier and optimises a function after a budget of
      // calls; each build is a fresh instance, so the default budget keeps Kustomize in the
      // baseline tier for many builds (a 500-object build: 1.3-2.8 s instead of 0.5 s).
      // Process-wide, and the engine is the only WebAssembly the operator runs (docs/kustomize.md).
      setFlagsFromString('--wasm-tiering-budget=50000');
      if (options.sha256 !== undefined && options.sha256 !== sha256) {
        throw new RenderError(
          'KustomizeEngineUnavailable',
          `the Kustomize engine ${path} has sha256 ${sha256}, expected ${options.sha256}`,
        );
      }
      const module = await wasm.compile(withMemoryMaximum(bytes, maxMemoryBytes));
      return { module, sha256 };
    })();
    loaded.catch(() => {
      loaded = undefined;
    });
    return loaded;
  };
  return {
    name: `kustomize ${KUSTOMIZE_VERSION} (wasm)`,
    sha256: async () => (await load()).sha256,
    build(tree, dir, buildOptions) {
      // One build at a time: each may take maxMemoryBytes, and the Deployment's limit holds one.
      const run = queue.then(() => buildNow(tree, dir, buildOptions));
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
  };

  async function buildNow(
    tree: KustomizeTree,
    dir: string,
    buildOptions: KustomizeBuildOptions,
  ): Promise<Uint8Array> {
    buildOptions.signal?.throwIfAborted();
    options.observe?.('start');
    try {
      return await buildIn(tree, dir, buildOptions);
    } finally {
      options.observe?.('end');
    }
  }

  async function buildIn(
    tree: KustomizeTree,
    dir: string,
    buildOptions: KustomizeBuildOptions,
  ): Promise<Uint8Array> {
    const { module } = await load();
    const root = await materialise(tree);
    const out = await fs.promises.mkdtemp(join(tmpdir(), 'signet-kustomize-out-'));
    try {
      const stdout = join(out, 'stdout');
      const stderr = join(out, 'stderr');
      const code = await runWorker(
        {
          module,
          root,
          sandboxRoot,
          dir: dir === '' ? sandboxRoot : `${sandboxRoot}/${dir}`,
          stdout,
          stderr,
          goMemLimit: `${Math.floor((maxMemoryBytes * 3) / 4)}B`,
        },
        stdout,
        buildOptions,
      );
      if (code !== 0) {
        throw new RenderError(
          'KustomizeBuildFailed',
          `kustomize build ${dir || '.'}: ${await errorText(stderr, root)}`,
        );
      }
      return await readBounded(stdout, buildOptions.maxOutputBytes);
    } finally {
      await fs.promises.rm(root, { recursive: true, force: true });
      await fs.promises.rm(out, { recursive: true, force: true });
    }
  }
}

let shared: KustomizeEngine | undefined;

/**
 * The engine options the deployment sets: SIGNET_KUSTOMIZE_ENGINE_SHA256 pins the module's digest,
 * SIGNET_KUSTOMIZE_MAX_MEMORY_MIB the memory of one build (a positive integer, else the default).
 */
export function engineOptionsFromEnv(env: NodeJS.ProcessEnv): WasmEngineOptions {
  const sha256 = env.SIGNET_KUSTOMIZE_ENGINE_SHA256;
  const memory = Number(env.SIGNET_KUSTOMIZE_MAX_MEMORY_MIB ?? '');
  return {
    path: defaultEnginePath(env),
    ...(sha256 === undefined || sha256 === '' ? {} : { sha256 }),
    ...(Number.isInteger(memory) && memory > 0 ? { maxMemoryBytes: memory * 1024 * 1024 } : {}),
  };
}

/** The process's engine (engineOptionsFromEnv), created on first use. */
export function sharedKustomizeEngine(): KustomizeEngine {
  shared ??= wasmKustomizeEngine(engineOptionsFromEnv(process.env));
  return shared;
}

/** Stops the build when `stdout` grows past the bound; polls its size while the build runs. */
function watchOutput(stdout: string, maxBytes: number, stop: (error: RenderError) => void): NodeJS.Timeout {
  return setInterval(() => {
    fs.stat(stdout, (error, stat) => {
      if (error === null && stat.size > maxBytes) {
        stop(new RenderError('KustomizeOutputTooLarge', `kustomize build wrote more than ${maxBytes} bytes`));
      }
    });
  }, 50);
}

function runWorker(
  workerData: Record<string, unknown>,
  stdout: string,
  options: KustomizeBuildOptions,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, {
      eval: true,
      workerData,
      resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16 },
      stdout: false,
      stderr: false,
    });
    let settled = false;
    const finish = (error: Error | undefined, code?: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watcher);
      options.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (error === undefined) resolve(code ?? 1);
      else reject(error);
    };
    const timer = setTimeout(
      () =>
        finish(
          new RenderError(
            'KustomizeTimeout',
            `kustomize build did not finish within ${options.timeoutMs} ms`,
          ),
        ),
      options.timeoutMs,
    );
    const watcher = watchOutput(stdout, options.maxOutputBytes, (error) => finish(error));
    const onAbort = (): void =>
      finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (message: { code: number }) => finish(undefined, message.code));
    worker.once('error', (error) =>
      finish(
        new RenderError('KustomizeBuildFailed', `the Kustomize engine failed: ${error.message}`, {}, error),
      ),
    );
    worker.once('exit', (code) =>
      finish(
        new RenderError(
          'KustomizeBuildFailed',
          `the Kustomize engine stopped (exit ${code}) before it finished`,
        ),
      ),
    );
  });
}

/** The native `kustomize` binary as a subprocess (the reference; not what the operator runs). */
export function nativeKustomizeEngine(binary = join(kustomizeCacheDir(), 'kustomize')): KustomizeEngine {
  return {
    name: `kustomize ${KUSTOMIZE_VERSION} (native)`,
    async build(tree, dir, options) {
      const root = await materialise(tree);
      try {
        return await runNative(binary, join(root, dir), root, options);
      } finally {
        await fs.promises.rm(root, { recursive: true, force: true });
      }
    },
  };
}

function runNative(
  binary: string,
  dir: string,
  root: string,
  options: KustomizeBuildOptions,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['build', dir], {
      cwd: root,
      env: { PATH: '/nonexistent', HOME: root },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let tooLarge = false;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > options.maxOutputBytes) {
        tooLarge = true;
        child.kill('SIGKILL');
      } else chunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.once('error', (error) =>
      reject(new RenderError('KustomizeBuildFailed', `kustomize: ${error.message}`, {}, error)),
    );
    child.once('close', (code, signal) => {
      if (tooLarge)
        reject(
          new RenderError(
            'KustomizeOutputTooLarge',
            `kustomize build wrote more than ${options.maxOutputBytes} bytes`,
          ),
        );
      else if (signal === 'SIGTERM')
        reject(
          new RenderError(
            'KustomizeTimeout',
            `kustomize build did not finish within ${options.timeoutMs} ms`,
          ),
        );
      else if (code !== 0)
        reject(
          new RenderError(
            'KustomizeBuildFailed',
            `kustomize build: ${stderr.trim().replaceAll(`${root}/`, '')}`,
          ),
        );
      else resolve(new Uint8Array(Buffer.concat(chunks)));
    });
  });
}
