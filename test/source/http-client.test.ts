// createHttpClient against a local plain-HTTP server (spec.insecure): how an error answer is kept.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient } from '../../src/source/http-client.ts';

// 65,535 ASCII bytes then `é` (2 bytes): the 64 KiB cut falls inside the `é`.
const answer = `${'a'.repeat(65_535)}é and more text after the bound\n`;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo.git/info/refs`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('createHttpClient: error answers', () => {
  it('keeps the first 64 KiB cut on a character, not inside one', async () => {
    const client = createHttpClient({ insecure: true, timeoutMs: 10_000, maxResponseBytes: 1 << 20 });
    const response = await client.request({ url, method: 'GET', headers: {} });
    expect(response.statusCode).toBe(500);
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body ?? []) chunks.push(chunk);
    // isomorphic-git quotes the answer as UTF-8 text.
    expect(Buffer.concat(chunks).toString('utf8')).toBe('a'.repeat(65_535));
  });
});
