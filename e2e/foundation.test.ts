// The foundation: a real etcd + kube-apiserver + kube-controller-manager answer the API calls
// Signet depends on (CRDs, custom objects, server-side apply, watch, namespace deletion,
// garbage collection, TokenRequest + RBAC).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  type V1ConfigMap,
  type V1CustomResourceDefinition,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, repoRoot, startControlPlane } from './support/controlplane.ts';
import {
  adminKubeConfig,
  isApiError,
  loadKubeConfig,
  objectApi,
  requestOptions,
  serviceAccountKubeConfig,
  waitFor,
} from './support/kube.ts';
import { uniqueNamespaceName, useTestNamespace } from './support/namespace.ts';

const namespace = useTestNamespace('foundation');
const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);

describe('custom resources', () => {
  const group = `t${randomBytes(4).toString('hex')}.e2e.signet.dev`;
  const plural = 'widgets';
  const crdName = `${plural}.${group}`;
  const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);

  beforeAll(async () => {
    const crd: V1CustomResourceDefinition = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: crdName },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural, singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: {
                    type: 'object',
                    required: ['size'],
                    properties: { size: { type: 'integer', minimum: 1 } },
                  },
                },
              },
            },
          },
        ],
      },
    };
    await extensions.createCustomResourceDefinition({ body: crd }, requestOptions());
  });

  afterAll(async () => {
    await extensions.deleteCustomResourceDefinition({ name: crdName }, requestOptions());
  });

  it('becomes Established and serves a custom object with schema validation', async () => {
    await waitFor(
      async () => {
        const current = await extensions.readCustomResourceDefinition({ name: crdName }, requestOptions());
        return current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { timeoutMs: 30_000, description: `CRD ${crdName} to be Established` },
    );

    const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
    const target = { group, version: 'v1', namespace: namespace.name, plural };
    await customObjects.createNamespacedCustomObject(
      {
        ...target,
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'first' }, spec: { size: 3 } },
      },
      requestOptions(),
    );
    const stored: unknown = await customObjects.getNamespacedCustomObject(
      { ...target, name: 'first' },
      requestOptions(),
    );
    expect(stored).toMatchObject({ kind: 'Widget', metadata: { name: 'first' }, spec: { size: 3 } });

    const invalid = customObjects.createNamespacedCustomObject(
      {
        ...target,
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'bad' }, spec: { size: 0 } },
      },
      requestOptions(),
    );
    await expect(invalid).rejects.toMatchObject({ code: 422 });
  });
});

describe('server-side apply', () => {
  it('applies a ConfigMap with field manager signet and records an Apply managedFields entry', async () => {
    const objects = objectApi(kubeConfig);
    const desired: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'applied', namespace: namespace.name },
      data: { greeting: 'hello' },
    };
    await objects.patch(desired, undefined, undefined, 'signet', true, PatchStrategy.ServerSideApply);
    const stored = await core.readNamespacedConfigMap(
      { name: 'applied', namespace: namespace.name },
      requestOptions(),
    );
    expect(stored.data).toEqual({ greeting: 'hello' });
    const entry = stored.metadata?.managedFields?.find((field) => field.manager === 'signet');
    expect(entry?.operation).toBe('Apply');
    expect(JSON.stringify(entry?.fieldsV1)).toContain('f:greeting');
  });
});

describe('watch', () => {
  it('delivers a ConfigMap change as a MODIFIED event', async () => {
    const name = 'watched';
    const created = await core.createNamespacedConfigMap(
      { namespace: namespace.name, body: { metadata: { name }, data: { step: 'one' } } },
      requestOptions(),
    );
    let abortWatch: AbortController | undefined;
    try {
      const modified = new Promise<V1ConfigMap>((resolveEvent, rejectEvent) => {
        const timer = setTimeout(() => rejectEvent(new Error('no MODIFIED event within 20 s')), 20_000);
        new Watch(kubeConfig)
          .watch(
            `/api/v1/namespaces/${namespace.name}/configmaps`,
            { fieldSelector: `metadata.name=${name}`, resourceVersion: created.metadata?.resourceVersion },
            (phase: string, object: V1ConfigMap) => {
              if (phase === 'MODIFIED') {
                clearTimeout(timer);
                resolveEvent(object);
              }
            },
            (error: unknown) => {
              if (error) {
                clearTimeout(timer);
                rejectEvent(error instanceof Error ? error : new Error(String(error)));
              }
            },
          )
          .then((controller) => {
            abortWatch = controller;
          }, rejectEvent);
      });
      await waitFor(() => abortWatch, { timeoutMs: 10_000, description: 'the watch to be established' });
      // Handled here so a failure before the await below cannot surface as an unhandled rejection.
      modified.catch(() => undefined);
      await core.replaceNamespacedConfigMap(
        { name, namespace: namespace.name, body: { ...created, data: { step: 'two' } } },
        requestOptions(),
      );
      const event = await modified;
      expect(event.data).toEqual({ step: 'two' });
    } finally {
      abortWatch?.abort();
    }
  });
});

describe('kube-controller-manager controllers', () => {
  it('creates the default ServiceAccount and publishes kube-root-ca.crt in a new namespace', async () => {
    await waitFor(
      () =>
        core.readNamespacedServiceAccount({ name: 'default', namespace: namespace.name }, requestOptions()),
      { timeoutMs: 30_000, description: 'the default ServiceAccount' },
    );
    const rootCa = await waitFor(
      () =>
        core.readNamespacedConfigMap(
          { name: 'kube-root-ca.crt', namespace: namespace.name },
          requestOptions(),
        ),
      { timeoutMs: 30_000, description: 'the kube-root-ca.crt ConfigMap' },
    );
    expect(rootCa.data?.['ca.crt']).toContain('BEGIN CERTIFICATE');
  });

  it('garbage-collects a dependent when its owner is deleted', async () => {
    const owner = await core.createNamespacedConfigMap(
      { namespace: namespace.name, body: { metadata: { name: 'owner' } } },
      requestOptions(),
    );
    await core.createNamespacedConfigMap(
      {
        namespace: namespace.name,
        body: {
          metadata: {
            name: 'dependent',
            ownerReferences: [
              { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' },
            ],
          },
        },
      },
      requestOptions(),
    );
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: namespace.name }, requestOptions());
    await waitFor(
      async () => {
        try {
          await core.readNamespacedConfigMap(
            { name: 'dependent', namespace: namespace.name },
            requestOptions(),
          );
          return false;
        } catch (error) {
          return isApiError(error, 404);
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, description: 'the dependent ConfigMap to be garbage-collected' },
    );
  });

  it('finishes deleting a namespace that still holds objects', async () => {
    const doomed = uniqueNamespaceName('doomed');
    await core.createNamespace({ body: { metadata: { name: doomed } } }, requestOptions());
    await core.createNamespacedConfigMap(
      { namespace: doomed, body: { metadata: { name: 'content' }, data: { a: 'b' } } },
      requestOptions(),
    );
    await core.deleteNamespace({ name: doomed }, requestOptions());
    await waitFor(
      async () => {
        try {
          await core.readNamespace({ name: doomed }, requestOptions());
          return false;
        } catch (error) {
          return isApiError(error, 404);
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, description: `namespace ${doomed} to disappear` },
    );
  });
});

describe('TokenRequest and RBAC', () => {
  it('authenticates a ServiceAccount token and denies it what RBAC does not grant (403)', async () => {
    const asServiceAccount = await serviceAccountKubeConfig(kubeConfig, {
      namespace: namespace.name,
      serviceAccountName: 'unprivileged',
    });
    const review = await asServiceAccount
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview(
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
        requestOptions(),
      );
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${namespace.name}:unprivileged`);

    const denied = asServiceAccount
      .makeApiClient(CoreV1Api)
      .listNamespacedSecret({ namespace: namespace.name }, requestOptions());
    await expect(denied).rejects.toMatchObject({ code: 403 });
  });
});

describe('control-plane process control (own plane)', () => {
  let plane: ControlPlane | undefined;

  afterAll(async () => {
    await plane?.stop();
  });

  it('restarts kube-apiserver and stops/starts etcd without losing data', async () => {
    plane = await startControlPlane({
      stateDir: join(repoRoot, '.signet', 'e2e', `${process.pid}-process-control`),
      reuse: false,
      ownerPid: process.pid,
      signal: AbortSignal.timeout(120_000),
    });
    const started = plane;
    const faultCore = loadKubeConfig(started.kubeconfigPath).makeApiClient(CoreV1Api);
    await faultCore.createNamespacedConfigMap(
      { namespace: 'default', body: { metadata: { name: 'survivor' }, data: { kept: 'yes' } } },
      requestOptions(),
    );

    const apiServerPid = started.pidOf('kube-apiserver');
    await started.restartApiServer();
    expect(started.pidOf('kube-apiserver')).not.toBe(apiServerPid);
    expect(await started.isReady()).toBe(true);

    await started.stopEtcd({ force: true });
    expect(started.pidOf('etcd')).toBeUndefined();
    await waitFor(async () => !(await started.isReady()), {
      timeoutMs: 30_000,
      description: '/readyz to fail while etcd is down',
    });
    await started.startEtcd();
    await started.waitForReady(60_000);

    const survivor = await waitFor(
      () => faultCore.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' }, requestOptions()),
      { timeoutMs: 30_000, description: 'the ConfigMap to be readable again' },
    );
    expect(survivor.data).toEqual({ kept: 'yes' });

    const pids = (['etcd', 'kube-apiserver', 'kube-controller-manager'] as const).map((c) =>
      started.pidOf(c),
    );
    await started.stop();
    plane = undefined;
    for (const pid of pids) {
      expect(pid).toBeTypeOf('number');
      expect(
        existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0,
      ).toBe(false);
    }
    expect(existsSync(started.stateDir)).toBe(false);
  });
});
