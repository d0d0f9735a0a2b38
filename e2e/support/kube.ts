// Test-support helpers around @kubernetes/client-node for e2e tests (not product code).
import { readFileSync } from 'node:fs';
import {
  type ConfigurationOptions,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  KubernetesObjectApi,
  Observable,
  type ObservableMiddleware,
  ServerConfiguration,
} from '@kubernetes/client-node';
import { inject } from 'vitest';
import { registerSecret } from './secret-scan.ts';

export class WaitTimeoutError extends Error {
  readonly code = 'WAIT_TIMEOUT';
  readonly description: string;
  readonly timeoutMs: number;
  readonly lastError: unknown;
  constructor(description: string, timeoutMs: number, lastError: unknown) {
    const cause = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
    super(`timed out after ${timeoutMs} ms waiting for ${description}${cause}`);
    this.name = 'WaitTimeoutError';
    this.description = description;
    this.timeoutMs = timeoutMs;
    this.lastError = lastError;
  }
}

export interface WaitForOptions {
  /** Deadline. Default 30 s. */
  timeoutMs?: number;
  /** Pause between attempts. Default 100 ms. */
  intervalMs?: number;
  /** Shown in the timeout error, e.g. "namespace foo to disappear". */
  description?: string;
  signal?: AbortSignal;
}

/**
 * Polls `predicate` until it returns a value other than `undefined`/`false`/`null` and resolves
 * with that value. A predicate that throws counts as "not yet" (the last error is reported on
 * timeout). Rejects with WaitTimeoutError at the deadline.
 */
export async function waitFor<T>(
  predicate: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await predicate();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new WaitTimeoutError(options.description ?? 'condition', timeoutMs, lastError);
    }
    await new Promise((resolveSleep) =>
      setTimeout(resolveSleep, Math.min(intervalMs, deadline - Date.now())),
    );
  }
}

/** client-node middleware that aborts each request after `timeoutMs` (fresh deadline per request) or on `signal`. */
export function timeoutMiddleware(timeoutMs = 15_000, signal?: AbortSignal): ObservableMiddleware {
  return {
    pre: (context) => {
      const timeoutSignal = AbortSignal.timeout(timeoutMs);
      context.setSignal(signal ? AbortSignal.any([timeoutSignal, signal]) : timeoutSignal);
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
}

/** Per-request options for the typed client-node APIs (e.g. `core.readNamespace({name}, requestOptions())`). */
export function requestOptions(timeoutMs = 15_000, signal?: AbortSignal): ConfigurationOptions {
  return { middleware: [timeoutMiddleware(timeoutMs, signal)], middlewareMergeStrategy: 'append' };
}

/**
 * A KubernetesObjectApi whose every request has a deadline. (Its per-call `options` argument
 * does not apply middleware in client-node 2.0, so the deadline is part of the client.) Objects
 * without metadata.namespace go to the namespace `default`.
 */
export function objectApi(
  kubeConfig: KubeConfig,
  timeoutMs = 15_000,
  signal?: AbortSignal,
): KubernetesObjectApi {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('KubeConfig has no current cluster');
  const api = new KubernetesObjectApi(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      middleware: [timeoutMiddleware(timeoutMs, signal)],
    }),
  );
  return api;
}

export function loadKubeConfig(path: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(readFileSync(path, 'utf8'));
  return kubeConfig;
}

/** Path of the admin kubeconfig provided by e2e/support/global-setup.ts. */
export function kubeconfigPath(): string {
  return inject('kubeconfigPath');
}

/** Admin KubeConfig for the control plane of this test run. */
export function adminKubeConfig(): KubeConfig {
  return loadKubeConfig(kubeconfigPath());
}

export interface ServiceAccountTokenRequest {
  namespace: string;
  serviceAccountName: string;
  /** Default 3600 (the API's minimum is 600). */
  expirationSeconds?: number;
  audiences?: string[];
  signal?: AbortSignal;
}

/** Creates a bound token for an existing ServiceAccount with the TokenRequest API. */
export async function createServiceAccountToken(
  kubeConfig: KubeConfig,
  request: ServiceAccountTokenRequest,
): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const created = await core.createNamespacedServiceAccountToken(
    {
      name: request.serviceAccountName,
      namespace: request.namespace,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          expirationSeconds: request.expirationSeconds ?? 3600,
          audiences: request.audiences ?? [],
        },
      },
    },
    requestOptions(15_000, request.signal),
  );
  const token = created.status?.token;
  if (!token)
    throw new Error(`TokenRequest for ${request.namespace}/${request.serviceAccountName} returned no token`);
  registerSecret(`ServiceAccount token of ${request.namespace}/${request.serviceAccountName}`, token);
  return token;
}

/** A KubeConfig with the same server and CA as `base` that authenticates with a bearer token. */
export function kubeConfigForToken(base: KubeConfig, token: string, userName = 'token-user'): KubeConfig {
  const cluster = base.getCurrentCluster();
  if (!cluster) throw new Error('base KubeConfig has no current cluster');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ ...cluster, name: 'signet' }],
    users: [{ name: userName, token }],
    contexts: [{ name: 'signet', cluster: 'signet', user: userName }],
    currentContext: 'signet',
  });
  return kubeConfig;
}

/**
 * Requests a token for an existing ServiceAccount and returns a KubeConfig (server and CA of
 * `adminConfig`) acting as `system:serviceaccount:<namespace>:<name>`.
 */
export async function tokenKubeConfig(
  adminConfig: KubeConfig,
  request: ServiceAccountTokenRequest,
): Promise<KubeConfig> {
  const token = await createServiceAccountToken(adminConfig, request);
  return kubeConfigForToken(
    adminConfig,
    token,
    `system:serviceaccount:${request.namespace}:${request.serviceAccountName}`,
  );
}

/**
 * Creates the ServiceAccount if it does not exist yet, requests a token for it and returns a
 * KubeConfig acting as `system:serviceaccount:<namespace>:<name>`.
 */
export async function serviceAccountKubeConfig(
  adminConfig: KubeConfig,
  request: ServiceAccountTokenRequest,
): Promise<KubeConfig> {
  const core = adminConfig.makeApiClient(CoreV1Api);
  try {
    await core.createNamespacedServiceAccount(
      { namespace: request.namespace, body: { metadata: { name: request.serviceAccountName } } },
      requestOptions(15_000, request.signal),
    );
  } catch (error) {
    if (!isApiError(error, 409)) throw error;
  }
  return tokenKubeConfig(adminConfig, request);
}

/** True when `error` is a client-node ApiException with HTTP status `status`. */
export function isApiError(error: unknown, status: number): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === status;
}
