/**
 * A real Git server for tests, benchmarks and the demo: `git http-backend` (CGI; smart HTTP, protocol
 * v0/v1/v2 as the client asks) behind a Node HTTPS server with its own test CA (made with the openssl
 * CLI), or plain HTTP (`tls: false`), optional basic or bearer auth, a request log, and fault
 * injection (status codes, hangs, connections closed mid-pack, corrupted packs) for hardening tests.
 */
import { spawn } from 'node:child_process';
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
import { runCommand } from './git-fixtures.ts';

export type GitServerFault =
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'hang' }
  | { readonly kind: 'close-mid-pack' }
  /** Sends half of the pack, then nothing more (the connection stays open). */
  | { readonly kind: 'stall-mid-pack' }
  | { readonly kind: 'corrupt-pack' };

export interface GitServerOptions {
  readonly tls?: boolean;
  readonly basicAuth?: { readonly username: string; readonly password: string };
  readonly bearerToken?: string;
}

export interface GitServerRequest {
  readonly method: string;
  readonly path: string;
  /** `?service=…` for ref advertisements. */
  readonly query: string;
}

export interface GitServer {
  readonly baseUrl: string;
  readonly caPem: string;
  /** The CA file, e.g. for `GIT_SSL_CAINFO` when the git CLI is the client. */
  readonly caPath: string;
  /** Every request received, in order (clear with `requests.length = 0`). */
  readonly requests: GitServerRequest[];
  /** Response body bytes sent so far for repository `name` (every request, every fault included). */
  responseBytes(name: string): number;
  /** Serves the repository at `gitdir` (a bare repo or a worktree's .git) as `<baseUrl>/<name>.git`. */
  serve(name: string, gitdir: string): string;
  /** The URL a repository is (or would be) served at. */
  url(name: string): string;
  /** Injects a fault into every following request until cleared with `undefined`. */
  setFault(fault: GitServerFault | undefined): void;
  close(): Promise<void>;
}

export interface TestPki {
  readonly dir: string;
  readonly caPath: string;
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-pki-'));
  const openssl = (args: string[]) => runCommand('openssl', args, { cwd: dir, timeoutMs: 30_000 });
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=signet-test-ca',
    '-days',
    '2',
    '-out',
    'ca.crt',
  ]);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key']);
  await openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=127.0.0.1', '-out', 'server.csr']);
  await writeFile(
    join(dir, 'ext.cnf'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
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
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
    '-out',
    'server.crt',
  ]);
  return {
    dir,
    caPath: join(dir, 'ca.crt'),
    caPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
    certPem: await readFile(join(dir, 'server.crt'), 'utf8'),
    keyPem: await readFile(join(dir, 'server.key'), 'utf8'),
  };
}

function authorized(request: IncomingMessage, options: GitServerOptions): boolean {
  const header = request.headers.authorization ?? '';
  if (options.bearerToken !== undefined) return header === `Bearer ${options.bearerToken}`;
  if (options.basicAuth !== undefined) {
    const expected = Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString(
      'base64',
    );
    return header === `Basic ${expected}`;
  }
  return true;
}

export async function startGitServer(options: GitServerOptions = {}): Promise<GitServer> {
  const tls = options.tls ?? true;
  const pki = await createTestPki();
  const repos = new Map<string, string>();
  const requests: GitServerRequest[] = [];
  const sent = new Map<string, number>();
  const count = (name: string, bytes: number) => sent.set(name, (sent.get(name) ?? 0) + bytes);
  let fault: GitServerFault | undefined;
  const sockets = new Set<import('node:net').Socket>();

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    requests.push({ method: request.method ?? 'GET', path: url.pathname, query: url.search });
    if (!authorized(request, options)) {
      response.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }
    if (fault?.kind === 'status') {
      response.writeHead(fault.status).end('injected failure');
      return;
    }
    if (fault?.kind === 'hang') return; // never answers; the client's timeout must fire
    const match = /^\/([^/]+)\.git(\/.*)$/.exec(url.pathname);
    const name = match?.[1] ?? '';
    const gitdir = match === null ? undefined : repos.get(name);
    if (match === null || gitdir === undefined) {
      response.writeHead(404).end();
      return;
    }
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GIT_PROJECT_ROOT: gitdir,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: match[2] ?? '/',
        QUERY_STRING: url.search.replace(/^\?/, ''),
        REQUEST_METHOD: request.method ?? 'GET',
        CONTENT_TYPE: request.headers['content-type'] ?? '',
        ...(request.headers['git-protocol'] === undefined
          ? {}
          : { GIT_PROTOCOL: String(request.headers['git-protocol']) }),
        REMOTE_ADDR: '127.0.0.1',
        HOME: tmpdir(),
        GIT_CONFIG_NOSYSTEM: '1',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
      timeout: 120_000,
    });
    // A client that gives up (timeout, abort) must not leave http-backend running.
    response.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.stdin.on('error', () => undefined);
    request.pipe(child.stdin);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('close', () => {
      const output = Buffer.concat(chunks);
      const split = output.indexOf('\r\n\r\n');
      const headerEnd = split === -1 ? output.indexOf('\n\n') : split;
      const sepLength = split === -1 ? 2 : 4;
      const head = output.subarray(0, Math.max(0, headerEnd)).toString('utf8');
      let body = output.subarray(headerEnd + sepLength);
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon === -1) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      const isPack = (headers['Content-Type'] ?? '').includes('result');
      if (isPack && fault?.kind === 'corrupt-pack' && body.length > 64) {
        body = Buffer.from(body);
        for (let i = Math.floor(body.length / 2); i < body.length - 8; i += 97)
          body[i] = (body[i] ?? 0) ^ 0xff;
      }
      if (isPack && fault?.kind === 'stall-mid-pack') {
        response.writeHead(status, { ...headers, 'content-length': String(body.length) });
        count(name, Math.floor(body.length / 2));
        response.write(body.subarray(0, Math.floor(body.length / 2)));
        return;
      }
      if (isPack && fault?.kind === 'close-mid-pack') {
        response.writeHead(status, { ...headers, 'content-length': String(body.length) });
        count(name, Math.floor(body.length / 2));
        response.write(body.subarray(0, Math.floor(body.length / 2)));
        response.socket?.destroy();
        return;
      }
      count(name, body.length);
      response.writeHead(status, headers).end(body);
    });
  };

  const server: Server = tls
    ? createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, handle)
    : createHttpServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    baseUrl,
    caPem: pki.caPem,
    caPath: pki.caPath,
    requests,
    responseBytes: (name) => sent.get(name) ?? 0,
    serve(name, gitdir) {
      repos.set(name, gitdir);
      return `${baseUrl}/${name}.git`;
    },
    url(name) {
      return `${baseUrl}/${name}.git`;
    },
    setFault(next) {
      fault = next;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(pki.dir, { recursive: true, force: true });
    },
  };
}
