import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  parseTrustedRoot,
  publicGoodTrustedRoot,
  TrustedRootError,
  trustMaterialFor,
} from '../../src/trust-root/index.ts';
import {
  decodeTransparencyLogEntry,
  encodeTransparencyLogEntry,
  ProtobufDecodeError,
} from '../../src/verify/keyless-proto.ts';

const run = promisify(execFile);

describe('pinned public-good trusted root', () => {
  it('has the public-good Rekor and Fulcio and builds trust material once', () => {
    const root = publicGoodTrustedRoot();
    expect(root.tlogs.map((t) => t.baseUrl)).toContain('https://rekor.sigstore.dev');
    expect(root.certificateAuthorities.some((ca) => ca.uri === 'https://fulcio.sigstore.dev')).toBe(true);
    const material = trustMaterialFor(root);
    expect(material.certificateAuthorities.length).toBeGreaterThan(0);
    expect(trustMaterialFor(root)).toBe(material);
    // A structurally equal copy hits the content cache too.
    expect(trustMaterialFor(JSON.parse(JSON.stringify(root)))).toBe(material);
  });

  it('matches the seed in node_modules (hack/update-trusted-root.ts --check)', async () => {
    const { stdout } = await run(process.execPath, ['hack/update-trusted-root.ts', '--check'], {
      timeout: 20_000,
    });
    expect(stdout).toMatch(/matches/);
  });

  it('rejects documents that are not trusted roots', () => {
    expect(() => parseTrustedRoot('{')).toThrow(TrustedRootError);
    expect(() => parseTrustedRoot({ mediaType: 'application/json' })).toThrow(/mediaType/);
    expect(() =>
      parseTrustedRoot({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [] }),
    ).toThrow(/certificateAuthorities/);
  });
});

describe('TransparencyLogEntry protobuf codec', () => {
  it('round-trips every field, including large int64 values', () => {
    const entry = {
      logIndex: '9007199254740993',
      logId: { keyId: Buffer.alloc(32, 7) },
      kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
      integratedTime: '1700000000',
      inclusionPromise: { signedEntryTimestamp: Buffer.from('set') },
      inclusionProof: {
        logIndex: '12',
        rootHash: Buffer.alloc(32, 1),
        treeSize: '300',
        hashes: [Buffer.alloc(32, 2), Buffer.alloc(32, 3)],
        checkpoint: { envelope: 'rekor.test - 1\n300\nroot\n\n— sig\n' },
      },
      canonicalizedBody: Buffer.alloc(0),
    };
    expect(decodeTransparencyLogEntry(encodeTransparencyLogEntry(entry))).toEqual(entry);
  });

  it('skips unknown fields and rejects truncated input', () => {
    const bytes = encodeTransparencyLogEntry({
      logIndex: '1',
      integratedTime: '2',
      canonicalizedBody: Buffer.from('b'),
    });
    const withUnknown = Buffer.concat([Buffer.from([0x48, 0x05, 0x52, 0x01, 0x00]), bytes]); // field 9 varint, field 10 bytes
    expect(decodeTransparencyLogEntry(withUnknown)).toMatchObject({ logIndex: '1', integratedTime: '2' });
    expect(() => decodeTransparencyLogEntry(bytes.subarray(0, bytes.length - 1))).toThrow(
      ProtobufDecodeError,
    );
    expect(() => decodeTransparencyLogEntry(Buffer.from([0x08]))).toThrow(ProtobufDecodeError);
  });
});
