/**
 * The Kustomize engine and the reference `kustomize` CLI for tests: hack/kustomize/build.sh builds
 * them from Go modules into ~/.cache/signet on first use (minutes) and reuses them afterwards.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Time a test file's beforeAll allows for a first build. */
export const kustomizeBuildTimeoutMs = 900_000;

export interface KustomizeBinaries {
  readonly dir: string;
  readonly engine: string;
  /** The native engine, confined by Landlock (hack/kustomize/engine/landlock_linux.go). */
  readonly native: string;
  readonly cli: string;
}

let built: Promise<KustomizeBinaries> | undefined;

export function ensureKustomize(): Promise<KustomizeBinaries> {
  built ??= (async () => {
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', 'PATH="$(hack/go.sh):$PATH" exec hack/kustomize/build.sh all'],
      { cwd: repoRoot, timeout: kustomizeBuildTimeoutMs, maxBuffer: 1024 * 1024 },
    );
    const dir = stdout.trim().split('\n').pop() ?? '';
    return {
      dir,
      engine: join(dir, 'kustomize-engine.wasm'),
      native: join(dir, 'kustomize-engine'),
      cli: join(dir, 'kustomize'),
    };
  })();
  return built;
}
