import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectRef } from '../kube/client.ts';
import { formatSubject, isJsonObject, type KubeObject } from '../render/object.ts';
import { ApplyError } from './errors.ts';
import type { ResourceManager } from './manager.ts';

export interface WaitOptions {
  /** Deadline for the whole wait (default 60 s). */
  readonly timeoutMs?: number;
  /** Poll interval (default 100 ms; doubles up to 1 s). */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
}

/** True when a CustomResourceDefinition reports `Established=True` (and names accepted). */
export function isCrdEstablished(crd: KubeObject): boolean {
  const status = crd.status;
  if (!isJsonObject(status) || !Array.isArray(status.conditions)) return false;
  return status.conditions.some(
    (condition) => isJsonObject(condition) && condition.type === 'Established' && condition.status === 'True',
  );
}

async function pollUntil(
  check: (signal: AbortSignal) => Promise<boolean>,
  options: WaitOptions,
  onTimeout: () => ApplyError,
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal === undefined ? deadline : AbortSignal.any([options.signal, deadline]);
  let interval = options.intervalMs ?? 100;
  for (;;) {
    try {
      if (await check(signal)) return;
      await sleep(interval, undefined, { signal });
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      if (deadline.aborted) throw onTimeout();
      throw error;
    }
    interval = Math.min(1_000, interval * 2);
  }
}

/** Polls the CRD until it is Established, then makes sure discovery serves its kind. */
export async function waitForCrdEstablished(
  manager: ResourceManager,
  crd: KubeObject,
  options: WaitOptions = {},
): Promise<void> {
  const name = crd.metadata.name;
  const ref: ObjectRef = { apiVersion: crd.apiVersion, kind: crd.kind, name };
  const subject = formatSubject({ kind: crd.kind, namespace: '', name });
  await pollUntil(
    async (signal) => {
      const live = await manager.client.get(ref, { signal });
      return live !== undefined && isCrdEstablished(live);
    },
    options,
    () =>
      new ApplyError(
        'CrdNotEstablished',
        subject,
        `not Established within ${options.timeoutMs ?? 60_000} ms`,
      ),
  );
}

/** Polls until the object is gone (or replaced by one with another uid). */
export async function waitForDeletion(
  manager: ResourceManager,
  ref: ObjectRef,
  uid: string | undefined,
  options: WaitOptions = {},
): Promise<void> {
  const subject = formatSubject({ kind: ref.kind, namespace: ref.namespace ?? '', name: ref.name });
  await pollUntil(
    async (signal) => {
      const live = await manager.client.get(ref, { signal });
      return live === undefined || (uid !== undefined && live.metadata.uid !== uid);
    },
    options,
    () => new ApplyError('DeletionTimeout', subject, `still present after ${options.timeoutMs ?? 60_000} ms`),
  );
}
