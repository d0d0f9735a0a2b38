// The operator as a separate OS process (`bin/signet run ...` or `node <tree>/dist/cli/main.js run`),
// as it runs in a pod: its JSON log lines collected, its /metrics scraped, signals sent to it.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { repoRoot } from './controlplane.ts';
import { waitFor } from './kube.ts';
import { openLogSink } from './secret-scan.ts';

export class OperatorProcessError extends Error {
  readonly code: 'OPERATOR_PROCESS_FAILED' | 'BUILD_FAILED';
  readonly output: string;
  constructor(code: OperatorProcessError['code'], message: string, output: string) {
    super(`${message}\n--- output (last 4000 chars) ---\n${output.slice(-4_000)}`);
    this.name = 'OperatorProcessError';
    this.code = code;
    this.output = output;
  }
}

export interface LogLine {
  readonly level?: number;
  readonly msg?: string;
  readonly gitrepository?: string;
  readonly [key: string]: unknown;
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  /** Every stdout/stderr line, raw. */
  readonly lines: string[];
  /** stdout lines that parsed as JSON log records. */
  readonly logs: LogLine[];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Port of /metrics, from the 'signet operator running' log line (waits for it). */
  metricsPort(timeoutMs?: number): Promise<number>;
  /** Scrapes /metrics. */
  metrics(): Promise<string>;
  /** Sends a signal and waits for the exit (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: string | null }>;
}

export interface SignetRunArgs {
  readonly kubeconfig: string;
  readonly cacheDir: string;
  /** --namespace: only this namespace's GitRepositories. */
  readonly namespace?: string;
  /** Further flags, appended as given. */
  readonly extra?: readonly string[];
}

/** `signet run` arguments as tests and benches start it: /metrics and /healthz on ephemeral loopback ports. */
export function signetRunArgs(options: SignetRunArgs): string[] {
  return [
    'run',
    '--kubeconfig',
    options.kubeconfig,
    ...(options.namespace === undefined ? [] : ['--namespace', options.namespace]),
    '--metrics-addr',
    '127.0.0.1:0',
    '--health-addr',
    '127.0.0.1:0',
    '--cache-dir',
    options.cacheDir,
    ...(options.extra ?? []),
  ];
}

/** Starts `command args` and collects its output; the process is killed if `signal` aborts. */
export function startOperatorProcess(
  command: string,
  args: readonly string[],
  options: {
    env?: Record<string, string>;
    /** Start from an empty environment (only `env`), as a container would. */
    cleanEnv?: boolean;
    cwd?: string;
    uid?: number;
    gid?: number;
    signal?: AbortSignal;
    logPath?: string;
  } = {},
): OperatorProcess {
  const child = spawn(command, [...args], {
    cwd: options.cwd ?? repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...(options.cleanEnv ? {} : process.env), SIGNET_LOG_LEVEL: 'debug', ...options.env },
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
    ...(options.signal === undefined ? {} : { signal: options.signal, killSignal: 'SIGKILL' }),
  });
  const lines: string[] = [];
  const logs: LogLine[] = [];
  // Every line, stdout and stderr, also goes to a sink of the suite-wide secret scan.
  const sink = openLogSink(`process-${basename(command)}-${args[0] ?? ''}`);
  const collect = (parse: boolean) => {
    let pending = '';
    const flush = () => {
      if (pending !== '') sink.append(`${pending}\n`);
    };
    const onData = (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        sink.append(`${line}\n`);
        if (!parse) continue;
        try {
          const parsed = JSON.parse(line) as unknown;
          if (typeof parsed === 'object' && parsed !== null) logs.push(parsed as LogLine);
        } catch {
          // not a log record
        }
      }
    };
    return { onData, flush };
  };
  const stdout = collect(true);
  const stderr = collect(false);
  child.stdout?.setEncoding('utf8').on('data', stdout.onData);
  child.stderr?.setEncoding('utf8').on('data', stderr.onData);
  // A last line without '\n' (a crash message) is scanned too.
  child.stdout?.on('end', stdout.flush);
  child.stderr?.on('end', stderr.flush);
  if (options.logPath !== undefined) {
    // Kept after the test for post-mortems (.signet/ is not committed).
    mkdirSync(dirname(options.logPath), { recursive: true });
    const file = createWriteStream(options.logPath);
    child.stdout?.pipe(file, { end: false });
    child.stderr?.pipe(file, { end: false });
    child.once('exit', () => file.end());
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', () => resolveExit({ code: null, signal: null }));
  });
  let exitedYet = false;
  void exited.then(() => {
    exitedYet = true;
  });
  const running: OperatorProcess = {
    child,
    lines,
    logs,
    exited,
    async metricsPort(timeoutMs = 60_000) {
      return waitFor(
        () => {
          if (exitedYet) {
            throw new OperatorProcessError(
              'OPERATOR_PROCESS_FAILED',
              `${command} exited before it was running`,
              lines.join('\n'),
            );
          }
          const line = logs.find((l) => l.msg === 'signet operator running');
          return (line?.ports as { metrics?: number } | undefined)?.metrics;
        },
        { timeoutMs, description: `${command} ${args[0] ?? ''} to start` },
      ).catch((error: unknown) => {
        if (error instanceof Error && 'lastError' in error && error.lastError instanceof OperatorProcessError)
          throw error.lastError;
        throw error;
      });
    },
    async metrics() {
      const port = await running.metricsPort();
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
        signal: AbortSignal.timeout(5_000),
      });
      return response.text();
    },
    async stop(signalName = 'SIGTERM', timeoutMs = 30_000) {
      if (!exitedYet) child.kill(signalName);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return running;
}

/** Sum of `signet_reconciles_total` over all results in a /metrics text. */
export function reconcilesTotal(metricsText: string): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    const match = /^signet_reconciles_total(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] !== undefined) total += Number(match[1]);
  }
  return total;
}

/** Value of the `signet_leader` gauge in a /metrics text. */
export function leaderGauge(metricsText: string): number | undefined {
  const match = /^signet_leader (\S+)$/m.exec(metricsText);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** GitRepository keys (`ns/name`) this process logged 'revision applied' for. */
export function appliedRepositories(logs: readonly LogLine[]): string[] {
  return [
    ...new Set(logs.filter((l) => l.msg === 'revision applied').map((l) => String(l.gitrepository))),
  ].sort();
}

async function newestMtime(dir: string): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return newest;
}

/** `make build` equivalent, only when dist/ is missing or older than src/ (bin/signet runs dist/). */
export async function ensureBuilt(signal: AbortSignal = AbortSignal.timeout(300_000)): Promise<string> {
  const main = join(repoRoot, 'dist', 'cli', 'main.js');
  const built = await stat(main).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built === 0 || (await newestMtime(join(repoRoot, 'src'))) > built) {
    const tsc = join(repoRoot, 'node_modules', '.bin', 'tsc');
    const build = startOperatorProcess(tsc, ['-p', 'tsconfig.build.json'], { signal });
    const result = await build.exited;
    if (result.code !== 0)
      throw new OperatorProcessError(
        'BUILD_FAILED',
        'tsc -p tsconfig.build.json failed',
        build.lines.join('\n'),
      );
  }
  return join(repoRoot, 'bin', 'signet');
}
