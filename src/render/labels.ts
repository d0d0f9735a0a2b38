/** Label keys Signet puts on every object it applies; prune only trusts objects carrying all three. */
export const ownerNameLabel = 'signet.dev/name';
export const ownerNamespaceLabel = 'signet.dev/namespace';
export const managedByLabel = 'app.kubernetes.io/managed-by';
export const managedByValue = 'signet';
/** Annotation value `disabled` keeps an object out of pruning. */
export const pruneAnnotation = 'signet.dev/prune';
export const pruneDisabledValue = 'disabled';

/** The GitRepository (or other source object) that owns the applied objects. */
export interface OwnerRef {
  readonly name: string;
  readonly namespace: string;
}

export function ownerLabels(owner: OwnerRef): Record<string, string> {
  return {
    [ownerNameLabel]: owner.name,
    [ownerNamespaceLabel]: owner.namespace,
    [managedByLabel]: managedByValue,
  };
}

/** True when the labels mark the object as applied by Signet for exactly this owner. */
export function isOwnedBy(labels: Readonly<Record<string, string>> | undefined, owner: OwnerRef): boolean {
  if (labels === undefined) return false;
  return (
    labels[ownerNameLabel] === owner.name &&
    labels[ownerNamespaceLabel] === owner.namespace &&
    labels[managedByLabel] === managedByValue
  );
}

export function isPruneDisabled(annotations: Readonly<Record<string, string>> | undefined): boolean {
  return annotations?.[pruneAnnotation] === pruneDisabledValue;
}
