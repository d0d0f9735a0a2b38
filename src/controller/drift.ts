/**
 * Drift response: called with the managed objects of one GitRepository whose watch events
 * arrived. Compares each with the desired state Signet last applied (pure detectDrift) and
 * then reverts (Revert, Deny), or records and reports (Report). Only drifted objects are
 * touched; a revert is one server-side apply (forced, so fields an editor took over return).
 */
import { Reason } from '../api/conditions.ts';
import { formatSubject, identityOf, type KubeObject } from '../render/object.ts';
import type { Logger } from '../util/logger.ts';
import { type DriftFinding, detectDrift } from '../watch/drift.ts';
import type { Alerter } from './alerter.ts';
import type { EventRecorder } from './events.ts';
import type { LiveCache } from './live-cache.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { ManagedState } from './reconciler.ts';
import type { DriftedObjectStatus } from './status.ts';

export interface DriftDeps {
  readonly liveCache: LiveCache;
  readonly events: EventRecorder;
  readonly alerter: Alerter;
  readonly metrics: OperatorMetrics;
  readonly logger: Logger;
  readonly fieldManager: string;
  /** Writes status.drift and the Drifted condition (Report mode) from the full current list. */
  readonly writeDriftStatus: (
    state: ManagedState,
    objects: readonly DriftedObjectStatus[],
    signal: AbortSignal,
  ) => Promise<void>;
  /**
   * Hands objects back for drift handling later (ids of one GitRepository key): used for objects
   * whose apply is in flight, once the server answered it.
   */
  readonly requeue?: (key: string, id: string) => void;
  /** Observes the latency from a change to its revert (benchmarks and tests). */
  readonly onReverted?: (subject: string, finding: DriftFinding) => void;
}

export interface DriftResult {
  readonly drifted: number;
  readonly reverted: number;
  readonly failed: number;
}

function toStatus(id: string, object: KubeObject, finding: DriftFinding): DriftedObjectStatus {
  return {
    id,
    subject: formatSubject(identityOf(object)),
    deleted: finding.deleted,
    fields: finding.fields,
    ...(finding.manager === undefined ? {} : { manager: finding.manager }),
  };
}

export class DriftHandler {
  readonly #deps: DriftDeps;
  /** Report mode: what is currently drifted, per GitRepository key. */
  readonly #reported = new Map<string, Map<string, DriftedObjectStatus>>();

  constructor(deps: DriftDeps) {
    this.#deps = deps;
  }

  forget(key: string): void {
    this.#reported.delete(key);
  }

  /** GitRepositories with a drift report held (Report mode). */
  get held(): number {
    return this.#reported.size;
  }

  /** Current report of one GitRepository (Report mode), for tests and status. */
  reported(key: string): readonly DriftedObjectStatus[] {
    return [...(this.#reported.get(key)?.values() ?? [])];
  }

  async handle(state: ManagedState, ids: Iterable<string>, signal: AbortSignal): Promise<DriftResult> {
    const findings: { id: string; desired: KubeObject; finding: DriftFinding }[] = [];
    const clean: string[] = [];
    for (const id of ids) {
      const desired = state.desired.get(id);
      if (desired === undefined) continue;
      if (state.baselines.isPending(id)) {
        // Being applied: compared once the server's answer says what it stored.
        const requeue = this.#deps.requeue;
        if (requeue !== undefined) state.baselines.whenSettled(id, () => requeue(state.key, id));
        continue;
      }
      const live = this.#deps.liveCache.get(state.scope, {
        apiVersion: desired.apiVersion,
        kind: desired.kind,
        name: desired.metadata.name,
        ...(desired.metadata.namespace === undefined ? {} : { namespace: desired.metadata.namespace }),
      });
      // Compared with what the API server stored for the desired fields (the Git text may spell
      // values the server normalises differently, e.g. `cpu: 1000m` stored as `1`).
      const finding = detectDrift(
        state.baselines.of(id, desired) as unknown as Parameters<typeof detectDrift>[0],
        live,
        this.#deps.fieldManager,
      );
      if (finding === undefined) clean.push(id);
      else findings.push({ id, desired, finding });
    }
    if (state.driftMode === 'Report') return this.#report(state, findings, clean, signal);
    return this.#revert(state, findings, signal);
  }

  async #revert(
    state: ManagedState,
    findings: readonly { id: string; desired: KubeObject; finding: DriftFinding }[],
    signal: AbortSignal,
  ): Promise<DriftResult> {
    if (findings.length === 0) return { drifted: 0, reverted: 0, failed: 0 };
    const reverted: DriftedObjectStatus[] = [];
    let failed = 0;
    await Promise.all(
      findings.map(async ({ id, desired, finding }) => {
        this.#deps.metrics.driftEventsTotal.inc({ mode: state.driftMode, kind: desired.kind });
        try {
          const result = await state.scope.client.apply(desired, {
            fieldManager: this.#deps.fieldManager,
            force: true,
            signal,
            timeoutMs: 15_000,
          });
          state.baselines.record(id, desired, result.object);
          reverted.push(toStatus(id, desired, finding));
          this.#deps.onReverted?.(formatSubject(identityOf(desired)), finding);
        } catch (error) {
          failed++;
          this.#deps.logger.warn(
            {
              gitrepository: state.key,
              object: formatSubject(identityOf(desired)),
              err: error instanceof Error ? error.message : String(error),
            },
            'drift revert failed',
          );
        }
      }),
    );
    if (reverted.length > 0) {
      const describe = reverted
        .slice(0, 5)
        .map(
          (o) =>
            `${o.subject}${o.deleted ? ' (deleted)' : ` ${o.fields.join(', ')}`}${o.manager ? ` by ${o.manager}` : ''}`,
        )
        .join('; ');
      const message = `Reverted drift of ${reverted.length} object(s) to ${state.revision}: ${describe}${reverted.length > 5 ? '; …' : ''}`;
      this.#deps.logger.info({ gitrepository: state.key, reverted: reverted.length }, message);
      await this.#deps.events.record(state.repo, 'Warning', Reason.DriftReverted, message, signal);
      this.#deps.alerter.alert(state.repo, {
        kind: 'DriftReverted',
        message,
        revision: state.revision,
        signer: state.signer,
        action: 'reverted',
        objects: reverted.map((o) => alertObject(o)),
      });
    }
    return { drifted: findings.length, reverted: reverted.length, failed };
  }

  async #report(
    state: ManagedState,
    findings: readonly { id: string; desired: KubeObject; finding: DriftFinding }[],
    clean: readonly string[],
    signal: AbortSignal,
  ): Promise<DriftResult> {
    const current = this.#reported.get(state.key) ?? new Map<string, DriftedObjectStatus>();
    this.#reported.set(state.key, current);
    const fresh: DriftedObjectStatus[] = [];
    let changed = false;
    for (const { id, desired, finding } of findings) {
      const status = toStatus(id, desired, finding);
      const before = current.get(id);
      if (before === undefined || JSON.stringify(before) !== JSON.stringify(status)) {
        current.set(id, status);
        fresh.push(status);
        changed = true;
        this.#deps.metrics.driftEventsTotal.inc({ mode: state.driftMode, kind: desired.kind });
      }
    }
    for (const id of clean) if (current.delete(id)) changed = true;
    if (changed) await this.#deps.writeDriftStatus(state, [...current.values()], signal);
    if (fresh.length > 0) {
      const message = `Drift detected in ${fresh.length} object(s) (drift mode Report, nothing changed): ${fresh
        .slice(0, 5)
        .map(
          (o) =>
            `${o.subject}${o.deleted ? ' (deleted)' : ` ${o.fields.join(', ')}`}${o.manager ? ` by ${o.manager}` : ''}`,
        )
        .join('; ')}`;
      await this.#deps.events.record(state.repo, 'Warning', Reason.DriftDetected, message, signal);
      this.#deps.alerter.alert(state.repo, {
        kind: 'DriftDetected',
        message,
        revision: state.revision,
        signer: state.signer,
        action: 'reported',
        objects: fresh.map((o) => alertObject(o)),
      });
    }
    return { drifted: current.size, reverted: 0, failed: 0 };
  }
}

function alertObject(o: DriftedObjectStatus): {
  kind: string;
  namespace?: string;
  name: string;
  fields: readonly string[];
  manager?: string;
  deleted?: boolean;
} {
  const [kind = '', second = '', third] = o.subject.split('/');
  return {
    kind,
    ...(third === undefined ? { name: second } : { namespace: second, name: third }),
    fields: o.fields,
    ...(o.manager === undefined ? {} : { manager: o.manager }),
    ...(o.deleted ? { deleted: true } : {}),
  };
}
