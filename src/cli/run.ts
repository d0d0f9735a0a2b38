import { parseArgs } from 'node:util';
import { startOperator } from '../controller/operator.ts';
import { createGitSource } from '../controller/source-adapter.ts';
import { createLogger } from '../util/logger.ts';
import { imageLimitOptions, imageLimitsOf, imageLimitUsage } from './image-limits.ts';
import { sourceLimitOptions, sourceLimitsOf, sourceLimitUsage } from './source-limits.ts';
import { readVersionInfo } from './version.ts';

export const runUsage = `Usage: signet run [flags]

Runs the Signet controller against the cluster of the kubeconfig (or in-cluster config).

Flags:
  --kubeconfig <path>               kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --namespace <ns>                  watch GitRepositories in one namespace only (default: all)
  --concurrent <n>                  GitRepositories reconciled in parallel (default 4)
  --apply-concurrency <n>           server-side applies in flight per reconcile (default 64)
  --metrics-addr <host:port>        Prometheus /metrics (default :8080; "0" disables)
  --health-addr <host:port>         /healthz and /readyz (default :8081; "0" disables)
  --leader-elect                    elect a leader on a Lease before reconciling
  --lease-namespace <ns>            namespace of the Lease (default $POD_NAMESPACE or signet-system)
  --lease-name <name>               name of the Lease (default signet-leader, signet-leader-<shard> with --shard)
  --shard <key>                     reconcile only GitRepositories labelled signet.dev/shard=<key>
                                    (without it: only those without the label)
  --default-service-account <name>  tenant mode: impersonate this ServiceAccount of the GitRepository's
                                    namespace when spec.serviceAccountName is empty
  --cluster-name <name>             cluster name in alerts (default "kubernetes")
  --cache-dir <dir>                 Git cache (default $SIGNET_CACHE_DIR or ~/.cache/signet/git)
  --max-objects <n>                 most objects one revision may hold (default 10000)
  --alert-batch-window <ms>         Slack alerts of one GitRepository and kind batched this long (default 2000)
  --max-queued-alerts <n>           Slack alerts held per GitRepository while undelivered (receiver down);
                                    further ones are dropped and counted in signet_alerts_dropped_total
                                    (default 1000)
${sourceLimitUsage}${imageLimitUsage}  -h, --help                        show this help
`;

function optionalAddress(value: string | undefined, fallback: string): string | undefined {
  const address = value ?? fallback;
  return address === '0' || address === '' ? undefined : address;
}

export async function runCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      concurrent: { type: 'string', default: '4' },
      'apply-concurrency': { type: 'string', default: '64' },
      'metrics-addr': { type: 'string' },
      'health-addr': { type: 'string' },
      'leader-elect': { type: 'boolean', default: false },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string' },
      shard: { type: 'string' },
      'default-service-account': { type: 'string' },
      'cluster-name': { type: 'string', default: 'kubernetes' },
      'cache-dir': { type: 'string' },
      'max-objects': { type: 'string', default: '10000' },
      'alert-batch-window': { type: 'string' },
      'max-queued-alerts': { type: 'string' },
      ...sourceLimitOptions,
      ...imageLimitOptions,
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(runUsage);
    return 0;
  }
  const logger = createLogger();
  const positive = (name: string, text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  const cacheDir =
    values['cache-dir'] ?? process.env.SIGNET_CACHE_DIR ?? `${process.env.HOME ?? '/tmp'}/.cache/signet/git`;
  const version = readVersionInfo().version;
  const leaseNamespace = values['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'signet-system';
  const operator = await startOperator(
    {
      ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
      ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
      concurrent: positive('concurrent', values.concurrent),
      applyConcurrency: positive('apply-concurrency', values['apply-concurrency']),
      ...(optionalAddress(values['metrics-addr'], ':8080') === undefined
        ? {}
        : { metricsAddress: optionalAddress(values['metrics-addr'], ':8080') as string }),
      ...(optionalAddress(values['health-addr'], ':8081') === undefined
        ? {}
        : { healthAddress: optionalAddress(values['health-addr'], ':8081') as string }),
      leaderElect: values['leader-elect'],
      leaseNamespace,
      leaseName:
        values['lease-name'] ??
        (values.shard === undefined ? 'signet-leader' : `signet-leader-${values.shard}`),
      ...(values.shard === undefined ? {} : { shard: values.shard }),
      ...(values['default-service-account'] === undefined
        ? {}
        : { defaultServiceAccount: values['default-service-account'] }),
      clusterName: values['cluster-name'],
      userAgent: `signet/${version}`,
      maxObjects: positive('max-objects', values['max-objects']),
      ...(values['alert-batch-window'] === undefined
        ? {}
        : { alertBatchWindowMs: positive('alert-batch-window', values['alert-batch-window']) }),
      ...(values['max-queued-alerts'] === undefined
        ? {}
        : { maxQueuedAlerts: positive('max-queued-alerts', values['max-queued-alerts']) }),
      imageLimits: imageLimitsOf(values),
      ...(process.env.POD_NAME === undefined ? {} : { identity: process.env.POD_NAME }),
    },
    createGitSource({ cacheDir, logger, limits: sourceLimitsOf(values) }),
    logger,
  );
  logger.info({ ports: operator.ports }, 'signet operator running');
  await new Promise<void>((resolve) => {
    const stop = (signalName: string) => {
      logger.info({ signal: signalName }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await operator.stop(20_000);
  logger.info('stopped');
  return 0;
}
