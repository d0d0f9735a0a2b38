/**
 * Which Deny-mode ValidatingAdmissionPolicies (and bindings) exist, from one label-selected
 * list-watch of each kind, so that a GitRepository that is not in Deny mode costs no GET of its
 * `signet-deny-<namespace>-<name>` pair on every cold start. Answers "may exist" conservatively:
 * true until both watches have listed, when a watch is not allowed or fails to list, and for
 * names this process applied but the watch has not reported yet. Only a definite "absent" from
 * synced watches lets the caller skip the removal, so switching out of Deny mode still removes
 * the policy, also after a restart (the watch lists what the previous process left).
 */
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { resourceListWatch } from '../kube/watch.ts';
import type { Logger } from '../util/logger.ts';
import { denyPolicyLabel } from '../watch/deny-policy.ts';
import { Informer, type LiveObject } from '../watch/informer.ts';
import { metadataOnly } from './reference-cache.ts';

export const denyPolicyKinds = ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'] as const;
const apiVersion = 'admissionregistration.k8s.io/v1';

function isForbidden(error: unknown): boolean {
  return error instanceof KubeApiError && (error.status === 403 || error.status === 401);
}

/** Pure: may a policy pair named `name` exist, given what each watch holds (undefined: not synced)? */
export function mayExist(
  name: string,
  watched: readonly ({ get(key: string): LiveObject | undefined } | undefined)[],
  appliedHere: ReadonlySet<string>,
): boolean {
  if (appliedHere.has(name)) return true;
  return watched.some((store) => store === undefined || store.get(name) !== undefined);
}

export class DenyPolicyIndex {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #syncTimeoutMs: number;
  #informers: Informer[] | undefined;
  /** Informers that gave up (not allowed, or the API is not served): every answer is "may exist". */
  #disabled = false;
  readonly #appliedHere = new Set<string>();

  constructor(options: { client: KubeClient; logger: Logger; syncTimeoutMs: number }) {
    this.#client = options.client;
    this.#logger = options.logger;
    this.#syncTimeoutMs = options.syncTimeoutMs;
  }

  /** Records a pair this process applied (the watch may report it a little later). */
  applied(name: string): void {
    this.#appliedHere.add(name);
  }

  /** Records a pair this process removed. */
  removed(name: string): void {
    this.#appliedHere.delete(name);
  }

  /** False only when synced watches of both kinds know no object named `name`. */
  async mayExist(name: string, signal: AbortSignal): Promise<boolean> {
    if (this.#disabled) return true;
    const informers = this.#start();
    const deadline = Date.now() + this.#syncTimeoutMs;
    while (!this.#disabled && informers.some((i) => !i.synced) && Date.now() < deadline) {
      signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (this.#disabled) return true;
    return mayExist(
      name,
      informers.map((i) => (i.synced ? i : undefined)),
      this.#appliedHere,
    );
  }

  #start(): Informer[] {
    if (this.#informers !== undefined) return this.#informers;
    this.#informers = denyPolicyKinds.map((kind) => {
      const informer: Informer = new Informer({
        transport: resourceListWatch(this.#client, { apiVersion, kind, metadataOnly: true }),
        labelSelector: `${denyPolicyLabel}=true`,
        transform: metadataOnly,
        handlers: {
          onError: (error, attempt) => {
            if (!informer.synced && (isForbidden(error) || attempt >= 3)) {
              // Not allowed to list it (the tenant flavour without manifests/components/deny-drift),
              // or not served: every check reads the pair, as without this index.
              this.#disabled = true;
              void this.stop();
              this.#logger.info(
                { kind, status: error instanceof KubeApiError ? error.status : undefined },
                'Deny policies are not watched (not allowed or not served); a removal check reads the pair',
              );
              return;
            }
            this.#logger.warn(
              { kind, attempt, err: error instanceof Error ? error.message : String(error) },
              'watch of Deny policies failed; reconnecting with backoff',
            );
          },
        },
      });
      informer.start();
      return informer;
    });
    return this.#informers;
  }

  async stop(): Promise<void> {
    const informers = this.#informers ?? [];
    await Promise.all(informers.map((informer) => informer.stop()));
  }
}
