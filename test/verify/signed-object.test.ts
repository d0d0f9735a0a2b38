import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerificationError } from '../../src/verify/errors.ts';
import {
  detectSignatureFormat,
  parseCommit,
  parseTag,
  reinsertCommitSignature,
} from '../../src/verify/signed-object.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const TREE = 'a'.repeat(40);
const PARENT = 'b'.repeat(40);
const SSH_SIG = '-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n\nAAAA\n-----END SSH SIGNATURE-----\n';

function indent(sig: string): string {
  return sig.replace(/\n(?=.)/g, '\n ').replace(/\n\n/g, '\n \n');
}

describe('parseCommit', () => {
  it('splits a gpgsig header with continuation lines and keeps the body verbatim', () => {
    const raw = enc(
      `tree ${TREE}\nparent ${PARENT}\nauthor A <a@x> 1700000000 +0100\ncommitter C <c@x> 1700000001 -0200\ngpgsig ${indent(SSH_SIG)}\r\nmessage\r\n`,
    );
    const commit = parseCommit(raw);
    expect(commit.tree).toBe(TREE);
    expect(commit.parents).toEqual([PARENT]);
    expect(commit.committer).toEqual({ name: 'C', email: 'c@x', timestamp: 1700000001, timezone: '-0200' });
    expect(commit.signature?.format).toBe('ssh');
    expect(commit.signature?.armored).toBe(SSH_SIG);
    expect(commit.signature?.header).toBe('gpgsig');
    expect(dec(commit.payload)).toBe(
      `tree ${TREE}\nparent ${PARENT}\nauthor A <a@x> 1700000000 +0100\ncommitter C <c@x> 1700000001 -0200\n\r\nmessage\r\n`,
    );
    expect(dec(reinsertCommitSignature(commit.payload, commit.signature!))).toBe(dec(raw));
  });

  it('selects gpgsig-sha256 in sha256 repositories and keeps the other header in the payload', () => {
    const raw = `tree ${TREE}\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\ngpgsig ${indent(SSH_SIG)}gpgsig-sha256 ${indent(SSH_SIG)}\nm\n`;
    const sha256 = parseCommit(enc(raw), { objectFormat: 'sha256' });
    expect(sha256.signature?.header).toBe('gpgsig-sha256');
    expect(dec(sha256.payload)).toContain('gpgsig -----BEGIN');
    const sha1 = parseCommit(enc(raw));
    expect(sha1.signature?.header).toBe('gpgsig');
    expect(dec(sha1.payload)).toContain('gpgsig-sha256 -----BEGIN');
  });

  it('detects formats and throws typed errors for malformed objects', () => {
    expect(detectSignatureFormat('-----BEGIN PGP SIGNATURE-----\n')).toBe('openpgp');
    expect(detectSignatureFormat('-----BEGIN SIGNED MESSAGE-----\n')).toBe('x509');
    expect(detectSignatureFormat('garbage')).toBe('unknown');
    expect(() => parseCommit(enc(`author A <a@x> 1 +0000\n\n`))).toThrow(VerificationError);
    expect(() => parseCommit(enc(`tree ${TREE}\nauthor A <a@x> 1 +0000\ncommitter broken\n\n`))).toThrow(
      /malformed committer/,
    );
    expect(() =>
      parseCommit(
        enc(`tree ${TREE}\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\ngpgsig a\ngpgsig b\n\n`),
      ),
    ).toThrow(/2 gpgsig headers/);
  });
});

describe('parseTag', () => {
  it('splits the trailing signature block from the message', () => {
    const payload = `object ${TREE}\ntype commit\ntag v1\ntagger T <t@x> 1700000000 +0000\n\nrelease\n-----BEGIN not a marker\n`;
    const raw = enc(payload + SSH_SIG);
    const tag = parseTag(raw);
    expect(tag.object).toBe(TREE);
    expect(tag.tagName).toBe('v1');
    expect(tag.tagger?.email).toBe('t@x');
    expect(tag.message).toBe('release\n-----BEGIN not a marker\n');
    expect(dec(tag.payload)).toBe(payload);
    expect(tag.signature?.armored).toBe(SSH_SIG);
    expect(parseTag(enc(payload)).signature).toBeUndefined();
  });

  it('takes the last signature block when the message quotes one', () => {
    const payload = `object ${TREE}\ntype commit\ntag v1\n\n-----BEGIN PGP SIGNATURE-----\nquoted\n`;
    const tag = parseTag(enc(payload + SSH_SIG));
    expect(tag.signature?.format).toBe('ssh');
    expect(dec(tag.payload)).toBe(payload);
  });
});

// ---------- property: the splitter round-trips any header layout ----------

const safeText = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '-', '\r', 'é', '<', ':'), maxLength: 12 });
const sigLine = fc.string({ unit: fc.constantFrom('A', 'z', '+', '/', '=', '-', ' ', '\r'), maxLength: 20 });

const extraHeader = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('encoding', 'x-custom', 'mergetag'),
      safeText,
      fc.array(safeText, { maxLength: 3 }),
    )
    .map(([name, first, cont]) => `${name} ${first}\n${cont.map((c) => ` ${c}\n`).join('')}`),
);

const commitLayout = fc.record({
  parents: fc.integer({ min: 0, max: 3 }),
  before: fc.array(extraHeader, { maxLength: 3 }),
  after: fc.array(extraHeader, { maxLength: 3 }),
  header: fc.constantFrom('gpgsig', 'gpgsig-sha256'),
  sigLines: fc.array(sigLine, { minLength: 1, maxLength: 6 }),
  body: fc.string({ maxLength: 40 }),
  signed: fc.boolean(),
});

describe('property: commit splitter', () => {
  it('payload + reinserted signature == raw for any header layout', () => {
    fc.assert(
      fc.property(commitLayout, (layout) => {
        const sig = `${layout.sigLines.join('\n')}\n`;
        const headers =
          `tree ${TREE}\n` +
          `parent ${PARENT}\n`.repeat(layout.parents) +
          'author A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000\n' +
          layout.before.join('') +
          (layout.signed ? `${layout.header} ${sig.split('\n').slice(0, -1).join('\n ')}\n` : '') +
          layout.after.join('');
        const raw = enc(`${headers}\n${layout.body}`);
        const commit = parseCommit(raw, { objectFormat: layout.header === 'gpgsig' ? 'sha1' : 'sha256' });
        if (!layout.signed) {
          expect(commit.signature).toBeUndefined();
          expect(commit.payload).toEqual(raw);
          return;
        }
        expect(commit.signature?.armored).toBe(sig);
        expect(dec(commit.payload)).not.toContain(`${layout.header} `);
        expect(reinsertCommitSignature(commit.payload, commit.signature!)).toEqual(raw);
        expect(commit.message).toBe(layout.body);
      }),
      { numRuns: 500 },
    );
  });
});
