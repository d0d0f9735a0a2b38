import type { KubeClient } from '../kube/client.ts';
import type { OwnerRef } from '../render/labels.ts';

/** Who applies: the SSA field manager and the owner whose labels mark our objects. */
export interface ApplyOwner {
  readonly fieldManager: string;
  readonly owner: OwnerRef;
}

export const defaultFieldManager = 'signet';

/** Client + owner: the value every verb (apply, wait, prune) takes first. */
export interface ResourceManager {
  readonly client: KubeClient;
  readonly owner: ApplyOwner;
}

export function createResourceManager(
  client: KubeClient,
  owner: OwnerRef,
  fieldManager: string = defaultFieldManager,
): ResourceManager {
  return { client, owner: { fieldManager, owner } };
}

/** Runs `task` on every item with at most `limit` in flight; results keep the input order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker);
  await Promise.all(workers);
  return results;
}
