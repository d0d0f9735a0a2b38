// Decides whether a KUBECONFIG from the environment points at a live API server.
import { existsSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { Health, KubeConfig } from '@kubernetes/client-node';

/**
 * Returns the absolute path of the first file in `kubeconfigEnv` (a KUBECONFIG-style list) when
 * its current context answers /readyz; otherwise undefined.
 */
export async function liveKubeconfigFromEnv(
  kubeconfigEnv: string | undefined,
  signal: AbortSignal,
): Promise<string | undefined> {
  const first = kubeconfigEnv?.split(delimiter).find((entry) => entry.length > 0);
  if (!first) return undefined;
  const path = resolve(first);
  if (!existsSync(path)) return undefined;
  try {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(path);
    return (await new Health(kubeConfig).readyz({ signal })) ? path : undefined;
  } catch {
    return undefined;
  }
}
