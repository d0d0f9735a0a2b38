import { createHash } from 'node:crypto';

/** Alert kinds, in the order they are documented; also the default `spec.alerts.slack.events`. */
export const alertKinds = [
  'DriftDetected',
  'DriftReverted',
  'VerificationFailed',
  'ReconcileFailed',
  'Recovered',
] as const;

export type AlertKind = (typeof alertKinds)[number];

export interface GitRepositoryRef {
  readonly namespace: string;
  readonly name: string;
}

/** One object an alert concerns, with the field paths that changed and who changed them. */
export interface AlertObject {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly fields: readonly string[];
  /** Field manager that made the out-of-band change, when known. */
  readonly manager?: string;
  /** The object was deleted out of band. */
  readonly deleted?: boolean;
}

/** An alert is data: what happened to which GitRepository, on which cluster, and what Signet did. */
export interface Alert {
  readonly kind: AlertKind;
  readonly gitRepository: GitRepositoryRef;
  /** The operator's `--cluster-name`. */
  readonly cluster: string;
  readonly revision?: string;
  readonly signer?: string;
  readonly objects?: readonly AlertObject[];
  /** What Signet did, e.g. `reverted`, `reported`, `denied`. */
  readonly action?: string;
  readonly message: string;
  readonly occurredAt: Date;
}

export function isAlertKind(value: string): value is AlertKind {
  return (alertKinds as readonly string[]).includes(value);
}

/** `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects. */
export function formatObjectId(object: Pick<AlertObject, 'kind' | 'namespace' | 'name'>): string {
  return object.namespace
    ? `${object.kind}/${object.namespace}/${object.name}`
    : `${object.kind}/${object.name}`;
}

/** Alerts with the same batch key may be sent as one message: same GitRepository and kind. */
export function alertBatchKey(alert: Alert): string {
  return JSON.stringify([alert.gitRepository.namespace, alert.gitRepository.name, alert.kind]);
}

/**
 * Identity of an alert for de-duplication: sha256 over the GitRepository, kind, revision, the
 * sorted object ids with their sorted changed fields, and the message. Order of objects and of
 * fields does not matter; timestamps do not count.
 */
export function alertEventKey(alert: Alert): string {
  const objects = (alert.objects ?? [])
    .map((object) => [formatObjectId(object), object.deleted === true, [...object.fields].sort()] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const material = JSON.stringify([
    alert.gitRepository.namespace,
    alert.gitRepository.name,
    alert.kind,
    alert.revision ?? '',
    objects,
    alert.message,
  ]);
  return createHash('sha256').update(material).digest('hex');
}
