/**
 * Git protocol v2 `ls-refs` and `fetch` behind a protocol v0 face (pure): isomorphic-git's fetch
 * speaks v0/v1 only, so where an SSH server offers v2 the transport (ssh-transport.ts) lists the
 * refs with `ls-refs` and hands isomorphic-git the v0 ref advertisement they make, turns
 * isomorphic-git's v0 upload-pack request into a v2 `fetch` command, and turns the v2 answer back
 * into the v0 answer isomorphic-git and the pack receiver read (shallow lines, `NAK`, the side-band
 * pack). Nothing about the pack changes: the same side-band pkt-lines reach the same receiver.
 *
 * gitprotocol-v2(5): a v2 answer is sections (`acknowledgments`, `shallow-info`, `wanted-refs`,
 * `packfile-uris`, `packfile`) separated by delim-pkts and ended by a flush-pkt; with `done` the
 * server skips negotiation and sends `packfile`. Malformed input fails closed (FetchFailed).
 */
import { SourceError } from './errors.ts';

export type Pkt =
  | { readonly kind: 'flush' | 'delim' | 'response-end' }
  | { readonly kind: 'data'; readonly payload: Buffer; readonly raw: Buffer };

export function pkt(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'latin1'), body]);
}

export const flushPkt = Buffer.from('0000', 'latin1');
export const delimPkt = Buffer.from('0001', 'latin1');

function malformed(what: string): SourceError {
  return new SourceError('FetchFailed', `the server sent a malformed protocol v2 answer (${what})`);
}

/** Splits whole pkt-lines off the front of `data`; `rest` is an incomplete tail. */
export function splitPkts(data: Buffer): { pkts: Pkt[]; rest: Buffer } {
  const pkts: Pkt[] = [];
  let position = 0;
  while (position + 4 <= data.length) {
    const header = data.toString('latin1', position, position + 4);
    if (!/^[0-9a-f]{4}$/i.test(header)) throw malformed('bad pkt-line length');
    const length = Number.parseInt(header, 16);
    if (length < 4) {
      pkts.push({ kind: length === 0 ? 'flush' : length === 1 ? 'delim' : 'response-end' });
      position += 4;
      continue;
    }
    if (position + length > data.length) break;
    pkts.push({
      kind: 'data',
      payload: data.subarray(position + 4, position + length),
      raw: data.subarray(position, position + length),
    });
    position += length;
  }
  return { pkts, rest: data.subarray(position) };
}

function text(payload: Buffer): string {
  return payload.toString('utf8').replace(/\n$/, '');
}

/** The v2 capability advertisement (`version 2`, then `name[=value]` lines) as a map. */
export function parseV2Capabilities(advert: Buffer): Map<string, string> {
  const capabilities = new Map<string, string>();
  const { pkts } = splitPkts(advert);
  for (const line of pkts) {
    if (line.kind !== 'data') continue;
    const entry = text(line.payload);
    if (entry === 'version 2') continue;
    const at = entry.indexOf('=');
    capabilities.set(at < 0 ? entry : entry.slice(0, at), at < 0 ? '' : entry.slice(at + 1));
  }
  return capabilities;
}

/** `ls-refs` with symrefs and peeled tags, limited to `prefixes` when given. */
export function lsRefsRequest(prefixes: readonly string[]): Buffer {
  return Buffer.concat([
    pkt('command=ls-refs\n'),
    delimPkt,
    pkt('symrefs\n'),
    pkt('peel\n'),
    ...prefixes.map((prefix) => pkt(`ref-prefix ${prefix}\n`)),
    flushPkt,
  ]);
}

const oidPattern = /^[0-9a-f]{40}$/;

/**
 * The v0 ref advertisement (pkt-lines up to the flush, without smart HTTP's `# service=` line)
 * for an `ls-refs` answer; capabilities say what the v2 `fetch` supports, in v0 names.
 */
export function advertisementFromLsRefs(lsRefs: Buffer, capabilities: Map<string, string>): Buffer {
  const { pkts } = splitPkts(lsRefs);
  const refs: string[] = [];
  let head: string | undefined;
  for (const line of pkts) {
    if (line.kind === 'flush') break;
    if (line.kind !== 'data') throw malformed('unexpected special pkt in ls-refs');
    const entry = text(line.payload);
    if (entry.startsWith('ERR ')) {
      throw new SourceError('FetchFailed', `the server refused ls-refs: ${entry.slice(4, 200)}`);
    }
    const [oid, name, ...attributes] = entry.split(' ');
    if (oid === undefined || name === undefined || !oidPattern.test(oid)) throw malformed('bad ls-refs line');
    refs.push(`${oid} ${name}`);
    for (const attribute of attributes) {
      if (attribute.startsWith('symref-target:') && name === 'HEAD') head = attribute.slice(14);
      if (attribute.startsWith('peeled:')) {
        const peeled = attribute.slice(7);
        if (!oidPattern.test(peeled)) throw malformed('bad peeled oid');
        refs.push(`${peeled} ${name}^{}`);
      }
    }
  }
  const features = new Set((capabilities.get('fetch') ?? '').split(' '));
  const v0Capabilities = [
    'side-band-64k',
    'ofs-delta',
    ...(features.has('shallow') ? ['shallow', 'deepen-since', 'deepen-not', 'deepen-relative'] : []),
    ...(head === undefined ? [] : [`symref=HEAD:${head}`]),
    ...(capabilities.has('agent') ? [`agent=${capabilities.get('agent')}`] : []),
  ].join(' ');
  const zero = '0'.repeat(40);
  const [first, ...others] = refs.length > 0 ? refs : [`${zero} capabilities^{}`];
  return Buffer.concat([
    pkt(`${first}\0${v0Capabilities}\n`),
    ...others.map((ref) => pkt(`${ref}\n`)),
    flushPkt,
  ]);
}

/** Arguments of a v0 request that v2 `fetch` takes as they are. */
const passedArguments = /^(want|have|shallow|deepen|deepen-since|deepen-not) [^\s]+$|^deepen-relative$/;

/**
 * A v2 `fetch` command for isomorphic-git's v0 upload-pack request (wants with capabilities on the
 * first line, shallows, deepen*, flush, haves, `done`). `deepen` says whether the v0 answer must
 * carry a shallow section.
 */
export function fetchRequestFromV0(request: Buffer): { command: Buffer; deepen: boolean } {
  const { pkts, rest } = splitPkts(request);
  if (rest.length > 0) throw new SourceError('FetchFailed', 'the upload-pack request is not whole pkt-lines');
  const args: string[] = [];
  let deepen = false;
  let done = false;
  for (const line of pkts) {
    if (line.kind !== 'data') continue;
    const words = text(line.payload).split(' ');
    const [verb = '', value] = words;
    // Capabilities ride on the first want in v0; in v2 the ones that matter are arguments.
    const argument = value === undefined ? verb : `${verb} ${value}`;
    if (argument === 'done') done = true;
    else if (passedArguments.test(argument)) args.push(argument);
    else throw new SourceError('FetchFailed', `cannot translate "${argument.slice(0, 60)}" to protocol v2`);
    if (verb.startsWith('deepen')) deepen = true;
    if (words.includes('deepen-relative')) args.push('deepen-relative');
  }
  if (!done) throw new SourceError('FetchFailed', 'the upload-pack request has no done');
  return {
    command: Buffer.concat([
      pkt('command=fetch\n'),
      delimPkt,
      pkt('ofs-delta\n'),
      pkt('no-progress\n'),
      ...args.map((argument) => pkt(`${argument}\n`)),
      pkt('done\n'),
      flushPkt,
    ]),
    deepen,
  };
}

const sectionHeaders = new Set([
  'acknowledgments',
  'shallow-info',
  'wanted-refs',
  'packfile-uris',
  'packfile',
]);

type Section =
  | 'start'
  | 'acknowledgments'
  | 'shallow-info'
  | 'wanted-refs'
  | 'packfile-uris'
  | 'packfile'
  | 'end';

/**
 * Turns a v2 `fetch` answer, chunk by chunk, into the v0 answer to the same request: the
 * shallow-info lines and a flush (when the request deepened), `NAK`, then the packfile section's
 * side-band pkt-lines as they are, and the closing flush.
 */
export class V2FetchAnswer {
  #section: Section = 'start';
  #pending: Buffer = Buffer.alloc(0);
  #shallowSent = false;
  #expectHeader = true;
  readonly #deepen: boolean;

  constructor(deepen: boolean) {
    this.#deepen = deepen;
  }

  get finished(): boolean {
    return this.#section === 'end';
  }

  push(chunk: Buffer): Buffer {
    const { pkts, rest } = splitPkts(
      this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]),
    );
    this.#pending = Buffer.from(rest);
    const out: Buffer[] = [];
    for (const line of pkts) out.push(...this.#take(line));
    return Buffer.concat(out);
  }

  /** Throws unless the answer ended with its packfile section. */
  end(): void {
    if (this.#section !== 'end' || this.#pending.length > 0) {
      throw new SourceError('FetchFailed', 'the server ended its protocol v2 fetch answer before the pack');
    }
  }

  #beforePack(): Buffer[] {
    const out: Buffer[] = [];
    if (this.#deepen && !this.#shallowSent) out.push(flushPkt);
    this.#shallowSent = true;
    out.push(pkt('NAK\n'));
    return out;
  }

  #take(line: Pkt): Buffer[] {
    if (this.#section === 'end') throw malformed('data after the end');
    if (this.#section === 'packfile') {
      if (line.kind === 'flush') {
        this.#section = 'end';
        return [flushPkt];
      }
      if (line.kind !== 'data') throw malformed('special pkt inside the packfile section');
      return [line.raw];
    }
    if (line.kind === 'delim' && this.#section !== 'start' && !this.#expectHeader) {
      this.#expectHeader = true;
      if (this.#section !== 'shallow-info') return [];
      this.#shallowSent = true;
      return [flushPkt];
    }
    if (line.kind !== 'data') throw malformed(`${line.kind} before the packfile section`);
    const entry = text(line.payload);
    if (entry.startsWith('ERR ')) {
      throw new SourceError('FetchFailed', `the server refused the fetch: ${entry.slice(4, 200)}`);
    }
    if (this.#expectHeader) {
      if (!sectionHeaders.has(entry)) throw malformed(`unknown section "${entry.slice(0, 40)}"`);
      this.#expectHeader = false;
      this.#section = entry as Section;
      return entry === 'packfile' ? this.#beforePack() : [];
    }
    if (this.#section === 'shallow-info') {
      if (!/^(shallow|unshallow) [0-9a-f]{40}$/.test(entry)) throw malformed('bad shallow-info line');
      return [pkt(`${entry}\n`)];
    }
    // acknowledgments (not sent after done), wanted-refs and packfile-uris (never asked for).
    return [];
  }
}
