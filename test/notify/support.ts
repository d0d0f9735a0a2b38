import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';
import type { Alert } from '../../src/notify/alert.ts';
import { createLogger, type Logger } from '../../src/util/logger.ts';

export const secretPath = '/services/T000/B000/SECRETTOKEN';

export interface ReceivedRequest {
  readonly atMs: number;
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

export type Reply =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  | 'hang';

/** A Slack stand-in: records every request and answers from a script of replies (then 200 `ok`). */
export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  readonly replies: Reply[] = [];
  readonly #server: Server;
  readonly #hanging: ServerResponse[] = [];

  constructor(tls?: { readonly key: string; readonly cert: string }) {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    this.#server = tls === undefined ? createHttpServer(handler) : createHttpsServer(tls, handler);
  }

  async listen(): Promise<void> {
    await this.listenOn(0);
  }

  async listenOn(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  url(scheme: 'http' | 'https' = 'http'): string {
    return `${scheme}://127.0.0.1:${this.port}${secretPath}`;
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {}
      this.requests.push({
        atMs: performance.now(),
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body,
      });
      const reply = this.replies.shift() ?? { status: 200, body: 'ok' };
      if (reply === 'hang') {
        this.#hanging.push(res);
        return;
      }
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? '');
    });
  }
}

/** A pino logger writing into memory, so tests can scan every line. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

/** Poll until `predicate` holds, failing after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function counterValue(registry: Registry, name: string, kind: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

export function alert(overrides: Partial<Alert> = {}): Alert {
  return {
    kind: 'DriftReverted',
    gitRepository: { namespace: 'flux-system', name: 'platform' },
    cluster: 'prod-eu-1',
    revision: 'main@sha1:8f3c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70',
    signer: 'alice@example.com',
    objects: [
      {
        kind: 'ConfigMap',
        namespace: 'payments',
        name: 'app-config',
        fields: ['data.LOG_LEVEL'],
        manager: 'kubectl-edit',
      },
    ],
    action: 'reverted',
    message: 'ConfigMap/payments/app-config drifted and was reverted',
    occurredAt: new Date('2026-11-22T10:00:00.000Z'),
    ...overrides,
  };
}

export interface TestPki {
  readonly caCert: string;
  readonly otherCaCert: string;
  readonly serverKey: string;
  readonly serverCert: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost signed by it, and an unrelated CA. */
export async function generatePki(): Promise<TestPki> {
  const run = promisify(execFile);
  const dir = await mkdtemp(join(tmpdir(), 'signet-notify-pki-'));
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir, timeout: 20_000 });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await openssl([
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=signet test CA',
    ]);
    await openssl([
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      'other.key',
      '-out',
      'other.crt',
      '-days',
      '2',
      '-subj',
      '/CN=other CA',
    ]);
    await openssl(['req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
    await writeFile(
      join(dir, 'san.cnf'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n',
    );
    await openssl([
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'san.cnf',
    ]);
    const read = (name: string) => readFile(join(dir, name), 'utf8');
    return {
      caCert: await read('ca.crt'),
      otherCaCert: await read('other.crt'),
      serverKey: await read('server.key'),
      serverCert: await read('server.crt'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
