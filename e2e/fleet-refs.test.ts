// The fleet's API requests, counted from the API server's audit log by user agent: 20 GitRepositories
// reconciled every 2 s read their git-ca Secret and signers ConfigMap from a metadata-only watch
// (no GET per reconcile), and a cold start without any GitRepository in Deny mode reads no
// ValidatingAdmissionPolicy. A rotated Secret is still seen by the next reconcile, a deleted one
// fails closed, and leaving Deny mode while no operator ran still removes the policy after a restart.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { resourceListWatch } from '../src/kube/watch.ts';
import { denyPolicyName } from '../src/watch/deny-policy.ts';
import type { WatchEvent } from '../src/watch/informer.ts';
import { type AuditEvent, localAuditLogPath, readAuditLog } from './support/audit.ts';
import {
  gitCaSecretName,
  gitRepositoryObject,
  releaseGitRepositories,
  signersConfigMapName,
} from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  capturingLogger,
  condition,
  configMapYaml,
  repoStatus,
  startTestOperator,
  waitAllReady,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-fleet-refs');
const fleetSize = 20;
const names = Array.from({ length: fleetSize }, (_, i) => `team-${i}`);
let admin: KubeClient;
let signed: Awaited<ReturnType<typeof startSuite>>['signed'];
let auditLogPath: string;
type TestOperator = Awaited<ReturnType<typeof startTestOperator>>;
let running: TestOperator | undefined;

async function start(userAgent: string): Promise<TestOperator> {
  running = await startTestOperator(
    { userAgent, namespace: ns.name, concurrent: 4 },
    capturingLogger(userAgent).logger,
  );
  return running;
}

async function stopRunning(): Promise<void> {
  const operator = running;
  running = undefined;
  await operator?.stop();
}

async function reconciled(operator: TestOperator): Promise<number> {
  const values = (await operator.operator.metrics.reconcilesTotal.get()).values;
  return values.reduce((sum, v) => sum + v.value, 0);
}

/** GETs `userAgent` sent, as paths without the query. */
async function getsOf(userAgent: string, since = ''): Promise<string[]> {
  return (await readAuditLog(auditLogPath))
    .filter((e: AuditEvent) => e.userAgent.startsWith(userAgent) && e.verb === 'get' && e.receivedAt >= since)
    .map((e) => e.requestURI.split('?')[0] ?? '');
}

const secretPath = () => `/api/v1/namespaces/${ns.name}/secrets/${gitCaSecretName}`;
const signersPath = () => `/api/v1/namespaces/${ns.name}/configmaps/${signersConfigMapName}`;

function ready(name: string, status: 'True' | 'False', message?: string) {
  return waitFor(
    async () => {
      const c = condition(await repoStatus(admin, ns.name, name), 'Ready');
      return c?.status === status && (message === undefined || (c.message ?? '').includes(message));
    },
    {
      timeoutMs: 60_000,
      description: `GitRepository ${name} Ready=${status}${message ? ` (${message})` : ''}`,
    },
  );
}

beforeAll(async () => {
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'fleet-refs' }));
  auditLogPath = localAuditLogPath('e2e/fleet-refs', "the operator's requests");
  const files: Record<string, string> = {};
  for (const name of names)
    files[`teams/${name}/config.yaml`] = configMapYaml(`${name}-config`, { team: name });
  await signed.commit(files);
  for (const name of names) {
    await admin.apply(
      gitRepositoryObject(signed, ns.name, name, { interval: '2s', path: `./teams/${name}` }),
      {
        fieldManager: 'e2e',
      },
    );
  }
}, 120_000);

afterEach(stopRunning);

afterAll(async () => {
  await stopRunning();
  await releaseGitRepositories(admin, ns.name);
  await closeAll(signed, admin);
});

describe('the fleet reads what GitRepositories reference from watches', () => {
  it('cold start: no GET of a Deny policy; steady state: no GET of the Secret or ConfigMap over 2 more reconciles each', async () => {
    const agent = 'signet-refs/steady';
    const operator = await start(agent);
    await waitAllReady(admin, ns.name, names, 60_000);
    const cold = await getsOf(agent);
    const since = new Date().toISOString();
    const before = await reconciled(operator);
    await waitFor(async () => (await reconciled(operator)) >= before + 2 * fleetSize, {
      timeoutMs: 60_000,
      description: 'every GitRepository reconciled twice more',
    });
    const steady = await getsOf(agent, since);
    const count = (paths: readonly string[], path: string) => paths.filter((p) => p === path).length;
    console.log(
      'fleet-refs:',
      JSON.stringify({
        reconcilesInWindow: (await reconciled(operator)) - before,
        coldGets: { secret: count(cold, secretPath()), signers: count(cold, signersPath()) },
        steadyGets: steady.length,
      }),
    );
    expect(cold.filter((p) => p.includes('validatingadmissionpolic'))).toEqual([]);
    // At most one read per concurrent worker before the data is cached, not one per GitRepository.
    expect(count(cold, secretPath())).toBeLessThanOrEqual(4);
    expect(count(cold, signersPath())).toBeLessThanOrEqual(4);
    expect(steady.filter((p) => p.includes('/secrets/') || p.includes('/configmaps/'))).toEqual([]);
  }, 180_000);

  it('a rotated Secret is used by the next reconcile, a deleted one fails closed, a recreated one is used again', async () => {
    await start('signet-refs/rotate');
    await waitAllReady(admin, ns.name, names, 60_000);
    const secret = { apiVersion: 'v1', kind: 'Secret', name: gitCaSecretName, namespace: ns.name };
    const withCa = (pem: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: gitCaSecretName, namespace: ns.name },
      stringData: { 'ca.crt': pem },
    });
    // A CA that did not sign the server's certificate: the next fetch must refuse the server.
    await admin.apply(withCa('not a certificate'), { fieldManager: 'e2e', force: true });
    await ready('team-0', 'False');
    await admin.apply(withCa(signed.server.caPem), { fieldManager: 'e2e', force: true });
    await ready('team-0', 'True');
    await admin.delete(secret);
    await ready('team-0', 'False', `Secret ${ns.name}/${gitCaSecretName} not found`);
    await admin.apply(withCa(signed.server.caPem), { fieldManager: 'e2e', force: true });
    await waitAllReady(admin, ns.name, names, 60_000);
  }, 180_000);

  it('the reference watches receive metadata only: no Secret data on the wire, in the list or in a watch event', async () => {
    const transport = resourceListWatch(admin, {
      apiVersion: 'v1',
      kind: 'Secret',
      namespace: ns.name,
      metadataOnly: true,
    });
    const listed = await transport.list(undefined, AbortSignal.timeout(15_000));
    const listedSecret = listed.items.find((item) => item.metadata.name === gitCaSecretName);
    expect(listedSecret?.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(listedSecret).not.toHaveProperty('data');
    expect(JSON.stringify(listed.items)).not.toContain('BEGIN CERTIFICATE');
    const stop = new AbortController();
    const events: WatchEvent[] = [];
    const watching = transport
      .watch(
        undefined,
        listed.resourceVersion,
        AbortSignal.any([stop.signal, AbortSignal.timeout(30_000)]),
        (e) => {
          events.push(e);
          if (e.type === 'MODIFIED') stop.abort();
        },
      )
      .catch(() => undefined);
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: gitCaSecretName, namespace: ns.name, labels: { touched: 'yes' } },
        stringData: { 'ca.crt': signed.server.caPem },
      },
      { fieldManager: 'e2e', force: true },
    );
    await watching;
    const modified = events.find((e) => e.type === 'MODIFIED');
    expect(modified?.object).toMatchObject({ kind: 'Secret', metadata: { name: gitCaSecretName } });
    expect(modified?.object).not.toHaveProperty('data');
    expect(JSON.stringify(events)).not.toContain('BEGIN CERTIFICATE');
  }, 60_000);

  it('a GitRepository taken out of Deny mode while no operator ran loses its policy after the restart', async () => {
    const deny = (mode: 'Deny' | 'Revert') =>
      gitRepositoryObject(signed, ns.name, 'team-1', {
        interval: '2s',
        path: './teams/team-1',
        drift: { mode },
      });
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      name: denyPolicyName(ns.name, 'team-1'),
    };
    const binding = { ...policy, kind: 'ValidatingAdmissionPolicyBinding' };
    await start('signet-refs/deny');
    await admin.apply(deny('Deny'), { fieldManager: 'e2e' });
    await waitFor(async () => (await admin.get(binding)) !== undefined, {
      timeoutMs: 60_000,
      description: 'the Deny policy binding created',
    });
    await stopRunning();
    await admin.apply(deny('Revert'), { fieldManager: 'e2e' });
    await start('signet-refs/deny-restart');
    await waitFor(
      async () => (await admin.get(policy)) === undefined && (await admin.get(binding)) === undefined,
      {
        timeoutMs: 60_000,
        description: 'the policy and binding removed after the restart',
      },
    );
  }, 180_000);
});
