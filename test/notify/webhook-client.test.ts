import { afterEach, describe, expect, it } from 'vitest';
import { parseSlackTarget } from '../../src/notify/slack-target.ts';
import { UndiciWebhookClient } from '../../src/notify/webhook-client.ts';
import { Receiver } from './support.ts';

/** The real undici client against a real HTTP receiver on 127.0.0.1. */
describe('UndiciWebhookClient answers as text', () => {
  const opened: { receiver: Receiver; client: UndiciWebhookClient }[] = [];

  afterEach(async () => {
    for (const { receiver, client } of opened.splice(0)) {
      await client.close();
      await receiver.close();
    }
  });

  async function post(replyBody: string): Promise<string> {
    const receiver = new Receiver();
    await receiver.listen();
    receiver.replies.push({ status: 400, body: replyBody });
    const client = new UndiciWebhookClient(parseSlackTarget({ address: receiver.url('http') }));
    opened.push({ receiver, client });
    const response = await client.post('{"text":"x"}', {
      signal: new AbortController().signal,
      timeoutMs: 5_000,
    });
    expect(response.status).toBe(400);
    return response.body;
  }

  it('keeps accented letters, CJK and emoji of a short answer intact', async () => {
    expect(await post('invalid_payload: «café» 東京 🙂')).toBe('invalid_payload: «café» 東京 🙂');
  });

  it('cuts a long answer at 2,048 bytes without turning a cut character into U+FFFD', async () => {
    // 2,047 ASCII bytes, then `é` (2 bytes) straddling the bound, then more text.
    const body = await post(`${'x'.repeat(2_047)}é${'y'.repeat(5_000)}`);
    expect(body).toBe('x'.repeat(2_047));
    // 2,046 ASCII bytes, then `🙂` (4 bytes) straddling the bound.
    expect(await post(`${'x'.repeat(2_046)}🙂 tail`)).toBe('x'.repeat(2_046));
    // A character that ends exactly at the bound is kept.
    expect(await post(`${'x'.repeat(2_045)}東 tail`)).toBe(`${'x'.repeat(2_045)}東`);
  });
});
