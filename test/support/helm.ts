/**
 * The Helm engine and the reference `helm` CLI for tests: hack/helm/build.sh builds them from Go
 * modules into ~/.cache/signet on first use (many minutes) and reuses them afterwards.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Time a test file's beforeAll allows for a first build. */
export const helmBuildTimeoutMs = 1_800_000;

export interface HelmBinaries {
  readonly dir: string;
  readonly engine: string;
  readonly cli: string;
}

let built: Promise<HelmBinaries> | undefined;

export function ensureHelm(): Promise<HelmBinaries> {
  built ??= (async () => {
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', 'PATH="$(hack/go.sh):$PATH" exec hack/helm/build.sh all'],
      { cwd: repoRoot, timeout: helmBuildTimeoutMs, maxBuffer: 1024 * 1024 },
    );
    const dir = stdout.trim().split('\n').pop() ?? '';
    return { dir, engine: join(dir, 'helm-engine.wasm'), cli: join(dir, 'helm') };
  })();
  return built;
}
