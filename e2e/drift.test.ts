// Drift on a real API server with an in-process operator and a real Slack stand-in: Report mode
// (status, condition, Event, one Block Kit alert, cleared when fixed by hand), fields Signet does
// not set are not drift, one edit reverted and alerted in exactly one message, Deny mode (a
// ValidatingAdmissionPolicy the API server enforces against another identity while the operator's
// own applies go through; removed when the mode goes back to Revert, and when a Deny-mode
// GitRepository is deleted), an alert retried after a Slack 500 and delivered once, a Slack 429
// with Retry-After honoured, 50 concurrent edits reverted and reported in exactly one message.
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import type { KubeObject } from '../src/render/object.ts';
import { denyPolicyName } from '../src/watch/deny-policy.ts';
import { type ReceivedRequest, Receiver } from '../test/notify/support.ts';
import { deleteGitRepositoryAndWait, editorServiceAccountClient } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  capturingLogger,
  condition,
  configMapYaml,
  createSignedRepo,
  installCrd,
  repoStatus,
  type SignedRepo,
  startTestOperator,
  waitAllReady,
} from './support/signet.ts';

const ns = useTestNamespace('signet-drift');
const bulkCount = 50;
/** The operator's Slack batch window below (the production default). */
const batchWindowMs = 2_000;
/** Time past a batch window in which no further message may arrive. */
const quietMarginMs = 1_500;
const captured = capturingLogger();

let admin: KubeClient;
let editor: KubeClient;
let intruder: KubeClient;
let shared: SignedRepo;
let guardedRepo: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let tokenDir: string;
const slack = {
  reporting: new Receiver(),
  reverting: new Receiver(),
  retrying: new Receiver(),
  throttled: new Receiver(),
  bulk: new Receiver(),
  guarded: new Receiver(),
  doomed: new Receiver(),
};

type SlackBody = { text: string; blocks: { type: string; text?: { text: string } }[] };

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const bulkName = (index: number) => `bulk-${String(index).padStart(2, '0')}`;
const policyRef = (
  kind: 'ValidatingAdmissionPolicy' | 'ValidatingAdmissionPolicyBinding',
  gitRepositoryName = 'guarded',
) => ({
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind,
  name: denyPolicyName(ns.name, gitRepositoryName),
});

async function dataOf(name: string): Promise<Record<string, string> | undefined> {
  return (await admin.get(configMap(name)))?.data as Record<string, string> | undefined;
}

/** A merge patch of a ConfigMap's data as `client`, recorded under field manager `manager`. */
function patchData(client: KubeClient, name: string, data: Record<string, string>, manager = 'kubectl-edit') {
  return client.request({
    method: 'PATCH',
    path: `/api/v1/namespaces/${ns.name}/configmaps/${name}?fieldManager=${manager}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({ data }),
    timeoutMs: 15_000,
  });
}

function gitRepository(
  name: string,
  repo: SignedRepo,
  path: string,
  mode: 'Revert' | 'Report' | 'Deny',
  secret: string,
): KubeObject {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name, namespace: ns.name },
    spec: {
      url: repo.url,
      ref: { branch: 'main' },
      interval: '1s',
      path,
      secretRef: { name: `git-ca-${secret}` },
      verify: { mode: 'HEAD', signersRef: { kind: 'ConfigMap', name: `signers-${secret}` } },
      drift: { mode },
      alerts: { slack: { secretRef: { name: `slack-${name}` } } },
    },
  } as unknown as KubeObject;
}

/**
 * Polls for `durationMs` and fails at the first violation `check` names (a deadline poll: it
 * proves that something does not happen within a bounded time, and fails as soon as it does).
 */
async function holdsFor(check: () => string | undefined | Promise<string | undefined>, durationMs: number) {
  const deadline = Date.now() + durationMs;
  while (Date.now() < deadline) {
    const violation = await check();
    if (violation !== undefined) throw new Error(violation);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The operator's JSON log records (pino) written so far. */
function logRecords(): Record<string, unknown>[] {
  return captured.lines
    .flatMap((chunk) => chunk.split('\n'))
    .flatMap((line) => {
      try {
        const record = JSON.parse(line) as unknown;
        return typeof record === 'object' && record !== null ? [record as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
}

function objectsInMessage(request: ReceivedRequest): number {
  const match = /\*Objects \((\d+)\)\*/.exec(JSON.stringify((request.body as SlackBody).blocks));
  return match === null ? 0 : Number(match[1]);
}

beforeAll(async () => {
  admin = await adminClient();
  editor = await adminClient('kubectl-edit/1.0');
  await installCrd(admin);
  for (const receiver of Object.values(slack)) await receiver.listen();
  shared = await createSignedRepo('shared');
  guardedRepo = await createSignedRepo('guarded');
  const files: Record<string, string> = {
    'report/reported.yaml': configMapYaml('reported', { x: 'from-git', y: 'kept' }),
    'revert/retried.yaml': configMapYaml('retried', { x: 'from-git' }),
    'once/reverted.yaml': configMapYaml('reverted', { x: 'from-git' }),
    'throttle/throttled.yaml': configMapYaml('throttled', { x: 'from-git' }),
  };
  for (let index = 0; index < bulkCount; index++) {
    files[`bulk/${bulkName(index)}.yaml`] = configMapYaml(bulkName(index), { n: String(index) });
  }
  await shared.commit(files);
  await guardedRepo.commit({
    'deny/guarded.yaml': configMapYaml('guarded', { x: 'v1' }),
    'doomed/doomed.yaml': configMapYaml('doomed', { x: 'v1' }),
  });

  const objects: KubeObject[] = [];
  for (const [suffix, repo] of [
    ['shared', shared],
    ['guarded', guardedRepo],
  ] as const) {
    objects.push(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `signers-${suffix}`, namespace: ns.name },
        data: { allowed_signers: repo.allowedSigners },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `git-ca-${suffix}`, namespace: ns.name },
        stringData: { 'ca.crt': repo.server.caPem },
      } as unknown as KubeObject,
    );
  }
  for (const [name, receiver] of Object.entries(slack)) {
    objects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `slack-${name}`, namespace: ns.name },
      stringData: { address: receiver.url('http') },
    } as unknown as KubeObject);
  }
  for (const object of objects) await admin.create(object);

  // Another identity: a ServiceAccount with the built-in `edit` role in the namespace (the admin
  // user is the operator's own identity here, which the Deny policy allows).
  ({ client: intruder, tokenDir } = await editorServiceAccountClient(admin, ns.name, 'intruder'));

  // The production default batch window (2 s), so parallel drift lands in one message.
  operator = await startTestOperator({ alertBatchWindowMs: batchWindowMs }, captured.logger);
  for (const object of [
    gitRepository('reporting', shared, './report', 'Report', 'shared'),
    gitRepository('reverting', shared, './once', 'Revert', 'shared'),
    gitRepository('retrying', shared, './revert', 'Revert', 'shared'),
    gitRepository('throttled', shared, './throttle', 'Revert', 'shared'),
    gitRepository('bulk', shared, './bulk', 'Revert', 'shared'),
    gitRepository('guarded', guardedRepo, './deny', 'Deny', 'guarded'),
  ]) {
    await admin.apply(object, { fieldManager: 'e2e' });
  }
  await waitAllReady(admin, ns.name, ['reporting', 'reverting', 'retrying', 'throttled', 'bulk', 'guarded']);
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  for (const receiver of Object.values(slack)) await receiver.close();
  await shared?.close();
  await guardedRepo?.close();
  await admin?.close();
  await editor?.close();
  await intruder?.close();
  if (tokenDir !== undefined) await rm(tokenDir, { recursive: true, force: true });
});

describe('drift on a real API server', () => {
  it('Report mode: records and alerts an edit without touching it, and clears when fixed by hand', async () => {
    expect(condition(await repoStatus(admin, ns.name, 'reporting'), 'Drifted')?.status).toBe('False');
    const edit = await patchData(editor, 'reported', { x: 'hand-edited' });
    expect(edit.status).toBe(200);

    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'reporting');
        return condition(s, 'Drifted')?.status === 'True' ? s : undefined;
      },
      { timeoutMs: 15_000, description: 'Drifted=True' },
    );
    expect(condition(status, 'Drifted')).toMatchObject({ reason: 'DriftDetected' });
    expect(condition(status, 'Drifted')?.message).toContain(`ConfigMap/${ns.name}/reported: .data.x`);
    expect(condition(status, 'Drifted')?.message).toContain('drift mode Report');
    expect(status.drift?.objects).toEqual([
      {
        id: `${ns.name}_reported__ConfigMap`,
        subject: `ConfigMap/${ns.name}/reported`,
        deleted: false,
        fields: ['.data.x'],
        manager: 'kubectl-edit',
      },
    ]);

    const message = await waitFor(() => slack.reporting.requests[0], {
      timeoutMs: 15_000,
      description: 'a DriftDetected alert',
    });
    const body = message.body as SlackBody;
    expect(body.blocks[0]).toEqual({
      type: 'header',
      text: { type: 'plain_text', text: `DriftDetected: ${ns.name}/reporting` },
    });
    expect(JSON.stringify(body.blocks)).toContain(
      `ConfigMap* \`${ns.name}/reported\`: \`.data.x\` (by \`kubectl-edit\`)`,
    );
    expect(JSON.stringify(body.blocks)).toContain('reported');
    // Nothing in the cluster changed: the edit stays (the alert went out after the drift was handled).
    expect(await dataOf('reported')).toEqual({ x: 'hand-edited', y: 'kept' });

    const events = await admin.list('v1', 'Event', {
      namespace: ns.name,
      fieldSelector: 'involvedObject.name=reporting',
    });
    const drift = events.items.find((e) => e.reason === 'DriftDetected');
    expect(drift?.type).toBe('Warning');
    expect(drift?.message as string).toContain(`ConfigMap/${ns.name}/reported .data.x by kubectl-edit`);

    // Fixed by hand: set back to the value in Git.
    expect((await patchData(editor, 'reported', { x: 'from-git' })).status).toBe(200);
    const fixed = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'reporting');
        return condition(s, 'Drifted')?.status === 'False' ? s : undefined;
      },
      { timeoutMs: 15_000, description: 'Drifted=False after the fix' },
    );
    expect(condition(fixed, 'Drifted')?.reason).toBe('NoDrift');
    expect(fixed.drift).toBeUndefined();
    expect(slack.reporting.requests).toHaveLength(1);
  });

  it('a field another manager sets and Signet does not is not drift: no revert, no alert, not Drifted', async () => {
    const sentBefore = slack.reporting.requests.length + slack.retrying.requests.length;
    await editor.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'reported', namespace: ns.name, annotations: { 'example.com/owner': 'team-a' } },
      },
      { fieldManager: 'other-controller' },
    );
    expect(
      (
        await editor.request({
          method: 'PATCH',
          path: `/api/v1/namespaces/${ns.name}/configmaps/retried?fieldManager=label-editor`,
          headers: { 'content-type': 'application/merge-patch+json' },
          body: JSON.stringify({ metadata: { labels: { team: 'a' } } }),
          timeoutMs: 15_000,
        })
      ).status,
    ).toBe(200);
    await holdsFor(async () => {
      const reported = await admin.get(configMap('reported'));
      const retried = await admin.get(configMap('retried'));
      const status = await repoStatus(admin, ns.name, 'reporting');
      const alerts = slack.reporting.requests.length + slack.retrying.requests.length - sentBefore;
      if (alerts !== 0) return `${alerts} alert(s) sent`;
      const annotations = reported?.metadata.annotations as Record<string, string> | undefined;
      if (annotations?.['example.com/owner'] !== 'team-a') return 'the annotation was reverted';
      const labels = retried?.metadata.labels as Record<string, string> | undefined;
      if (labels?.team !== 'a') return 'the label was reverted';
      const drifted = condition(status, 'Drifted');
      if (drifted?.status !== 'False') return `Drifted is ${JSON.stringify(drifted)}`;
      if (status.drift !== undefined) return `status.drift is ${JSON.stringify(status.drift)}`;
      return undefined;
    }, 3_000);
    const managers = (await admin.get(configMap('reported')))?.metadata.managedFields?.map((f) => f.manager);
    expect(managers).toContain('other-controller');
  });

  it('one out-of-band edit is reverted and alerted in exactly one Slack message', async () => {
    expect(slack.reverting.requests).toHaveLength(0);
    expect((await patchData(editor, 'reverted', { x: 'hand-edited' })).status).toBe(200);
    await waitFor(async () => (await dataOf('reverted'))?.x === 'from-git', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the edit reverted',
    });
    const message = await waitFor(() => slack.reverting.requests[0], {
      timeoutMs: 15_000,
      description: 'a DriftReverted alert',
    });
    // A second message would be a second batch: none arrives for a whole batch window and a margin.
    await holdsFor(
      () =>
        slack.reverting.requests.length === 1
          ? undefined
          : `${slack.reverting.requests.length} Slack messages for one edit: ${JSON.stringify(slack.reverting.requests.map((r) => (r.body as SlackBody).text))}`,
      batchWindowMs + quietMarginMs,
    );
    const body = message.body as SlackBody;
    expect(body.blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/reverting`);
    expect(objectsInMessage(message)).toBe(1);
    expect(JSON.stringify(body.blocks)).toContain(
      `\`${ns.name}/reverted\`: \`.data.x\` (by \`kubectl-edit\`)`,
    );
  });

  it('Deny mode: the API server refuses another identity, the operator still applies, Revert removes the policy', async () => {
    await waitFor(
      async () =>
        (await admin.get(policyRef('ValidatingAdmissionPolicy'))) !== undefined &&
        (await admin.get(policyRef('ValidatingAdmissionPolicyBinding'))) !== undefined,
      { timeoutMs: 15_000, description: 'the ValidatingAdmissionPolicy and its binding' },
    );
    // The API server enforces a new policy once its policy informer has it: probe until refused.
    // (A probe that still gets through is drift, which Deny mode reverts.)
    const refused = await waitFor(
      async () => {
        const response = await patchData(intruder, 'guarded', { x: 'intruder' }, 'intruder');
        return response.status === 403 ? response : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, description: 'an UPDATE by another identity refused' },
    );
    const refusal = JSON.parse(refused.body) as { message: string; reason: string };
    expect(refusal.reason).toBe('Forbidden');
    expect(refusal.message).toContain(`managed by the Signet GitRepository ${ns.name}/guarded`);
    expect(refusal.message).toContain('change it in Git instead');
    const deletion = await intruder.request({
      method: 'DELETE',
      path: `/api/v1/namespaces/${ns.name}/configmaps/guarded`,
      timeoutMs: 15_000,
    });
    expect(deletion.status).toBe(403);
    await waitFor(async () => (await dataOf('guarded'))?.x === 'v1', {
      timeoutMs: 10_000,
      description: 'guarded at its Git value',
    });
    // The policy is scoped to this GitRepository's objects: the intruder may edit its own ConfigMap.
    await intruder.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'unmanaged', namespace: ns.name },
      data: { a: '1' },
    });
    expect((await patchData(intruder, 'unmanaged', { a: '2' }, 'intruder')).status).toBe(200);

    // The operator's own apply goes through: a new signed commit changes the guarded ConfigMap.
    const commit = await guardedRepo.commit({ 'deny/guarded.yaml': configMapYaml('guarded', { x: 'v2' }) });
    await waitFor(
      async () => (await repoStatus(admin, ns.name, 'guarded')).lastAppliedRevision === `main@sha1:${commit}`,
      { timeoutMs: 30_000, description: 'the new revision applied under Deny' },
    );
    expect(await dataOf('guarded')).toEqual({ x: 'v2' });

    // Back to Revert: the policy and binding go away and the intruder's edit is let through (and reverted).
    await admin.apply(gitRepository('guarded', guardedRepo, './deny', 'Revert', 'guarded'), {
      fieldManager: 'e2e',
    });
    await waitFor(
      async () =>
        (await admin.get(policyRef('ValidatingAdmissionPolicyBinding'))) === undefined &&
        (await admin.get(policyRef('ValidatingAdmissionPolicy'))) === undefined,
      { timeoutMs: 30_000, description: 'the policy and binding removed' },
    );
    await waitFor(
      async () => (await patchData(intruder, 'guarded', { x: 'intruder' }, 'intruder')).status === 200,
      { timeoutMs: 30_000, intervalMs: 250, description: 'the edit admitted once the policy is gone' },
    );
    await waitFor(async () => (await dataOf('guarded'))?.x === 'v2', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the admitted edit reverted (Revert mode)',
    });
  });

  it('Deny mode: deleting the GitRepository removes its ValidatingAdmissionPolicy and binding', async () => {
    await admin.apply(gitRepository('doomed', guardedRepo, './doomed', 'Deny', 'guarded'), {
      fieldManager: 'e2e',
    });
    await waitFor(
      async () => condition(await repoStatus(admin, ns.name, 'doomed'), 'Ready')?.status === 'True',
      {
        timeoutMs: 60_000,
        description: 'GitRepository doomed Ready',
      },
    );
    await waitFor(
      async () =>
        (await admin.get(policyRef('ValidatingAdmissionPolicy', 'doomed'))) !== undefined &&
        (await admin.get(policyRef('ValidatingAdmissionPolicyBinding', 'doomed'))) !== undefined,
      { timeoutMs: 15_000, description: 'the ValidatingAdmissionPolicy and binding of doomed' },
    );
    // Enforced before the deletion, so the removal below is what lets the intruder through.
    await waitFor(
      async () => (await patchData(intruder, 'doomed', { x: 'intruder' }, 'intruder')).status === 403,
      { timeoutMs: 30_000, intervalMs: 250, description: 'an UPDATE of doomed by another identity refused' },
    );

    // The finalizer removes the policy and binding before it lets the GitRepository go.
    await deleteGitRepositoryAndWait(admin, ns.name, 'doomed');
    expect(await admin.get(policyRef('ValidatingAdmissionPolicyBinding', 'doomed'))).toBeUndefined();
    expect(await admin.get(policyRef('ValidatingAdmissionPolicy', 'doomed'))).toBeUndefined();
    expect(await admin.get(configMap('doomed'))).toBeUndefined();
    // Nothing is left to enforce: the intruder may now create an object of that name.
    await waitFor(
      async () => {
        const created = await intruder.request({
          method: 'POST',
          path: `/api/v1/namespaces/${ns.name}/configmaps?fieldManager=intruder`,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'doomed' } }),
          timeoutMs: 15_000,
        });
        return created.status === 201;
      },
      { timeoutMs: 30_000, intervalMs: 250, description: 'the intruder creating ConfigMap doomed' },
    );
    expect((await patchData(intruder, 'doomed', { x: 'mine' }, 'intruder')).status).toBe(200);
  });

  it('a drift alert that Slack answers 500 is retried and delivered exactly once', async () => {
    slack.retrying.replies.push({ status: 500, body: 'internal_error' });
    expect((await patchData(editor, 'retried', { x: 'tampered' })).status).toBe(200);
    await waitFor(async () => (await dataOf('retried'))?.x === 'from-git', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the edit reverted',
    });
    await waitFor(() => slack.retrying.requests.length >= 2, {
      timeoutMs: 20_000,
      description: 'the alert retried after the 500',
    });
    // The second attempt was answered 200 (the script is used up): no third attempt follows.
    expect(slack.retrying.replies).toHaveLength(0);
    await holdsFor(
      () =>
        slack.retrying.requests.length === 2
          ? undefined
          : `${slack.retrying.requests.length} Slack requests: ${JSON.stringify(slack.retrying.requests.map((r) => (r.body as SlackBody).text))}`,
      3_000,
    );
    const [failed, delivered] = slack.retrying.requests as [ReceivedRequest, ReceivedRequest];
    expect(delivered.body).toEqual(failed.body);
    expect(delivered.atMs - failed.atMs).toBeGreaterThan(0);
    expect((delivered.body as SlackBody).blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/retrying`);
    expect(JSON.stringify(delivered.body)).toContain(
      `\`${ns.name}/retried\`: \`.data.x\` (by \`kubectl-edit\`)`,
    );
  });

  it('a drift alert that Slack answers 429 with Retry-After: 2 is retried no sooner than 2 s later and delivered once', async () => {
    slack.throttled.replies.push({ status: 429, headers: { 'retry-after': '2' }, body: 'rate_limited' });
    expect((await patchData(editor, 'throttled', { x: 'tampered' })).status).toBe(200);
    await waitFor(async () => (await dataOf('throttled'))?.x === 'from-git', {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'the edit reverted',
    });
    await waitFor(() => slack.throttled.requests.length >= 2, {
      timeoutMs: 20_000,
      description: 'the alert retried after the 429',
    });
    // The retry was answered 200 (the script is used up): no third request follows.
    expect(slack.throttled.replies).toHaveLength(0);
    await holdsFor(
      () =>
        slack.throttled.requests.length === 2
          ? undefined
          : `${slack.throttled.requests.length} Slack requests: ${JSON.stringify(slack.throttled.requests.map((r) => (r.body as SlackBody).text))}`,
      batchWindowMs + quietMarginMs,
    );
    const [throttled, delivered] = slack.throttled.requests as [ReceivedRequest, ReceivedRequest];
    expect(delivered.body).toEqual(throttled.body);
    const waitedMs = delivered.atMs - throttled.atMs;
    // Retry-After, not the 1 s first backoff step: at least the 2 s asked for, and not much more.
    expect(waitedMs).toBeGreaterThanOrEqual(2_000);
    expect(waitedMs).toBeLessThan(5_000);
    expect((delivered.body as SlackBody).blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/throttled`);
    expect(JSON.stringify(delivered.body)).toContain(
      `\`${ns.name}/throttled\`: \`.data.x\` (by \`kubectl-edit\`)`,
    );
    // The notifier's own account: it waited what Slack asked for.
    const retries = logRecords().filter(
      (record) => record.gitRepository === `${ns.name}/throttled` && record.status === 429,
    );
    expect(retries.map((record) => record.retryInMs)).toEqual([2_000]);
    console.info(`Slack 429 Retry-After: 2 -> retried ${Math.round(waitedMs)} ms after the refused request`);
  });

  it(`${bulkCount} managed ConfigMaps edited concurrently are all reverted and reported in exactly one message`, async () => {
    // The notifier opens a batch with the first DriftReverted alert and sends it batchWindowMs
    // later; drift rounds of one GitRepository run one after another, each alerting once. So one
    // message is certain when every edit lands well inside one window: issued concurrently.
    const editsStarted = performance.now();
    const responses = await Promise.all(
      Array.from({ length: bulkCount }, (_, index) => patchData(editor, bulkName(index), { n: 'tampered' })),
    );
    const editsTookMs = performance.now() - editsStarted;
    expect(responses.map((r) => r.status)).toEqual(Array(bulkCount).fill(200));
    expect(editsTookMs, `${bulkCount} concurrent edits took ${Math.round(editsTookMs)} ms`).toBeLessThan(
      batchWindowMs / 2,
    );
    await waitFor(
      async () => {
        const listed = await admin.list('v1', 'ConfigMap', {
          namespace: ns.name,
          labelSelector: 'signet.dev/name=bulk',
        });
        return (
          listed.items.length === bulkCount &&
          listed.items.every((item) => {
            const index = Number(item.metadata.name.slice('bulk-'.length));
            return (item.data as Record<string, string>).n === String(index);
          })
        );
      },
      { timeoutMs: 20_000, intervalMs: 100, description: `all ${bulkCount} reverted` },
    );
    const message = await waitFor(() => slack.bulk.requests[0], {
      timeoutMs: 20_000,
      description: 'the DriftReverted alert',
    });
    await holdsFor(
      () =>
        slack.bulk.requests.length === 1
          ? undefined
          : `${slack.bulk.requests.length} Slack messages, listing ${slack.bulk.requests.map(objectsInMessage).join(' + ')} objects`,
      batchWindowMs + quietMarginMs,
    );
    const body = message.body as SlackBody;
    expect(body.blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/bulk`);
    expect(objectsInMessage(message)).toBe(bulkCount);
    // The renderer lists 20 objects and summarises the rest.
    const blocks = JSON.stringify(body.blocks);
    expect(blocks).toContain(`…and ${bulkCount - 20} more objects`);
    const listedNames = [...blocks.matchAll(/`[^`/]+\/(bulk-\d\d)`/g)].map((match) => match[1]);
    expect(listedNames).toHaveLength(20);
    expect(new Set(listedNames).size).toBe(20);
    expect(body.text).toContain(`(${bulkCount} objects)`);
    console.info(
      `${bulkCount} concurrent edits took ${Math.round(editsTookMs)} ms; one message, ${Math.round(message.atMs - editsStarted)} ms after the first edit`,
    );
  });

  it('never logs a webhook URL', () => {
    const logs = captured.lines.join('\n');
    expect(logs).not.toContain('SECRETTOKEN');
  });
});
