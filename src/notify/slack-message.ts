import { type Alert, type AlertObject, formatObjectId } from './alert.ts';

/** Slack Block Kit limits this renderer stays within. */
export const slackLimits = {
  blocks: 50,
  headerText: 150,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  contextElements: 10,
  contextText: 3000,
  /** Our own bound for the plain-text fallback (Slack truncates at 40,000). */
  fallbackText: 3000,
} as const;

export interface PlainText {
  readonly type: 'plain_text';
  readonly text: string;
}

export interface MrkdwnText {
  readonly type: 'mrkdwn';
  readonly text: string;
}

export interface HeaderBlock {
  readonly type: 'header';
  readonly text: PlainText;
}

export interface SectionBlock {
  readonly type: 'section';
  readonly text?: MrkdwnText;
  readonly fields?: readonly MrkdwnText[];
}

export interface ContextBlock {
  readonly type: 'context';
  readonly elements: readonly MrkdwnText[];
}

export type SlackBlock = HeaderBlock | SectionBlock | ContextBlock;

/** The JSON body of an incoming-webhook request. */
export interface SlackMessage {
  /** Plain-text fallback for notifications and clients without Block Kit. */
  readonly text: string;
  readonly blocks: readonly SlackBlock[];
}

export interface RenderOptions {
  /** Objects listed before "and N more objects" (clamped to 1‥100). Default 20. */
  readonly maxObjects?: number;
}

export const defaultMaxObjects = 20;
const maxFieldsPerObject = 10;
const maxMessages = 5;
const maxLineLength = 1000;

/** Cut to at most `max` UTF-16 units with a trailing ellipsis, without splitting a surrogate pair. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/** Slack mrkdwn control characters. */
function escapeMrkdwn(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** Escaped, bounded text for mrkdwn; `raw` is cut before escaping so entities stay whole. */
function mrkdwn(raw: string, max: number): string {
  const escaped = escapeMrkdwn(truncate(raw, max));
  return escaped.length <= max ? escaped : escapeMrkdwn(truncate(raw, Math.floor(max / 5)));
}

/** An inline code span: backticks inside would end it early, so they become quotes. */
function code(raw: string, max: number): string {
  return `\`${mrkdwn(raw.replaceAll('`', "'").replaceAll('\n', ' ') || ' ', max)}\``;
}

function nonEmpty(text: string, placeholder: string): string {
  return text.trim() === '' ? placeholder : text;
}

function distinct(values: readonly (string | undefined)[]): string[] {
  return [...new Set(values.filter((v): v is string => v !== undefined && v !== ''))];
}

function isoTime(date: Date): string {
  return date instanceof Date && Number.isFinite(date.getTime()) ? date.toISOString() : 'unknown time';
}

function repoName(alert: Alert): string {
  return `${alert.gitRepository.namespace}/${alert.gitRepository.name}`;
}

interface MergedObject {
  readonly id: string;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly name: string;
  readonly fields: string[];
  readonly managers: string[];
  deleted: boolean;
}

/** Objects of all alerts in first-seen order; repeats of one object merge their fields and managers. */
function mergeObjects(alerts: readonly Alert[]): MergedObject[] {
  const byId = new Map<string, MergedObject>();
  for (const alert of alerts) {
    for (const object of alert.objects ?? ([] as readonly AlertObject[])) {
      const id = formatObjectId(object);
      let merged = byId.get(id);
      if (merged === undefined) {
        merged = {
          id,
          kind: object.kind,
          namespace: object.namespace,
          name: object.name,
          fields: [],
          managers: [],
          deleted: false,
        };
        byId.set(id, merged);
      }
      for (const field of object.fields) if (!merged.fields.includes(field)) merged.fields.push(field);
      if (object.manager && !merged.managers.includes(object.manager)) merged.managers.push(object.manager);
      merged.deleted ||= object.deleted === true;
    }
  }
  return [...byId.values()];
}

function objectLine(object: MergedObject): string {
  const where = object.namespace ? `${object.namespace}/${object.name}` : object.name;
  let line = `• *${mrkdwn(nonEmpty(object.kind, '(kind?)'), 100)}* ${code(nonEmpty(where, '(unnamed)'), 300)}`;
  if (object.deleted) {
    line += ': deleted';
  } else if (object.fields.length > 0) {
    const shown = object.fields.slice(0, maxFieldsPerObject).map((field) => code(field, 120));
    const more = object.fields.length - shown.length;
    line += `: ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  }
  if (object.managers.length > 0) {
    line += ` (by ${object.managers
      .slice(0, 3)
      .map((manager) => code(manager, 80))
      .join(', ')}${object.managers.length > 3 ? ' and others' : ''})`;
  }
  return truncate(line, maxLineLength);
}

function field(label: string, values: readonly string[], asCode: boolean): MrkdwnText {
  const budget = slackLimits.fieldText - label.length - 10;
  const perValue = Math.max(20, Math.floor(budget / Math.max(1, values.length)) - 4);
  const rendered = values.map((value) => (asCode ? code(value, perValue) : mrkdwn(value, perValue)));
  return { type: 'mrkdwn', text: truncate(`*${label}*\n${rendered.join(', ')}`, slackLimits.fieldText) };
}

/**
 * Render alerts (normally of one GitRepository and kind: the notifier batches that way) as one
 * Block Kit message. Pure and deterministic; never throws; stays within `slackLimits`.
 */
export function renderSlackMessage(alerts: readonly Alert[], options: RenderOptions = {}): SlackMessage {
  const first = alerts[0];
  if (first === undefined) {
    return { text: 'Signet: no alerts', blocks: [] };
  }
  const maxObjects = Math.min(100, Math.max(1, Math.floor(options.maxObjects ?? defaultMaxObjects) || 1));
  const kinds = distinct(alerts.map((alert) => alert.kind));
  const repos = distinct(alerts.map(repoName));
  const title = `${kinds.join(', ')}: ${repos.length === 1 ? repos[0] : `${repos.length} GitRepositories`}`;
  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(nonEmpty(title, 'Signet alert'), 150) } },
  ];

  const fields: MrkdwnText[] = [];
  if (repos.length > 1) fields.push(field('GitRepositories', repos, false));
  fields.push(
    field('Cluster', [nonEmpty(distinct(alerts.map((a) => a.cluster)).join(', '), '(unnamed)')], false),
  );
  const revisions = distinct(alerts.map((alert) => alert.revision));
  if (revisions.length > 0) fields.push(field('Revision', revisions, true));
  const signers = distinct(alerts.map((alert) => alert.signer));
  if (signers.length > 0) fields.push(field('Signer', signers, false));
  const actions = distinct(alerts.map((alert) => alert.action));
  if (actions.length > 0) fields.push(field('Action', actions, false));
  blocks.push({ type: 'section', fields });

  const messages = distinct(alerts.map((alert) => alert.message.trim()));
  if (messages.length > 0) {
    const text =
      messages.length === 1
        ? mrkdwn(messages[0]!, slackLimits.sectionText)
        : [
            ...messages.slice(0, maxMessages).map((message) => `• ${mrkdwn(message, 550)}`),
            ...(messages.length > maxMessages ? [`…and ${messages.length - maxMessages} more messages`] : []),
          ].join('\n');
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncate(text, slackLimits.sectionText) } });
  }

  const objects = mergeObjects(alerts);
  const trailerBlocks = 1;
  if (objects.length > 0) {
    // Pack one line per object into sections of at most 3000 characters, within the block budget.
    const sectionBudget = slackLimits.blocks - blocks.length - trailerBlocks;
    const sections: string[][] = [[`*Objects (${objects.length})*`]];
    const sectionLength = (lines: readonly string[]) => lines.join('\n').length;
    const moreLine = (n: number) => `…and ${n} more objects`;
    let listed = 0;
    for (const object of objects.slice(0, maxObjects)) {
      const line = objectLine(object);
      const current = sections[sections.length - 1]!;
      // Keep room for the "and N more" line in whichever section ends up last.
      if (sectionLength([...current, line, moreLine(objects.length)]) <= slackLimits.sectionText) {
        current.push(line);
      } else if (sections.length < sectionBudget) {
        sections.push([line]);
      } else {
        break;
      }
      listed += 1;
    }
    if (listed < objects.length) sections[sections.length - 1]!.push(moreLine(objects.length - listed));
    for (const lines of sections) {
      blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncate(lines.join('\n'), 3000) } });
    }
  }

  const times = alerts.map((alert) => isoTime(alert.occurredAt)).sort();
  const when = times[0] === times[times.length - 1] ? times[0]! : `${times[0]} to ${times[times.length - 1]}`;
  const context = `${alerts.length === 1 ? '1 alert' : `${alerts.length} alerts`} · ${when}`;
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: truncate(context, 3000) }] });

  const objectSummary =
    objects.length > 0 ? ` (${objects.length} object${objects.length === 1 ? '' : 's'})` : '';
  const fallback = `${title} on ${distinct(alerts.map((a) => a.cluster)).join(', ') || '(unnamed)'}${objectSummary}: ${messages[0] ?? ''}`;
  return { text: mrkdwn(fallback, slackLimits.fallbackText), blocks };
}
