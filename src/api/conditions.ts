/**
 * Status conditions with kstatus semantics, pure:
 * - `Ready` is always present (True, False, or Unknown while work is in progress);
 * - `Reconciling` and `Stalled` are "abnormal-true": present only while True, removed otherwise;
 * - `Verified` and `Drifted` are bipolar (True/False) domain conditions;
 * - lastTransitionTime changes only when the status changes; observedGeneration on each.
 */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export const ConditionType = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  Verified: 'Verified',
  Drifted: 'Drifted',
} as const;
export type ConditionTypeName = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  Succeeded: 'ReconciliationSucceeded',
  Failed: 'ReconciliationFailed',
  Progressing: 'Progressing',
  ProgressingWithRetry: 'ProgressingWithRetry',
  Suspended: 'Suspended',
  InvalidSpec: 'InvalidSpec',
  FetchFailed: 'FetchFailed',
  VerificationFailed: 'VerificationFailed',
  BuildFailed: 'BuildFailed',
  ApplyFailed: 'ApplyFailed',
  PruneFailed: 'PruneFailed',
  Verified: 'Verified',
  ProvenanceFailed: 'ProvenanceFailed',
  ImageUnverified: 'ImageUnverified',
  DriftDetected: 'DriftDetected',
  NoDrift: 'NoDrift',
  DriftReverted: 'DriftReverted',
} as const;

/** Bounded so a hostile error text cannot bloat the object (Kubernetes allows 32 KiB). */
export const maxConditionMessageLength = 4_000;

function truncate(message: string): string {
  return message.length <= maxConditionMessageLength
    ? message
    : `${message.slice(0, maxConditionMessageLength - 1)}…`;
}

export interface ConditionUpdate {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

/** Sets (or replaces) one condition, keeping lastTransitionTime when the status did not change. */
export function setCondition(
  conditions: readonly Condition[],
  update: ConditionUpdate,
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const previous = conditions.find((c) => c.type === update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: truncate(update.message),
    lastTransitionTime:
      previous !== undefined && previous.status === update.status
        ? previous.lastTransitionTime
        : now.toISOString(),
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
  };
  const others = conditions.filter((c) => c.type !== update.type);
  return sortConditions([...others, next]);
}

export function removeCondition(conditions: readonly Condition[], type: string): Condition[] {
  return conditions.filter((c) => c.type !== type);
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** Abnormal-true conditions: set only while True. */
export function setAbnormal(
  conditions: readonly Condition[],
  type: 'Reconciling' | 'Stalled',
  active: { reason: string; message: string } | undefined,
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  if (active === undefined) return removeCondition(conditions, type);
  return setCondition(conditions, { type, status: 'True', ...active }, observedGeneration, now);
}

const order: readonly string[] = ['Ready', 'Reconciling', 'Stalled', 'Verified', 'Drifted'];

function sortConditions(conditions: Condition[]): Condition[] {
  const rank = (type: string) => {
    const index = order.indexOf(type);
    return index === -1 ? order.length : index;
  };
  return conditions.sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

/** True when two condition lists say the same thing (ignoring lastTransitionTime). */
export function sameConditions(a: readonly Condition[], b: readonly Condition[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((left) => {
    const right = b.find((c) => c.type === left.type);
    return (
      right !== undefined &&
      right.status === left.status &&
      right.reason === left.reason &&
      right.message === left.message &&
      right.observedGeneration === left.observedGeneration
    );
  });
}
