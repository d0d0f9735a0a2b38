/**
 * Runs a WASI (GOOS=wasip1) module on a copy of a verified tree (imperative shell), the packaging
 * docs/kustomize.md chose, for the Kustomize (kustomize-engine.ts) and Helm (helm-engine.ts) engines:
 * - the module is read once, its sha256 optionally checked, its memory maximum written into it
 *   (withMemoryMaximum) and compiled once;
 * - the verified files are written to a fresh temporary directory, preopened as `/src`; a second
 *   fresh directory holds the request and the arguments (`args.json`) and is preopened as `/req`;
 *   nothing else is visible, and Go's wasip1 port has no sockets and WASI no exec;
 * - each run is a fresh, single-use instance in a worker thread, stopped (worker.terminate) by the
 *   timeout or the caller's AbortSignal, its V8 heap bounded by resourceLimits; it is started ahead
 *   of its run (engineInstances: one pre-warmed spare per engine, its Go initialisation done, its
 *   directories empty until the run's tree and request are written into them);
 * - stdout goes to a file whose size is watched: past `maxOutputBytes` the run is stopped;
 * - the engines share one queue (`runExclusive`): one build or render at a time across both, so the
 *   engines' linear memory at any time is one run's.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { RenderError, type RenderErrorCode } from './errors.ts';
import type { SourceFile, SourceSymlink } from './render.ts';

/**
 * The engines' host interface, part of their cache directory (hack/{helm,kustomize}/build.sh
 * ENGINE_ABI): 2 = the module imports signet.await_request (pre-warming, engineInstances).
 */
export const ENGINE_ABI = 2;

export const sandboxRoot = '/src';
export const requestRoot = '/req';

export interface WasmRunOptions {
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly signal?: AbortSignal;
}

/** The error codes and the name a runner reports under (e.g. "helm template"). */
export interface WasmErrors {
  readonly label: string;
  /** The engine's name in "the … engine" messages (default: label). */
  readonly engine?: string;
  /** Added to the message when the module cannot be read (e.g. how to build it). */
  readonly buildHint?: string;
  readonly failed: RenderErrorCode;
  readonly timeout: RenderErrorCode;
  readonly tooLarge: RenderErrorCode;
  readonly unavailable: RenderErrorCode;
}

export interface WasmTree {
  readonly files: readonly SourceFile[];
  readonly symlinks?: readonly SourceSymlink[];
}

/** A compiled WebAssembly.Module (opaque here; @types/node declares no WebAssembly global). */
type CompiledModule = object;
const wasm = (
  globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<CompiledModule> } }
).WebAssembly;

export interface LoadedModule {
  readonly module: CompiledModule;
  readonly sha256: string;
}

const wasmPageBytes = 64 * 1024;

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

/** One build or render at a time across the engines: each may take its engine's memory maximum. */
let queue: Promise<void> = Promise.resolve();

/** Runs `task` after every task queued before it has settled (the engines' one queue). */
export function runExclusive<T>(task: () => Promise<T>): Promise<T> {
  const run = queue.then(task);
  queue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

const engineName = (errors: WasmErrors): string => errors.engine ?? errors.label;

/** Reads, checks and compiles the module; errors are `unavailable` RenderErrors naming the path. */
export async function loadModule(
  path: string,
  maxMemoryBytes: number,
  errors: WasmErrors,
  expectedSha256?: string,
): Promise<LoadedModule> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.promises.readFile(path));
  } catch (cause) {
    throw new RenderError(
      errors.unavailable,
      `the ${engineName(errors)} engine ${path} cannot be read${errors.buildHint === undefined ? '' : ` (${errors.buildHint})`}: ${String(cause)}`,
    );
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
    throw new RenderError(
      errors.unavailable,
      `the ${engineName(errors)} engine ${path} has sha256 ${sha256}, expected ${expectedSha256}`,
    );
  }
  // V8 runs new wasm code in its baseline tier and optimises a function after a budget of calls;
  // each run is a fresh instance, so the default budget keeps an engine in the baseline tier for
  // many runs (a 500-object Kustomize build: 1.3-2.8 s instead of 0.5 s). Process-wide, and the
  // engines are the only WebAssembly the operator runs (docs/kustomize.md).
  setFlagsFromString('--wasm-tiering-budget=50000');
  return { module: await wasm.compile(withMemoryMaximum(bytes, maxMemoryBytes)), sha256 };
}

/** loadModule on first call, shared by the calls after it; a failed load is tried again next call. */
export function lazyModule(
  path: string,
  maxMemoryBytes: number,
  errors: WasmErrors,
  expectedSha256?: string,
): () => Promise<LoadedModule> {
  let loaded: Promise<LoadedModule> | undefined;
  return () => {
    loaded ??= loadModule(path, maxMemoryBytes, errors, expectedSha256);
    loaded.catch(() => {
      loaded = undefined;
    });
    return loaded;
  };
}

/**
 * The deployment's pin and memory for an engine: the digest when set and non-empty; the memory of
 * one run when a positive whole number of MiB, else absent (the engine's default).
 */
export function pinAndMemoryFromEnv(
  sha256: string | undefined,
  memoryMib: string | undefined,
): { sha256?: string; maxMemoryBytes?: number } {
  const memory = Number(memoryMib ?? '');
  return {
    ...(sha256 === undefined || sha256 === '' ? {} : { sha256 }),
    ...(Number.isInteger(memory) && memory > 0 ? { maxMemoryBytes: memory * 1024 * 1024 } : {}),
  };
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

/** Writes the tree's files and links under `root`, an existing directory (a fresh, empty one). */
export async function writeTree(root: string, tree: WasmTree, errors: WasmErrors): Promise<void> {
  for (const entry of [...tree.files, ...(tree.symlinks ?? [])]) assertTreePath(entry.path);
  try {
    const dirs = new Set<string>();
    for (const entry of [...tree.files, ...(tree.symlinks ?? [])]) dirs.add(dirname(join(root, entry.path)));
    for (const dir of dirs) await fs.promises.mkdir(dir, { recursive: true });
    for (const file of tree.files)
      await fs.promises.writeFile(join(root, file.path), file.content, { mode: 0o600 });
    // Only links inside the root reach here (the pre-render checks refuse the others).
    for (const link of tree.symlinks ?? []) await fs.promises.symlink(link.target, join(root, link.path));
  } catch (cause) {
    throw new RenderError(
      errors.failed,
      `writing the verified tree for ${errors.label}: ${cause instanceof Error ? cause.message : String(cause)}`,
      {},
      cause,
    );
  }
}

/** Writes the tree under a fresh temporary directory; returns it (the caller removes it). */
export async function materialiseTree(tree: WasmTree, prefix: string, errors: WasmErrors): Promise<string> {
  for (const entry of [...tree.files, ...(tree.symlinks ?? [])]) assertTreePath(entry.path);
  const root = await fs.promises.mkdtemp(join(tmpdir(), prefix));
  try {
    await writeTree(root, tree, errors);
    return root;
  } catch (error) {
    await fs.promises.rm(root, { recursive: true, force: true });
    throw error;
  }
}

/*
 * The worker runs one instance. The engines' Go mains (hack/{helm,kustomize}/engine/prewarm_wasip1.go) call the
 * host function signet.await_request once Go's runtime and package initialisation are done: it
 * reports `ready` and blocks (Atomics.wait) until the runner stores run or quit in `control`.
 */
const workerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  if (/WASI is an experimental feature/.test(String(warning))) return;
  emitWarning.call(process, warning, ...rest);
};
const { WASI } = require('node:wasi');
const fs = require('node:fs');
const stdout = fs.openSync(workerData.stdout, 'w');
const stderr = fs.openSync(workerData.stderr, 'w');
const control = new Int32Array(workerData.control);
const wasi = new WASI({
  version: 'preview1',
  args: workerData.args,
  env: workerData.env,
  preopens: workerData.preopens,
  stdin: fs.openSync('/dev/null', 'r'), stdout, stderr,
  returnOnExit: true,
});
const signet = {
  await_request() {
    parentPort.postMessage({ ready: true });
    Atomics.wait(control, 0, 0);
    return Atomics.load(control, 0);
  },
};
const instance = new WebAssembly.Instance(workerData.module, { ...wasi.getImportObject(), signet });
const code = wasi.start(instance);
fs.closeSync(stdout);
fs.closeSync(stderr);
parentPort.postMessage({ code });
`;

/** The values of an instance's control word (signet.await_request's answer). */
const controlRun = 1;
const controlQuit = 2;

/** How an instance's worker ended: the module's exit code, an uncaught error, or the thread stopped. */
type InstanceEnd =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'crashed'; readonly error: Error }
  | { readonly kind: 'stopped'; readonly exitCode: number };

/** One single-use instance: its worker, control word and fresh directories (/src, /req, output). */
interface EngineInstance {
  readonly worker: Worker;
  readonly control: Int32Array;
  readonly src: string;
  readonly req: string;
  readonly out: string;
  /** Settles when Go's initialisation is done (the instance waits for its request) or it ended. */
  readonly ready: Promise<void>;
  readonly ended: Promise<InstanceEnd>;
  readonly state: { ended: boolean };
}

/** What an engine's instances are started with; the arguments come with each request. */
export interface EngineInstanceConfig {
  /** argv[0], e.g. "helm-engine". */
  readonly program: string;
  readonly env: Readonly<Record<string, string>>;
  /**
   * A pre-warmed spare left unused this long is released (default 5 minutes); 0 keeps no spare
   * (every run starts its instance on the critical path).
   */
  readonly spareIdleMs?: number;
  /** Told when a spare has initialised (ready) and when it is released (tests, metrics). */
  readonly observeSpare?: (event: 'ready' | 'released') => void;
}

export const defaultSpareIdleMs = 5 * 60_000;

async function startInstance(module: CompiledModule, config: EngineInstanceConfig): Promise<EngineInstance> {
  const src = await fs.promises.mkdtemp(join(tmpdir(), 'signet-wasm-src-'));
  const req = await fs.promises.mkdtemp(join(tmpdir(), 'signet-wasm-req-'));
  const out = await fs.promises.mkdtemp(join(tmpdir(), 'signet-wasm-out-'));
  const control = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: {
      module,
      args: [config.program],
      env: { ...config.env, SIGNET_ENGINE_PREWARMED: '1' },
      preopens: { [sandboxRoot]: src, [requestRoot]: req },
      stdout: join(out, 'stdout'),
      stderr: join(out, 'stderr'),
      control: control.buffer,
    },
    resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16 },
    stdout: false,
    stderr: false,
  });
  const state = { ended: false };
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const ended = new Promise<InstanceEnd>((resolve) => {
    worker.on('message', (message: { ready?: boolean; code?: number }) => {
      if (message.ready === true) markReady();
      else if (typeof message.code === 'number') resolve({ kind: 'exited', code: message.code });
    });
    worker.once('error', (error) => resolve({ kind: 'crashed', error }));
    worker.once('exit', (exitCode) => resolve({ kind: 'stopped', exitCode }));
  });
  void ended.then(() => {
    state.ended = true;
    markReady();
  });
  // A spare must not keep the process alive (a run is, by its timeout). After the listeners:
  // adding a 'message' listener refs the worker's port again.
  worker.unref();
  return { worker, control, src, req, out, ready, ended, state };
}

function signal(instance: EngineInstance, value: number): void {
  Atomics.store(instance.control, 0, value);
  Atomics.notify(instance.control, 0);
}

/** Stops the instance (it quits by itself when still waiting) and removes its directories. */
async function disposeInstance(instance: EngineInstance): Promise<void> {
  signal(instance, controlQuit);
  await instance.worker.terminate();
  for (const dir of [instance.src, instance.req, instance.out])
    await fs.promises.rm(dir, { recursive: true, force: true });
}

export interface WasmRequest {
  /** The arguments after argv[0]. */
  readonly args: readonly string[];
  /** The verified files, written into the instance's /src. */
  readonly tree: WasmTree;
  /** Files the module reads besides the tree, written into its /req by name. */
  readonly request?: Readonly<Record<string, string | Uint8Array>>;
  /** Named after the label in a failure's message (e.g. the kustomization's directory). */
  readonly subject?: string;
}

export interface EngineInstances {
  /** Runs one request on a single-use instance (the spare when there is one); stdout or a RenderError. */
  run(request: WasmRequest, options: WasmRunOptions, errors: WasmErrors): Promise<Uint8Array>;
  /** Stops the spare, if any (the next run starts its instance itself, and leaves a new spare). */
  release(): Promise<void>;
}

/**
 * An engine's instances (imperative shell). Every run is a fresh instance with fresh directories,
 * used once and stopped; what changes is when it starts: after each run a replacement is started
 * and initialises while nothing waits for it (a spare: Go's runtime and package initialisation
 * done, blocked in signet.await_request, its /src and /req empty). The next run writes the tree
 * and the request into it and lets it go, so the start-up is off its critical path. One spare per
 * engine, released after `spareIdleMs` unused. Callers serialise runs (runExclusive).
 */
export function engineInstances(
  load: () => Promise<LoadedModule>,
  config: EngineInstanceConfig,
): EngineInstances {
  const idleMs = config.spareIdleMs ?? defaultSpareIdleMs;
  let spare: Promise<EngineInstance | undefined> | undefined;
  let idleTimer: NodeJS.Timeout | undefined;

  const release = async (): Promise<void> => {
    clearTimeout(idleTimer);
    const pending = spare;
    spare = undefined;
    const instance = await pending;
    if (instance === undefined) return;
    await disposeInstance(instance);
    config.observeSpare?.('released');
  };

  const replenish = (module: CompiledModule): void => {
    if (idleMs <= 0) return;
    const starting = startInstance(module, config).then(
      (instance) => {
        void instance.ready.then(() => {
          if (!instance.state.ended) config.observeSpare?.('ready');
        });
        return instance;
      },
      () => undefined,
    );
    spare = starting;
    idleTimer = setTimeout(() => {
      if (spare === starting) void release();
    }, idleMs);
    idleTimer.unref();
  };

  const take = async (module: CompiledModule): Promise<EngineInstance> => {
    clearTimeout(idleTimer);
    const pending = spare;
    spare = undefined;
    const instance = await pending;
    if (instance !== undefined && !instance.state.ended) return instance;
    if (instance !== undefined) await disposeInstance(instance);
    return startInstance(module, config);
  };

  return {
    release,
    async run(request, options, errors) {
      options.signal?.throwIfAborted();
      const { module } = await load();
      let instance: EngineInstance;
      try {
        instance = await take(module);
      } catch (cause) {
        throw new RenderError(errors.failed, `starting the ${engineName(errors)} engine: ${String(cause)}`);
      }
      try {
        await writeTree(instance.src, request.tree, errors);
        for (const [name, content] of Object.entries(request.request ?? {}))
          await fs.promises.writeFile(join(instance.req, name), content, { mode: 0o600 });
        await fs.promises.writeFile(join(instance.req, 'args.json'), JSON.stringify(request.args), {
          mode: 0o600,
        });
        return await execute(instance, request.subject, options, errors);
      } finally {
        await disposeInstance(instance);
        replenish(module);
      }
    },
  };
}

/** Lets the instance run its request; resolves to stdout, or throws a RenderError with stderr's first 4 KiB. */
async function execute(
  instance: EngineInstance,
  subject: string | undefined,
  options: WasmRunOptions,
  errors: WasmErrors,
): Promise<Uint8Array> {
  const stdout = join(instance.out, 'stdout');
  const end = await watchRun(instance, stdout, options, errors);
  if (end.kind === 'crashed') {
    throw new RenderError(
      errors.failed,
      `the ${engineName(errors)} engine failed: ${end.error.message}`,
      {},
      end.error,
    );
  }
  if (end.kind === 'stopped') {
    throw new RenderError(
      errors.failed,
      `the ${engineName(errors)} engine stopped (exit ${end.exitCode}) before it finished`,
    );
  }
  if (end.code !== 0) {
    const named = subject === undefined ? '' : ` ${subject}`;
    throw new RenderError(
      errors.failed,
      `${errors.label}${named}: ${await errorText(join(instance.out, 'stderr'), instance.src)}`,
    );
  }
  const stat = await fs.promises.stat(stdout);
  if (stat.size > options.maxOutputBytes) throw tooLarge(errors, options);
  return new Uint8Array(await fs.promises.readFile(stdout));
}

function tooLarge(errors: WasmErrors, options: WasmRunOptions): RenderError {
  return new RenderError(errors.tooLarge, `${errors.label} wrote more than ${options.maxOutputBytes} bytes`);
}

async function errorText(path: string, root: string): Promise<string> {
  const handle = await fs.promises.open(path, 'r');
  try {
    const buffer = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    // A Go runtime fatal error (out of memory) is followed by goroutine dumps: keep its message.
    const dump = text.indexOf('\ngoroutine ');
    return (dump >= 0 ? text.slice(0, dump) : text)
      .trim()
      .replaceAll(`${root}/`, '')
      .replaceAll(`${sandboxRoot}/`, '')
      .replaceAll(`${requestRoot}/`, '');
  } finally {
    await handle.close();
  }
}

/**
 * Signals the instance to run and waits for its end, bounded by the timeout (from now: a spare's
 * start-up is not counted), the caller's AbortSignal and the output size (the stdout file is watched).
 */
function watchRun(
  instance: EngineInstance,
  stdout: string,
  options: WasmRunOptions,
  errors: WasmErrors,
): Promise<InstanceEnd> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, end?: InstanceEnd): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watcher);
      options.signal?.removeEventListener('abort', onAbort);
      if (error === undefined && end !== undefined) resolve(end);
      else reject(error);
    };
    const timer = setTimeout(
      () =>
        finish(
          new RenderError(errors.timeout, `${errors.label} did not finish within ${options.timeoutMs} ms`),
        ),
      options.timeoutMs,
    );
    const watcher = setInterval(() => {
      fs.stat(stdout, (error, stat) => {
        if (error === null && stat.size > options.maxOutputBytes) finish(tooLarge(errors, options));
      });
    }, 50);
    const onAbort = (): void =>
      finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    void instance.ended.then((end) => finish(undefined, end));
    signal(instance, controlRun);
  });
}
