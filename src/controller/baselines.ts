/**
 * What drift handling compares the live objects of one desired state with: per object, the
 * server's form of the desired fields (src/watch/baseline.ts) as it answered Signet's last apply,
 * or the live object a plan found unchanged. Only baselines that differ from the desired object
 * are stored (most objects have none: the desired object is its own baseline), so a tracked
 * object costs nothing more unless the server normalised one of its values.
 *
 * While a reconcile applies an object its baseline is pending: the apply's own watch event can
 * arrive before its answer, and comparing it with the Git text would report or "revert" values
 * the server merely normalised. Drift handling defers such an object and is called back once the
 * answer (or the apply's failure) settles it.
 */
import type { KubeObject } from '../render/object.ts';
import { driftBaseline } from '../watch/baseline.ts';
import type { DesiredObject } from '../watch/drift.ts';

export class DriftBaselines {
  readonly #normalized = new Map<string, KubeObject>();
  /** Ids being applied, with the callback to run once settled (at most one per id). */
  readonly #pending = new Map<string, (() => void) | undefined>();

  /** The baseline of `id`: the stored server form, or the desired object itself. */
  of(id: string, desired: KubeObject): KubeObject {
    return this.#normalized.get(id) ?? desired;
  }

  /** Baselines that differ from their desired object, by id (the next plan's input). */
  get normalized(): ReadonlyMap<string, KubeObject> {
    return this.#normalized;
  }

  /** Keeps a baseline known from an earlier desired state that is still the same object. */
  carry(id: string, baseline: KubeObject): void {
    this.#normalized.set(id, baseline);
  }

  /** Records what the server holds for `desired` (an apply's answer, or an up-to-date live object) and settles `id`. */
  record(id: string, desired: KubeObject, server: KubeObject): void {
    const baseline = driftBaseline(
      desired as unknown as DesiredObject,
      server as unknown as Readonly<Record<string, unknown>>,
    ) as unknown as KubeObject;
    if (baseline === desired) this.#normalized.delete(id);
    else this.#normalized.set(id, baseline);
    this.settle(id);
  }

  /** Marks objects about to be applied. */
  begin(ids: Iterable<string>): void {
    for (const id of ids) this.#pending.set(id, undefined);
  }

  isPending(id: string): boolean {
    return this.#pending.has(id);
  }

  /** Runs `callback` once `id` is settled (replacing an earlier one), or now when it is not pending. */
  whenSettled(id: string, callback: () => void): void {
    if (this.#pending.has(id)) this.#pending.set(id, callback);
    else callback();
  }

  /** Ends the pending state of `id` (its apply answered or failed); its baseline stays as it is. */
  settle(id: string): void {
    if (!this.#pending.has(id)) return;
    const callback = this.#pending.get(id);
    this.#pending.delete(id);
    callback?.();
  }

  /** Settles every pending id (the apply is over, whatever happened). */
  settleAll(): void {
    for (const id of [...this.#pending.keys()]) this.settle(id);
  }
}
