/**
 * Rewrites rendered objects so that each image names the digest that was verified
 * (`name:tag@sha256:…`). Returns new objects; the inputs are not changed. Pure.
 */
import type { KubeObject } from '../render/object.ts';
import type { ImageLocation } from './extract.ts';

export interface Pin {
  readonly location: Pick<ImageLocation, 'objectIndex' | 'podSpecPath' | 'field' | 'index'>;
  readonly pinned: string;
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of `object` with each pin's container image replaced; throws if a location is not there. */
function pinObject(object: KubeObject, pins: readonly Pin[]): KubeObject {
  const copy = structuredClone(object);
  for (const { location, pinned } of pins) {
    let node: unknown = copy;
    for (const key of location.podSpecPath) node = isRecord(node) ? node[key] : undefined;
    const list = isRecord(node) ? node[location.field] : undefined;
    const container = Array.isArray(list) ? list[location.index] : undefined;
    if (!isRecord(container))
      throw new Error(
        `no container at ${location.podSpecPath.join('.')}.${location.field}[${location.index}]`,
      );
    container.image = pinned;
  }
  return copy;
}

/** The objects with every pin applied; objects without pins are returned as they are. */
export function pinImages(objects: readonly KubeObject[], pins: readonly Pin[]): KubeObject[] {
  const byObject = new Map<number, Pin[]>();
  for (const pin of pins) {
    const list = byObject.get(pin.location.objectIndex) ?? [];
    list.push(pin);
    byObject.set(pin.location.objectIndex, list);
  }
  return objects.map((object, index) => {
    const objectPins = byObject.get(index);
    return objectPins === undefined ? object : pinObject(object, objectPins);
  });
}
