// `make cluster-up` / `make cluster-down`: a long-lived local control plane in .signet/cluster
// (env SIGNET_CLUSTER_DIR: another state directory, e.g. for a second plane).
//   node e2e/support/cluster-cli.ts up     start (or reuse) it; last stdout line: export KUBECONFIG=<path>
//   node e2e/support/cluster-cli.ts down   stop its processes by pid and remove the state
import { resolve } from 'node:path';
import { defaultStateDir, startControlPlane, stopControlPlaneAt } from './controlplane.ts';

const stateDir = process.env.SIGNET_CLUSTER_DIR ? resolve(process.env.SIGNET_CLUSTER_DIR) : defaultStateDir;

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const startedAt = Date.now();
      const plane = await startControlPlane({
        stateDir,
        signal: AbortSignal.timeout(60 * 60_000),
      });
      const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
      process.stderr.write(
        `[cluster] ${plane.reused ? 'reusing running' : 'started'} control plane at ${plane.server} in ${seconds}s ` +
          `(etcd pid ${plane.pidOf('etcd')}, kube-apiserver pid ${plane.pidOf('kube-apiserver')}, ` +
          `kube-controller-manager pid ${plane.pidOf('kube-controller-manager')}; logs in ${plane.logDir})\n` +
          `[cluster] check: curl --cacert ${plane.caCertPath} --cert ${plane.adminCertPath} ` +
          `--key ${plane.adminKeyPath} ${plane.server}/readyz\n`,
      );
      process.stdout.write(`export KUBECONFIG=${plane.kubeconfigPath}\n`);
      return 0;
    }
    case 'down':
      await stopControlPlaneAt(stateDir);
      process.stderr.write(`[cluster] stopped; removed ${stateDir}\n`);
      return 0;
    default:
      process.stderr.write('usage: node e2e/support/cluster-cli.ts up|down\n');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`[cluster] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
