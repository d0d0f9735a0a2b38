/**
 * Runs a native reference binary (`kustomize`, `helm`) as a subprocess with the same bounds as the
 * WebAssembly engines (imperative shell): the timeout, the caller's AbortSignal and the output
 * size stop it; errors use the engine's codes. Only the differential tests and the benchmarks run
 * these binaries; the operator never does.
 */
import { spawn } from 'node:child_process';
import { RenderError } from './errors.ts';
import type { WasmErrors, WasmRunOptions } from './wasm-runner.ts';

export interface NativeCommand {
  readonly binary: string;
  readonly args: readonly string[];
  /** The working directory: the tree's copy (removed from error text). */
  readonly root: string;
  readonly env: Readonly<Record<string, string>>;
  /** The program's name in a spawn error (e.g. "helm"). */
  readonly program: string;
}

/** Resolves to stdout; stderr's first 4 KiB, without the tree's path, in a failure's message. */
export function runNative(
  command: NativeCommand,
  options: WasmRunOptions,
  errors: WasmErrors,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(command.binary, [...command.args], {
      cwd: command.root,
      env: { ...command.env },
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
      reject(new RenderError(errors.failed, `${command.program}: ${error.message}`, {}, error)),
    );
    child.once('close', (code, signal) => {
      if (tooLarge)
        reject(
          new RenderError(errors.tooLarge, `${errors.label} wrote more than ${options.maxOutputBytes} bytes`),
        );
      else if (signal === 'SIGTERM')
        reject(
          new RenderError(errors.timeout, `${errors.label} did not finish within ${options.timeoutMs} ms`),
        );
      else if (code !== 0)
        reject(
          new RenderError(
            errors.failed,
            `${errors.label}: ${stderr.trim().replaceAll(`${command.root}/`, '')}`,
          ),
        );
      else resolve(new Uint8Array(Buffer.concat(chunks)));
    });
  });
}
