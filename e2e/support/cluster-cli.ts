// `make cluster-up` / `make cluster-down`: a long-lived local control plane in .signet/cluster.
//   node e2e/support/cluster-cli.ts up     start (or reuse) it; last stdout line: export KUBECONFIG=<path>
//   node e2e/support/cluster-cli.ts down   stop its processes by pid and remove the state
import { defaultStateDir, startControlPlane, stopControlPlaneAt } from './controlplane.ts';

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const startedAt = Date.now();
      const plane = await startControlPlane({
        stateDir: defaultStateDir,
        signal: AbortSignal.timeout(60 * 60_000),
      });
      const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
      process.stderr.write(
        `[cluster] ${plane.reused ? 'reusing running' : 'started'} control plane at ${plane.server} in ${seconds}s ` +
          `(etcd pid ${plane.pidOf('etcd')}, kube-apiserver pid ${plane.pidOf('kube-apiserver')}, ` +
          `kube-controller-manager pid ${plane.pidOf('kube-controller-manager')}; logs in ${plane.logDir})\n`,
      );
      process.stdout.write(`export KUBECONFIG=${plane.kubeconfigPath}\n`);
      return 0;
    }
    case 'down':
      await stopControlPlaneAt(defaultStateDir);
      process.stderr.write(`[cluster] stopped; removed ${defaultStateDir}\n`);
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
