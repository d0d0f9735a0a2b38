/**
 * Test fixtures made at test time with the system git, ssh-keygen and gpg: repositories, keys of each type,
 * signed/unsigned commits and tags, and a RevisionReader implemented with the git CLI.
 */
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import type { GitObjectType, RevisionReader } from '../../src/verify/verify-revision.ts';

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly input?: string | Uint8Array;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Exit codes that are not errors (default [0]). */
  readonly okCodes?: readonly number[];
}

export interface RunResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export class CommandError extends Error {
  readonly code: 'CommandFailed' | 'CommandTimedOut';
  readonly exitCode: number | null;
  constructor(code: 'CommandFailed' | 'CommandTimedOut', message: string, exitCode: number | null) {
    super(message);
    this.name = 'CommandError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

const BASE_ENV: Record<string, string> = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? tmpdir(),
  LANG: 'C',
  TZ: 'UTC',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

/** Runs a command with a timeout (default 30 s) and an optional AbortSignal. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...BASE_ENV, ...options.env },
      signal: options.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = {
        code: code ?? -1,
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr).toString(),
      };
      if (timedOut) {
        reject(
          new CommandError(
            'CommandTimedOut',
            `${command} ${args.join(' ')} timed out after ${timeoutMs} ms`,
            null,
          ),
        );
      } else if (!(options.okCodes ?? [0]).includes(result.code)) {
        reject(
          new CommandError(
            'CommandFailed',
            `${command} ${args.join(' ')} exited ${code}: ${result.stderr}`,
            code,
          ),
        );
      } else {
        resolve(result);
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `signet-${prefix}-`));
}

// ---------- SSH keys ----------

export type SshKeyKind = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'rsa';

export interface SshKeyFixture {
  readonly kind: SshKeyKind;
  readonly privateKeyPath: string;
  readonly publicKeyPath: string;
  /** `keytype base64 comment` */
  readonly publicKeyLine: string;
}

const SSH_KEYGEN_ARGS: Record<SshKeyKind, string[]> = {
  ed25519: ['-t', 'ed25519'],
  'ecdsa-p256': ['-t', 'ecdsa', '-b', '256'],
  'ecdsa-p384': ['-t', 'ecdsa', '-b', '384'],
  'ecdsa-p521': ['-t', 'ecdsa', '-b', '521'],
  rsa: ['-t', 'rsa', '-b', '2048'],
};

export async function generateSshKey(
  dir: string,
  kind: SshKeyKind,
  comment = `${kind}@example.com`,
): Promise<SshKeyFixture> {
  const privateKeyPath = join(dir, `id_${kind}_${Math.random().toString(36).slice(2, 8)}`);
  await runCommand('ssh-keygen', [
    ...SSH_KEYGEN_ARGS[kind],
    '-N',
    '',
    '-C',
    comment,
    '-q',
    '-f',
    privateKeyPath,
  ]);
  const publicKeyLine = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  return { kind, privateKeyPath, publicKeyPath: `${privateKeyPath}.pub`, publicKeyLine };
}

/** An allowed-signers line: `principal [options] keytype base64`. */
export function allowedSignersLine(principal: string, key: SshKeyFixture, options?: string): string {
  const [keyType, base64] = key.publicKeyLine.split(' ');
  return [principal, options, keyType, base64].filter((part) => part !== undefined && part !== '').join(' ');
}

// ---------- OpenPGP (gpg) ----------

export interface GpgHome {
  readonly home: string;
  /** Runs gpg in this home, optionally at a faked system time (`YYYYMMDDTHHMMSS`). */
  gpg(args: readonly string[], fakedTime?: string, input?: string): Promise<RunResult>;
  /** Generates a key and returns its fingerprint. `expire`: e.g. `1y`, `never`, `seconds=60`. */
  generateKey(
    userId: string,
    options?: { algo?: string; expire?: string; fakedTime?: string },
  ): Promise<string>;
  exportPublicKey(fingerprint: string): Promise<string>;
  /** Imports the revocation certificate gpg wrote at generation time: the key becomes revoked. */
  revoke(fingerprint: string): Promise<void>;
  /** Sets a new expiry on the primary key (self-signature dated at `fakedTime`). */
  setExpiry(fingerprint: string, expire: string, fakedTime?: string): Promise<void>;
  /** A gpg.program for git that uses this home (and a faked time). */
  program(fakedTime?: string): Promise<string>;
  close(): Promise<void>;
}

export async function createGpgHome(): Promise<GpgHome> {
  const home = await makeTempDir('gpg');
  await chmod(home, 0o700);
  const base = ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', ''];
  const gpg = (args: readonly string[], fakedTime?: string, input?: string) =>
    runCommand('gpg', [...base, ...(fakedTime ? ['--faked-system-time', fakedTime] : []), ...args], {
      input,
      timeoutMs: 60_000,
    });
  let programs = 0;
  return {
    home,
    gpg,
    async generateKey(userId, options = {}) {
      await gpg(
        ['--quick-gen-key', userId, options.algo ?? 'ed25519', 'sign', options.expire ?? 'never'],
        options.fakedTime,
      );
      const listing = (await gpg(['--with-colons', '--list-keys', userId])).stdout.toString();
      const fpr = listing.split('\n').find((line) => line.startsWith('fpr:'));
      if (fpr === undefined) throw new Error(`no fingerprint for ${userId}`);
      return fpr.split(':')[9] ?? '';
    },
    async exportPublicKey(fingerprint) {
      return (await gpg(['--armor', '--export', fingerprint])).stdout.toString();
    },
    async revoke(fingerprint) {
      const certificate = await readFile(join(home, 'openpgp-revocs.d', `${fingerprint}.rev`), 'utf8');
      await gpg(['--import'], undefined, certificate.replace(/^:-----BEGIN/m, '-----BEGIN'));
    },
    async setExpiry(fingerprint, expire, fakedTime) {
      await gpg(['--quick-set-expire', fingerprint, expire], fakedTime);
    },
    async program(fakedTime) {
      programs += 1;
      const path = join(home, `gpg-program-${programs}.sh`);
      const faked = fakedTime ? ` --faked-system-time ${fakedTime}` : '';
      await writeFile(path, `#!/bin/sh\nexec gpg --homedir '${home}'${faked} "$@"\n`, { mode: 0o755 });
      return path;
    },
    async close() {
      await runCommand('gpgconf', ['--homedir', home, '--kill', 'all'], { okCodes: [0, 1, 2] }).catch(
        () => undefined,
      );
      await rm(home, { recursive: true, force: true });
    },
  };
}

// ---------- repositories ----------

export type CommitSigning =
  | { readonly format: 'ssh'; readonly key: SshKeyFixture }
  | {
      readonly format: 'openpgp';
      readonly gpg: GpgHome;
      readonly fingerprint: string;
      readonly fakedTime?: string;
    };

export interface CommitOptions {
  readonly message?: string;
  readonly sign?: CommitSigning;
  readonly committerEmail?: string;
  /** Unix seconds for author and committer dates. */
  readonly date?: number;
  /** Commit message written verbatim (no cleanup), e.g. with CRLF. */
  readonly verbatim?: boolean;
  readonly files?: Readonly<Record<string, string>>;
}

export interface TestRepo {
  readonly dir: string;
  git(args: readonly string[], options?: RunOptions): Promise<string>;
  commit(options?: CommitOptions): Promise<string>;
  /** Annotated tag `name` on `target`; returns the tag object oid. */
  tag(
    name: string,
    target: string,
    options?: { sign?: CommitSigning; message?: string; force?: boolean },
  ): Promise<string>;
  /** Writes a raw object (no format checks) and returns its oid. */
  writeRaw(type: 'commit' | 'tag', raw: Uint8Array): Promise<string>;
  readRaw(oid: string): Promise<Buffer>;
  /** `git merge --no-ff` of `other` into the current branch, unsigned unless `sign`. */
  merge(other: string, options?: { sign?: CommitSigning; message?: string }): Promise<string>;
  close(): Promise<void>;
}

async function signingArgs(sign: CommitSigning | undefined): Promise<string[]> {
  if (sign === undefined) return [];
  if (sign.format === 'ssh') {
    return ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${sign.key.privateKeyPath}`];
  }
  return [
    '-c',
    'gpg.format=openpgp',
    '-c',
    `gpg.program=${await sign.gpg.program(sign.fakedTime)}`,
    '-c',
    `user.signingkey=${sign.fingerprint}`,
  ];
}

/** Writes files (paths relative to the work tree, directories created) and stages the whole tree (`git add -A`). */
export async function stageFiles(repo: TestRepo, files: Readonly<Record<string, string>>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(repo.dir, path)), { recursive: true });
    await writeFile(join(repo.dir, path), content);
  }
  await repo.git(['add', '-A']);
}

export async function createRepo(): Promise<TestRepo> {
  const dir = await makeTempDir('repo');
  let counter = 0;
  let clock = 1_700_000_000;
  const git = async (args: readonly string[], options: RunOptions = {}) =>
    (await runCommand('git', args, { cwd: dir, ...options })).stdout.toString().trim();
  await git(['init', '-q', '-b', 'main']);
  await git(['config', 'user.name', 'Test Committer']);
  await git(['config', 'user.email', 'committer@example.com']);
  await git(['config', 'commit.gpgsign', 'false']);
  await git(['config', 'tag.gpgsign', 'false']);
  const repo: TestRepo = {
    dir,
    git,
    async commit(options = {}) {
      counter += 1;
      clock += 60;
      const date = `@${options.date ?? clock} +0000`;
      for (const [name, content] of Object.entries(
        options.files ?? { [`file-${counter}.txt`]: `content ${counter}\n` },
      )) {
        await writeFile(join(dir, name), content);
        await git(['add', name]);
      }
      const email = options.committerEmail ?? 'committer@example.com';
      const env = {
        GIT_AUTHOR_DATE: date,
        GIT_COMMITTER_DATE: date,
        GIT_COMMITTER_EMAIL: email,
        GIT_AUTHOR_EMAIL: email,
      };
      const messageFile = join(dir, '.git', 'COMMIT_MSG_FIXTURE');
      await writeFile(messageFile, options.message ?? `commit ${counter}\n`);
      await git(
        [
          ...(await signingArgs(options.sign)),
          'commit',
          '-q',
          '--allow-empty',
          ...(options.sign ? ['-S'] : ['--no-gpg-sign']),
          ...(options.verbatim ? ['--cleanup=verbatim'] : []),
          '-F',
          messageFile,
        ],
        { env },
      );
      return git(['rev-parse', 'HEAD']);
    },
    async tag(name, target, options = {}) {
      await git(
        [
          ...(await signingArgs(options.sign)),
          'tag',
          ...(options.force ? ['-f'] : []),
          ...(options.sign ? ['-s'] : ['-a']),
          '-m',
          options.message ?? `release ${name}`,
          name,
          target,
        ],
        { env: { GIT_COMMITTER_DATE: `@${clock} +0000` } },
      );
      return git(['rev-parse', `refs/tags/${name}`]);
    },
    async writeRaw(type, raw) {
      return git(['hash-object', '-t', type, '-w', '--literally', '--stdin'], { input: raw });
    },
    async readRaw(oid) {
      return (await runCommand('git', ['cat-file', '-p', oid], { cwd: dir })).stdout;
    },
    async merge(other, options = {}) {
      clock += 60;
      const date = `@${clock} +0000`;
      await git(
        [
          ...(await signingArgs(options.sign)),
          'merge',
          '-q',
          '--no-ff',
          ...(options.sign ? ['-S'] : ['--no-gpg-sign']),
          '-m',
          options.message ?? `merge ${other}`,
          other,
        ],
        { env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date } },
      );
      return git(['rev-parse', 'HEAD']);
    },
    async close() {
      await rm(dir, { recursive: true, force: true });
    },
  };
  return repo;
}

// ---------- RevisionReader over the git CLI ----------

function parseBatchOutput(out: Buffer, into: Map<string, { type: GitObjectType; raw: Uint8Array }>): void {
  let offset = 0;
  while (offset < out.length) {
    const newline = out.indexOf(0x0a, offset);
    if (newline === -1) break;
    const header = out.subarray(offset, newline).toString();
    const [oid, type, size] = header.split(' ');
    if (type === 'missing' || oid === undefined || size === undefined)
      throw new Error(`object ${oid} is missing`);
    const start = newline + 1;
    const end = start + Number(size);
    into.set(oid, { type: type as GitObjectType, raw: Uint8Array.from(out.subarray(start, end)) });
    offset = end + 1;
  }
}

/** RevisionReader backed by `git cat-file --batch`, `git rev-list` and `git merge-base --is-ancestor`. */
export class GitCliRevisionReader implements RevisionReader {
  readonly dir: string;
  readonly cache = new Map<string, { type: GitObjectType; raw: Uint8Array }>();
  readCount = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Loads many objects with one `git cat-file --batch` (bench). */
  async preload(oids: readonly string[], signal?: AbortSignal): Promise<void> {
    const out = await runCommand('git', ['cat-file', '--batch'], {
      cwd: this.dir,
      input: `${oids.join('\n')}\n`,
      signal,
      timeoutMs: 120_000,
    });
    parseBatchOutput(out.stdout, this.cache);
  }

  async readObject(oid: string, signal?: AbortSignal): Promise<{ type: GitObjectType; raw: Uint8Array }> {
    this.readCount += 1;
    const cached = this.cache.get(oid);
    if (cached !== undefined) return cached;
    const out = await runCommand('git', ['cat-file', '--batch'], {
      cwd: this.dir,
      input: `${oid}\n`,
      signal,
    });
    const one = new Map<string, { type: GitObjectType; raw: Uint8Array }>();
    parseBatchOutput(out.stdout, one);
    const object = one.get(oid);
    if (object === undefined) throw new Error(`object ${oid} not found`);
    return object;
  }

  async listRange(head: string, since: string | undefined, signal?: AbortSignal): Promise<string[]> {
    const args = ['rev-list', head, ...(since === undefined ? [] : [`^${since}`])];
    const out = await runCommand('git', args, { cwd: this.dir, signal, timeoutMs: 60_000 });
    return out.stdout
      .toString()
      .split('\n')
      .filter((line) => line !== '');
  }

  async isAncestor(ancestor: string, descendant: string, signal?: AbortSignal): Promise<boolean> {
    const out = await runCommand('git', ['merge-base', '--is-ancestor', ancestor, descendant], {
      cwd: this.dir,
      signal,
      okCodes: [0, 1],
    });
    return out.code === 0;
  }
}

/** Runs `ssh-keygen -Y verify` like git does (namespace git, -Overify-time at the committer time). */
export async function sshKeygenVerify(options: {
  allowedSigners: string;
  principal: string;
  signature: string;
  payload: Uint8Array;
  verifyTime?: number;
  dir: string;
}): Promise<boolean> {
  const signersPath = join(options.dir, `allowed-${Math.random().toString(36).slice(2)}`);
  const sigPath = join(options.dir, `sig-${Math.random().toString(36).slice(2)}`);
  await writeFile(signersPath, options.allowedSigners);
  await writeFile(sigPath, options.signature);
  const time = options.verifyTime === undefined ? [] : [`-Overify-time=${formatSshTime(options.verifyTime)}`];
  const result = await runCommand(
    'ssh-keygen',
    ['-Y', 'verify', '-n', 'git', '-f', signersPath, '-I', options.principal, '-s', sigPath, ...time],
    { input: options.payload, okCodes: [0, 255, 1] },
  );
  return result.code === 0;
}

function formatSshTime(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}

// ---------- in-process object construction (bench and synthetic signatures) ----------

/** Writes a loose object into `gitDir` and returns its SHA-1 oid (for fixtures that spawn nothing). */
export async function writeLooseObject(
  gitDir: string,
  type: 'commit' | 'tag' | 'tree' | 'blob',
  raw: Uint8Array,
): Promise<string> {
  const store = Buffer.concat([Buffer.from(`${type} ${raw.length}\0`), raw]);
  const oid = createHash('sha1').update(store).digest('hex');
  const dir = join(gitDir, 'objects', oid.slice(0, 2));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, oid.slice(2)), deflateSync(store));
  return oid;
}

function wireString(value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

export interface InProcessSshSigner {
  readonly publicKeyLine: string;
  /** Armored SSHSIG over `payload` (namespace `git`, sha512). Options build deliberately odd signatures. */
  sign(payload: Uint8Array, options?: { namespace?: string; skFlags?: number }): string;
}

/**
 * An ed25519 SSHSIG signer in node:crypto (same wire format as `ssh-keygen -Y sign`). With `application`
 * it emulates a FIDO `sk-ssh-ed25519@openssh.com` key (a plain ed25519 key signing the FIDO message).
 */
export function createInProcessSshSigner(application?: string): InProcessSshSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const keyType = application === undefined ? 'ssh-ed25519' : 'sk-ssh-ed25519@openssh.com';
  const blob = Buffer.concat([
    wireString(keyType),
    wireString(raw),
    ...(application === undefined ? [] : [wireString(application)]),
  ]);
  return {
    publicKeyLine: `${keyType} ${blob.toString('base64')} in-process`,
    sign(payload, options = {}) {
      const namespace = options.namespace ?? 'git';
      let signed: Buffer = Buffer.concat([
        Buffer.from('SSHSIG'),
        wireString(namespace),
        wireString(''),
        wireString('sha512'),
        wireString(createHash('sha512').update(payload).digest()),
      ]);
      const counter = Buffer.from([0, 0, 0, 7]);
      const flags = options.skFlags ?? 1;
      if (application !== undefined) {
        signed = Buffer.concat([
          createHash('sha256').update(application).digest(),
          Buffer.from([flags]),
          counter,
          createHash('sha256').update(signed).digest(),
        ]);
      }
      const signature = sign(null, signed, privateKey);
      const sigBlob = Buffer.concat([
        wireString(keyType),
        wireString(signature),
        ...(application === undefined ? [] : [Buffer.from([flags]), counter]),
      ]);
      const whole = Buffer.concat([
        Buffer.from('SSHSIG'),
        Buffer.from([0, 0, 0, 1]),
        wireString(blob),
        wireString(namespace),
        wireString(''),
        wireString('sha512'),
        wireString(sigBlob),
      ]).toString('base64');
      const lines = whole.match(/.{1,70}/g) ?? [];
      return `-----BEGIN SSH SIGNATURE-----\n${lines.join('\n')}\n-----END SSH SIGNATURE-----\n`;
    },
  };
}

/** A commit object with `signature` (armored, may be undefined) in a `gpgsig` header. */
export function buildCommitObject(options: {
  tree: string;
  parents: readonly string[];
  email: string;
  timestamp: number;
  message: string;
  signature?: string;
}): { payload: Buffer; withSignature(signature: string): Buffer } {
  const headers =
    `tree ${options.tree}\n` +
    options.parents.map((p) => `parent ${p}\n`).join('') +
    `author Bench <${options.email}> ${options.timestamp} +0000\n` +
    `committer Bench <${options.email}> ${options.timestamp} +0000\n`;
  const body = `\n${options.message}`;
  return {
    payload: Buffer.from(headers + body),
    withSignature(signature: string) {
      const indented = signature.replace(/\n$/, '').split('\n').join('\n ');
      return Buffer.from(`${headers}gpgsig ${indented}\n${body}`);
    },
  };
}
