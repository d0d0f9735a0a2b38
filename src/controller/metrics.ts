import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of the operator, on one injected registry (no global state). */
export interface OperatorMetrics {
  readonly registry: Registry;
  readonly reconcileDuration: Histogram<'result'>;
  readonly reconcilesTotal: Counter<'result'>;
  readonly verificationFailuresTotal: Counter<'reason'>;
  readonly managedObjects: Gauge<'namespace' | 'name'>;
  readonly driftEventsTotal: Counter<'mode' | 'kind'>;
  readonly queueDepth: Gauge;
  readonly leader: Gauge;
  readonly kustomizeEngine: Gauge<'engine'>;
}

export function createOperatorMetrics(registry: Registry = new Registry()): OperatorMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'signet_process_' });
  return {
    registry,
    reconcileDuration: new Histogram({
      name: 'signet_reconcile_duration_seconds',
      help: 'Duration of GitRepository reconciles, by result.',
      labelNames: ['result'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    reconcilesTotal: new Counter({
      name: 'signet_reconciles_total',
      help: 'GitRepository reconciles, by result (applied, unchanged, rejected, failed, suspended).',
      labelNames: ['result'],
      registers: [registry],
    }),
    verificationFailuresTotal: new Counter({
      name: 'signet_verification_failures_total',
      help: 'Revisions refused by verification, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    managedObjects: new Gauge({
      name: 'signet_managed_objects',
      help: 'Objects in the inventory of each GitRepository.',
      labelNames: ['namespace', 'name'],
      registers: [registry],
    }),
    driftEventsTotal: new Counter({
      name: 'signet_drift_events_total',
      help: 'Out-of-band changes to managed objects, by drift mode and object kind.',
      labelNames: ['mode', 'kind'],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'signet_workqueue_depth',
      help: 'GitRepository keys waiting or being reconciled.',
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'signet_leader',
      help: '1 when this replica holds the leader lease (or runs without leader election).',
      registers: [registry],
    }),
    kustomizeEngine: new Gauge({
      name: 'signet_kustomize_engine_info',
      help: 'The Kustomize engine this process builds with: 1 for native-landlock or wasm (docs/kustomize.md).',
      labelNames: ['engine'],
      registers: [registry],
    }),
  };
}
