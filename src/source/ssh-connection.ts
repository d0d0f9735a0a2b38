/**
 * SSH connections for the Git transport (imperative shell, on the maintained ssh2 library): the
 * client key and known_hosts read from the Secret, the host key check, and a pool of
 * authenticated connections.
 *
 * Trust: the host key must be pinned in `known_hosts` (known-hosts.ts); nothing is sent before the
 * host key check passes, and there is no way to skip it. Only the host key types pinned for the
 * host are offered. The client key (`identity`, optionally encrypted with `password`) is parsed in
 * memory, never written anywhere, and never appears in a message: errors name the Secret key.
 *
 * Reuse: a connection serves the polls and fetches that present exactly the same host, port, user,
 * identity, password and known_hosts (the pool key hashes all of them, so a connection
 * authenticated with one Secret's key never serves another). Idle, it is kept for
 * `idleConnectionMs` with its socket unref'd (a CLI run still exits), then ended; after any error,
 * close, timeout or abort it is never handed out again.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type * as Ssh2 from 'ssh2';
import { SourceError } from './errors.ts';
import { decideHostCertificate, isCertificateType } from './host-certificate.ts';
import {
  blobKeyType,
  decideHostKey,
  hasCertAuthorityFor,
  hostKeyAlgorithmsFor,
  hostKeyRefusal,
  hostLookupName,
  type KnownHostEntry,
  parseKnownHosts,
} from './known-hosts.ts';
import type { SshUrl } from './url.ts';

export interface SshConnectionOptions {
  readonly url: SshUrl;
  readonly credentials: SshCredentials;
  /** The handshake (connect, key exchange, authentication). */
  readonly timeoutMs: number;
}

/** What a connection ends or fails when it goes away: the readers of its channels. */
export interface ConversationSink {
  end(): void;
  fail(error: unknown): void;
}

const requireCjs = createRequire(import.meta.url);
let ssh2Module: typeof Ssh2 | undefined;

/**
 * ssh2, loaded on first use: requiring it instantiates its poly1305 WebAssembly module with a
 * 16 MiB heap and loads its ciphers, which an operator without any ssh:// GitRepository never
 * needs. Synchronous (ssh2 is CommonJS), so callers stay as they are.
 */
function ssh2(): typeof Ssh2 {
  ssh2Module ??= requireCjs('ssh2') as typeof Ssh2;
  return ssh2Module;
}

let certificatesPatched: boolean | undefined;

/**
 * Whether ssh2 negotiates `*-cert-v01@openssh.com` host keys: ssh2 1.17 does not by itself;
 * patches/ssh2+1.17.0.patch (applied by patch-package at install) adds them, client side only,
 * handing the certificate to our host verifier. Without it a `@cert-authority` host is refused.
 */
export function hostCertificatesSupported(): boolean {
  if (certificatesPatched === undefined) {
    try {
      const constants = requireCjs('ssh2/lib/protocol/constants.js') as { CERT_SERVER_HOST_KEY?: unknown };
      certificatesPatched =
        Array.isArray(constants.CERT_SERVER_HOST_KEY) && constants.CERT_SERVER_HOST_KEY.length > 0;
    } catch {
      certificatesPatched = false;
    }
  }
  return certificatesPatched;
}

export interface SshCredentials {
  /** OpenSSH private key (Secret key `identity`). */
  readonly identity?: string;
  /** Passphrase of an encrypted `identity`, else an SSH password (Secret key `password`). */
  readonly password?: string;
  /** Pinned host keys (Secret key `known_hosts`); required. */
  readonly knownHosts?: string;
}

const allowedClientKeyTypes = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ssh-rsa',
]);
const minRsaBits = 2048;
type ParsedKey = Exclude<ReturnType<typeof Ssh2.utils.parseKey>, Error | unknown[]>;

function rsaModulusBits(blob: Buffer): number {
  let offset = 0;
  const next = (): Buffer => {
    const length = blob.readUInt32BE(offset);
    const value = blob.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return value;
  };
  next(); // type
  next(); // e
  const n = next();
  let start = 0;
  while (start < n.length && n[start] === 0) start++;
  const first = n[start] ?? 0;
  return (n.length - start - 1) * 8 + (32 - Math.clz32(first));
}

/** Parses and checks the client key in memory; errors name the Secret keys, never their content. */
export function parseIdentity(identity: string, passphrase: string | undefined): ParsedKey {
  const parsed = ssh2().utils.parseKey(identity, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase|decrypt/i.test(parsed.message);
    throw new SourceError(
      'AuthFailed',
      encrypted
        ? passphrase === undefined
          ? 'the identity key of spec.secretRef is encrypted: add its passphrase as the password key'
          : 'the identity key of spec.secretRef could not be decrypted with the password key (wrong passphrase?)'
        : 'the identity key of spec.secretRef is not an OpenSSH/PEM private key ssh2 can read',
    );
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key === undefined || key.isPrivateKey() !== true) {
    throw new SourceError('AuthFailed', 'the identity key of spec.secretRef holds no private key');
  }
  if (!allowedClientKeyTypes.has(key.type)) {
    throw new SourceError(
      'AuthFailed',
      `the identity key of spec.secretRef is ${key.type}; use ed25519, ECDSA P-256/P-384 or RSA >= ${minRsaBits} bits`,
    );
  }
  if (key.type === 'ssh-rsa' && rsaModulusBits(key.getPublicSSH()) < minRsaBits) {
    throw new SourceError('AuthFailed', `the identity key of spec.secretRef is RSA below ${minRsaBits} bits`);
  }
  return key;
}

export function knownHostsOf(options: SshConnectionOptions): readonly KnownHostEntry[] {
  const where = options.url.display;
  if (options.credentials.knownHosts === undefined || options.credentials.knownHosts.trim() === '') {
    throw new SourceError(
      'HostKeyRejected',
      `${where}: spec.secretRef has no known_hosts key: SSH needs the host's pinned key (there is no way to accept any host key); nothing was fetched`,
    );
  }
  const parsed = parseKnownHosts(options.credentials.knownHosts);
  if (!parsed.ok) {
    throw new SourceError(
      'HostKeyRejected',
      `${where}: the known_hosts key of spec.secretRef is invalid (${parsed.reason}); nothing was fetched`,
    );
  }
  const { host, port } = options.url;
  if (!hostCertificatesSupported() && hasCertAuthorityFor(parsed.entries, host, port)) {
    throw new SourceError(
      'HostKeyRejected',
      `${where}: known_hosts has @cert-authority lines for ${hostLookupName(host, port)}, but this build's ssh2 lacks the host certificate patch (patches/ssh2+1.17.0.patch); nothing was fetched`,
    );
  }
  return parsed.entries;
}

/** Maps an ssh2 connection error to a SourceError; the host key refusal wins when there was one. */
function connectionError(
  error: Error & { level?: string },
  where: string,
  rejected: string | undefined,
  url: SshUrl,
): SourceError {
  if (rejected !== undefined) {
    return new SourceError('HostKeyRejected', `${where}: ${rejected}`, { cause: error });
  }
  if (error.level === 'client-authentication') {
    return new SourceError(
      'AuthFailed',
      `${where}: the server refused user ${url.user} with the identity (or password) of spec.secretRef; check that its public key is a deploy key of the repository`,
      { cause: error },
    );
  }
  if (/Timed out while waiting for handshake/i.test(error.message)) {
    return new SourceError('Timeout', `${where}: the SSH handshake did not finish in time (spec.timeout)`, {
      cause: error,
    });
  }
  return new SourceError('FetchFailed', `${where}: SSH connection failed: ${error.message}`, {
    cause: error,
  });
}

/**
 * The host key check: a plain key must be pinned (known-hosts.ts), a certificate must be signed by
 * a `@cert-authority` for the host and valid now (host-certificate.ts). Undefined: accepted; else
 * the refusal, naming the host, the offered key's fingerprint and the cause.
 */
export function hostKeyVerdict(
  entries: readonly KnownHostEntry[],
  url: SshUrl,
  offered: Buffer,
  now: Date,
): string | undefined {
  const keyType = blobKeyType(offered) ?? 'unknown';
  if (isCertificateType(keyType)) {
    const decision = decideHostCertificate(entries, url.host, url.port, offered, keyType, now);
    if (decision.ok) return undefined;
    const certified = decision.keyFingerprint === undefined ? '' : ` for key ${decision.keyFingerprint}`;
    return `host certificate of ${hostLookupName(url.host, url.port)} refused: ${decision.detail} (${keyType}${certified}); fix the server's certificate or the @cert-authority lines in the known_hosts key of spec.secretRef; nothing was fetched`;
  }
  const decision = decideHostKey(entries, url.host, url.port, offered);
  return decision.ok ? undefined : hostKeyRefusal(decision, url.host, url.port, keyType);
}

/**
 * One authenticated SSH connection, shared by the polls and fetches that present exactly the same
 * host, port, user, identity, password and known_hosts (the pool key hashes all of them, so a
 * connection authenticated with one Secret's key never serves another Secret). Idle, it is kept
 * for `idleConnectionMs` with its socket unref'd (a CLI run still exits), then ended.
 */
export interface Connection {
  readonly key: string;
  readonly client: Ssh2.Client;
  readonly socket: Socket;
  readonly ready: Promise<void>;
  readonly readers: Set<ConversationSink>;
  users: number;
  /** False once it failed, closed, timed out or was aborted: never handed out again. */
  reusable: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  /** Never hand it out again; the conversations already on it go on. */
  retire(): void;
  /** The connection itself failed (or closed): retire it and end or fail every conversation on it. */
  fail(error?: unknown): void;
}

/** How long an idle connection is kept for the next poll with the same credentials. */
export const idleConnectionMs = 10 * 60_000;
const pool = new Map<string, Connection>();

function poolKey(url: SshUrl, credentials: SshCredentials): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        url.host,
        url.port,
        url.user,
        credentials.identity ?? null,
        credentials.password ?? null,
        credentials.knownHosts ?? null,
      ]),
    )
    .digest('hex');
}

function openConnection(
  key: string,
  options: SshConnectionOptions,
  entries: readonly KnownHostEntry[],
  identity: boolean,
): Connection {
  const { url, credentials } = options;
  const where = url.display;
  const client = new (ssh2().Client)();
  const socket = new Socket();
  const readers = new Set<ConversationSink>();
  let rejected: string | undefined;
  let connection!: Connection;
  const retire = () => {
    connection.reusable = false;
    if (pool.get(key) === connection) pool.delete(key);
  };
  const fail = (error?: unknown) => {
    retire();
    for (const reader of readers) {
      if (error === undefined) reader.end();
      else reader.fail(error);
    }
  };
  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.on('error', (error: Error & { level?: string }) => {
      const mapped = connectionError(error, where, rejected, url);
      fail(mapped);
      reject(mapped);
    });
    client.on('close', () => {
      fail();
      reject(new SourceError('FetchFailed', `${where}: the SSH connection closed during the handshake`));
    });
  });
  ready.catch(() => undefined);
  connection = {
    key,
    client,
    socket,
    ready,
    readers,
    users: 0,
    reusable: true,
    idleTimer: undefined,
    retire,
    fail,
  };
  const algorithms = hostKeyAlgorithmsFor(entries, url.host, url.port, hostCertificatesSupported());
  socket.connect(url.port, url.host);
  client.connect({
    sock: socket,
    username: url.user,
    // Checked by parseIdentity; ssh2 parses it again in memory.
    ...(identity && credentials.identity !== undefined
      ? {
          privateKey: credentials.identity,
          ...(credentials.password === undefined ? {} : { passphrase: credentials.password }),
        }
      : credentials.password === undefined
        ? {}
        : { password: credentials.password }),
    tryKeyboard: false,
    readyTimeout: options.timeoutMs,
    keepaliveInterval: 0,
    ...(algorithms.length === 0 ? {} : { algorithms: { serverHostKey: algorithms as never } }),
    hostVerifier: (offered: Buffer) => {
      rejected = hostKeyVerdict(entries, url, offered, new Date());
      return rejected === undefined;
    },
  });
  return connection;
}

export function acquire(
  options: SshConnectionOptions,
  entries: readonly KnownHostEntry[],
  identity: boolean,
): Connection {
  const key = poolKey(options.url, options.credentials);
  let connection = pool.get(key);
  if (connection === undefined || !connection.reusable) {
    connection = openConnection(key, options, entries, identity);
    pool.set(key, connection);
  }
  connection.users++;
  clearTimeout(connection.idleTimer);
  connection.idleTimer = undefined;
  connection.socket.ref();
  return connection;
}

export function release(connection: Connection): void {
  connection.users--;
  if (connection.users > 0) return;
  if (!connection.reusable) {
    connection.client.destroy();
    return;
  }
  connection.socket.unref();
  connection.idleTimer = setTimeout(() => {
    if (connection.users > 0) return;
    connection.retire();
    connection.client.end();
  }, idleConnectionMs);
  connection.idleTimer.unref();
}

/** Ends every pooled connection (tests, benchmarks, shutdown). */
export function closeIdleSshConnections(): void {
  for (const connection of [...pool.values()]) {
    connection.retire();
    if (connection.users === 0) connection.client.end();
  }
}
