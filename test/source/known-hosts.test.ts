import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decideHostKey,
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  hostKeyRefusal,
  type KnownHostEntry,
  parseKnownHosts,
  wildcardMatch,
} from '../../src/source/known-hosts.ts';

// Real keys, fingerprints and hashed lines from ssh-keygen, so the parser is checked against OpenSSH.
const dir = mkdtempSync(join(tmpdir(), 'signet-kh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Key {
  readonly line: string;
  readonly blob: Uint8Array;
  readonly fingerprint: string;
}
function makeKey(name: string, type: string, bits?: number): Key {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const fingerprint =
    execFileSync('ssh-keygen', ['-lf', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1] ?? '';
  return { line, blob: new Uint8Array(Buffer.from(line.split(' ')[1] ?? '', 'base64')), fingerprint };
}
function hashed(text: string): string {
  const path = join(dir, `kh-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, text);
  execFileSync('ssh-keygen', ['-H', '-f', path], { stdio: 'ignore' });
  return readFileSync(path, 'utf8');
}
function entries(text: string): readonly KnownHostEntry[] {
  const parsed = parseKnownHosts(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.entries;
}

const ed = makeKey('ed', 'ed25519');
const ec = makeKey('ec', 'ecdsa', 384);
const rsa = makeKey('rsa', 'rsa', 2048);
const other = makeKey('other', 'ed25519');

describe('known_hosts', () => {
  it('computes the SHA256 fingerprint ssh-keygen prints', () => {
    expect(fingerprintSha256(ed.blob)).toBe(ed.fingerprint);
    expect(fingerprintSha256(rsa.blob)).toBe(rsa.fingerprint);
  });

  it('accepts the pinned key of a plain host on port 22 and a [host]:port entry elsewhere', () => {
    const list = entries(`# pinned\n\ngit.example.com ${ed.line} a comment\n[127.0.0.1]:2222 ${ec.line}\n`);
    expect(decideHostKey(list, 'git.example.com', 22, ed.blob)).toEqual({
      ok: true,
      fingerprint: ed.fingerprint,
      line: 3,
    });
    expect(decideHostKey(list, '127.0.0.1', 2222, ec.blob).ok).toBe(true);
    // The port matters: the same host on another port is unknown.
    expect(decideHostKey(list, '127.0.0.1', 22, ec.blob)).toMatchObject({ ok: false, cause: 'unknown-host' });
    expect(decideHostKey(list, 'git.example.com', 22, other.blob)).toMatchObject({
      ok: false,
      cause: 'mismatch',
    });
  });

  it('matches hashed hosts written by ssh-keygen -H', () => {
    const list = entries(hashed(`[127.0.0.1]:2222 ${ed.line}\ngit.example.com ${rsa.line}\n`));
    expect(list.every((e) => e.hosts.kind === 'hashed')).toBe(true);
    expect(decideHostKey(list, '127.0.0.1', 2222, ed.blob).ok).toBe(true);
    expect(decideHostKey(list, 'git.example.com', 22, rsa.blob).ok).toBe(true);
    expect(decideHostKey(list, '127.0.0.2', 2222, ed.blob)).toMatchObject({
      ok: false,
      cause: 'unknown-host',
    });
  });

  it('supports wildcards and negation like match_hostname', () => {
    const list = entries(`*.example.com,!evil.example.com ${ed.line}\n`);
    expect(decideHostKey(list, 'git.example.com', 22, ed.blob).ok).toBe(true);
    expect(decideHostKey(list, 'GIT.Example.com', 22, ed.blob).ok).toBe(true);
    expect(decideHostKey(list, 'evil.example.com', 22, ed.blob).ok).toBe(false);
    expect(wildcardMatch('git?.example.com', 'git1.example.com')).toBe(true);
    expect(wildcardMatch('git?.example.com', 'git12.example.com')).toBe(false);
    expect(wildcardMatch('[127.0.0.1]:*', '[127.0.0.1]:2222')).toBe(true);
  });

  it('refuses a @revoked key for every host, even one pinned on another line', () => {
    const list = entries(`@revoked * ${ed.line}\ngit.example.com ${ed.line}\n`);
    const decision = decideHostKey(list, 'git.example.com', 22, ed.blob);
    expect(decision).toMatchObject({ ok: false, cause: 'revoked' });
  });

  it('never lets a @cert-authority line vouch for a plain key', () => {
    const list = entries(`@cert-authority *.example.com ${ed.line}\n`);
    expect(decideHostKey(list, 'git.example.com', 22, ed.blob)).toMatchObject({
      ok: false,
      cause: 'ca-only',
    });
    // A host with a CA line asks for certificates first (when ssh2 negotiates them), then any plain
    // key, so a server without a certificate presents a key the refusal can name.
    expect(hostKeyAlgorithmsFor(list, 'git.example.com', 22, true)).toEqual([
      'ssh-ed25519-cert-v01@openssh.com',
      'ecdsa-sha2-nistp256-cert-v01@openssh.com',
      'ecdsa-sha2-nistp384-cert-v01@openssh.com',
      'ecdsa-sha2-nistp521-cert-v01@openssh.com',
      'rsa-sha2-512-cert-v01@openssh.com',
      'rsa-sha2-256-cert-v01@openssh.com',
      'ssh-ed25519',
      'ecdsa-sha2-nistp256',
      'ecdsa-sha2-nistp384',
      'ecdsa-sha2-nistp521',
      'rsa-sha2-512',
      'rsa-sha2-256',
    ]);
    // With a plain pin too, the plain part is only the pinned type; without certificate support
    // no certificate algorithm is named.
    const both = entries(`@cert-authority *.example.com ${ed.line}\ngit.example.com ${ec.line}\n`);
    expect(hostKeyAlgorithmsFor(both, 'git.example.com', 22, false)).toEqual(['ecdsa-sha2-nistp384']);
    expect(hostKeyAlgorithmsFor(list, 'other.org', 22, true)).toEqual([]);
  });

  it('offers only the pinned key types, RSA as rsa-sha2-512/256 (never SHA-1 ssh-rsa)', () => {
    const list = entries(`h ${rsa.line}\nh ${ec.line}\nother ${ed.line}\n`);
    expect(hostKeyAlgorithmsFor(list, 'h', 22)).toEqual([
      'ecdsa-sha2-nistp384',
      'rsa-sha2-512',
      'rsa-sha2-256',
    ]);
  });

  it('refuses a malformed file as a whole, naming the line', () => {
    const refuse = (text: string) => {
      const parsed = parseKnownHosts(text);
      return parsed.ok ? undefined : parsed.reason;
    };
    expect(refuse('')).toBe('no host key lines');
    expect(refuse('# only a comment\n')).toBe('no host key lines');
    expect(refuse(`h ${ed.line}\nh ssh-ed25519\n`)).toContain('line 2');
    expect(refuse(`@marker h ${ed.line}`)).toContain('unknown marker');
    expect(refuse(`h ssh-dss ${ed.line.split(' ')[1]}`)).toContain('key type ssh-dss');
    expect(refuse(`h ssh-rsa ${ed.line.split(' ')[1]}`)).toContain('not a ssh-rsa key');
    expect(refuse('h ssh-ed25519 !!!notbase64')).toContain('base64');
    expect(refuse(`|1|abc|def ${ed.line}`)).toContain('host field');
    expect(refuse(`h,,g ${ed.line}`)).toContain('host field');
  });

  it('names the host, the offered fingerprint and the Secret key in refusals', () => {
    const list = entries(`git.example.com ${ed.line}\n`);
    const decision = decideHostKey(list, 'git.example.com', 2222, other.blob);
    if (decision.ok) throw new Error('accepted');
    const message = hostKeyRefusal(decision, 'git.example.com', 2222, 'ssh-ed25519');
    expect(message).toContain('[git.example.com]:2222');
    expect(message).toContain(other.fingerprint);
    expect(message).toContain('known_hosts key of spec.secretRef');
  });
});
