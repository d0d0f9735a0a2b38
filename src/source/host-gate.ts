/**
 * Fair queueing for Git: at most `limit` requests in flight per Git host. A caller that finds its
 * host at the limit is refused at once (SourceError `HostBusy`) rather than queued, so a slow or
 * hanging host holds at most `limit` of the operator's workers (`--concurrent`); the reconcile is
 * requeued shortly and the other workers serve GitRepositories on other hosts meanwhile.
 */
import { SourceError } from './errors.ts';
import { parseGitUrl } from './url.ts';

/** The host a remote's requests go to (`host:port`, lower case), the unit of the limit. Pure. */
export function gitHostOf(url: string): string {
  const parsed = parseGitUrl(url);
  if (parsed.ok && parsed.url.kind === 'ssh') return `${parsed.url.host.toLowerCase()}:${parsed.url.port}`;
  try {
    const { protocol, hostname, port } = new URL(url);
    return `${hostname.toLowerCase()}:${port === '' ? (protocol === 'http:' ? '80' : '443') : port}`;
  } catch {
    return url;
  }
}

export class HostGate {
  readonly #inFlight = new Map<string, number>();
  readonly #limit: number;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError('the per-host Git concurrency must be ≥ 1');
    this.#limit = limit;
  }

  /** Runs `work` holding one of the host's slots; throws HostBusy when none is free. */
  async run<T>(host: string, work: () => Promise<T>): Promise<T> {
    const inFlight = this.#inFlight.get(host) ?? 0;
    if (inFlight >= this.#limit) {
      throw new SourceError(
        'HostBusy',
        `${host}: ${inFlight} Git request(s) already in flight (--git-host-concurrency ${this.#limit}); retried shortly`,
      );
    }
    this.#inFlight.set(host, inFlight + 1);
    try {
      return await work();
    } finally {
      const left = (this.#inFlight.get(host) ?? 1) - 1;
      if (left === 0) this.#inFlight.delete(host);
      else this.#inFlight.set(host, left);
    }
  }

  /** Hosts with requests in flight. */
  get hosts(): number {
    return this.#inFlight.size;
  }
}
