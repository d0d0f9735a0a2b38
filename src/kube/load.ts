import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { Agent } from 'undici';
import { KubeClient } from './client.ts';
import { KubeConfigError } from './errors.ts';
import { createUndiciTransport, emptyRequestStats, type RetryPolicy } from './transport.ts';

export interface Impersonation {
  /** e.g. `system:serviceaccount:<namespace>:<name>` (see `serviceAccountImpersonation`). */
  readonly user: string;
  readonly groups?: readonly string[];
}

export interface LoadKubeClientOptions {
  /** Path of a kubeconfig file. Without it: in-cluster config when running in a pod, else the default loading rules. */
  readonly kubeconfig?: string;
  readonly context?: string;
  /** e.g. `signet/0.1.0`; API server metrics split requests by it. */
  readonly userAgent: string;
  readonly impersonate?: Impersonation;
  /** Per-attempt timeout in ms (default 30 s). */
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** Maximum connections to the API server (default 32). */
  readonly connections?: number;
  /** Negotiate HTTP/2 (default true): many requests share one TLS connection. */
  readonly http2?: boolean;
}

/**
 * Impersonation of a ServiceAccount. No groups are sent: the API server adds the ServiceAccount's
 * groups (system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated) itself, and
 * the operator then needs only `impersonate` on serviceaccounts, never on groups (which would let
 * it claim system:masters).
 */
export function serviceAccountImpersonation(namespace: string, name: string): Impersonation {
  return { user: `system:serviceaccount:${namespace}:${name}` };
}

const authHeaderCacheMs = 10_000;

function loadKubeConfig(options: LoadKubeClientOptions): KubeConfig {
  const config = new KubeConfig();
  try {
    if (options.kubeconfig !== undefined) config.loadFromFile(options.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST !== undefined) config.loadFromCluster();
    else config.loadFromDefault();
    if (options.context !== undefined) config.setCurrentContext(options.context);
  } catch (cause) {
    throw new KubeConfigError('InvalidKubeconfig', 'cannot load the kubeconfig', cause);
  }
  return config;
}

function toPem(value: unknown): string | Buffer | undefined {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  return undefined;
}

/**
 * Builds a KubeClient from a kubeconfig (or in-cluster config). TLS material and credentials are
 * derived from client-node's KubeConfig (exec and token-file auth included) and used on an undici
 * Agent; auth headers are re-derived every 10 s so rotated tokens are picked up.
 */
export async function loadKubeClient(options: LoadKubeClientOptions): Promise<KubeClient> {
  const config = loadKubeConfig(options);
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new KubeConfigError('NoCluster', 'the kubeconfig names no current cluster');

  const readHttpsOptions = async (): Promise<RequestOptions> => {
    const https: RequestOptions = {};
    await config.applyToHTTPSOptions(https);
    return https;
  };
  const initial = await readHttpsOptions();
  const connect: Record<string, unknown> = {};
  const ca = toPem(initial.ca);
  const cert = toPem(initial.cert);
  const key = toPem(initial.key);
  if (ca !== undefined) connect.ca = ca;
  if (cert !== undefined) connect.cert = cert;
  if (key !== undefined) connect.key = key;
  if (initial.rejectUnauthorized !== undefined) connect.rejectUnauthorized = initial.rejectUnauthorized;
  if (initial.servername !== undefined) connect.servername = initial.servername;
  const dispatcher = new Agent({
    connect,
    connections: options.connections ?? 32,
    allowH2: options.http2 ?? true,
    keepAliveTimeout: 30_000,
  });

  let cachedHeaders: { headers: Record<string, string>; at: number } | undefined;
  const headersFrom = (https: RequestOptions): Record<string, string> => {
    const headers: Record<string, string> = {};
    const source = https.headers;
    const authorization =
      source === undefined || Array.isArray(source)
        ? undefined
        : ((source as Record<string, unknown>).Authorization ??
          (source as Record<string, unknown>).authorization);
    if (typeof authorization === 'string') headers.authorization = authorization;
    if (typeof https.auth === 'string' && https.auth !== '') {
      headers.authorization = `Basic ${Buffer.from(https.auth).toString('base64')}`;
    }
    return headers;
  };
  cachedHeaders = { headers: headersFrom(initial), at: Date.now() };
  const authHeaders = async (): Promise<Record<string, string>> => {
    if (cachedHeaders !== undefined && Date.now() - cachedHeaders.at < authHeaderCacheMs) {
      return cachedHeaders.headers;
    }
    cachedHeaders = { headers: headersFrom(await readHttpsOptions()), at: Date.now() };
    return cachedHeaders.headers;
  };

  const extraHeaders: Record<string, string | readonly string[]> = {};
  if (options.impersonate !== undefined) {
    extraHeaders['impersonate-user'] = options.impersonate.user;
    if (options.impersonate.groups !== undefined && options.impersonate.groups.length > 0) {
      extraHeaders['impersonate-group'] = options.impersonate.groups;
    }
  }
  const stats = emptyRequestStats();
  const transport = createUndiciTransport({
    server: cluster.server,
    dispatcher,
    authHeaders,
    userAgent: options.userAgent,
    extraHeaders,
    stats,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
  });
  return new KubeClient({ transport, stats });
}
