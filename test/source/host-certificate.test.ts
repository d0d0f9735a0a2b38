// The host certificate decision against certificates made by the real ssh-keygen (-s -h -n -V):
// accepted only when signed by a @cert-authority for the host, valid now, naming the host, of the
// host type, and with neither the CA nor the key revoked; tampered bytes never verify.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decideHostCertificate } from '../../src/source/host-certificate.ts';
import { type KnownHostEntry, parseKnownHosts } from '../../src/source/known-hosts.ts';

const dir = mkdtempSync(join(tmpdir(), 'signet-hostcert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function makeKey(name: string, type: string): { path: string; line: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
  return { path, line: readFileSync(`${path}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ') };
}

interface Cert {
  readonly type: string;
  readonly blob: Buffer;
}
let serial = 0;
function certify(ca: { path: string }, host: { path: string }, args: readonly string[]): Cert {
  execFileSync('ssh-keygen', ['-q', '-s', ca.path, '-I', `test-${++serial}`, ...args, `${host.path}.pub`]);
  const [type = '', base64 = ''] = readFileSync(`${host.path}-cert.pub`, 'utf8').trim().split(' ');
  return { type, blob: Buffer.from(base64, 'base64') };
}
function entries(text: string): readonly KnownHostEntry[] {
  const parsed = parseKnownHosts(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.entries;
}

const ca = makeKey('ca', 'ed25519');
const rsaCa = makeKey('rsa-ca', 'rsa');
const otherCa = makeKey('other-ca', 'ecdsa');
const hostKey = makeKey('host', 'ecdsa');
const trusted = entries(`@cert-authority [git.example.com]:2222,*.example.org ${ca.line}\n`);
const now = new Date();
const decide = (list: readonly KnownHostEntry[], cert: Cert, host = 'git.example.com', port = 2222) =>
  decideHostCertificate(list, host, port, cert.blob, cert.type, now);

describe('decideHostCertificate', () => {
  it('accepts a host certificate signed by a @cert-authority for the host, valid now, naming it', () => {
    const cert = certify(ca, hostKey, ['-h', '-n', 'git.example.com,other', '-V', '-5m:+1h']);
    expect(cert.type).toBe('ecdsa-sha2-nistp256-cert-v01@openssh.com');
    expect(decide(trusted, cert)).toMatchObject({ ok: true, line: 1 });
    // A wildcard host pattern on the CA line; the principal is still the exact host name.
    const wildcard = certify(ca, hostKey, ['-h', '-n', 'a.example.org', '-V', 'always:forever']);
    expect(decide(trusted, wildcard, 'a.example.org', 22)).toMatchObject({ ok: true });
  });

  it('refuses an expired and a not-yet-valid certificate, naming the window', () => {
    const expired = decide(trusted, certify(ca, hostKey, ['-h', '-n', 'git.example.com', '-V', '-2d:-1d']));
    expect(expired).toMatchObject({
      ok: false,
      cause: 'cert-expired',
      keyFingerprint: execFileSync('ssh-keygen', ['-lf', `${hostKey.path}.pub`], { encoding: 'utf8' }).split(
        ' ',
      )[1],
    });
    expect(expired.ok ? '' : expired.detail).toMatch(/expired \(valid from \S+Z to \S+Z\)/);
    const future = decide(trusted, certify(ca, hostKey, ['-h', '-n', 'git.example.com', '-V', '+1d:+2d']));
    expect(future).toMatchObject({ ok: false, cause: 'cert-not-yet-valid' });
  });

  it('refuses a certificate whose principals do not name the host, or that has none', () => {
    const other = decide(trusted, certify(ca, hostKey, ['-h', '-n', 'evil.example.com', '-V', '-5m:+1h']));
    expect(other).toMatchObject({ ok: false, cause: 'cert-principal' });
    expect(other.ok ? '' : other.detail).toBe('the certificate names evil.example.com, not git.example.com');
    const none = decide(trusted, certify(ca, hostKey, ['-h', '-V', '-5m:+1h']));
    expect(none).toMatchObject({ ok: false, cause: 'cert-principal' });
  });

  it('refuses a CA that is not a @cert-authority for this host, and a revoked CA or key', () => {
    const cert = certify(ca, hostKey, ['-h', '-n', 'git.example.com', '-V', '-5m:+1h']);
    expect(decide(entries(`@cert-authority [git.example.com]:2222 ${otherCa.line}\n`), cert)).toMatchObject({
      ok: false,
      cause: 'cert-unknown-ca',
    });
    // The right CA, but listed for another host (port 22 is a different known_hosts name).
    expect(decide(trusted, cert, 'git.example.com', 22)).toMatchObject({
      ok: false,
      cause: 'cert-unknown-ca',
    });
    // A plain pin of the CA key is not a @cert-authority line.
    expect(decide(entries(`[git.example.com]:2222 ${ca.line}\n`), cert)).toMatchObject({
      ok: false,
      cause: 'cert-unknown-ca',
    });
    const revokedCa = entries(`@cert-authority [git.example.com]:2222 ${ca.line}\n@revoked * ${ca.line}\n`);
    expect(decide(revokedCa, cert)).toMatchObject({ ok: false, cause: 'cert-revoked-ca' });
    const revokedKey = entries(
      `@cert-authority [git.example.com]:2222 ${ca.line}\n@revoked * ${hostKey.line}\n`,
    );
    expect(decide(revokedKey, cert)).toMatchObject({ ok: false, cause: 'cert-revoked-key' });
  });

  it('refuses a user certificate', () => {
    const user = certify(ca, hostKey, ['-n', 'git.example.com', '-V', '-5m:+1h']);
    expect(decide(trusted, user)).toMatchObject({ ok: false, cause: 'cert-not-host' });
  });

  it('verifies the CA signature: any changed byte of the certificate body is refused', () => {
    const cert = certify(ca, hostKey, ['-h', '-n', 'git.example.com', '-V', '-5m:+1h']);
    // Flip one byte inside the key id (ssh-keygen -I), which sshpk still parses.
    const at = cert.blob.indexOf(Buffer.from(`test-${serial}`));
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(cert.blob);
    tampered[at] = (tampered[at] ?? 0) ^ 0x01;
    expect(decide(trusted, { type: cert.type, blob: tampered })).toMatchObject({
      ok: false,
      cause: 'cert-bad-signature',
    });
    // Truncated or garbage blobs fail closed.
    expect(decide(trusted, { type: cert.type, blob: cert.blob.subarray(0, 60) })).toMatchObject({
      ok: false,
      cause: 'cert-invalid',
    });
    expect(decide(trusted, { type: 'ssh-ed25519-cert-v01@openssh.com', blob: cert.blob })).toMatchObject({
      ok: false,
      cause: 'cert-invalid',
    });
  });

  it('accepts an RSA CA signing with SHA-2 and refuses its SHA-1 (ssh-rsa) signature', () => {
    const rsaTrusted = entries(`@cert-authority [git.example.com]:2222 ${rsaCa.line}\n`);
    const sha512 = certify(rsaCa, hostKey, [
      '-t',
      'rsa-sha2-512',
      '-h',
      '-n',
      'git.example.com',
      '-V',
      '-5m:+1h',
    ]);
    expect(decide(rsaTrusted, sha512)).toMatchObject({ ok: true });
    const sha1 = certify(rsaCa, hostKey, ['-t', 'ssh-rsa', '-h', '-n', 'git.example.com', '-V', '-5m:+1h']);
    expect(decide(rsaTrusted, sha1)).toMatchObject({ ok: false, cause: 'cert-bad-signature' });
  });
});
