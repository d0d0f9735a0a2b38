/**
 * Every container image a set of rendered objects would run: containers, initContainers and
 * ephemeralContainers of the Pod spec (or Pod template) of the built-in workload kinds, each with
 * where it is (the object and the field path) so that a refusal can name it and pinning can rewrite it.
 * Pure.
 */
import type { KubeObject } from '../render/object.ts';

export const containerFields = ['initContainers', 'containers', 'ephemeralContainers'] as const;
export type ContainerField = (typeof containerFields)[number];

/** Where the Pod spec sits in each workload kind, by `group/kind` (core group ''). */
const podSpecPaths: ReadonlyMap<string, readonly string[]> = new Map([
  ['/Pod', ['spec']],
  ['/ReplicationController', ['spec', 'template', 'spec']],
  ['apps/Deployment', ['spec', 'template', 'spec']],
  ['apps/StatefulSet', ['spec', 'template', 'spec']],
  ['apps/DaemonSet', ['spec', 'template', 'spec']],
  ['apps/ReplicaSet', ['spec', 'template', 'spec']],
  ['batch/Job', ['spec', 'template', 'spec']],
  ['batch/CronJob', ['spec', 'jobTemplate', 'spec', 'template', 'spec']],
]);

export interface ImageLocation {
  /** Index of the object in the list given. */
  readonly objectIndex: number;
  /** `Deployment team-a/web`. */
  readonly subject: string;
  /** Path of the Pod spec inside the object. */
  readonly podSpecPath: readonly string[];
  readonly field: ContainerField;
  readonly index: number;
  readonly containerName: string;
  /** The image as written; undefined when the container names none (refused by the caller). */
  readonly image: string | undefined;
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? (apiVersion.split('/')[0] ?? '') : '';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function subjectOf(object: KubeObject): string {
  const namespace = object.metadata.namespace;
  return `${object.kind} ${namespace === undefined ? '' : `${namespace}/`}${object.metadata.name}`;
}

/** The field path of a location, e.g. `spec.template.spec.containers[0].image`. */
export function fieldPath(location: Pick<ImageLocation, 'podSpecPath' | 'field' | 'index'>): string {
  return `${location.podSpecPath.join('.')}.${location.field}[${location.index}].image`;
}

/** The Pod spec path of a workload kind, or undefined for a kind that runs no Pods. */
export function podSpecPathOf(
  object: Pick<KubeObject, 'apiVersion' | 'kind'>,
): readonly string[] | undefined {
  return podSpecPaths.get(`${groupOf(object.apiVersion)}/${object.kind}`);
}

function podSpecAt(object: KubeObject, path: readonly string[]): Record<string, unknown> | undefined {
  let node: unknown = object;
  for (const key of path) node = isRecord(node) ? node[key] : undefined;
  return isRecord(node) ? node : undefined;
}

/** The images of every workload object, in object order, init containers first. */
export function extractImages(objects: readonly KubeObject[]): ImageLocation[] {
  return objects.flatMap((object, objectIndex) => {
    const podSpecPath = podSpecPathOf(object);
    if (podSpecPath === undefined) return [];
    const podSpec = podSpecAt(object, podSpecPath);
    if (podSpec === undefined) return [];
    const subject = subjectOf(object);
    return containerFields.flatMap((field) => {
      const list = podSpec[field];
      if (!Array.isArray(list)) return [];
      return list.map((container: unknown, index): ImageLocation => {
        const entry = isRecord(container) ? container : {};
        return {
          objectIndex,
          subject,
          podSpecPath,
          field,
          index,
          containerName: typeof entry.name === 'string' ? entry.name : `#${index}`,
          image: typeof entry.image === 'string' && entry.image !== '' ? entry.image : undefined,
        };
      });
    });
  });
}
