// The v0 face of protocol v2 (pure): ls-refs answers become a v0 ref advertisement, isomorphic-git's
// v0 request becomes a v2 fetch command, and the v2 answer (sections) becomes the v0 answer
// (shallow lines, flush, NAK, the side-band pack as it is). Malformed input fails closed.
import { describe, expect, it } from 'vitest';
import {
  advertisementFromLsRefs,
  delimPkt,
  fetchRequestFromV0,
  flushPkt,
  lsRefsRequest,
  parseV2Capabilities,
  pkt,
  splitPkts,
  V2FetchAnswer,
} from '../../src/source/protocol-v2.ts';

const a = 'a'.repeat(40);
const b = 'b'.repeat(40);
const c = 'c'.repeat(40);
const lines = (data: Buffer) =>
  splitPkts(data).pkts.map((p) => (p.kind === 'data' ? p.payload.toString('latin1') : p.kind));

describe('protocol v2 behind a v0 face', () => {
  it('lists refs with ls-refs (symrefs, peeled tags, prefixes) and advertises them as v0', () => {
    expect(lines(lsRefsRequest(['HEAD', 'refs/heads/main']))).toEqual([
      'command=ls-refs\n',
      'delim',
      'symrefs\n',
      'peel\n',
      'ref-prefix HEAD\n',
      'ref-prefix refs/heads/main\n',
      'flush',
    ]);
    const capabilities = parseV2Capabilities(
      Buffer.concat([
        pkt('version 2\n'),
        pkt('agent=git/2.39.5\n'),
        pkt('ls-refs=unborn\n'),
        pkt('fetch=shallow wait-for-done\n'),
        flushPkt,
      ]),
    );
    expect(capabilities.get('fetch')).toBe('shallow wait-for-done');
    const answer = Buffer.concat([
      pkt(`${a} HEAD symref-target:refs/heads/main\n`),
      pkt(`${a} refs/heads/main\n`),
      pkt(`${b} refs/tags/v1 peeled:${c}\n`),
      flushPkt,
    ]);
    expect(lines(advertisementFromLsRefs(answer, capabilities))).toEqual([
      `${a} HEAD\0side-band-64k ofs-delta shallow deepen-since deepen-not deepen-relative symref=HEAD:refs/heads/main agent=git/2.39.5\n`,
      `${a} refs/heads/main\n`,
      `${b} refs/tags/v1\n`,
      `${c} refs/tags/v1^{}\n`,
      'flush',
    ]);
    // No shallow feature: no shallow capability (isomorphic-git then refuses a depth itself).
    const plain = advertisementFromLsRefs(
      Buffer.concat([pkt(`${a} refs/heads/main\n`), flushPkt]),
      new Map(),
    );
    expect(lines(plain)[0]).toBe(`${a} refs/heads/main\0side-band-64k ofs-delta\n`);
    // No refs at all: the v0 "capabilities^{}" line.
    expect(lines(advertisementFromLsRefs(flushPkt, new Map()))[0]).toMatch(/^0{40} capabilities\^\{\}\0/);
    expect(() =>
      advertisementFromLsRefs(Buffer.concat([pkt('zz refs/heads/main\n'), flushPkt]), new Map()),
    ).toThrow(/malformed protocol v2 answer/);
    expect(() =>
      advertisementFromLsRefs(Buffer.concat([pkt('ERR no such repo\n'), flushPkt]), new Map()),
    ).toThrow('the server refused ls-refs: no such repo');
  });

  it('turns the v0 request (caps on the first want, shallow, deepen, haves, done) into a v2 fetch', () => {
    const request = Buffer.concat([
      pkt(
        `want ${a} multi_ack_detailed no-done side-band-64k ofs-delta agent=git/isomorphic-git deepen-relative\n`,
      ),
      pkt(`want ${b}\n`),
      pkt(`shallow ${c}\n`),
      pkt('deepen 1\n'),
      flushPkt,
      pkt(`have ${c}\n`),
      pkt('done\n'),
    ]);
    const { command, deepen } = fetchRequestFromV0(request);
    expect(deepen).toBe(true);
    expect(lines(command)).toEqual([
      'command=fetch\n',
      'delim',
      'ofs-delta\n',
      'no-progress\n',
      `want ${a}\n`,
      'deepen-relative\n',
      `want ${b}\n`,
      `shallow ${c}\n`,
      'deepen 1\n',
      `have ${c}\n`,
      'done\n',
      'flush',
    ]);
    const incremental = fetchRequestFromV0(
      Buffer.concat([pkt(`want ${a} ofs-delta\n`), flushPkt, pkt('done\n')]),
    );
    expect(incremental.deepen).toBe(false);
    expect(() => fetchRequestFromV0(Buffer.concat([pkt(`want ${a}\n`), flushPkt]))).toThrow('no done');
    expect(() => fetchRequestFromV0(Buffer.concat([pkt('filter blob:none\n'), pkt('done\n')]))).toThrow(
      'cannot translate',
    );
  });

  it('turns the v2 answer back into the v0 answer, chunk by chunk', () => {
    const pack = Buffer.concat([Buffer.from([1]), Buffer.from('PACK....')]);
    const answer = Buffer.concat([
      pkt('shallow-info\n'),
      pkt(`shallow ${a}\n`),
      pkt(`unshallow ${b}\n`),
      delimPkt,
      pkt('packfile\n'),
      pkt(pack),
      pkt(Buffer.concat([Buffer.from([2]), Buffer.from('progress\n')])),
      flushPkt,
    ]);
    const translator = new V2FetchAnswer(true);
    // One byte at a time: pkt-lines split anywhere are reassembled.
    const out = Buffer.concat([...answer].map((byte) => translator.push(Buffer.from([byte]))));
    translator.end();
    expect(out).toEqual(
      Buffer.concat([
        pkt(`shallow ${a}\n`),
        pkt(`unshallow ${b}\n`),
        flushPkt,
        pkt('NAK\n'),
        pkt(pack),
        pkt(Buffer.concat([Buffer.from([2]), Buffer.from('progress\n')])),
        flushPkt,
      ]),
    );
    // A deepening request without a shallow-info section still gets v0's flush; a plain one none.
    const deepenNoInfo = new V2FetchAnswer(true);
    expect(lines(deepenNoInfo.push(Buffer.concat([pkt('packfile\n'), pkt(pack), flushPkt])))).toEqual([
      'flush',
      'NAK\n',
      pack.toString('latin1'),
      'flush',
    ]);
    const plain = new V2FetchAnswer(false);
    expect(lines(plain.push(Buffer.concat([pkt('packfile\n'), pkt(pack), flushPkt])))[0]).toBe('NAK\n');
  });

  it('fails closed on an ERR, an unknown section, a cut answer or data after the end', () => {
    expect(() => new V2FetchAnswer(false).push(pkt('ERR upload-pack: not our ref\n'))).toThrow(
      'the server refused the fetch: upload-pack: not our ref',
    );
    expect(() => new V2FetchAnswer(false).push(pkt('surprise\n'))).toThrow('unknown section "surprise"');
    const cut = new V2FetchAnswer(false);
    cut.push(Buffer.concat([pkt('packfile\n'), pkt(Buffer.from([1, 80]))]));
    expect(() => cut.end()).toThrow('before the pack');
    const over = new V2FetchAnswer(false);
    expect(() => over.push(Buffer.concat([pkt('packfile\n'), flushPkt, pkt('more\n')]))).toThrow(
      'after the end',
    );
    expect(() => new V2FetchAnswer(false).push(Buffer.from('zzzz'))).toThrow('bad pkt-line length');
  });
});
