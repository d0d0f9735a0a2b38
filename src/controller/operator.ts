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
import type { ImageVerificationLimits } from '../images/verify-images.ts';
import type { KubeClient } from '../kube/client.ts';
import { loadKubeClient, serviceAccountImpersonation } from '../kube/load.ts';
import { resourceListWatch } from '../kube/watch.ts';
import { sharedEngineChoice } from '../render/kustomize-select.ts';
import type { KubeObject } from '../render/object.ts';
import { backoffDelay, jitterInterval } from '../util/backoff.ts';
import type { Logger } from '../util/logger.ts';
import { MemoryReleaser } from '../util/memory.ts';
import { createTrustMaterialCache } from '../verify/trust.ts';
import { Informer, type LiveObject } from '../watch/informer.ts';
import { type Alerter, createAlerter } from './alerter.ts';
import { DenyPolicyIndex } from './deny-policy-index.ts';
import { DriftHandler } from './drift.ts';
import { createEventRecorder, type EventRecorder } from './events.ts';
import { startProbeServer } from './http-server.ts';
import {
  defaultLeaseTimings,
  describeStepDown,
  LeaderElector,
  type LeaseRecord,
  type LeaseStore,
  type StepDown,
} from './leader.ts';
import { LiveCache } from './live-cache.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import type { SourcePort } from './ports.ts';
import { ReconcileAbortedError, Reconciler, referenceData } from './reconciler.ts';
import { ReferenceCache } from './reference-cache.ts';
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
  /** Bounds of image verification (spec.verify.images); the defaults when absent. */
  readonly imageLimits?: ImageVerificationLimits;
  readonly identity?: string;
  readonly leaseTimings?: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
}

export interface RunningOperator {
  readonly metrics: OperatorMetrics;
  readonly reconciler: Reconciler;
  readonly admin: KubeClient;
  readonly ports: { metrics?: number; health?: number };
  isLeader(): boolean;
  /**
   * What is held in memory for GitRepositories, by kind (desired states, statuses, watches and
   * their objects, interned structures, Git shares and blobs, drift reports, Event repeat counts,
   * alert notifiers): all 0 once no GitRepository is left.
   */
  held(): Record<string, number>;
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

/** A Lease as JSON: `{apiVersion, kind, metadata: {name, namespace[, resourceVersion]}, spec}`. */
function leaseBody(namespace: string, name: string, spec: LeaseRecord, resourceVersion?: string): string {
  return JSON.stringify({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: resourceVersion === undefined ? { name, namespace } : { name, namespace, resourceVersion },
    spec,
  });
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
        body: leaseBody(namespace, name, spec),
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
        body: leaseBody(namespace, name, spec, resourceVersion),
        signal,
        timeoutMs: 5_000,
      });
      if (response.status === 409) return false;
      if (response.status >= 300) throw leaseError('updating', namespace, name, response);
      return true;
    },
  };
}

/** The API clients: the operator's own, and one per impersonated tenant ServiceAccount. */
interface Clients {
  readonly admin: KubeClient;
  /** This replica's name in the lease and in Events. */
  readonly identity: string;
  /** The operator's own username (for Deny policies). */
  readonly operatorUsername: string;
  /** A client impersonating `namespace/serviceAccount`, made once and cached. */
  readonly clientAs: (namespace: string, serviceAccount: string) => Promise<KubeClient>;
  /** Closes the impersonating clients, then the operator's own. */
  close(): Promise<void>;
}

async function connectClients(options: OperatorOptions, logger: Logger): Promise<Clients> {
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
  const close = async () => {
    for (const client of impersonated.values()) await (await client).close();
    await admin.close();
  };
  return { admin, identity, operatorUsername, clientAs, close };
}

/** Whether this replica leads, as the reconcile and drift queues see it. */
class Leadership {
  leading: boolean;
  /** Aborts when this replica stops leading (never without --leader-elect); reconciles and drift reverts run under it. */
  signal: AbortSignal = new AbortController().signal;
  elector: LeaderElector | undefined;

  constructor(leaderElect: boolean) {
    this.leading = !leaderElect;
  }

  /** Fencing before a write: a leader past its renew deadline steps down here (see LeaderElector.fence). */
  readonly stillLeading = (): boolean => {
    this.elector?.fence();
    return this.leading;
  };
}

/** What the queues, the reconciler and drift handling are built from. */
interface Wiring {
  readonly options: OperatorOptions;
  readonly source: SourcePort;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  readonly clients: Clients;
  readonly references: ReferenceCache;
  readonly alerter: Alerter;
  readonly events: EventRecorder;
  readonly leadership: Leadership;
  /** The GitRepository informer's copy of `namespace/name` (the informer is made after the queues). */
  readonly repoOf: (key: string) => LiveObject | undefined;
}

interface Workers {
  readonly liveCache: LiveCache;
  readonly references: ReferenceCache;
  readonly denyPolicies: DenyPolicyIndex;
  readonly drift: DriftHandler;
  /** GitRepositories with drift events waiting for the drift queue. */
  readonly pendingDrift: ReadonlyMap<string, ReadonlySet<string>>;
  readonly reconciler: Reconciler;
  /** Reconciles GitRepositories by key. */
  readonly queue: KeyedWorkQueue;
  /** Handles drift events on managed objects, by GitRepository key. */
  readonly driftQueue: KeyedWorkQueue;
}

function createWorkers(w: Wiring): Workers {
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
    logger: w.logger,
    onManagedChange: (change) => queueDrift(`${change.owner.namespace}/${change.owner.name}`, change.id),
  });
  const { references } = w;
  const denyPolicies = new DenyPolicyIndex({
    client: w.clients.admin,
    logger: w.logger,
    syncTimeoutMs: 5_000,
  });
  const reconciler = createReconciler(w, liveCache, references, denyPolicies);
  const drift = new DriftHandler({
    liveCache,
    events: w.events,
    alerter: w.alerter,
    metrics: w.metrics,
    logger: w.logger,
    fieldManager: 'signet',
    requeue: queueDrift,
    writeDriftStatus: (state, objects, signal) =>
      reconciler.writeDriftStatus(
        state,
        w.repoOf(state.key)?.status as Record<string, unknown> | undefined,
        objects,
        signal,
      ),
  });
  const queue = reconcileQueue(w, reconciler, drift);
  const driftQueue = driftHandlingQueue(w, reconciler, drift, pendingDrift);
  return { liveCache, references, denyPolicies, reconciler, queue, driftQueue, drift, pendingDrift };
}

function createReconciler(
  w: Wiring,
  liveCache: LiveCache,
  references: ReferenceCache,
  denyPolicies: DenyPolicyIndex,
): Reconciler {
  const { options } = w;
  return new Reconciler({
    admin: w.clients.admin,
    clientAs: w.clients.clientAs,
    source: w.source,
    liveCache,
    references,
    denyPolicies,
    events: w.events,
    alerter: w.alerter,
    metrics: w.metrics,
    logger: w.logger,
    trustCache: createTrustMaterialCache(),
    now: () => new Date(),
    fence: w.leadership.stillLeading,
    ...(options.imageLimits === undefined ? {} : { imageLimits: options.imageLimits }),
    options: {
      fieldManager: 'signet',
      applyConcurrency: options.applyConcurrency,
      operatorUsername: w.clients.operatorUsername,
      maxObjects: options.maxObjects,
      cacheSyncTimeoutMs: 15_000,
      ...(options.defaultServiceAccount === undefined
        ? {}
        : { defaultServiceAccount: options.defaultServiceAccount }),
    },
  });
}

/**
 * One reconcile per GitRepository at a time, while this replica leads: a failure backs off
 * exponentially, a success requeues after the (jittered) interval. A key whose object is gone is
 * forgotten everywhere.
 */
function reconcileQueue(w: Wiring, reconciler: Reconciler, drift: DriftHandler): KeyedWorkQueue {
  const failures = new Map<string, number>();
  // Deleted GitRepositories leave garbage behind; one full collection after a batch of them.
  const memory = new MemoryReleaser();
  const queue: KeyedWorkQueue = new KeyedWorkQueue({
    concurrency: w.options.concurrent,
    handler: async (key, queueSignal) => {
      w.metrics.queueDepth.set(queue.depth);
      if (!w.leadership.stillLeading()) return;
      const object = w.repoOf(key);
      if (object === undefined) {
        reconciler.forget(key);
        drift.forget(key);
        w.events.forget?.(key);
        failures.delete(key);
        await w.alerter.forget(key);
        memory.released();
        return;
      }
      const signal = AbortSignal.any([queueSignal, w.leadership.signal]);
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
      } finally {
        w.metrics.queueDepth.set(queue.depth);
      }
    },
    onError: (key, error) =>
      w.logger.error(
        { gitrepository: key, err: error instanceof Error ? error.message : String(error) },
        'reconcile crashed',
      ),
  });
  return queue;
}

/** Drift events queued per GitRepository, handled against its remembered desired state while leading. */
function driftHandlingQueue(
  w: Wiring,
  reconciler: Reconciler,
  drift: DriftHandler,
  pendingDrift: Map<string, Set<string>>,
): KeyedWorkQueue {
  return new KeyedWorkQueue({
    concurrency: 4,
    handler: async (key, queueSignal) => {
      if (!w.leadership.stillLeading()) return;
      const ids = pendingDrift.get(key);
      pendingDrift.delete(key);
      const state = reconciler.managedState(key);
      if (ids === undefined || state === undefined) return;
      await drift.handle(state, ids, AbortSignal.any([queueSignal, w.leadership.signal]));
    },
    onError: (key, error) =>
      w.logger.error(
        { gitrepository: key, err: error instanceof Error ? error.message : String(error) },
        'drift handling crashed',
      ),
  });
}

/**
 * The (started) informer on this shard's GitRepositories: a new object, a new generation, a
 * deletion or a reconcile request queues its key.
 */
function watchGitRepositories(
  options: OperatorOptions,
  admin: KubeClient,
  queue: KeyedWorkQueue,
  logger: Logger,
): Informer {
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
  return repos;
}

/** The metrics and health servers that were asked for, with the ports they listen on. */
async function startServers(
  options: OperatorOptions,
  metrics: OperatorMetrics,
  repos: Informer,
): Promise<{ ports: { metrics?: number; health?: number }; servers: Server[] }> {
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
  return { ports, servers };
}

/**
 * Runs leader election until `stop` aborts (the promise settles once the lease is released).
 * Without --leader-elect this replica leads from the start and nothing runs.
 */
function startElection(
  w: Wiring,
  workers: Workers,
  repos: Informer,
  stop: AbortSignal,
): Promise<void> | undefined {
  const { options, metrics, logger, leadership } = w;
  const identity = w.clients.identity;
  if (!options.leaderElect) {
    metrics.leader.set(1);
    return undefined;
  }
  const enqueueAll = () => {
    for (const object of repos.list()) workers.queue.add(keyOf(object));
  };
  leadership.elector = new LeaderElector({
    store: leaseStore(w.clients.admin, options.leaseNamespace, options.leaseName),
    identity,
    ...(options.leaseTimings ?? defaultLeaseTimings),
    onStartedLeading: (signal) => {
      leadership.leading = true;
      leadership.signal = signal;
      metrics.leader.set(1);
      logger.info({ identity }, 'became leader');
      void repos.waitForSync(60_000).then(enqueueAll, () => undefined);
    },
    onStoppedLeading: (stepDown) => {
      // The elector has aborted the leadership signal already: in-flight reconciles and drift
      // reverts stop before their next request.
      leadership.leading = false;
      // What this replica last applied may be overtaken by the new leader: re-render on return.
      workers.reconciler.forgetAll();
      metrics.leader.set(0);
      logStepDown(logger, identity, stepDown);
    },
    onError: (error) =>
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'leader election error'),
  });
  return leadership.elector.run(stop);
}

function logStepDown(logger: Logger, identity: string, stepDown: StepDown): void {
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
}

/**
 * Starts the operator: the API clients, Slack alerts and Events, the reconcile and drift queues,
 * the GitRepository informer, the metrics and health servers, then leader election; resolves once
 * the GitRepository cache has synced (or after 60 s).
 */
export async function startOperator(
  options: OperatorOptions,
  source: SourcePort,
  logger: Logger,
): Promise<RunningOperator> {
  const metrics = createOperatorMetrics();
  const clients = await connectClients(options, logger);
  const { admin } = clients;
  // Referenced Secrets and ConfigMaps (credentials, signers, the Slack Secret of each alert).
  const references = new ReferenceCache({
    client: admin,
    logger,
    syncTimeoutMs: 5_000,
    decode: referenceData,
    read: (namespace, kind, name, signal) =>
      admin.get({ apiVersion: 'v1', kind, name, namespace }, { signal, timeoutMs: 15_000 }),
  });
  const alerter = createAlerter({
    readSecret: (namespace, name, signal) => references.read(namespace, 'Secret', name, signal),
    clusterName: options.clusterName,
    registry: metrics.registry,
    logger,
    ...(options.alertBatchWindowMs === undefined ? {} : { batchWindowMs: options.alertBatchWindowMs }),
    ...(options.maxQueuedAlerts === undefined ? {} : { maxQueuedAlerts: options.maxQueuedAlerts }),
  });
  const events = createEventRecorder({ client: admin, instance: clients.identity, logger });
  const leadership = new Leadership(options.leaderElect);
  const wiring: Wiring = {
    options,
    source,
    logger,
    metrics,
    clients,
    references,
    alerter,
    events,
    leadership,
    repoOf: (key) => repos.get(key),
  };
  const workers = createWorkers(wiring);
  reportKustomizeEngine(metrics, logger);
  const repos = watchGitRepositories(options, admin, workers.queue, logger);
  const { ports, servers } = await startServers(options, metrics, repos);
  const stopElection = new AbortController();
  const election = startElection(wiring, workers, repos, stopElection.signal);
  await repos
    .waitForSync(60_000)
    .catch((error: unknown) => logger.warn({ err: String(error) }, 'GitRepository cache not synced yet'));

  return {
    metrics,
    reconciler: workers.reconciler,
    admin,
    ports,
    isLeader: () => leadership.leading,
    held: () => {
      const live = workers.liveCache.held();
      const references = workers.references.held();
      const git = source.held?.() ?? {};
      return {
        ...workers.reconciler.held,
        watches: live.watches,
        liveObjects: live.objects,
        interned: live.interned,
        watchUsers: live.users,
        referenceWatches: references.watches,
        referenceData: references.data,
        pendingDrift: workers.pendingDrift.size,
        driftReports: workers.drift.held,
        eventRepeats: events.held ?? 0,
        alertNotifiers: alerter.held ?? 0,
        ...Object.fromEntries(
          Object.entries(git).map(([k, v]) => [`git${k[0]?.toUpperCase()}${k.slice(1)}`, v]),
        ),
      };
    },
    stop: (graceMs = 20_000) =>
      shutdown({ workers, stopElection, election, alerter, repos, servers, clients }, graceMs),
  };
}

/** Logs once which Kustomize engine builds run on, and sets its metric (the choice never fails). */
function reportKustomizeEngine(metrics: OperatorMetrics, logger: Logger): void {
  void sharedEngineChoice().then((choice) => {
    metrics.kustomizeEngine.set({ engine: choice.kind }, 1);
    logger.info({ engine: choice.kind, reason: choice.reason }, 'kustomize engine chosen');
  });
}

/**
 * Graceful stop, in order: in-flight work finishes (up to `graceMs`), the lease is released,
 * pending alerts are flushed, then watches, servers and clients close.
 */
async function shutdown(
  parts: {
    readonly workers: Workers;
    readonly stopElection: AbortController;
    readonly election: Promise<void> | undefined;
    readonly alerter: Alerter;
    readonly repos: Informer;
    readonly servers: readonly Server[];
    readonly clients: Clients;
  },
  graceMs: number,
): Promise<void> {
  const { workers, alerter } = parts;
  await Promise.all([workers.queue.shutdown(graceMs), workers.driftQueue.shutdown(graceMs)]);
  parts.stopElection.abort();
  await parts.election;
  await alerter.flush(AbortSignal.timeout(Math.min(graceMs, 5_000))).catch(() => undefined);
  await alerter.close();
  await parts.repos.stop();
  await workers.liveCache.stop();
  await workers.references.stop();
  await workers.denyPolicies.stop();
  await Promise.all(
    parts.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
  await parts.clients.close();
}
