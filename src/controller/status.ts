/**
 * Status of a GitRepository as data: the fields Signet writes, built purely from the previous
 * status and the outcome of a reconcile, so the controller only sends the result.
 */
import {
  type Condition,
  type ConditionUpdate,
  Reason,
  removeCondition,
  sameConditions,
  setAbnormal,
  setCondition,
} from '../api/conditions.ts';
import type { ImageAudit } from '../images/verify-images.ts';
import type { Inventory } from '../plan/inventory.ts';
import type { Evidence } from '../verify/types.ts';

export interface DriftedObjectStatus {
  readonly id: string;
  readonly subject: string;
  readonly deleted: boolean;
  readonly fields: readonly string[];
  readonly manager?: string;
}

export interface GitRepositoryStatus {
  observedGeneration?: number;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  lastHandledReconcileAt?: string;
  conditions: Condition[];
  verification?: Record<string, unknown>;
  inventory?: Inventory;
  drift?: { detectedAt: string; total: number; objects: DriftedObjectStatus[] };
  /** The images of the applied revision as verified (spec.verify.images). */
  images?: { total: number; entries: ImageAudit[] };
}

export const maxImagesInStatus = 200;

export const maxDriftObjectsInStatus = 50;

export function readStatus(raw: Readonly<Record<string, unknown>>): GitRepositoryStatus {
  const conditions = Array.isArray(raw.conditions) ? (raw.conditions as Condition[]) : [];
  const status: GitRepositoryStatus = { conditions };
  if (typeof raw.observedGeneration === 'number') status.observedGeneration = raw.observedGeneration;
  if (typeof raw.lastAppliedRevision === 'string') status.lastAppliedRevision = raw.lastAppliedRevision;
  if (typeof raw.lastAttemptedRevision === 'string') status.lastAttemptedRevision = raw.lastAttemptedRevision;
  if (typeof raw.lastHandledReconcileAt === 'string')
    status.lastHandledReconcileAt = raw.lastHandledReconcileAt;
  if (typeof raw.verification === 'object' && raw.verification !== null)
    status.verification = raw.verification as Record<string, unknown>;
  if (typeof raw.inventory === 'object' && raw.inventory !== null) {
    const entries = (raw.inventory as { entries?: unknown }).entries;
    status.inventory = { entries: Array.isArray(entries) ? (entries as Inventory['entries']) : [] };
  }
  if (typeof raw.drift === 'object' && raw.drift !== null)
    status.drift = raw.drift as GitRepositoryStatus['drift'];
  if (typeof raw.images === 'object' && raw.images !== null)
    status.images = raw.images as GitRepositoryStatus['images'];
  return status;
}

/** Status changes of one reconcile step, applied in order. */
export type StatusChange =
  | { readonly kind: 'progressing'; readonly message: string; readonly retry: boolean }
  | { readonly kind: 'stalled'; readonly reason: string; readonly message: string }
  | {
      readonly kind: 'failed';
      readonly reason: string;
      readonly message: string;
      readonly attemptedRevision?: string;
    }
  | { readonly kind: 'verified'; readonly evidence: Evidence }
  | {
      readonly kind: 'rejected';
      readonly reason: string;
      readonly message: string;
      readonly attemptedRevision: string;
    }
  | {
      readonly kind: 'applied';
      readonly revision: string;
      readonly message: string;
      readonly inventory: Inventory;
    }
  | { readonly kind: 'inventory'; readonly inventory: Inventory }
  | { readonly kind: 'drift'; readonly objects: readonly DriftedObjectStatus[]; readonly mode: string }
  | { readonly kind: 'requested'; readonly at: string }
  /** The verified images of the revision being recorded as applied; empty clears status.images. */
  | { readonly kind: 'images'; readonly images: readonly ImageAudit[] };

export function evidenceStatus(evidence: Evidence): Record<string, unknown> {
  const signer: Record<string, unknown> = {
    type: evidence.signer.type,
    principal: evidence.signer.principal,
  };
  if ('keyFingerprint' in evidence.signer) signer.keyFingerprint = evidence.signer.keyFingerprint;
  if ('identity' in evidence.signer) signer.identity = evidence.signer.identity;
  if ('issuer' in evidence.signer && evidence.signer.issuer !== undefined)
    signer.issuer = evidence.signer.issuer;
  return {
    commit: evidence.commit,
    mode: evidence.mode,
    signer,
    verifiedAt: evidence.verifiedAt,
    ...(evidence.tag === undefined ? {} : { tag: { name: evidence.tag.name, oid: evidence.tag.oid } }),
    ...(evidence.commitsVerified === undefined ? {} : { commitsVerified: evidence.commitsVerified }),
  };
}

/** A human description of who signed, for events, status messages and alerts. */
export function describeSigner(evidence: Evidence): string {
  const signer = evidence.signer;
  if (signer.type === 'x509')
    return `gitsign ${signer.identity}${signer.issuer ? ` (${signer.issuer})` : ''}`;
  return `${signer.type} key ${signer.keyFingerprint}${signer.principal ? ` (${signer.principal})` : ''}`;
}

export function applyStatusChanges(
  previous: GitRepositoryStatus,
  changes: readonly StatusChange[],
  generation: number,
  now: Date,
): GitRepositoryStatus {
  let status: GitRepositoryStatus = { ...previous, conditions: [...previous.conditions] };
  const set = (update: ConditionUpdate) => {
    status.conditions = setCondition(status.conditions, update, generation, now);
  };
  for (const change of changes) {
    switch (change.kind) {
      case 'progressing':
        status.conditions = setAbnormal(
          status.conditions,
          'Reconciling',
          {
            reason: change.retry ? Reason.ProgressingWithRetry : Reason.Progressing,
            message: change.message,
          },
          generation,
          now,
        );
        set({ type: 'Ready', status: 'Unknown', reason: Reason.Progressing, message: change.message });
        break;
      case 'stalled':
        status.conditions = setAbnormal(status.conditions, 'Reconciling', undefined, generation, now);
        status.conditions = setAbnormal(status.conditions, 'Stalled', change, generation, now);
        set({ type: 'Ready', status: 'False', reason: change.reason, message: change.message });
        status.observedGeneration = generation;
        break;
      case 'failed':
        status.conditions = setAbnormal(status.conditions, 'Reconciling', undefined, generation, now);
        status.conditions = setAbnormal(status.conditions, 'Stalled', undefined, generation, now);
        set({ type: 'Ready', status: 'False', reason: change.reason, message: change.message });
        // A revision that could not be fetched was not verified: Verified=False FetchFailed (as a
        // source that cannot be fetched leaves nothing proven). status.verification keeps the
        // evidence of the last verified commit; build and apply failures leave Verified alone.
        if (change.reason === Reason.FetchFailed)
          set({ type: 'Verified', status: 'False', reason: Reason.FetchFailed, message: change.message });
        if (change.attemptedRevision !== undefined) status.lastAttemptedRevision = change.attemptedRevision;
        status.observedGeneration = generation;
        break;
      case 'verified':
        set({
          type: 'Verified',
          status: 'True',
          reason: Reason.Verified,
          message: `verified ${change.evidence.mode} ${change.evidence.commit.slice(0, 12)} signed by ${describeSigner(change.evidence)}`,
        });
        status.verification = evidenceStatus(change.evidence);
        break;
      case 'rejected':
        set({ type: 'Verified', status: 'False', reason: change.reason, message: change.message });
        status.conditions = setAbnormal(status.conditions, 'Reconciling', undefined, generation, now);
        status.conditions = setAbnormal(status.conditions, 'Stalled', undefined, generation, now);
        set({ type: 'Ready', status: 'False', reason: Reason.VerificationFailed, message: change.message });
        status.lastAttemptedRevision = change.attemptedRevision;
        status.observedGeneration = generation;
        break;
      case 'applied':
        status.conditions = setAbnormal(status.conditions, 'Reconciling', undefined, generation, now);
        status.conditions = setAbnormal(status.conditions, 'Stalled', undefined, generation, now);
        set({ type: 'Ready', status: 'True', reason: Reason.Succeeded, message: change.message });
        status.lastAppliedRevision = change.revision;
        status.lastAttemptedRevision = change.revision;
        status.inventory = change.inventory;
        status.observedGeneration = generation;
        break;
      case 'inventory':
        status.inventory = change.inventory;
        break;
      case 'drift':
        if (change.objects.length === 0) {
          set({
            type: 'Drifted',
            status: 'False',
            reason: Reason.NoDrift,
            message: 'live state matches the applied revision',
          });
          const { drift: _cleared, ...rest } = status;
          status = { ...rest, conditions: status.conditions };
        } else {
          const first = change.objects[0];
          set({
            type: 'Drifted',
            status: 'True',
            reason: Reason.DriftDetected,
            message: `${change.objects.length} object(s) differ from Git (drift mode ${change.mode}), e.g. ${first?.subject ?? ''}${first?.deleted ? ' deleted' : `: ${first?.fields.join(', ') ?? ''}`}`,
          });
          status.drift = {
            detectedAt: status.drift?.detectedAt ?? now.toISOString(),
            total: change.objects.length,
            objects: change.objects
              .slice(0, maxDriftObjectsInStatus)
              .map((o) => ({ ...o, fields: o.fields.slice(0, 32) })),
          };
        }
        break;
      case 'requested':
        status.lastHandledReconcileAt = change.at;
        break;
      case 'images':
        if (change.images.length === 0) {
          const { images: _cleared, ...rest } = status;
          status = { ...rest, conditions: status.conditions };
        } else {
          status.images = {
            total: change.images.length,
            entries: change.images.slice(0, maxImagesInStatus).map((image) => ({ ...image })),
          };
        }
        break;
    }
  }
  return status;
}

/** Only what differs is worth a request. */
export function statusChanged(a: GitRepositoryStatus, b: GitRepositoryStatus): boolean {
  const { conditions: ca, ...ra } = a;
  const { conditions: cb, ...rb } = b;
  return !sameConditions(ca, cb) || JSON.stringify(ra) !== JSON.stringify(rb);
}

/**
 * The JSON merge patch (RFC 7396) that turns `previous` into `next`: only the top-level keys whose
 * value changed (an unchanged 5,000-entry inventory is not sent again), and a key present before
 * and gone now as `null`, because a merge patch leaves keys it does not mention untouched (without
 * this, a cleared `status.drift` would stay on the object forever).
 */
export function statusMergePatch(
  previous: GitRepositoryStatus,
  next: GitRepositoryStatus,
): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  const before = new Map<string, unknown>(Object.entries(previous));
  for (const key of before.keys()) if (!(key in next)) patch[key] = null;
  for (const [key, value] of Object.entries(next)) {
    if (!before.has(key) || JSON.stringify(before.get(key)) !== JSON.stringify(value)) patch[key] = value;
  }
  return patch;
}

export { removeCondition };
