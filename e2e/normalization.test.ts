import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import type { KubeObject } from '../src/render/object.ts';
import { Receiver } from '../test/notify/support.ts';
import { localAuditLogPath, patchesBy } from './support/audit.ts';
import { gitRepositoryObject } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  condition,
  repoStatus,
  type SignedRepo,
  startTestOperator,
  waitAllReady,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-normalize');
const userAgent = 'signet/e2e';
const slack = new Receiver();
let admin: KubeClient;
let editor: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let auditLogPath = '';

type SlackBody = { text: string; blocks: { type: string; text?: { text: string } }[] };

function quotaYaml(name: string): string {
  return `apiVersion: v1
kind: ResourceQuota
metadata:
  name: ${name}
spec:
  hard:
    cpu: 1000m
    memory: 1024Mi
    pods: 10
`;
}

function deploymentYaml(name: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ${name}
  template:
    metadata:
      labels:
        app: ${name}
    spec:
      containers:
        - name: app
          image: registry.example/app:1.0
          resources:
            requests:
              cpu: "0.5"
              memory: 1024Mi
            limits:
              cpu: 1000m
              memory: 1.5Gi
`;
}

function serviceYaml(name: string): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector:
    app: ${name}
  ports:
    - port: 80
`;
}

const refs = (prefix: string) => ({
  quota: { apiVersion: 'v1', kind: 'ResourceQuota', name: `${prefix}-quota`, namespace: ns.name },
  app: { apiVersion: 'apps/v1', kind: 'Deployment', name: `${prefix}-app`, namespace: ns.name },
  svc: { apiVersion: 'v1', kind: 'Service', name: `${prefix}-svc`, namespace: ns.name },
});
const resourcePaths = (prefix: string) => [
  `/api/v1/namespaces/${ns.name}/resourcequotas/${prefix}-quota`,
  `/apis/apps/v1/namespaces/${ns.name}/deployments/${prefix}-app`,
  `/api/v1/namespaces/${ns.name}/services/${prefix}-svc`,
];

function hardOf(object: KubeObject | undefined): Record<string, string> | undefined {
  return (object?.spec as { hard?: Record<string, string> } | undefined)?.hard;
}

function containerResources(object: KubeObject | undefined): unknown {
  const spec = object?.spec as
    | { template?: { spec?: { containers?: { name: string; resources?: unknown }[] } } }
    | undefined;
  return spec?.template?.spec?.containers?.find((c) => c.name === 'app')?.resources;
}

/** A JSON merge patch as `client`, recorded under field manager `manager`. */
async function mergePatch(
  client: KubeClient,
  path: string,
  body: unknown,
  manager: string,
  contentType = 'application/merge-patch+json',
): Promise<void> {
  const response = await client.request({
    method: 'PATCH',
    path: `${path}?fieldManager=${manager}`,
    headers: { 'content-type': contentType },
    body: JSON.stringify(body),
    timeoutMs: 15_000,
  });
  expect(response.status, response.body).toBe(200);
}

async function driftEvents(): Promise<number> {
  const metric = await operator.operator.metrics.driftEventsTotal.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

async function driftEventsRecorded(): Promise<string[]> {
  const events = await admin.list('v1', 'Event', { namespace: ns.name });
  return events.items
    .filter((e) => e.reason === 'DriftDetected' || e.reason === 'DriftReverted')
    .map((e) => `${String(e.reason)}: ${String(e.message)}`);
}

/**
 * Polls for `durationMs` and fails at the first violation `check` names (a deadline poll: it
 * proves that something does not happen within a bounded time, and fails as soon as it does).
 */
async function holdsFor(check: () => Promise<string | undefined>, durationMs: number): Promise<void> {
  const deadline = Date.now() + durationMs;
  while (Date.now() < deadline) {
    const violation = await check();
    if (violation !== undefined) throw new Error(violation);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** PATCHes (server-side applies) the operator sent for these resource paths, from the audit log. */
async function operatorPatches(paths: readonly string[]): Promise<string[]> {
  return patchesBy(auditLogPath, userAgent, paths);
}

function gitRepository(name: string, path: string, mode: 'Report' | 'Revert'): KubeObject {
  return gitRepositoryObject(signed, ns.name, name, {
    interval: '1s',
    path,
    drift: { mode },
    alerts: { slack: { secretRef: { name: 'slack' } } },
  });
}

beforeAll(async () => {
  // The plan test counts the operator's PATCHes in the audit log of the local control plane.
  auditLogPath = localAuditLogPath('e2e/normalization', "the operator's applies");
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'normalize', slack }));
  editor = await adminClient('kubectl-edit/1.0');
  await signed.commit({
    'report/quota.yaml': quotaYaml('report-quota'),
    'report/app.yaml': deploymentYaml('report-app'),
    'report/svc.yaml': serviceYaml('report-svc'),
    'revert/quota.yaml': quotaYaml('revert-quota'),
    'revert/app.yaml': deploymentYaml('revert-app'),
    'revert/svc.yaml': serviceYaml('revert-svc'),
  });
  operator = await startTestOperator();
  await admin.apply(gitRepository('reporting', './report', 'Report'), { fieldManager: 'e2e' });
  await admin.apply(gitRepository('reverting', './revert', 'Revert'), { fieldManager: 'e2e' });
  await waitAllReady(admin, ns.name, ['reporting', 'reverting']);
}, 180_000);

afterAll(async () => {
  await closeAll(operator, slack, signed, admin, editor);
});

describe('values the API server normalises', () => {
  it('are not drift: no Drifted, no status.drift, no alert, no revert, after a watch event on every object', async () => {
    // The API server really stored other text than Git's.
    expect(hardOf(await admin.get(refs('report').quota))).toEqual({ cpu: '1', memory: '1Gi', pods: '10' });
    expect(containerResources(await admin.get(refs('revert').app))).toEqual({
      requests: { cpu: '500m', memory: '1Gi' },
      limits: { cpu: '1', memory: '1536Mi' },
    });
    const ports = ((await admin.get(refs('report').svc))?.spec as { ports?: unknown[] } | undefined)?.ports;
    expect(ports).toEqual([{ port: 80, protocol: 'TCP', targetPort: 80 }]);

    // Another manager touches every object (a field Signet does not set): each gets a watch event.
    for (const prefix of ['report', 'revert']) {
      for (const path of resourcePaths(prefix)) {
        await mergePatch(
          editor,
          path,
          { metadata: { annotations: { 'example.com/seen': 'yes' } } },
          'annotator',
        );
      }
    }
    await holdsFor(async () => {
      if (slack.requests.length > 0) {
        return `Slack alerts: ${JSON.stringify(slack.requests.map((r) => (r.body as SlackBody).text))}`;
      }
      const counted = await driftEvents();
      if (counted > 0) return `signet_drift_events_total is ${counted}`;
      const recorded = await driftEventsRecorded();
      if (recorded.length > 0) return `drift Events: ${recorded.join(' | ')}`;
      const status = await repoStatus(admin, ns.name, 'reporting');
      const drifted = condition(status, 'Drifted');
      if (drifted?.status !== 'False') return `Drifted is ${JSON.stringify(drifted)}`;
      if (status.drift !== undefined) return `status.drift is ${JSON.stringify(status.drift)}`;
      return undefined;
    }, 4_000);
  });

  it('the plan of a new revision leaves normalised, unchanged objects alone (no apply request)', async () => {
    const paths = [...resourcePaths('report'), ...resourcePaths('revert')];
    const before = await operatorPatches(paths);
    const commit = await signed.commit({
      'report/extra.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: report-extra\ndata:\n  a: "1"\n',
      'revert/extra.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: revert-extra\ndata:\n  a: "1"\n',
    });
    for (const name of ['reporting', 'reverting']) {
      await waitFor(
        async () => (await repoStatus(admin, ns.name, name)).lastAppliedRevision === `main@sha1:${commit}`,
        { timeoutMs: 30_000, description: `${name} applied the new revision` },
      );
    }
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'report-extra', namespace: ns.name }),
    ).toBeDefined();
    const after = await operatorPatches(paths);
    expect(after.slice(before.length)).toEqual([]);
    expect(condition(await repoStatus(admin, ns.name, 'reporting'), 'Drifted')?.status).toBe('False');
  });
  // After the plan test: the hand fix below leaves kubectl-edit owning `.spec.hard.cpu`, which a
  // later apply of that object would meet as a conflict (as for any field another manager took).
  it('Report: a real change of a quantity is reported (that field only) and cleared when set back by hand', async () => {
    const quota = resourcePaths('report')[0]!;
    await mergePatch(editor, quota, { spec: { hard: { cpu: '2' } } }, 'kubectl-edit');
    const status = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'reporting');
        return condition(s, 'Drifted')?.status === 'True' ? s : undefined;
      },
      { timeoutMs: 15_000, description: 'Drifted=True' },
    );
    expect(status.drift?.objects).toEqual([
      {
        id: `${ns.name}_report-quota__ResourceQuota`,
        subject: `ResourceQuota/${ns.name}/report-quota`,
        deleted: false,
        fields: ['.spec.hard.cpu'],
        manager: 'kubectl-edit',
      },
    ]);
    const alert = await waitFor(() => slack.requests[0], {
      timeoutMs: 15_000,
      description: 'a DriftDetected alert',
    });
    expect((alert.body as SlackBody).blocks[0]?.text?.text).toBe(`DriftDetected: ${ns.name}/reporting`);
    expect(JSON.stringify((alert.body as SlackBody).blocks)).toContain(
      `\`${ns.name}/report-quota\`: \`.spec.hard.cpu\` (by \`kubectl-edit\`)`,
    );
    expect(hardOf(await admin.get(refs('report').quota))?.cpu).toBe('2');

    // Set back by hand in Git's own spelling: the server stores `1` again, which is no drift.
    await mergePatch(editor, quota, { spec: { hard: { cpu: '1000m' } } }, 'kubectl-edit');
    const fixed = await waitFor(
      async () => {
        const s = await repoStatus(admin, ns.name, 'reporting');
        return condition(s, 'Drifted')?.status === 'False' ? s : undefined;
      },
      { timeoutMs: 15_000, description: 'Drifted=False after the fix' },
    );
    expect(fixed.drift).toBeUndefined();
    expect(slack.requests).toHaveLength(1);
  });

  it('Revert: a real change of a quantity is reverted to the server form of 1000m, alerted once, and stays', async () => {
    const sentBefore = slack.requests.length;
    const [quota, app] = resourcePaths('revert') as [string, string];
    await mergePatch(editor, quota, { spec: { hard: { cpu: '2' } } }, 'kubectl-edit');
    await mergePatch(
      editor,
      app,
      {
        spec: { template: { spec: { containers: [{ name: 'app', resources: { limits: { cpu: '2' } } }] } } },
      },
      'kubectl-edit',
      'application/strategic-merge-patch+json',
    );
    await waitFor(
      async () =>
        hardOf(await admin.get(refs('revert').quota))?.cpu === '1' &&
        (containerResources(await admin.get(refs('revert').app)) as { limits: { cpu: string } }).limits
          .cpu === '1',
      { timeoutMs: 10_000, intervalMs: 50, description: 'both quantities reverted to 1 (1000m in Git)' },
    );
    const alert = await waitFor(() => slack.requests[sentBefore], {
      timeoutMs: 15_000,
      description: 'a DriftReverted alert',
    });
    const blocks = JSON.stringify((alert.body as SlackBody).blocks);
    expect((alert.body as SlackBody).blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/reverting`);
    expect(blocks).toContain(`\`${ns.name}/revert-quota\`: \`.spec.hard.cpu\` (by \`kubectl-edit\`)`);
    expect(blocks).toContain(
      `\`${ns.name}/revert-app\`: \`.spec.template.spec.containers[name=app].resources.limits.cpu\``,
    );
    // The reverted objects are not "reverted" again by the events of the revert itself.
    await holdsFor(async () => {
      const sent = slack.requests.length - sentBefore;
      return sent === 1
        ? undefined
        : `${sent} Slack messages: ${JSON.stringify(slack.requests.slice(sentBefore).map((r) => (r.body as SlackBody).text))}`;
    }, 3_000);
    expect(hardOf(await admin.get(refs('revert').quota))).toEqual({ cpu: '1', memory: '1Gi', pods: '10' });
  });
});
