// vitest globalSetup for the e2e project: one real control plane per test run, and the run's
// secret-scan directory (e2e/support/secret-scan.ts).
// If KUBECONFIG points at a live API server it is used as is (and left running);
// otherwise a fresh plane is started in .signet/e2e/<pid> and always torn down.
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type ControlPlane, reapOrphanedPlanes, repoRoot, startControlPlane } from './controlplane.ts';
import { liveKubeconfigFromEnv } from './live-kubeconfig.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of an admin kubeconfig for the run's API server. */
    kubeconfigPath: string;
    /** Absolute path of this run's secret-scan directory (registered secrets and log sinks). */
    secretScanDir: string;
  }
}

const runsDir = join(repoRoot, '.signet', 'e2e');
const scanRunsDir = join(repoRoot, '.signet', 'e2e-scan');
/** Scan directories of earlier runs are kept this long for post-mortems (a run can take an hour). */
const scanDirMaxAgeMs = 24 * 60 * 60_000;

/**
 * This run's directory for the suite-wide secret scan (e2e/support/secret-scan.ts), named so that
 * runs sort by start time. Directories of runs older than a day are removed; a run still going on
 * in the same tree (several people share it) is never touched.
 */
async function newScanDir(): Promise<string> {
  await mkdir(scanRunsDir, { recursive: true });
  for (const old of await readdir(scanRunsDir)) {
    const path = join(scanRunsDir, old);
    const modified = await stat(path).then(
      (s) => s.mtimeMs,
      () => Date.now(),
    );
    if (Date.now() - modified > scanDirMaxAgeMs) await rm(path, { recursive: true, force: true });
  }
  const dir = join(scanRunsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  project.provide('secretScanDir', await newScanDir());
  const external = await liveKubeconfigFromEnv(process.env.KUBECONFIG, AbortSignal.timeout(10_000));
  if (external) {
    project.provide('kubeconfigPath', external);
    return async () => {};
  }
  // Planes of earlier runs that died before their teardown.
  await reapOrphanedPlanes(runsDir);
  // First use builds the binaries (minutes), hence the long deadline.
  const plane: ControlPlane = await startControlPlane({
    stateDir: join(runsDir, String(process.pid)),
    reuse: false,
    ownerPid: process.pid,
    signal: AbortSignal.timeout(60 * 60_000),
  });
  project.provide('kubeconfigPath', plane.kubeconfigPath);
  return async () => {
    await plane.stop();
  };
}
