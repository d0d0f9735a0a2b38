/**
 * isomorphic-git hashes every object of a fetched pack (to index it) through WebCrypto's
 * `crypto.subtle.digest('SHA-1')`: one thread-pool round trip per object, ~40% of a 10,000-object
 * fetch on a 2-core machine. It picks that path itself (a module-private flag), so the only lever is
 * the global: `installSyncSha1Digest()` makes SHA-1 digests answer from node:crypto's synchronous
 * hash — the same bytes, already resolved. Every other algorithm goes to the original untouched.
 * Idempotent; installed by the Git source before it fetches.
 */
import { createHash, type webcrypto } from 'node:crypto';

const marker = Symbol.for('signet.syncSha1Digest');

type Digest = webcrypto.SubtleCrypto['digest'];

function algorithmName(algorithm: webcrypto.AlgorithmIdentifier): string {
  return (typeof algorithm === 'string' ? algorithm : algorithm.name).toUpperCase();
}

function bytesOf(data: webcrypto.BufferSource): Uint8Array {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

export function installSyncSha1Digest(): void {
  const subtle = globalThis.crypto?.subtle as (webcrypto.SubtleCrypto & { [marker]?: true }) | undefined;
  if (subtle === undefined || subtle[marker] === true) return;
  const original: Digest = subtle.digest.bind(subtle);
  const digest: Digest = (algorithm, data) => {
    if (algorithmName(algorithm) !== 'SHA-1') return original(algorithm, data);
    const hash = createHash('sha1').update(bytesOf(data)).digest();
    return Promise.resolve(
      hash.buffer.slice(hash.byteOffset, hash.byteOffset + hash.byteLength) as ArrayBuffer,
    );
  };
  Object.defineProperty(subtle, 'digest', { value: digest, configurable: true, writable: true });
  Object.defineProperty(subtle, marker, { value: true });
}
