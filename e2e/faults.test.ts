// Faults survived, against a real API server: a misbehaving Git server (500, hang past spec.timeout,
// connection closed mid-pack, corrupted pack), a freeze (the branch force-pushed back to an older
// signed revision), and a field owned by another manager. Each case asserts what the cluster and
// the status look like afterwards, then the recovery once the fault is gone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { Receiver } from '../test/notify/support.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
} from './support/signet.ts';

const ns = useTestNamespace('signet-faults');
let admin: KubeClient;
let signed: SignedRepo;
let slack: Receiver;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
const captured = capturingLogger();
/** Recovery times measured in this file (ms), printed at the end for docs/reliability.md. */
const measured: Record<string, number> = {};
/** Status messages seen in this file, printed at the end for docs/reliability.md. */
const observed: Record<string, string> = {};

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const appColor = async (): Promise<string | undefined> =>
  ((await admin.get(configMap('app')))?.data as Record<string, string> | undefined)?.color;

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
  signed = await createSignedRepo('faults');
  slack = new Receiver();
  await slack.listen();
  await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'v1' }) });
  for (const object of [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'signers', namespace: ns.name },
      data: { allowed_signers: signed.allowedSigners },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-ca', namespace: ns.name },
      stringData: { 'ca.crt': signed.server.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'slack', namespace: ns.name },
      stringData: { address: slack.url('http') },
    },
  ]) {
    await admin.create(object as never);
  }
  operator = await startTestOperator({ namespace: ns.name }, captured.logger);
  await admin.apply(
    {
      apiVersion: 'signet.dev/v1alpha1',
      kind: 'GitRepository',
      metadata: { name: 'apps', namespace: ns.name },
      spec: {
        url: signed.url,
        ref: { branch: 'main' },
        interval: '1s',
        timeout: '3s',
        path: './deploy',
        secretRef: { name: 'git-ca' },
        verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: 'signers' } },
        alerts: { slack: { secretRef: { name: 'slack' } } },
      },
    } as never,
    { fieldManager: 'e2e' },
  );
}, 120_000);

afterAll(async () => {
  console.log(`faults.test.ts recovery times (ms): ${JSON.stringify(measured)}`);
  console.log(`faults.test.ts messages: ${JSON.stringify(observed, null, 2)}`);
  await operator?.stop();
  await slack?.close();
  await signed?.close();
  await admin?.close();
});

const status = (): Promise<RepoStatus> => repoStatus(admin, ns.name, 'apps');

/** Pokes the operator (the requestedAt annotation) so a backed-off key is reconciled now. */
async function requestReconcile(): Promise<void> {
  await admin.request({
    method: 'PATCH',
    path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/apps`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({
      metadata: { annotations: { 'reconcile.signet.dev/requestedAt': new Date().toISOString() } },
    }),
  });
}

async function waitApplied(commit: string, timeoutMs = 60_000): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await status();
      return s.lastAppliedRevision === `main@sha1:${commit}` && condition(s, 'Ready')?.status === 'True'
        ? s
        : undefined;
    },
    { timeoutMs, description: `main@sha1:${commit} applied and Ready` },
  );
}

async function waitReadyFalse(reason: string, timeoutMs = 60_000): Promise<RepoStatus> {
  return waitFor(
    async () => {
      const s = await status();
      const ready = condition(s, 'Ready');
      return ready?.status === 'False' && ready.reason === reason ? s : undefined;
    },
    { timeoutMs, description: `Ready=False with reason ${reason}` },
  );
}

describe('a misbehaving Git server', () => {
  let good = '';
  let color = 'v1';

  it('applies the first signed revision', async () => {
    good = await signed.repo.git(['rev-parse', 'HEAD']);
    await waitApplied(good);
    expect(await appColor()).toBe('v1');
  });

  const faults = [
    { name: '500', fault: { kind: 'status', status: 500 } as const, expect: /answered 500/ },
    { name: 'hang past spec.timeout', fault: { kind: 'hang' } as const, expect: /time|abort/i },
    { name: 'close mid-pack', fault: { kind: 'close-mid-pack' } as const, expect: /.+/ },
    { name: 'corrupt pack', fault: { kind: 'corrupt-pack' } as const, expect: /.+/ },
  ];
  for (const [index, scenario] of faults.entries()) {
    it(`${scenario.name}: Ready=False FetchFailed, nothing changes; recovers when the server is healthy`, async () => {
      const wanted = `fault-${index}`;
      signed.server.setFault(scenario.fault);
      const next = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: wanted }) });
      const failed = await waitReadyFalse('FetchFailed');
      const ready = condition(failed, 'Ready');
      observed[scenario.name] = ready?.message ?? '';
      expect(ready?.message).toMatch(/^fetching /);
      expect(ready?.message).toMatch(scenario.expect);
      expect(ready?.message).toContain('127.0.0.1');
      expect(failed.lastAppliedRevision).toBe(`main@sha1:${good}`);
      // Still failing a few reconciles later (interval 1s), and the object was never touched.
      await requestReconcile();
      await waitFor(async () => (await status()).conditions !== undefined, { timeoutMs: 2_000 });
      expect((await status()).lastAppliedRevision).toBe(`main@sha1:${good}`);
      expect(await appColor()).toBe(color);

      signed.server.setFault(undefined);
      const healedAt = Date.now();
      await requestReconcile();
      const applied = await waitApplied(next);
      measured[scenario.name] = Date.now() - healedAt;
      expect(condition(applied, 'Ready')?.reason).toBe('ReconciliationSucceeded');
      expect(await appColor()).toBe(wanted);
      good = next;
      color = wanted;
    });
  }

  it('the hang fault is cut by spec.timeout, not left to hang forever', async () => {
    signed.server.setFault({ kind: 'hang' });
    const next = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'hang-2' }) });
    const started = Date.now();
    await requestReconcile();
    await waitReadyFalse('FetchFailed', 20_000);
    // spec.timeout is 3s: the failure is reported within one timeout plus scheduling.
    expect(Date.now() - started).toBeLessThan(12_000);
    signed.server.setFault(undefined);
    await requestReconcile();
    await waitApplied(next);
    good = next;
  });
});

describe('a freeze: the branch force-pushed back to an older signed revision', () => {
  it('is rejected as RollbackRejected, alerted to Slack, and the newer revision stays in force', async () => {
    const older = await signed.repo.git(['rev-parse', 'HEAD']);
    const newer = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'newer' }) });
    await waitApplied(newer);
    await signed.repo.git(['reset', '--hard', older]);
    const rejected = await waitFor(
      async () => {
        const s = await status();
        return condition(s, 'Verified')?.reason === 'RollbackRejected' ? s : undefined;
      },
      { timeoutMs: 30_000, description: 'Verified=False RollbackRejected' },
    );
    observed.rollback = condition(rejected, 'Ready')?.message ?? '';
    expect(condition(rejected, 'Verified')?.status).toBe('False');
    expect(condition(rejected, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(rejected, 'Ready')?.message).toContain(`main@sha1:${newer} stays in force`);
    expect(rejected.lastAppliedRevision).toBe(`main@sha1:${newer}`);
    expect(rejected.lastAttemptedRevision).toBe(`main@sha1:${older}`);
    expect(await appColor()).toBe('newer');
    const alert = await waitFor(
      () =>
        slack.requests.find(
          (r) =>
            JSON.stringify(r.body).includes('RollbackRejected') &&
            JSON.stringify(r.body).includes('VerificationFailed'),
        ),
      { timeoutMs: 15_000, description: 'a RollbackRejected alert' },
    );
    expect(JSON.stringify(alert.body)).toContain(older.slice(0, 12));

    // Moving forward again from the newer commit is accepted.
    await signed.repo.git(['reset', '--hard', newer]);
    const forward = await signed.commit({ 'deploy/app.yaml': configMapYaml('app', { color: 'forward' }) });
    await waitApplied(forward);
    expect(await appColor()).toBe('forward');
  });
});

describe('a field owned by another manager', () => {
  it('reports the conflict (object and manager) in status; spec.force takes the field', async () => {
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'shared', namespace: ns.name },
        data: { x: 'theirs' },
      } as never,
      { fieldManager: 'other-team' },
    );
    const conflicting = await signed.commit({ 'deploy/shared.yaml': configMapYaml('shared', { x: 'ours' }) });
    const failed = await waitReadyFalse('ApplyFailed');
    const message = condition(failed, 'Ready')?.message ?? '';
    observed.conflict = message;
    expect(message).toContain(`main@sha1:${conflicting}`);
    expect(message).toContain(`${ns.name}/shared`);
    expect(message).toContain('other-team');
    expect(message).toContain('.data.x');
    expect((await admin.get(configMap('shared')))?.data).toEqual({ x: 'theirs' });

    await admin.request({
      method: 'PATCH',
      path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/apps`,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ spec: { force: true } }),
    });
    await waitApplied(conflicting);
    const shared = await admin.get(configMap('shared'));
    expect(shared?.data).toEqual({ x: 'ours' });
    const owners = (shared?.metadata.managedFields ?? []).filter((f) =>
      JSON.stringify(f.fieldsV1 ?? {}).includes('f:x'),
    );
    expect(owners.map((f) => f.manager)).toEqual(['signet']);
  });

  it('never logs the webhook URL', () => {
    const logs = captured.lines.join('\n');
    expect(logs).not.toContain(slack.url('http'));
  });
});
