// vitest globalSetup for the e2e project: one real control plane per test run.
// If KUBECONFIG points at a live API server it is used as is (and left running);
// otherwise a fresh plane is started in .signet/e2e/<pid> and always torn down.
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type ControlPlane, reapOrphanedPlanes, repoRoot, startControlPlane } from './controlplane.ts';
import { liveKubeconfigFromEnv } from './live-kubeconfig.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of an admin kubeconfig for the run's API server. */
    kubeconfigPath: string;
  }
}

const runsDir = join(repoRoot, '.signet', 'e2e');

export async function setup(project: TestProject): Promise<() => Promise<void>> {
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
