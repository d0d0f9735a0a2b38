// A watch stream whose network chunks end inside multi-byte UTF-8 characters: the events must
// carry exactly the text the API server sent (no U+FFFD), through the transport and the
// list-watch of an informer. The dispatcher is a stand-in that hands out the body in the chunks
// chosen here, so every split is deterministic.
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/kube/client.ts';
import { createUndiciTransport, emptyRequestStats, type Transport } from '../../src/kube/transport.ts';
import { resourceListWatch } from '../../src/kube/watch.ts';
import type { WatchEvent } from '../../src/watch/informer.ts';

const coreV1 = JSON.stringify({
  kind: 'APIResourceList',
  resources: [{ name: 'configmaps', kind: 'ConfigMap', namespaced: true }],
});

/** Accented letters (2 bytes), CJK (3 bytes) and emoji (4 bytes). */
const text = 'Ünïcödé façade — 東京都の天気は晴れ — 🙂🎉🚀 '.repeat(40);

function configMapEvent(type: string, name: string, resourceVersion: string): string {
  return JSON.stringify({
    type,
    object: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'ns', resourceVersion },
      data: { t: text },
    },
  });
}

/** Cuts `bytes` into chunks of `size` bytes, moved so that each cut falls inside a character. */
function chunksInsideCharacters(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(bytes.length, start + size);
    // A UTF-8 continuation byte (10xxxxxx) at `end` means the cut is inside a character.
    while (end < bytes.length && ((bytes[end] ?? 0) & 0xc0) !== 0x80) end++;
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

/** A dispatcher answering discovery in one piece and the watch with the given chunks. */
function chunkingDispatcher(watchChunks: readonly Buffer[]): Dispatcher {
  const request = async (options: { path: string }) => {
    if (options.path === '/api/v1') {
      const body = Readable.from([Buffer.from(coreV1)]);
      return { statusCode: 200, headers: {}, body: Object.assign(body, { text: async () => coreV1 }) };
    }
    return { statusCode: 200, headers: {}, body: Readable.from(watchChunks) };
  };
  return { request, close: async () => {} } as unknown as Dispatcher;
}

function transportOver(dispatcher: Dispatcher): Transport {
  return createUndiciTransport({
    server: 'https://kube.test:6443',
    dispatcher,
    authHeaders: async () => ({}),
    userAgent: 'signet-test',
  });
}

describe('a watch stream split inside multi-byte characters', () => {
  const events = [
    configMapEvent('ADDED', 'a', '10'),
    configMapEvent('MODIFIED', 'b', '11'),
    configMapEvent('MODIFIED', 'c', '12'),
  ];
  const stream = Buffer.from(`${events.join('\n')}\n`, 'utf8');

  it('the chunks really end inside characters', () => {
    const chunks = chunksInsideCharacters(stream, 1_000);
    expect(chunks.length).toBeGreaterThan(5);
    const cutInside = chunks.slice(1).filter((chunk) => ((chunk[0] ?? 0) & 0xc0) === 0x80).length;
    expect(cutInside).toBe(chunks.length - 1);
    expect(Buffer.from(chunks[0] ?? []).toString('utf8')).toContain('\uFFFD');
  });

  it('the transport delivers each line with its text intact', async () => {
    for (const size of [1, 7, 100, 1_000, 16_384]) {
      const transport = transportOver(chunkingDispatcher(chunksInsideCharacters(stream, size)));
      const lines: string[] = [];
      const outcome = await transport.stream(
        { path: '/watch', subject: 'ConfigMap', signal: new AbortController().signal, idleTimeoutMs: 5_000 },
        (line) => lines.push(line),
      );
      expect(outcome).toEqual({ status: 'closed' });
      expect(lines).toEqual(events);
    }
  });

  it('the list-watch of an informer hands out objects whose data equals what was sent', async () => {
    const transport = transportOver(chunkingDispatcher(chunksInsideCharacters(stream, 4_096)));
    const client = new KubeClient({ transport, stats: emptyRequestStats() });
    const received: WatchEvent[] = [];
    await resourceListWatch(client, { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns' }).watch(
      undefined,
      '9',
      new AbortController().signal,
      (event) => received.push(event),
    );
    expect(received.map((event) => event.type)).toEqual(['ADDED', 'MODIFIED', 'MODIFIED']);
    for (const event of received) {
      expect((event.object as unknown as { data: { t: string } }).data.t).toBe(text);
    }
  });
});
