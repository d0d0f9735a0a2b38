import { MockAgent } from 'undici';
import { describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/kube/client.ts';
import { KubeApiError, kubeApiErrorFrom } from '../../src/kube/errors.ts';
import { createUndiciTransport, emptyRequestStats } from '../../src/kube/transport.ts';

const server = 'https://kube.test:6443';
const coreV1 = JSON.stringify({
  kind: 'APIResourceList',
  resources: [
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
    { name: 'namespaces/status', kind: 'Namespace', namespaced: false },
  ],
});

function setup(): { agent: MockAgent; client: KubeClient; delays: number[] } {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const delays: number[] = [];
  const stats = emptyRequestStats();
  const transport = createUndiciTransport({
    server,
    dispatcher: agent,
    authHeaders: async () => ({ authorization: 'Bearer secret-token' }),
    userAgent: 'signet-test',
    stats,
    delay: async (ms) => {
      delays.push(ms);
    },
  });
  agent.get(server).intercept({ path: '/api/v1', method: 'GET' }).reply(200, coreV1);
  return { agent, client: new KubeClient({ transport, stats }), delays };
}

const cm = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'a', namespace: 'ns' },
  data: { x: '1' },
  unknownTopLevel: { kept: true },
};

describe('KubeClient over a raw transport', () => {
  it('sends the object untouched as an apply patch with fieldValidation=Strict', async () => {
    const { agent, client } = setup();
    let sentBody = '';
    let sentHeaders: Record<string, unknown> = {};
    agent
      .get(server)
      .intercept({
        path: '/api/v1/namespaces/ns/configmaps/a?fieldManager=signet&fieldValidation=Strict&force=true',
        method: 'PATCH',
        body: (body) => {
          sentBody = body;
          return true;
        },
        headers: (headers) => {
          sentHeaders = headers;
          return true;
        },
      })
      .reply(201, JSON.stringify({ ...cm, metadata: { ...cm.metadata, resourceVersion: '1' } }));
    const result = await client.apply(cm, { fieldManager: 'signet', force: true });
    expect(result.created).toBe(true);
    expect(JSON.parse(sentBody)).toEqual(cm);
    expect(sentHeaders['content-type']).toBe('application/apply-patch+yaml');
    expect(sentHeaders['user-agent']).toBe('signet-test');
    expect(client.stats.byMethod).toEqual({ GET: 1, PATCH: 1 });
  });

  it('retries 429 honouring Retry-After and 5xx with backoff, then succeeds', async () => {
    const { agent, client, delays } = setup();
    const pool = agent.get(server);
    pool
      .intercept({ path: '/api/v1/namespaces/ns/configmaps/a', method: 'GET' })
      .reply(429, '{}', { headers: { 'retry-after': '2' } });
    pool.intercept({ path: '/api/v1/namespaces/ns/configmaps/a', method: 'GET' }).reply(503, '{}');
    pool
      .intercept({ path: '/api/v1/namespaces/ns/configmaps/a', method: 'GET' })
      .reply(200, JSON.stringify(cm));
    const live = await client.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' });
    expect(live?.metadata.name).toBe('a');
    expect(delays[0]).toBe(2_000);
    expect(delays).toHaveLength(2);
    expect(client.stats.retries).toBe(2);
  });

  it('gives up after the bounded attempts and maps the error without credentials', async () => {
    const { agent, client } = setup();
    agent
      .get(server)
      .intercept({ path: '/api/v1/namespaces/ns/configmaps/a', method: 'GET' })
      .reply(500, JSON.stringify({ kind: 'Status', reason: 'InternalError', message: 'etcd down' }))
      .times(5);
    const error = await client
      .get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect(error).toMatchObject({ code: 'ServerError', status: 500, subject: 'ConfigMap/ns/a' });
    expect(String((error as Error).message)).not.toContain('secret-token');
    expect(client.stats.total).toBe(6);
  });

  it('returns undefined on NotFound and resolves cluster-scoped paths', async () => {
    const { agent, client } = setup();
    agent
      .get(server)
      .intercept({ path: '/api/v1/namespaces/x', method: 'GET' })
      .reply(404, JSON.stringify({ kind: 'Status', reason: 'NotFound' }));
    expect(await client.get({ apiVersion: 'v1', kind: 'Namespace', name: 'x' })).toBeUndefined();
    // A kind missing from the cached list refreshes the group-version once (CRDs created meanwhile).
    agent.get(server).intercept({ path: '/api/v1', method: 'GET' }).reply(200, coreV1);
    const unknown = await client
      .get({ apiVersion: 'v1', kind: 'Gadget', name: 'g' })
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'NoKindMatch' });
  });
});

describe('kubeApiErrorFrom', () => {
  it('recognises field-manager conflicts', () => {
    const error = kubeApiErrorFrom({
      status: 409,
      subject: 'ConfigMap/ns/a',
      verb: 'apply',
      body: JSON.stringify({
        kind: 'Status',
        reason: 'Conflict',
        message: 'Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.x',
        details: { causes: [{ type: 'FieldManagerConflict', field: '.data.x' }] },
      }),
    });
    expect(error.code).toBe('FieldManagerConflict');
    expect(error.conflicts).toEqual([{ manager: 'kubectl-edit using v1', field: '.data.x' }]);
  });

  it('flags immutable-field refusals', () => {
    const error = kubeApiErrorFrom({
      status: 422,
      subject: 'Job/ns/j',
      verb: 'apply',
      body: JSON.stringify({
        kind: 'Status',
        reason: 'Invalid',
        message: 'spec.template: Invalid value: field is immutable',
      }),
    });
    expect(error.code).toBe('Invalid');
    expect(error.isImmutableFieldError).toBe(true);
  });
});
