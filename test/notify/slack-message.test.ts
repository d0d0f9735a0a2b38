import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Alert, alertKinds } from '../../src/notify/alert.ts';
import { renderSlackMessage, type SlackMessage, slackLimits } from '../../src/notify/slack-message.ts';
import { alert } from './support.ts';

/** Every Block Kit limit the renderer promises, plus "no empty text" (Slack rejects it). */
function limitViolations(message: SlackMessage): string[] {
  const violations: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) violations.push(what);
  };
  check(message.text.length > 0 && message.text.length <= slackLimits.fallbackText, 'fallback text');
  check(message.blocks.length <= slackLimits.blocks, `${message.blocks.length} blocks`);
  for (const [index, block] of message.blocks.entries()) {
    if (block.type === 'header') {
      check(
        block.text.text.length > 0 && block.text.text.length <= slackLimits.headerText,
        `header ${index}`,
      );
    } else if (block.type === 'section') {
      check(block.text !== undefined || (block.fields?.length ?? 0) > 0, `section ${index} empty`);
      if (block.text) {
        const length = block.text.text.length;
        check(length > 0 && length <= slackLimits.sectionText, `section ${index} text ${length}`);
      }
      check((block.fields?.length ?? 0) <= slackLimits.sectionFields, `section ${index} field count`);
      for (const field of block.fields ?? []) {
        check(field.text.length > 0 && field.text.length <= slackLimits.fieldText, `section ${index} field`);
      }
    } else {
      check(block.elements.length <= slackLimits.contextElements, `context ${index} elements`);
      for (const element of block.elements) {
        check(element.text.length > 0 && element.text.length <= slackLimits.contextText, `context ${index}`);
      }
    }
  }
  return violations;
}

describe('renderSlackMessage', () => {
  it('renders one reverted ConfigMap drift as this exact Block Kit message', () => {
    expect(renderSlackMessage([alert()])).toEqual({
      text: 'DriftReverted: flux-system/platform on prod-eu-1 (1 object): ConfigMap/payments/app-config drifted and was reverted',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'DriftReverted: flux-system/platform' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Cluster*\nprod-eu-1' },
            { type: 'mrkdwn', text: '*Revision*\n`main@sha1:8f3c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70`' },
            { type: 'mrkdwn', text: '*Signer*\nalice@example.com' },
            { type: 'mrkdwn', text: '*Action*\nreverted' },
          ],
        },
        {
          type: 'section',
          text: { type: 'mrkdwn', text: 'ConfigMap/payments/app-config drifted and was reverted' },
        },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*Objects (1)*\n• *ConfigMap* `payments/app-config`: `data.LOG_LEVEL` (by `kubectl-edit`)',
          },
        },
        { type: 'context', elements: [{ type: 'mrkdwn', text: '1 alert · 2026-11-22T10:00:00.000Z' }] },
      ],
    });
  });

  it('omits absent revision, signer, action and objects; lists deletions and cluster-scoped objects', () => {
    const message = renderSlackMessage([
      alert({
        kind: 'ReconcileFailed',
        revision: undefined,
        signer: undefined,
        action: undefined,
        objects: [
          { kind: 'Namespace', name: 'payments', fields: [], deleted: true, manager: 'kubectl' },
          { kind: 'Secret', namespace: 'a', name: 'b', fields: [] },
        ],
        message: 'apply failed: <forbidden> & denied',
      }),
    ]);
    expect(message.blocks[1]).toEqual({
      type: 'section',
      fields: [{ type: 'mrkdwn', text: '*Cluster*\nprod-eu-1' }],
    });
    expect(message.blocks[2]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: 'apply failed: &lt;forbidden&gt; &amp; denied' },
    });
    expect(message.blocks[3]).toEqual({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: '*Objects (2)*\n• *Namespace* `payments`: deleted (by `kubectl`)\n• *Secret* `a/b`',
      },
    });
  });

  it('lists the first 20 of 50 objects, then "and 30 more objects"', () => {
    const objects = Array.from({ length: 50 }, (_, i) => ({
      kind: 'ConfigMap',
      namespace: 'payments',
      name: `cm-${String(i).padStart(2, '0')}`,
      fields: ['data.x'],
      manager: 'kubectl',
    }));
    const message = renderSlackMessage([alert({ kind: 'DriftDetected', action: 'reported', objects })]);
    const lines = objects
      .slice(0, 20)
      .map((o) => `• *ConfigMap* \`payments/${o.name}\`: \`data.x\` (by \`kubectl\`)`);
    expect(message.blocks).toHaveLength(5);
    expect(message.blocks[3]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: ['*Objects (50)*', ...lines, '…and 30 more objects'].join('\n') },
    });
  });

  it('merges a batch: distinct values, repeated objects merged, messages bounded, time range', () => {
    const message = renderSlackMessage([
      alert({ message: 'one', occurredAt: new Date('2026-11-22T10:00:01.000Z') }),
      alert({
        message: 'two',
        signer: 'bob@example.com',
        objects: [
          {
            kind: 'ConfigMap',
            namespace: 'payments',
            name: 'app-config',
            fields: ['data.B'],
            manager: 'helm',
          },
        ],
      }),
    ]);
    expect(message.blocks[1]).toMatchObject({
      fields: expect.arrayContaining([
        { type: 'mrkdwn', text: '*Signer*\nalice@example.com, bob@example.com' },
      ]),
    });
    expect(message.blocks[2]).toEqual({ type: 'section', text: { type: 'mrkdwn', text: '• one\n• two' } });
    expect(message.blocks[3]).toEqual({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: '*Objects (1)*\n• *ConfigMap* `payments/app-config`: `data.LOG_LEVEL`, `data.B` (by `kubectl-edit`, `helm`)',
      },
    });
    expect(message.blocks[4]).toEqual({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: '2 alerts · 2026-11-22T10:00:00.000Z to 2026-11-22T10:00:01.000Z' }],
    });
  });

  it('is deterministic', () => {
    const alerts = [alert(), alert({ message: 'second' })];
    expect(JSON.stringify(renderSlackMessage(alerts))).toBe(JSON.stringify(renderSlackMessage(alerts)));
  });

  it('never throws and never exceeds Slack limits, for any alerts (property)', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 400 }),
      fc.string({
        unit: fc.constantFrom('&', '<', '>', '`', '*', '\n', '\ud83d\ude00', 'a'),
        maxLength: 6000,
      }),
    );
    const object = fc.record(
      {
        kind: text,
        namespace: text,
        name: text,
        fields: fc.array(text, { maxLength: 40 }),
        manager: text,
        deleted: fc.boolean(),
      },
      { requiredKeys: ['kind', 'name', 'fields'] },
    );
    const anAlert: fc.Arbitrary<Alert> = fc.record(
      {
        kind: fc.constantFrom(...alertKinds),
        gitRepository: fc.record({ namespace: text, name: text }),
        cluster: text,
        revision: text,
        signer: text,
        objects: fc.array(object, { maxLength: 300 }),
        action: text,
        message: text,
        occurredAt: fc.date(),
      },
      { requiredKeys: ['kind', 'gitRepository', 'cluster', 'message', 'occurredAt'] },
    );
    fc.assert(
      fc.property(
        fc.array(anAlert, { maxLength: 30 }),
        fc.integer({ min: -5, max: 500 }),
        (alerts, maxObjects) => {
          const message = renderSlackMessage(alerts, { maxObjects });
          expect(limitViolations(message)).toEqual([]);
          expect(() => JSON.stringify(message)).not.toThrow();
        },
      ),
      { numRuns: 300 },
    );
  });
});
