/**
 * Git's smart protocol over SSH (imperative shell), presented to isomorphic-git as its HTTP client
 * so that SSH feeds the very same pipeline as HTTPS: the ref advertisement, the native pack receiver
 * (pack-receiver.ts), the indexer, the reader, verification and the same bounds. Connections, the
 * host key check and the client key are in ssh-connection.ts.
 *
 * The mapping (a pooled SSH connection, one exec channel per Git conversation):
 * - `GET …/info/refs?service=git-upload-pack` opens `git-upload-pack '<path>'` on an exec channel
 *   (always with the `GIT_PROTOCOL=version=2` environment request) and answers with what the
 *   server says up to its first flush: v2 capabilities when isomorphic-git asked for v2 (the poll,
 *   whose ls-refs POST follows), else the v0 ref advertisement behind the `# service=` line smart
 *   HTTP adds; a v2 server's refs are then listed here with `ls-refs` (protocol-v2.ts);
 * - `POST …/git-upload-pack` writes the request to that same channel (stateful SSH upload-pack
 *   answers a complete request — wants, haves, `done` — exactly like stateless smart HTTP), closes
 *   our side, and streams the answer until the server closes the channel. On a v2 server the fetch's
 *   v0 request goes as a v2 `fetch` command and its answer comes back in v0 form (protocol-v2.ts).
 *
 * Trust (pinned host keys, the client key in memory only) is ssh-connection.ts's.
 *
 * Bounds: `timeoutMs` cuts the handshake and every silence (a server that stops talking after its
 * banner), the AbortSignal fails this transport's channels and retires its connection, and answers
 * are bounded by `maxResponseBytes`.
 */
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import type { ClientChannel } from 'ssh2';
import { SourceError } from './errors.ts';
import {
  advertisementFromLsRefs,
  fetchRequestFromV0,
  lsRefsRequest,
  parseV2Capabilities,
  pkt,
  V2FetchAnswer,
} from './protocol-v2.ts';
import {
  acquire,
  type Connection,
  knownHostsOf,
  parseIdentity,
  release,
  type SshCredentials,
} from './ssh-connection.ts';
import { quoteShellArgument, type SshUrl, sshTransportUrl } from './url.ts';

export interface SshTransportOptions {
  readonly url: SshUrl;
  readonly credentials: SshCredentials;
  /** The handshake and every silence of the server. */
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly signal: AbortSignal;
  readonly onRequest?: (method: string, url: string) => void;
  /** A fetch's `ls-refs` prefixes under protocol v2 (default: every ref, as v0 advertises). */
  readonly refPrefixes?: readonly string[];
}

export interface SshTransport {
  /** The URL to hand isomorphic-git; safeUrl() shows it as the ssh:// display form. */
  readonly url: string;
  readonly http: HttpClient;
  /** Ends any open channel and the connection; idempotent. */
  close(): void;
}

const maxStderrBytes = 2048;

/** A pull reader over a channel: chunks in order, silence bounded by timeoutMs, size bounded. */
class ChannelReader {
  readonly #chunks: Buffer[] = [];
  #waiter: (() => void) | undefined;
  #ended = false;
  #failure: unknown;
  #received = 0;

  readonly limit: number;
  readonly where: string;
  readonly onTimeout: (error: SourceError) => void;

  constructor(limit: number, where: string, onTimeout: (error: SourceError) => void) {
    this.limit = limit;
    this.where = where;
    this.onTimeout = onTimeout;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  push(chunk: Buffer): void {
    this.#received += chunk.length;
    if (this.#received > this.limit) {
      this.fail(new SourceError('TooLarge', `${this.where}: the answer exceeds ${this.limit} bytes`));
      return;
    }
    this.#chunks.push(chunk);
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  fail(error: unknown): void {
    this.#failure ??= error;
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** The next chunk, or undefined at the end of the stream. */
  async read(timeoutMs: number): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) return chunk;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          const error = new SourceError(
            'Timeout',
            `${this.where}: the server sent nothing for ${timeoutMs} ms (spec.timeout)`,
          );
          this.fail(error);
          this.onTimeout(error);
        }, timeoutMs);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  unshift(chunk: Buffer): void {
    if (chunk.length > 0) this.#chunks.unshift(chunk);
  }
}

/** The length of the pkt-line stream up to and including the first flush-pkt, or -1. */
export function endOfFirstFlush(data: Buffer): number {
  let position = 0;
  while (position + 4 <= data.length) {
    const header = data.toString('latin1', position, position + 4);
    if (!/^[0-9a-f]{4}$/i.test(header))
      throw new SourceError('FetchFailed', 'the server sent a malformed pkt-line');
    const length = Number.parseInt(header, 16);
    if (length === 0) return position + 4;
    if (length < 4) {
      position += 4; // delim-pkt / response-end-pkt
      continue;
    }
    position += length;
  }
  return -1;
}

function printable(bytes: Buffer): string {
  return bytes
    .toString('utf8')
    .replace(/[^\x20-\x7e\n]/g, '?')
    .trim()
    .split('\n')
    .slice(0, 3)
    .join('; ')
    .slice(0, 300);
}

interface Conversation {
  readonly channel: ClientChannel;
  readonly reader: ChannelReader;
  readonly stderr: Buffer[];
  exitCode?: number;
  /** Set when the server spoke v2 to a v0 client (a fetch): its capabilities; the POST is translated. */
  v2Fetch?: Map<string, string>;
}

export function createSshTransport(options: SshTransportOptions): SshTransport {
  const { url, timeoutMs, signal } = options;
  const where = url.display;
  const entries = knownHostsOf(options);
  const identity =
    options.credentials.identity === undefined
      ? undefined
      : parseIdentity(options.credentials.identity, options.credentials.password);
  if (identity === undefined && options.credentials.password === undefined) {
    throw new SourceError(
      'AuthFailed',
      `${where}: spec.secretRef needs an identity key (or a password) for SSH`,
    );
  }
  let connection: Connection | undefined;
  let pending: Conversation | undefined;
  const open = new Set<Conversation>();
  let closed = false;

  /** A deadline or an abort: this connection is not trusted again, our channels fail now. */
  const giveUp = (error: SourceError) => {
    for (const conversation of open) {
      conversation.reader.fail(error);
      conversation.channel.close();
    }
    connection?.retire();
    if (connection !== undefined && connection.users <= 1) connection.client.destroy();
  };
  const onAbort = () => giveUp(abortedError(signal, where));
  signal.addEventListener('abort', onAbort, { once: true });

  const connect = async (): Promise<Connection> => {
    signal.throwIfAborted();
    connection ??= acquire(options, entries, identity !== undefined);
    const current = connection;
    await Promise.race([
      current.ready,
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(abortedError(signal, where));
        signal.addEventListener('abort', () => reject(abortedError(signal, where)), { once: true });
      }),
    ]);
    return current;
  };

  const openChannel = async (current: Connection, v2: boolean): Promise<ClientChannel> => {
    const command = `git-upload-pack ${quoteShellArgument(url.path)}`;
    return new Promise<ClientChannel>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new SourceError(
          'Timeout',
          `${where}: the server did not open a channel in ${timeoutMs} ms (spec.timeout)`,
        );
        current.fail(error);
        reject(error);
      }, timeoutMs);
      current.client.exec(command, v2 ? { env: { GIT_PROTOCOL: 'version=2' } } : {}, (error, opened) => {
        clearTimeout(timer);
        if (error === undefined || error === null) resolve(opened);
        else
          reject(
            new SourceError(
              'FetchFailed',
              `${where}: the server refused the exec channel: ${String(error)}`,
              {
                cause: error,
              },
            ),
          );
      });
    });
  };

  const exec = async (v2: boolean): Promise<Conversation> => {
    let current = await connect();
    let channel: ClientChannel;
    try {
      channel = await openChannel(current, v2);
    } catch (error) {
      // A pooled connection the server has closed meanwhile: one fresh connection, once.
      if (signal.aborted || (error instanceof SourceError && error.code === 'Timeout')) throw error;
      current.retire();
      release(current);
      connection = undefined;
      current = await connect();
      channel = await openChannel(current, v2);
    }
    const reader = new ChannelReader(options.maxResponseBytes, where, (error) => giveUp(error));
    const conversation: Conversation = { channel, reader, stderr: [] };
    open.add(conversation);
    current.readers.add(reader);
    let stderrBytes = 0;
    channel.on('data', (chunk: Buffer) => reader.push(chunk));
    channel.stderr.on('data', (chunk: Buffer) => {
      if (stderrBytes < maxStderrBytes)
        conversation.stderr.push(chunk.subarray(0, maxStderrBytes - stderrBytes));
      stderrBytes += chunk.length;
    });
    channel.on('exit', (code: number | null) => {
      if (typeof code === 'number') conversation.exitCode = code;
    });
    channel.on('close', () => {
      open.delete(conversation);
      current.readers.delete(reader);
      reader.end();
    });
    return conversation;
  };

  const refusal = (conversation: Conversation, what: string): SourceError => {
    const stderr = printable(Buffer.concat(conversation.stderr));
    const notFound = /not appear to be a git repository|not found|no such/i.test(stderr);
    return new SourceError(
      notFound ? 'NotFound' : 'FetchFailed',
      `${where}: ${what}${stderr === '' ? '' : `; the server said: ${stderr}`}${notFound ? '; check spec.url' : ''}`,
    );
  };

  /** Reads one server message up to its flush-pkt. */
  const readMessage = async (conversation: Conversation, what: string): Promise<Buffer> => {
    let buffered = Buffer.alloc(0);
    for (;;) {
      const end = endOfFirstFlush(buffered);
      if (end >= 0) {
        conversation.reader.unshift(buffered.subarray(end));
        return buffered.subarray(0, end);
      }
      const chunk = await conversation.reader.read(timeoutMs);
      if (chunk === undefined) throw refusal(conversation, `the server closed the channel before ${what}`);
      buffered = Buffer.concat([buffered, chunk]);
    }
  };

  /** Reads the server's first message (v2 capabilities or the v0 ref advertisement) up to its flush. */
  const readAdvertisement = async (conversation: Conversation): Promise<{ advert: Buffer; v2: boolean }> => {
    const advert = await readMessage(conversation, 'advertising refs');
    return { advert, v2: advert.toString('latin1', 4, 14) === 'version 2\n' };
  };

  /** The v0 ref advertisement a v0 client (the fetch) needs, from `ls-refs` on a v2 conversation. */
  const listRefsV2 = async (conversation: Conversation, capabilities: Buffer): Promise<Buffer> => {
    // isomorphic-git's fetch also reads HEAD (the remote's default branch).
    const prefixes = options.refPrefixes === undefined ? [] : ['HEAD', ...options.refPrefixes];
    conversation.channel.write(lsRefsRequest(prefixes));
    const answer = await readMessage(conversation, 'listing refs');
    const parsed = parseV2Capabilities(capabilities);
    conversation.v2Fetch = parsed;
    return inContext(() => advertisementFromLsRefs(answer, parsed));
  };

  const inContext = <T>(work: () => T): T => {
    try {
      return work();
    } catch (error) {
      if (error instanceof SourceError) {
        throw new SourceError(error.code, `${where}: ${error.message}`, { cause: error });
      }
      throw error;
    }
  };

  /** The answer of a v2 `fetch`, translated back to the v0 answer the fetch reads. */
  const streamV2 = (conversation: Conversation, deepen: boolean): AsyncIterableIterator<Uint8Array> =>
    (async function* () {
      const answer = new V2FetchAnswer(deepen);
      let any = false;
      for (;;) {
        const chunk = await conversation.reader.read(timeoutMs);
        if (chunk === undefined) break;
        any = true;
        const out = inContext(() => answer.push(chunk));
        if (out.length > 0) yield new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      }
      if (!any && (conversation.exitCode ?? 0) !== 0) throw refusal(conversation, 'git-upload-pack failed');
      inContext(() => answer.end());
    })();

  const stream = (conversation: Conversation): AsyncIterableIterator<Uint8Array> =>
    (async function* () {
      let any = false;
      for (;;) {
        const chunk = await conversation.reader.read(timeoutMs);
        if (chunk === undefined) break;
        any = true;
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
      if (!any && (conversation.exitCode ?? 0) !== 0) throw refusal(conversation, 'git-upload-pack failed');
    })();

  const get = async (req: GitHttpRequest): Promise<GitHttpResponse> => {
    const v2 = Object.entries(req.headers ?? {}).some(
      ([name, value]) => name.toLowerCase() === 'git-protocol' && value === 'version=2',
    );
    // Always ask for v2: the poll (isomorphic-git's ls-refs) speaks it itself; for the fetch
    // (isomorphic-git speaks v0/v1 only) this transport lists refs and translates (protocol-v2.ts).
    const conversation = await exec(true);
    const { advert, v2: spokeV2 } = await readAdvertisement(conversation);
    pending = conversation;
    const v0Advert = !spokeV2 ? advert : v2 ? undefined : await listRefsV2(conversation, advert);
    const body =
      v0Advert === undefined
        ? advert
        : Buffer.concat([pkt('# service=git-upload-pack\n'), Buffer.from('0000'), v0Advert]);
    return response(req, 'application/x-git-upload-pack-advertisement', body);
  };

  const post = async (req: GitHttpRequest): Promise<GitHttpResponse> => {
    let conversation = pending;
    pending = undefined;
    if (conversation === undefined) {
      conversation = await exec(false);
      await readAdvertisement(conversation);
    }
    let body: AsyncIterableIterator<Uint8Array>;
    if (conversation.v2Fetch === undefined) {
      for await (const chunk of req.body ?? []) conversation.channel.write(chunk);
      body = stream(conversation);
    } else {
      const chunks: Uint8Array[] = [];
      for await (const chunk of req.body ?? []) chunks.push(chunk);
      const { command, deepen } = inContext(() => fetchRequestFromV0(Buffer.concat(chunks)));
      conversation.channel.write(command);
      body = streamV2(conversation, deepen);
    }
    conversation.channel.end();
    return {
      url: req.url,
      method: 'POST',
      statusCode: 200,
      statusMessage: 'OK',
      headers: { 'content-type': 'application/x-git-upload-pack-result' },
      body,
    };
  };

  return {
    url: sshTransportUrl(url),
    http: {
      async request(req: GitHttpRequest): Promise<GitHttpResponse> {
        if (closed) throw new SourceError('FetchFailed', `${where}: the SSH transport is closed`);
        const method = req.method ?? 'GET';
        options.onRequest?.(method, where);
        const path = new URL(req.url).pathname;
        if (method === 'GET' && path.endsWith('/info/refs')) return get(req);
        if (method === 'POST' && path.endsWith('/git-upload-pack')) return post(req);
        throw new SourceError('FetchFailed', `${where}: only git-upload-pack is spoken over SSH`);
      },
    },
    close() {
      if (closed) return;
      closed = true;
      signal.removeEventListener('abort', onAbort);
      const ended = pending;
      // A poll that read the advertisement only: end the conversation politely (a flush-pkt).
      ended?.channel.end(Buffer.from('0000'));
      pending = undefined;
      for (const conversation of open) {
        if (conversation === ended) continue;
        // Still open: its reader stopped early. Close the channel so nothing more is buffered; a
        // conversation cut short by an error leaves the connection in an unknown state.
        conversation.channel.close();
        if (conversation.reader.failed) connection?.retire();
      }
      if (connection !== undefined) release(connection);
    },
  };
}

function abortedError(signal: AbortSignal, where: string): SourceError {
  const reason: unknown = signal.reason;
  return reason instanceof DOMException && reason.name === 'TimeoutError'
    ? new SourceError('Timeout', `${where}: the deadline passed (spec.timeout)`)
    : new SourceError('Aborted', `${where}: aborted`);
}

function response(req: GitHttpRequest, contentType: string, body: Buffer): GitHttpResponse {
  return {
    url: req.url,
    method: req.method ?? 'GET',
    statusCode: 200,
    statusMessage: 'OK',
    headers: { 'content-type': contentType },
    body: (async function* () {
      yield new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    })(),
  };
}
