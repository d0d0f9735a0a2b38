import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** Serves /metrics (Prometheus text), /healthz (process alive) and /readyz (caches synced). */
export interface ProbeServerOptions {
  readonly address: string; // host:port, port 0 picks a free one
  readonly registry?: Registry;
  readonly isReady?: () => boolean;
}

export function parseListenAddress(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  const host = index > 0 ? address.slice(0, index).replace(/^\[|\]$/g, '') : '0.0.0.0';
  const port = Number(address.slice(index + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`invalid listen address "${address}": expected host:port`);
  }
  return { host, port };
}

export async function startProbeServer(
  options: ProbeServerOptions,
): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (path === '/readyz') {
      const ready = options.isReady?.() ?? true;
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok' : 'not ready');
    } else if (path === '/metrics' && options.registry !== undefined) {
      const registry = options.registry;
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    } else {
      response.writeHead(404).end();
    }
  });
  const { host, port } = parseListenAddress(options.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  return { server, port: typeof bound === 'object' && bound !== null ? bound.port : port };
}
