// Hostile gitsign signatures: each is refused as InvalidSignature within 50 ms, before @sigstore/core parses
// it, with a message that quotes at most a bounded amount of the input. Genuine signatures still verify.
import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBoundedDer } from '../../src/verify/der-bounds.ts';
import {
  DEFAULT_GITSIGN_LIMITS,
  parseGitsignSignature,
  verifyGitsignSignature,
} from '../../src/verify/gitsign.ts';
import type { KeylessCheck, KeylessPolicy } from '../../src/verify/keyless.ts';
import { contentInfoWithLongOid, longOidContent, nestedSequences, tlv } from '../support/der.ts';
import {
  armorSignedMessage,
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeGitsignSignature,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from '../support/sigstore-fixtures.ts';

const REFUSE_WITHIN_MS = 50;
/** A refusal message names the problem and offsets; it never grows with the input. */
const MAX_MESSAGE = 700;
const payload = Buffer.from('tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nhostile\n');

let bed: SigstoreTestbed;
let policy: KeylessPolicy;

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  policy = { trustedRoot: bed.trustedRoot, identities: [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }] };
});

async function refuse(armored: string): Promise<{ result: KeylessCheck; ms: number }> {
  const start = performance.now();
  const result = await verifyGitsignSignature(payload, armored, policy);
  return { result, ms: performance.now() - start };
}

async function expectQuickRefusal(der: Buffer, pattern: RegExp): Promise<string> {
  const { result, ms } = await refuse(armorSignedMessage(der));
  expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature' });
  if (result.ok) throw new Error('accepted');
  expect(result.message).toMatch(pattern);
  expect(result.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
  expect(ms).toBeLessThan(REFUSE_WITHIN_MS);
  return result.message;
}

describe('hostile gitsign signatures are refused before parsing', () => {
  it('a 200,000-byte OBJECT IDENTIFIER as the content type (the red-team commit): over the size bound', async () => {
    const message = await expectQuickRefusal(
      contentInfoWithLongOid(200_000),
      /the signature is 270915 characters long; at most 65536 bytes of DER/,
    );
    expect(message).not.toMatch(/1\.2\.\d{50}/);
  });

  it('a 60,000-byte OBJECT IDENTIFIER (within the size bound): refused by the DER walk', async () => {
    const message = await expectQuickRefusal(
      contentInfoWithLongOid(60_000),
      /refused before parsing: the OBJECT IDENTIFIER at byte 4 is 60000 bytes long \(limit 64/,
    );
    expect(message).not.toMatch(/1\.2\.\d{50}/);
  });

  it('a long OID hidden in an OCTET STRING that @sigstore/core would unwrap (TSTInfo style)', async () => {
    const tstInfo = tlv(0x30, tlv(0x02, Buffer.from([1])), tlv(0x06, longOidContent(5_000)));
    const der = tlv(0x30, tlv(0x06, Buffer.from('2a864886f70d010702', 'hex')), tlv(0xa0, tlv(0x04, tstInfo)));
    await expectQuickRefusal(
      der,
      /OBJECT IDENTIFIER at byte \d+ inside an OCTET STRING is 5000 bytes long \(limit 4096/,
    );
  });

  it('a long OID under a constructed tag (0x26), which DER forbids and the parser ignores', async () => {
    const der = tlv(0x30, tlv(0x26, tlv(0x04, longOidContent(3_000))));
    await expectQuickRefusal(der, /OBJECT IDENTIFIER at byte 4 is 3004 bytes long/);
  });

  it('a huge INTEGER (BigInt accumulation is quadratic too)', async () => {
    const der = tlv(0x30, tlv(0x02, Buffer.alloc(40_000, 0x7f)));
    await expectQuickRefusal(der, /INTEGER at byte 4 is 40000 bytes long \(limit 128\)/);
  });

  it('a length beyond the end of the buffer', async () => {
    const der = Buffer.concat([Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), Buffer.alloc(16)]);
    await expectQuickRefusal(der, /claims 2147483647 content bytes but only 16 remain/);
  });

  it('a child longer than its parent', async () => {
    const der = Buffer.from([0x30, 0x04, 0x30, 0x10, 0x05, 0x00]);
    await expectQuickRefusal(der, /element at byte 2 claims 16 content bytes but only 2 remain/);
  });

  it('an indefinite length (BER, not DER)', async () => {
    const der = Buffer.from([0x30, 0x80, 0x05, 0x00, 0x00, 0x00]);
    await expectQuickRefusal(der, /indefinite length/);
  });

  it('nesting 1,000 levels deep', async () => {
    await expectQuickRefusal(nestedSequences(1_000), /nesting is deeper than 64 levels/);
  });

  it('trailing bytes after the ContentInfo', async () => {
    await expectQuickRefusal(Buffer.from([0x30, 0x00, 0x00]), /1 bytes follow the outermost element/);
  });

  it('a signature larger than the 64 KiB bound, refused before it is decoded', async () => {
    const der = tlv(0x30, tlv(0x04, Buffer.alloc(70_000)));
    const { result, ms } = await refuse(armorSignedMessage(der));
    expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    if (!result.ok)
      expect(result.message).toMatch(/at most 65536 bytes of DER .* a real gitsign signature is a few KiB/);
    expect(ms).toBeLessThan(REFUSE_WITHIN_MS);
  });

  it('quotes at most a bounded, escaped excerpt of a foreign armor label', async () => {
    const label = `A${' B'.repeat(100_000)}`;
    const { result } = await refuse(`-----BEGIN ${label}-----\nAAAA\n-----END X-----\n`);
    expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature' });
    if (!result.ok) expect(result.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
  });
});

describe('the bounds leave genuine signatures alone', () => {
  it('never refuses opaque bytes in an OCTET STRING (an RSA signature, a protobuf) that merely start like DER', () => {
    // xorshift32, seeded: the same 20,000 strings every run. With the bounds applied as soon as an element
    // was read (before knowing whether the whole content parses), about 1 in 400 of them was refused.
    let state = 0x9e3779b9;
    const next = (): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state & 0xff;
    };
    let refused = 0;
    for (let trial = 0; trial < 20_000; trial += 1) {
      const opaque = Buffer.from(Array.from({ length: 256 }, next));
      try {
        assertBoundedDer(tlv(0x30, tlv(0x04, opaque)), DEFAULT_GITSIGN_LIMITS);
      } catch {
        refused += 1;
      }
    }
    expect(refused).toBe(0);
  });

  it('parses test-bed signatures with and without an RFC 3161 token within the default limits', async () => {
    for (const options of [{}, { withTimestamp: true }, { withTimestamp: true, log: 'none' as const }]) {
      const { armored, der } = await makeGitsignSignature(bed, payload, options);
      expect(der.length).toBeLessThan(DEFAULT_GITSIGN_LIMITS.maxBytes / 8);
      expect(() => parseGitsignSignature(armored)).not.toThrow();
      expect(await verifyGitsignSignature(payload, armored, policy)).toMatchObject({ ok: true });
    }
  });

  it('honours tighter limits given by the caller', async () => {
    const { armored } = await makeGitsignSignature(bed, payload, {});
    const result = await verifyGitsignSignature(payload, armored, policy, {
      limits: { ...DEFAULT_GITSIGN_LIMITS, maxDepth: 4 },
    });
    expect(result).toMatchObject({ ok: false, reason: 'InvalidSignature', message: /deeper than 4 levels/ });
  });
});
