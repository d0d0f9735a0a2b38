import { describe, expect, it } from 'vitest';
import {
  Informer,
  type ListResult,
  type ListWatchTransport,
  type LiveObject,
  type WatchEvent,
} from '../../src/watch/informer.ts';

function cm(name: string, rv: string): LiveObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', resourceVersion: rv } };
}

/** A scripted transport: each watch call plays the next script (events, then an outcome). */
class ScriptedTransport implements ListWatchTransport {
  lists: ListResult[] = [];
  watches: { events: WatchEvent[]; end: 'close' | Error | 'hang' }[] = [];
  watchFrom: string[] = [];

  async list(): Promise<ListResult> {
    const next = this.lists.shift();
    if (next === undefined) throw new Error('no more lists scripted');
    return next;
  }

  async watch(
    _selector: string | undefined,
    resourceVersion: string,
    signal: AbortSignal,
    onEvent: (event: WatchEvent) => void,
  ): Promise<void> {
    this.watchFrom.push(resourceVersion);
    const script = this.watches.shift() ?? { events: [], end: 'hang' as const };
    for (const event of script.events) onEvent(event);
    if (script.end === 'hang') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      return;
    }
    if (script.end instanceof Error) throw script.end;
  }
}

async function until(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met before deadline');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('Informer', () => {
  it('lists, then watches from the list resourceVersion and follows bookmarks', async () => {
    const transport = new ScriptedTransport();
    transport.lists.push({ items: [cm('a', '1')], resourceVersion: '10' });
    transport.watches.push({
      events: [
        { type: 'MODIFIED', object: cm('a', '11') },
        { type: 'BOOKMARK', object: { ...cm('', '15'), metadata: { name: '', resourceVersion: '15' } } },
      ],
      end: 'close',
    });
    const updates: string[] = [];
    const informer = new Informer({
      transport,
      handlers: { onUpdate: (object) => updates.push(object.metadata.resourceVersion ?? '') },
    });
    informer.start();
    await until(() => transport.watchFrom.length === 2);
    expect(transport.watchFrom).toEqual(['10', '15']);
    expect(updates).toEqual(['11']);
    expect(informer.get('ns/a')?.metadata.resourceVersion).toBe('11');
    await informer.stop();
  });

  it('relists on 410 Gone and emits deletes for objects that vanished', async () => {
    const transport = new ScriptedTransport();
    transport.lists.push({ items: [cm('a', '1'), cm('b', '2')], resourceVersion: '10' });
    transport.lists.push({ items: [cm('a', '1')], resourceVersion: '30' });
    transport.watches.push({
      events: [{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }],
      end: 'hang',
    });
    const deleted: string[] = [];
    const informer = new Informer({
      transport,
      handlers: { onDelete: (o) => deleted.push(o.metadata.name) },
    });
    informer.start();
    await until(() => transport.watchFrom.length === 2);
    expect(deleted).toEqual(['b']);
    expect(informer.stats.relists).toBe(1);
    expect(transport.watchFrom).toEqual(['10', '30']);
    await informer.stop();
  });

  it('reconnects with backoff from the last resourceVersion after a connection error', async () => {
    const transport = new ScriptedTransport();
    transport.lists.push({ items: [], resourceVersion: '5' });
    transport.watches.push({
      events: [{ type: 'ADDED', object: cm('x', '6') }],
      end: new Error('ECONNRESET'),
    });
    const errors: number[] = [];
    const informer = new Informer({
      transport,
      backoff: { baseMs: 5, maxMs: 10 },
      handlers: { onError: (_e, attempt) => errors.push(attempt) },
    });
    informer.start();
    await until(() => transport.watchFrom.length === 2);
    expect(transport.watchFrom).toEqual(['5', '6']);
    expect(errors).toEqual([1]);
    expect(informer.stats.lists).toBe(1);
    await informer.stop();
  });
});
