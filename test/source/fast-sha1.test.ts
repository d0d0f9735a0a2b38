import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { installSyncSha1Digest } from '../../src/source/fast-sha1.ts';

const hex = (buffer: ArrayBuffer) => Buffer.from(buffer).toString('hex');

describe('installSyncSha1Digest', () => {
  it('gives the same SHA-1 bytes for views and buffers, and leaves other algorithms alone', async () => {
    installSyncSha1Digest();
    installSyncSha1Digest(); // idempotent
    const data = Buffer.from('blob 5\0hello');
    const expected = createHash('sha1').update(data).digest('hex');
    expect(hex(await crypto.subtle.digest('SHA-1', data))).toBe(expected);
    expect(hex(await crypto.subtle.digest({ name: 'sha-1' }, data.subarray(0)))).toBe(expected);
    const arrayBuffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    expect(hex(await crypto.subtle.digest('SHA-1', arrayBuffer))).toBe(expected);
    expect(hex(await crypto.subtle.digest('SHA-256', data))).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    expect(hex(await crypto.subtle.digest('SHA-1', new Uint8Array([])))).toBe(
      'da39a3ee5e6b4b0d3255bfef95601890afd80709',
    );
  });
});
