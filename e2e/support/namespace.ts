// One uniquely named namespace per test file: created in beforeAll, deleted in afterAll.
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll } from 'vitest';
import { adminKubeConfig, isApiError, requestOptions } from './kube.ts';

export interface TestNamespace {
  /** The namespace name, known immediately (the namespace itself exists from beforeAll on). */
  readonly name: string;
}

/** A DNS-1123 label: `<prefix>-<8 hex chars>`, prefix sanitised and shortened to fit 63 chars. */
export function uniqueNamespaceName(prefix: string): string {
  const cleaned =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 50) || 'e2e';
  return `${cleaned}-${randomBytes(4).toString('hex')}`;
}

/**
 * Registers beforeAll/afterAll hooks that create and delete a fresh namespace for the calling
 * test file. Call at the top level of the file (or inside a describe block).
 */
export function useTestNamespace(prefix: string, labels: Record<string, string> = {}): TestNamespace {
  const name = uniqueNamespaceName(prefix);
  beforeAll(async () => {
    const core = adminKubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespace(
      { body: { metadata: { name, labels: { 'signet.dev/e2e': 'true', ...labels } } } },
      requestOptions(),
    );
  });
  afterAll(async () => {
    const core = adminKubeConfig().makeApiClient(CoreV1Api);
    try {
      await core.deleteNamespace({ name }, requestOptions());
    } catch (error) {
      if (!isApiError(error, 404)) throw error;
    }
  });
  return { name };
}
