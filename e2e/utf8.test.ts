import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import type { KubeObject } from '../src/render/object.ts';
import { type ReceivedRequest, Receiver } from '../test/notify/support.ts';
import { localAuditLogPath, patchesBy } from './support/audit.ts';
import { gitRepositoryObject } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  adminClient,
  condition,
  configMapYaml,
  repoStatus,
  type SignedRepo,
  startTestOperator,
  waitAllReady,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

const ns = useTestNamespace('signet-utf8');
const operatorUserAgent = 'signet/e2e';
/** The alert batch window of the operator below. */
const batchWindowMs = 300;
const objectCount = 6;
/** UTF-8 bytes of `.data.t` per ConfigMap: six of them hold ~270 KB. */
const bytesPerObject = 45_000;
const slack = new Receiver();
let admin: KubeClient;
let labeler: KubeClient;
let signed: SignedRepo;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
let auditLogPath = '';

type SlackBody = { text: string; blocks: { type: string; text?: { text: string } }[] };

const textName = (index: number) => `text-${index}`;
const textNames = Array.from({ length: objectCount }, (_, index) => textName(index));
const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name });
const configMapPath = (name: string) => `/api/v1/namespaces/${ns.name}/configmaps/${name}`;

/**
 * Text of `bytes` UTF-8 bytes (to a few bytes): accented letters (2 bytes each), CJK (3), emoji
 * (4, some joined by ZWJ or as flags), spaces and ASCII punctuation, varied per object so no two
 * events are alike. No `"` or `\`, so it sits in a double-quoted YAML scalar as is.
 */
function multilingualText(seed: number, bytes: number): string {
  const pieces = [
    'Grüße aus Köln, déjà vu, façade, naïve café, Ångström, señor Müller; ',
    '東京都の天気は晴れ。漢字かな交じり文、中文测试、한국어 텍스트。',
    '🙂🚀🎉👩🏽‍💻🇩🇪🇯🇵 ',
    'Ελληνικά, русский текст, עברית, العربية — ',
    `#${seed} `,
  ];
  let text = '';
  for (let index = seed; Buffer.byteLength(text) < bytes; index++) {
    text += pieces[index % pieces.length];
  }
  return text;
}

const texts = new Map(textNames.map((name, index) => [name, multilingualText(index, bytesPerObject)]));

async function dataOf(name: string): Promise<Record<string, string> | undefined> {
  return (await admin.get(configMap(name)))?.data as Record<string, string> | undefined;
}

/** A JSON merge patch of a ConfigMap as `client`, recorded under field manager `manager`. */
async function mergePatch(
  client: KubeClient,
  name: string,
  body: unknown,
  manager: string,
): Promise<KubeObject> {
  const response = await client.request({
    method: 'PATCH',
    path: `${configMapPath(name)}?fieldManager=${manager}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify(body),
    timeoutMs: 15_000,
  });
  expect(response.status, response.body).toBe(200);
  return JSON.parse(response.body) as KubeObject;
}

/** Which of the six text ConfigMaps a Slack message names, if any. */
function textObjectsIn(request: ReceivedRequest): string[] {
  const blocks = JSON.stringify((request.body as SlackBody).blocks);
  return textNames.filter((name) => blocks.includes(`${ns.name}/${name}\``));
}

async function driftEventMessages(): Promise<string[]> {
  const events = await admin.list('v1', 'Event', { namespace: ns.name });
  return events.items
    .filter((e) => e.reason === 'DriftDetected' || e.reason === 'DriftReverted')
    .map((e) => `${String(e.reason)}: ${String(e.message)}`);
}

async function driftEventsCounted(): Promise<number> {
  const metric = await operator.operator.metrics.driftEventsTotal.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

/** PATCHes (server-side applies) the operator sent for the six text ConfigMaps, from the audit log. */
async function operatorPatchesOfTexts(): Promise<string[]> {
  return patchesBy(auditLogPath, operatorUserAgent, textNames.map(configMapPath));
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

beforeAll(async () => {
  // The operator's applies are counted in the audit log of the local control plane.
  auditLogPath = localAuditLogPath('e2e/utf8', "the operator's applies");
  ({ admin, signed } = await startSuite({ namespace: ns.name, repoName: 'utf8', slack }));
  labeler = await adminClient('labeler/1.0');
  const files: Record<string, string> = {
    'utf8/marker.yaml': configMapYaml('marker', { x: 'from-git' }),
  };
  for (const [name, text] of texts) files[`utf8/${name}.yaml`] = configMapYaml(name, { t: text });
  await signed.commit(files);
  operator = await startTestOperator({ alertBatchWindowMs: batchWindowMs });
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'texts', {
      interval: '1s',
      path: './utf8',
      drift: { mode: 'Revert' },
      alerts: { slack: { secretRef: { name: 'slack' } } },
    }),
    { fieldManager: 'e2e' },
  );
  await waitAllReady(admin, ns.name, ['texts']);
}, 180_000);

afterAll(async () => {
  await closeAll(operator, slack, signed, admin, labeler);
});

describe('multi-byte UTF-8 text through the watch', () => {
  it('Signet applied the six texts (~270 KB) exactly as written in Git', async () => {
    let total = 0;
    for (const [name, text] of texts) {
      const stored = (await dataOf(name))?.t;
      expect(stored === text, `${name}: .data.t as in Git`).toBe(true);
      total += Buffer.byteLength(text);
    }
    expect(total).toBeGreaterThanOrEqual(270_000);
    expect(total).toBeLessThan(271_000);
  });

  it('another manager labelling each is no drift: nothing reverted or alerted, status clean, objects untouched', async () => {
    const patchesBefore = await operatorPatchesOfTexts();
    const labelled = new Map<string, string>();
    for (const name of textNames) {
      const object = await mergePatch(
        labeler,
        name,
        { metadata: { labels: { 'example.com/team': 'docs' } } },
        'labeler',
      );
      labelled.set(name, String(object.metadata.resourceVersion));
    }

    // The marker: real drift of the same GitRepository, edited after every label event.
    await mergePatch(labeler, 'marker', { data: { x: 'hand-edited' } }, 'kubectl-edit');
    await waitFor(async () => (await dataOf('marker'))?.x === 'from-git', {
      timeoutMs: 15_000,
      intervalMs: 50,
      description: 'the marker edit reverted',
    });
    const markerMessage = await waitFor(
      () =>
        slack.requests.find((request) =>
          JSON.stringify((request.body as SlackBody).blocks).includes(`${ns.name}/marker\``),
        ),
      { timeoutMs: 15_000, description: "the marker's DriftReverted alert" },
    );
    expect((markerMessage.body as SlackBody).blocks[0]?.text?.text).toBe(`DriftReverted: ${ns.name}/texts`);

    // The label events have been judged now. Then, for one more batch window and a margin (a
    // message of the same window still on its way): no alert, Event, count or apply for the texts.
    await holdsFor(async () => {
      const alerted = slack.requests.flatMap(textObjectsIn);
      if (alerted.length > 0) {
        return `Slack alerts name ${alerted.join(', ')}: ${JSON.stringify(slack.requests.map((r) => (r.body as SlackBody).text))}`;
      }
      const events = (await driftEventMessages()).filter(
        (message) => !/^DriftReverted: .*marker/.test(message),
      );
      if (events.length > 0) return `drift Events: ${events.join(' | ')}`;
      const counted = await driftEventsCounted();
      if (counted !== 1) return `signet_drift_events_total is ${counted}, the marker alone is 1`;
      return undefined;
    }, batchWindowMs + 1_000);
    expect(
      slack.requests.filter((request) => (request.body as SlackBody).text.includes('DriftReverted')),
    ).toEqual([markerMessage]);

    const status = await repoStatus(admin, ns.name, 'texts');
    expect(condition(status, 'Drifted')?.status).not.toBe('True');
    expect(status.drift).toBeUndefined();
    for (const name of textNames) {
      const live = await admin.get(configMap(name));
      const labels = (live?.metadata.labels ?? {}) as Record<string, string>;
      const data = (live?.data ?? {}) as Record<string, string>;
      expect(live?.metadata.resourceVersion, `${name}: resourceVersion of the label edit`).toBe(
        labelled.get(name),
      );
      expect(labels['example.com/team']).toBe('docs');
      expect(data.t === texts.get(name), `${name}: .data.t as in Git`).toBe(true);
    }
    expect((await operatorPatchesOfTexts()).slice(patchesBefore.length)).toEqual([]);
  });
});
