/**
 * Receives fetched packs natively under isomorphic-git, which keeps the protocol (negotiation,
 * shallow lines, ref updates): an HttpClient wrapper that, for a `git-upload-pack` POST answered
 * 200, reads the whole (already size- and time-bounded) answer, splits the side-band stream, indexes
 * the pack with src/source/pack-index.ts and writes `objects/pack/pack-<checksum>.{pack,idx}` itself,
 * then hands isomorphic-git the same answer without its pack data, so isomorphic-git's own indexing
 * (`GitPackIndex.fromPack`, pako) never runs.
 *
 * isomorphic-git (pako) inflates without any bound, so no pack reaches it: an answer that carries
 * pack data without side-band framing, and a thin pack (a ref-delta base outside the pack, which
 * isomorphic-git never asks for) are refused with FetchFailed. What goes to isomorphic-git unchanged
 * holds no pack data: a fatal side-band message or an empty pack. A pack that fails its checksum,
 * inflation or delta checks, or holds an object over its limit (object-limits.ts), is refused here
 * with FetchFailed.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { SourceError, safeUrl } from './errors.ts';
import type { ObjectLimits } from './object-limits.ts';
import { indexPack } from './pack-index.ts';

export interface PackReceiverOptions {
  /** The bare repository the packs go to. */
  readonly gitdir: string;
  /** The caller's deadline/cancellation (the HTTP client bounds the download itself). */
  readonly signal: AbortSignal;
  /** Bounds on what each received object may inflate to (default defaultObjectLimits). */
  readonly limits?: ObjectLimits;
  /** Called with each pack written natively (tests and benchmarks). */
  readonly onPack?: (pack: {
    readonly checksum: string;
    readonly objects: number;
    readonly bytes: number;
  }) => void;
}

interface Demuxed {
  /** Every pkt-line that is not pack data, byte for byte (flushes, ACK/NAK, shallow, progress). */
  readonly lines: Buffer;
  readonly pack: Buffer;
}

/**
 * Splits a protocol v0/v1 upload-pack answer the way isomorphic-git's GitSideBand does (a pkt-line
 * whose first byte is 1 is pack data, 2 progress, 3 a fatal error); undefined when the answer is not
 * cleanly framed or carries a fatal error, i.e. when isomorphic-git should see it unchanged.
 */
export function demuxUploadPack(raw: Buffer): Demuxed | undefined {
  const lines: Buffer[] = [];
  const pack: Buffer[] = [];
  let position = 0;
  while (position < raw.length) {
    if (position + 4 > raw.length) return undefined;
    const hex = raw.toString('latin1', position, position + 4);
    if (!/^[0-9a-f]{4}$/i.test(hex)) return undefined;
    const length = Number.parseInt(hex, 16);
    if (length === 0) {
      lines.push(raw.subarray(position, position + 4));
      position += 4;
      continue;
    }
    if (length < 5 || position + length > raw.length) return undefined;
    const band = raw[position + 4];
    if (band === 1) pack.push(raw.subarray(position + 5, position + length));
    else if (band === 3) return undefined;
    else lines.push(raw.subarray(position, position + length));
    position += length;
  }
  return { lines: Buffer.concat(lines), pack: Buffer.concat(pack) };
}

/** True when `raw` holds a pack header (`PACK`, version 2 or 3) anywhere. */
function carriesPack(raw: Buffer): boolean {
  for (let at = raw.indexOf('PACK'); at >= 0; at = raw.indexOf('PACK', at + 1)) {
    const version = at + 8 <= raw.length ? raw.readUInt32BE(at + 4) : 0;
    if (version === 2 || version === 3) return true;
  }
  return false;
}

async function collect(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<Buffer> {
  if (body === undefined) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function once(data: Buffer): AsyncIterableIterator<Uint8Array> {
  return (async function* () {
    yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  })();
}

function isUploadPack(req: GitHttpRequest, res: GitHttpResponse): boolean {
  if ((req.method ?? 'GET') !== 'POST' || res.statusCode !== 200) return false;
  try {
    return new URL(req.url).pathname.endsWith('/git-upload-pack');
  } catch {
    return false;
  }
}

/** Writes the pack and its index under temporary names, then renames them (the index last). */
async function writePack(gitdir: string, checksum: string, pack: Buffer, idx: Buffer, signal: AbortSignal) {
  const dir = join(gitdir, 'objects', 'pack');
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.signet-${randomUUID()}`);
  try {
    await writeFile(`${temp}-pack`, pack, { signal });
    await writeFile(`${temp}-idx`, idx, { signal });
    await rename(`${temp}-pack`, join(dir, `pack-${checksum}.pack`));
    await rename(`${temp}-idx`, join(dir, `pack-${checksum}.idx`));
  } finally {
    await rm(`${temp}-pack`, { force: true });
    await rm(`${temp}-idx`, { force: true });
  }
}

function abortError(where: string, signal: AbortSignal, cause: unknown): SourceError {
  const reason: unknown = signal.reason;
  return reason instanceof DOMException && reason.name === 'TimeoutError'
    ? new SourceError('Timeout', `${where}: the deadline passed while indexing the pack (spec.timeout)`, {
        cause,
      })
    : new SourceError('Aborted', `${where}: aborted while indexing the pack`, { cause });
}

/** `http` with fetched packs received natively into `options.gitdir` (see the module comment). */
export function withNativePackReceiver(http: HttpClient, options: PackReceiverOptions): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const res = await http.request(req);
      if (!isUploadPack(req, res)) return res;
      // Size, timeout and truncation are enforced by the body iterator (http-client.ts).
      const raw = await collect(res.body);
      const unchanged = { ...res, body: once(raw) };
      const demuxed = demuxUploadPack(raw);
      const where = safeUrl(req.url);
      if (demuxed === undefined) {
        if (carriesPack(raw)) {
          throw new SourceError(
            'FetchFailed',
            `${where}: the pack the Git server sent could not be decoded (corrupt or truncated): its answer carries pack data outside valid side-band framing; refused (only side-band packs are decoded, with bounded inflation)`,
          );
        }
        return unchanged;
      }
      if (demuxed.pack.length < 12 || demuxed.pack.readUInt32BE(8) === 0) return unchanged;
      let indexed: Awaited<ReturnType<typeof indexPack>>;
      try {
        indexed = await indexPack(demuxed.pack, {
          signal: options.signal,
          ...(options.limits === undefined ? {} : { limits: options.limits }),
        });
      } catch (error) {
        if (error instanceof SourceError && error.code === 'CorruptRepository') {
          throw new SourceError(
            'FetchFailed',
            `${where}: the pack the Git server sent could not be decoded (corrupt or truncated): ${error.message}`,
            { cause: error },
          );
        }
        if (error instanceof SourceError && error.code === 'TooLarge') {
          throw new SourceError(
            'FetchFailed',
            `${where}: the pack the Git server sent was refused: ${error.message}`,
            {
              cause: error,
            },
          );
        }
        if (options.signal.aborted) throw abortError(where, options.signal, error);
        throw error;
      }
      if (indexed.kind === 'thin') {
        throw new SourceError(
          'FetchFailed',
          `${where}: the Git server sent a thin pack (delta base ${indexed.missingBase} is not in it), which was not asked for; refused`,
        );
      }
      try {
        await writePack(options.gitdir, indexed.checksum, demuxed.pack, indexed.idx, options.signal);
      } catch (error) {
        if (options.signal.aborted) throw abortError(where, options.signal, error);
        throw new SourceError(
          'FetchFailed',
          `${where}: could not write the received pack into ${options.gitdir}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      options.onPack?.({ checksum: indexed.checksum, objects: indexed.objects, bytes: demuxed.pack.length });
      return { ...res, body: once(demuxed.lines) };
    },
  };
}
