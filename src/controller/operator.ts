/**
 * The controller process (`signet run`): a watch on GitRepositories feeding a keyed work queue,
 * the reconciler, the live-object cache feeding drift handling, leader election, and the
 * metrics/health server. Only the leader reconciles and reverts; followers keep warm caches.
 */

import type { Server } from 'node:http';
import { hostname } from 'node:os';
import {
  apiVersion as gitRepositoryApiVersion,
  gitRepositoryKind,
  requestedAtAnnotation,
  shardLabel,
} from '../api/gitrepository.ts';
import type { KubeClient } from '../kube/client.ts';
import { loadKubeClient, serviceAccountImpersonation } from '../kube/load.ts';
import { resourceListWatch } from '../kube/watch.ts';
import type { KubeObject } from '../render/object.ts';
import { backoffDelay, jitterInterval } from '../util/backoff.ts';
import type { Logger } from '../util/logger.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { Informer, type LiveObject } from '../watch/informer.ts';
import { createAlerter } from './alerter.ts';
import { DriftHandler } from './drift.ts';
import { createEventRecorder } from './events.ts';
import { startProbeServer } from './http-server.ts';
import {
  defaultLeaseTimings,
  describeStepDown,
  LeaderElector,
  type LeaseRecord,
  type LeaseStore,
} from './leader.ts';
import { LiveCache } from './live-cache.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import type { SourcePort } from './ports.ts';
import { ReconcileAbortedError, Reconciler } from './reconciler.ts';
import { KeyedWorkQueue } from './work-queue.ts';

export interface OperatorOptions {
  readonly kubeconfig?: string;
  readonly namespace?: string;
  readonly concurrent: number;
  readonly applyConcurrency: number;
  readonly metricsAddress?: string;
  readonly healthAddress?: string;
  readonly leaderElect: boolean;
  readonly leaseNamespace: string;
  readonly leaseName: string;
  readonly shard?: string;
  readonly defaultServiceAccount?: string;
  readonly clusterName: string;
  readonly userAgent: string;
  readonly maxObjects: number;
  readonly alertBatchWindowMs?: number;
  /** Slack alerts held per GitRepository while undelivered; more are dropped and counted. Default 1,000. */
  readonly maxQueuedAlerts?: number;
  readonly identity?: string;
  readonly leaseTimings?: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
}

export interface RunningOperator {
  readonly metrics: OperatorMetrics;
  readonly reconciler: Reconciler;
  readonly admin: KubeClient;
  readonly ports: { metrics?: number; health?: number };
  isLeader(): boolean;
  /** Graceful stop: finish in-flight work (up to `graceMs`), release the lease, close clients. */
  stop(graceMs?: number): Promise<void>;
}

function keyOf(object: Pick<LiveObject, 'metadata'>): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

/** Asks the API server who this client is (SelfSubjectReview), for Deny policies. */
async function whoAmI(client: KubeClient, signal: AbortSignal): Promise<string> {
  const response = await client.request({
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
    signal,
    timeoutMs: 10_000,
  });
  if (response.status >= 300) throw new Error(`SelfSubjectReview answered ${response.status}`);
  const parsed = JSON.parse(response.body) as { status?: { userInfo?: { username?: string } } };
  const username = parsed.status?.userInfo?.username;
  if (username === undefined) throw new Error('SelfSubjectReview returned no username');
  return username;
}

/** `<action> lease <ns>/<name>: HTTP <status>: <the API server's message>` (the message says what was wrong). */
function leaseError(
  action: string,
  namespace: string,
  name: string,
  response: { status: number; body: string },
) {
  let message = '';
  try {
    message = String((JSON.parse(response.body) as { message?: unknown }).message ?? '');
  } catch {
    message = response.body.slice(0, 200);
  }
  return new Error(
    `${action} lease ${namespace}/${name}: HTTP ${response.status}${message === '' ? '' : `: ${message}`}`,
  );
}

function leaseStore(client: KubeClient, namespace: string, name: string): LeaseStore {
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  return {
    async get(signal) {
      const response = await client.request({
        method: 'GET',
        path: `${path}/${encodeURIComponent(name)}`,
        signal,
        timeoutMs: 5_000,
      });
      if (response.status === 404) return undefined;
      if (response.status >= 300) throw leaseError('reading', namespace, name, response);
      const lease = JSON.parse(response.body) as {
        spec?: LeaseRecord;
        metadata: { resourceVersion: string };
      };
      return { spec: lease.spec ?? {}, resourceVersion: lease.metadata.resourceVersion };
    },
    async create(spec, signal) {
      const response = await client.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec,
        }),
        signal,
        timeoutMs: 5_000,
      });
      if (response.status === 409) return false;
      if (response.status >= 300) throw leaseError('creating', namespace, name, response);
      return true;
    },
    async update(spec, resourceVersion, signal) {
      const response = await client.request({
        method: 'PUT',
        path: `${path}/${encodeURIComponent(name)}`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace, resourceVersion },
          spec,
        }),
        signal,
        timeoutMs: 5_000,
      });
      if (response.status === 409) return false;
      if (response.status >= 300) throw leaseError('updating', namespace, name, response);
      return true;
    },
  };
}

export async function startOperator(
  options: OperatorOptions,
  source: SourcePort,
  logger: Logger,
): Promise<RunningOperator> {
  const metrics = createOperatorMetrics();
  const admin = await loadKubeClient({
    ...(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig }),
    userAgent: options.userAgent,
  });
  const identity = options.identity ?? `${hostname()}-${process.pid}`;
  const operatorUsername = await whoAmI(admin, AbortSignal.timeout(15_000));
  logger.info(
    { username: operatorUsername, identity, shard: options.shard ?? null },
    'signet operator starting',
  );

  const impersonated = new Map<string, Promise<KubeClient>>();
  const clientAs = (namespace: string, serviceAccount: string): Promise<KubeClient> => {
    const key = `${namespace}/${serviceAccount}`;
    let client = impersonated.get(key);
    if (client === undefined) {
      client = loadKubeClient({
        ...(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig }),
        userAgent: options.userAgent,
        impersonate: serviceAccountImpersonation(namespace, serviceAccount),
      });
      impersonated.set(key, client);
    }
    return client;
  };

  const alerter = createAlerter({
    client: admin,
    clusterName: options.clusterName,
    registry: metrics.registry,
    logger,
    ...(options.alertBatchWindowMs === undefined ? {} : { batchWindowMs: options.alertBatchWindowMs }),
    ...(options.maxQueuedAlerts === undefined ? {} : { maxQueuedAlerts: options.maxQueuedAlerts }),
  });
  const events = createEventRecorder({ client: admin, instance: identity, logger });
  let leading = !options.leaderElect;
  /** Aborts when this replica stops leading (never without --leader-elect); reconciles and drift reverts run under it. */
  let leadership: AbortSignal = new AbortController().signal;
  let elector: LeaderElector | undefined;
  /** Fencing before a write: a leader past its renew deadline steps down here (see LeaderElector.fence). */
  const stillLeading = (): boolean => {
    elector?.fence();
    return leading;
  };

  const pendingDrift = new Map<string, Set<string>>();
  const queueDrift = (key: string, id: string): void => {
    if (reconciler.managedState(key) === undefined) return;
    let ids = pendingDrift.get(key);
    if (ids === undefined) {
      ids = new Set();
      pendingDrift.set(key, ids);
    }
    ids.add(id);
    driftQueue.add(key);
  };
  const liveCache = new LiveCache({
    logger,
    onManagedChange: (change) => queueDrift(`${change.owner.namespace}/${change.owner.name}`, change.id),
  });

  const reconciler: Reconciler = new Reconciler({
    admin,
    clientAs,
    source,
    liveCache,
    events,
    alerter,
    metrics,
    logger,
    trustCache: createTrustMaterialCache(),
    now: () => new Date(),
    fence: stillLeading,
    options: {
      fieldManager: 'signet',
      applyConcurrency: options.applyConcurrency,
      operatorUsername,
      maxObjects: options.maxObjects,
      cacheSyncTimeoutMs: 15_000,
      ...(options.defaultServiceAccount === undefined
        ? {}
        : { defaultServiceAccount: options.defaultServiceAccount }),
    },
  });

  const drift = new DriftHandler({
    liveCache,
    events,
    alerter,
    metrics,
    logger,
    fieldManager: 'signet',
    requeue: queueDrift,
    writeDriftStatus: (state, objects, signal) =>
      reconciler.writeDriftStatus(
        state,
        repos.get(state.key)?.status as Record<string, unknown> | undefined,
        objects,
        signal,
      ),
  });

  const failures = new Map<string, number>();
  const queue: KeyedWorkQueue = new KeyedWorkQueue({
    concurrency: options.concurrent,
    handler: async (key, queueSignal) => {
      metrics.queueDepth.set(queue.depth);
      if (!stillLeading()) return;
      const object = repos.get(key);
      if (object === undefined) {
        reconciler.forget(key);
        drift.forget(key);
        failures.delete(key);
        await alerter.forget(key);
        return;
      }
      const signal = AbortSignal.any([queueSignal, leadership]);
      try {
        const outcome = await reconciler.reconcile(object as unknown as KubeObject, signal);
        if (outcome.failed) {
          const count = (failures.get(key) ?? 0) + 1;
          failures.set(key, count);
          queue.addAfter(key, backoffDelay(count, { baseMs: 2_000, maxMs: 5 * 60_000 }));
        } else {
          failures.delete(key);
          if (outcome.requeueAfterMs !== undefined)
            queue.addAfter(key, jitterInterval(outcome.requeueAfterMs));
        }
      } catch (error) {
        if (error instanceof ReconcileAbortedError || signal.aborted) return;
        throw error;
      }
    },
    onError: (key, error) =>
      logger.error(
        { gitrepository: key, err: error instanceof Error ? error.message : String(error) },
        'reconcile crashed',
      ),
  });

  const driftQueue: KeyedWorkQueue = new KeyedWorkQueue({
    concurrency: 4,
    handler: async (key, queueSignal) => {
      if (!stillLeading()) return;
      const ids = pendingDrift.get(key);
      pendingDrift.delete(key);
      const state = reconciler.managedState(key);
      if (ids === undefined || state === undefined) return;
      await drift.handle(state, ids, AbortSignal.any([queueSignal, leadership]));
    },
    onError: (key, error) =>
      logger.error(
        { gitrepository: key, err: error instanceof Error ? error.message : String(error) },
        'drift handling crashed',
      ),
  });

  const shardSelector = options.shard === undefined ? `!${shardLabel}` : `${shardLabel}=${options.shard}`;
  const repos = new Informer({
    transport: resourceListWatch(admin, {
      apiVersion: gitRepositoryApiVersion,
      kind: gitRepositoryKind,
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    }),
    labelSelector: shardSelector,
    handlers: {
      onAdd: (object) => queue.add(keyOf(object)),
      onUpdate: (object, previous) => {
        const meta = object.metadata;
        const before = previous.metadata;
        if (
          meta.generation !== before.generation ||
          meta.deletionTimestamp !== before.deletionTimestamp ||
          meta.annotations?.[requestedAtAnnotation] !== before.annotations?.[requestedAtAnnotation]
        ) {
          queue.add(keyOf(object));
        }
      },
      onDelete: (object) => queue.add(keyOf(object)),
      onError: (error, attempt) =>
        logger.warn(
          { attempt, err: error instanceof Error ? error.message : String(error) },
          'GitRepository watch failed; reconnecting',
        ),
    },
  });
  repos.start();

  const ports: { metrics?: number; health?: number } = {};
  const servers: Server[] = [];
  if (options.metricsAddress !== undefined) {
    const started = await startProbeServer({ address: options.metricsAddress, registry: metrics.registry });
    servers.push(started.server);
    ports.metrics = started.port;
  }
  if (options.healthAddress !== undefined) {
    const started = await startProbeServer({ address: options.healthAddress, isReady: () => repos.synced });
    servers.push(started.server);
    ports.health = started.port;
  }

  const stopElection = new AbortController();
  let election: Promise<void> | undefined;
  const enqueueAll = () => {
    for (const object of repos.list()) queue.add(keyOf(object));
  };
  if (options.leaderElect) {
    elector = new LeaderElector({
      store: leaseStore(admin, options.leaseNamespace, options.leaseName),
      identity,
      ...(options.leaseTimings ?? defaultLeaseTimings),
      onStartedLeading: (signal) => {
        leading = true;
        leadership = signal;
        metrics.leader.set(1);
        logger.info({ identity }, 'became leader');
        void repos.waitForSync(60_000).then(enqueueAll, () => undefined);
      },
      onStoppedLeading: (stepDown) => {
        // The elector has aborted the leadership signal already: in-flight reconciles and drift
        // reverts stop before their next request.
        leading = false;
        // What this replica last applied may be overtaken by the new leader: re-render on return.
        reconciler.forgetAll();
        metrics.leader.set(0);
        if (stepDown.reason === 'stopped') logger.info({ identity }, 'stepped down: releasing the lease');
        else
          logger.warn(
            {
              identity,
              reason: stepDown.reason,
              ...(stepDown.reason === 'held-by-another' ? { holder: stepDown.holder } : {}),
              detail: describeStepDown(stepDown),
            },
            'lost leadership: stopped reconciling',
          );
      },
      onError: (error) =>
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'leader election error'),
    });
    election = elector.run(stopElection.signal);
  } else {
    metrics.leader.set(1);
  }
  await repos
    .waitForSync(60_000)
    .catch((error: unknown) => logger.warn({ err: String(error) }, 'GitRepository cache not synced yet'));

  return {
    metrics,
    reconciler,
    admin,
    ports,
    isLeader: () => leading,
    async stop(graceMs = 20_000) {
      await Promise.all([queue.shutdown(graceMs), driftQueue.shutdown(graceMs)]);
      stopElection.abort();
      await election;
      await alerter.flush(AbortSignal.timeout(Math.min(graceMs, 5_000))).catch(() => undefined);
      await alerter.close();
      await repos.stop();
      await liveCache.stop();
      await Promise.all(
        servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
      );
      for (const client of impersonated.values()) await (await client).close();
      await admin.close();
    },
  };
}
