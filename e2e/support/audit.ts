// Reads the kube-apiserver audit log of a local control plane (ControlPlane.auditLogPath).
// apiserver_request_total in /metrics has no user-agent label, so request counts per client
// (user agent or user) come from the audit log: one JSON event per request, level Metadata.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { kubeconfigPath } from './kube.ts';

export interface AuditEvent {
  readonly verb: string;
  readonly requestURI: string;
  readonly userAgent: string;
  readonly username: string;
  readonly code: number;
  readonly receivedAt: string;
}

interface RawAuditEvent {
  verb?: string;
  requestURI?: string;
  userAgent?: string;
  user?: { username?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp?: string;
}

/** Parses audit-log JSON lines; lines that are not JSON objects are skipped. */
export function parseAuditLog(text: string): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let raw: RawAuditEvent;
    try {
      raw = JSON.parse(line) as RawAuditEvent;
    } catch {
      continue;
    }
    events.push({
      verb: raw.verb ?? '',
      requestURI: raw.requestURI ?? '',
      userAgent: raw.userAgent ?? '',
      username: raw.user?.username ?? '',
      code: raw.responseStatus?.code ?? 0,
      receivedAt: raw.requestReceivedTimestamp ?? '',
    });
  }
  return events;
}

/** Counts events per value of `key` (e.g. 'userAgent' or 'username'). */
export function countBy(
  events: readonly AuditEvent[],
  key: 'userAgent' | 'username' | 'verb',
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of events) counts.set(event[key], (counts.get(event[key]) ?? 0) + 1);
  return counts;
}

export async function readAuditLog(auditLogPath: string, signal?: AbortSignal): Promise<AuditEvent[]> {
  return parseAuditLog(await readFile(auditLogPath, { encoding: 'utf8', ...(signal ? { signal } : {}) }));
}

/**
 * The audit log of the local control plane the e2e setup starts (beside its kubeconfig). `suite`
 * counts `what` in it; a missing log (KUBECONFIG pointing at another cluster) fails naming both.
 */
export function localAuditLogPath(suite: string, what: string): string {
  const path = join(dirname(kubeconfigPath()), 'logs', 'audit.log');
  if (!existsSync(path)) {
    throw new Error(
      `${suite} counts ${what} in the kube-apiserver audit log, expected at ${path}: run it against the local control plane the e2e setup starts (KUBECONFIG unset) or one from 'make cluster-up'`,
    );
  }
  return path;
}

/**
 * The PATCHes (server-side applies) a client whose user agent starts with `userAgent` sent for
 * these resource paths (query left out), as `<requestURI> at <receivedAt>`, in log order.
 */
export async function patchesBy(
  auditLogPath: string,
  userAgent: string,
  paths: Iterable<string>,
): Promise<string[]> {
  const wanted = new Set(paths);
  return (await readAuditLog(auditLogPath))
    .filter(
      (e) =>
        e.userAgent.startsWith(userAgent) &&
        e.verb === 'patch' &&
        wanted.has(e.requestURI.split('?')[0] ?? ''),
    )
    .map((e) => `${e.requestURI} at ${e.receivedAt}`);
}
