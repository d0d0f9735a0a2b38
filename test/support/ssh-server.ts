/**
 * A real OpenSSH server for tests and benchmarks: Debian's `/usr/sbin/sshd -D -e` on a loopback
 * port with host keys of its own (made with ssh-keygen), key-only login, `AcceptEnv GIT_PROTOCOL`
 * (protocol v2), and an authorized_keys whose entries force `git-shell`, so a client can run only
 * git-upload-pack/git-receive-pack. It serves repositories by absolute path (`url(gitdir)`).
 *
 * sshd runs as root here (tests run as root); the login user is the current user (root, allowed
 * key-only by `PermitRootLogin prohibit-password`). StrictModes is off because the files live in
 * the world-writable tmpdir; everything else is the stock configuration's default.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { generateSshKey, runCommand, type SshKeyFixture, type SshKeyKind } from './git-fixtures.ts';

export interface SshServerOptions {
  /** Host key kinds (default ed25519 and ecdsa-p256). */
  readonly hostKeys?: readonly SshKeyKind[];
  /** Pass GIT_PROTOCOL to git (protocol v2; default true). False: the server speaks v0 only. */
  readonly acceptGitProtocol?: boolean;
  /** Listen on this port (e.g. a second server on the same address after the first stopped). */
  readonly port?: number;
  /**
   * A host certificate for every host key (`HostCertificate`), made with `ssh-keygen -s <ca> -h -n
   * <principals> -V <validity>` (defaults: principal 127.0.0.1, valid from 5 minutes ago for 1 hour).
   */
  readonly hostCertificate?: {
    readonly ca: SshKeyFixture;
    readonly validity?: string;
    readonly principals?: string;
  };
}

export interface SshServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly dir: string;
  readonly hostKeys: readonly SshKeyFixture[];
  /** `[127.0.0.1]:port keytype base64` for every host key. */
  readonly knownHosts: string;
  /**
   * Authorizes a client public key (forced to git-shell). `corruptPack` pipes git-shell's output
   * through a filter that flips one byte 200 bytes into the pack (a server sending a corrupt pack).
   */
  authorize(key: SshKeyFixture, options?: { readonly corruptPack?: boolean }): Promise<void>;
  /** `ssh://user@127.0.0.1:port<gitdir>`. */
  url(gitdir: string): string;
  /**
   * The protocol of every command a client ran so far, in order: `version=2` where the client asked
   * for v2 and sshd passed GIT_PROTOCOL (AcceptEnv), else `v0`.
   */
  protocols(): Promise<string[]>;
  /** The sshd log so far (stderr with -e). */
  log(): string;
  /** How many connections sshd accepted so far (from its log). */
  connections(): number;
  close(): Promise<void>;
}

/** Passes stdin to stdout, flipping the byte 200 bytes after the first "PACK" signature. */
const corruptPackFilter = `
binmode STDIN; binmode STDOUT; $| = 1;
my ($total, $target, $done) = (0, -1, 0);
while (my $n = sysread(STDIN, my $buf, 65536)) {
  if ($target < 0) { my $i = index($buf, "PACK"); $target = $total + $i + 200 if $i >= 0; }
  my $at = $target - $total;
  if (!$done && $target >= 0 && $at < $n) {
    substr($buf, $at, 1) = chr(ord(substr($buf, $at, 1)) ^ 0x55); $done = 1;
  }
  $total += $n; syswrite(STDOUT, $buf);
}
`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** Resolves once the port answers with an SSH banner; polls until the deadline. */
async function waitForBanner(port: number, deadlineMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, '127.0.0.1');
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString('latin1').startsWith('SSH-2.0-'));
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startSshServer(options: SshServerOptions = {}): Promise<SshServer> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-sshd-'));
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeys: SshKeyFixture[] = [];
  for (const kind of options.hostKeys ?? (['ed25519', 'ecdsa-p256'] as const)) {
    hostKeys.push(await generateSshKey(dir, kind, 'host'));
  }
  const certificates: string[] = [];
  if (options.hostCertificate !== undefined) {
    for (const key of hostKeys) {
      await runCommand('ssh-keygen', [
        '-q',
        '-s',
        options.hostCertificate.ca.privateKeyPath,
        '-I',
        'signet-test-host',
        '-h',
        '-n',
        options.hostCertificate.principals ?? '127.0.0.1',
        '-V',
        options.hostCertificate.validity ?? '-5m:+1h',
        key.publicKeyPath,
      ]);
      certificates.push(key.publicKeyPath.replace(/\.pub$/, '-cert.pub'));
    }
  }
  const port = options.port ?? (await freePort());
  const user = userInfo().username;
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, '', { mode: 0o600 });
  const config = [
    `ListenAddress 127.0.0.1:${port}`,
    ...hostKeys.map((k) => `HostKey ${k.privateKeyPath}`),
    ...certificates.map((c) => `HostCertificate ${c}`),
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    ...(options.acceptGitProtocol === false ? [] : ['AcceptEnv GIT_PROTOCOL']),
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'PermitTTY no',
    'LogLevel VERBOSE',
    'MaxStartups 100:30:200',
  ].join('\n');
  const protocolLog = join(dir, 'protocols.log');
  await writeFile(protocolLog, '');
  const corruptFilter = join(dir, 'corrupt-pack.pl');
  await writeFile(corruptFilter, corruptPackFilter);
  const configPath = join(dir, 'sshd_config');
  await writeFile(configPath, `${config}\n`);
  let log = '';
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (log.length < 1_000_000) log += chunk.toString();
  });
  try {
    await waitForBanner(port, 10_000, child);
  } catch (error) {
    child.kill('SIGTERM');
    throw new Error(`${(error as Error).message}: ${log}`);
  }
  const knownHosts = hostKeys
    .map((k) => `[127.0.0.1]:${port} ${k.publicKeyLine.split(' ').slice(0, 2).join(' ')}`)
    .join('\n');
  return {
    host: '127.0.0.1',
    port,
    user,
    dir,
    hostKeys,
    knownHosts: `${knownHosts}\n`,
    async authorize(key, authorizeOptions = {}) {
      const line = key.publicKeyLine.split(' ').slice(0, 2).join(' ');
      const filter = authorizeOptions.corruptPack ? ` | perl ${corruptFilter}` : '';
      const record = `echo \\"\${GIT_PROTOCOL:-v0}\\" >> ${protocolLog}; `;
      const entry = `restrict,command="${record}git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"${filter}" ${line}\n`;
      await writeFile(authorizedKeys, `${await readFile(authorizedKeys, 'utf8')}${entry}`);
    },
    url: (gitdir) => `ssh://${user}@127.0.0.1:${port}${gitdir}`,
    protocols: async () => (await readFile(protocolLog, 'utf8')).split('\n').filter((l) => l !== ''),
    log: () => log,
    connections: () => (log.match(/Connection from 127\.0\.0\.1/g) ?? []).length,
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP server on a loopback port that sends an SSH banner and then nothing (for timeouts). */
export async function startHangingSshServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.write('SSH-2.0-OpenSSH_9.2p1 hang\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
