import { describe, expect, it } from 'vitest';
import { displayGitUrl, parseGitUrl, quoteShellArgument } from '../../src/source/url.ts';

const ssh = (raw: string) => {
  const parsed = parseGitUrl(raw);
  if (!parsed.ok) throw new Error(`${raw}: ${parsed.reason}`);
  return parsed.url;
};
const refusal = (raw: string) => {
  const parsed = parseGitUrl(raw);
  return parsed.ok ? undefined : parsed.reason;
};

describe('parseGitUrl', () => {
  it('reads ssh:// URLs: user, host, port, the path as git sends it', () => {
    expect(ssh('ssh://git@github.com/org/repo.git')).toEqual({
      kind: 'ssh',
      user: 'git',
      host: 'github.com',
      port: 22,
      path: '/org/repo.git',
      display: 'ssh://git@github.com/org/repo.git',
    });
    expect(ssh('ssh://deploy@127.0.0.1:2222/srv/git/apps.git')).toMatchObject({
      user: 'deploy',
      host: '127.0.0.1',
      port: 2222,
      path: '/srv/git/apps.git',
      display: 'ssh://deploy@127.0.0.1:2222/srv/git/apps.git',
    });
    expect(ssh('ssh://[::1]:2222/apps.git')).toMatchObject({
      user: 'git',
      host: '::1',
      port: 2222,
      display: 'ssh://git@[::1]:2222/apps.git',
    });
    // git strips the slash before ~: ssh://host/~/x asks for ~/x.
    expect(ssh('ssh://git@host/~/apps.git')).toMatchObject({ path: '~/apps.git' });
    expect(ssh('ssh://git@host:22/apps.git').display).toBe('ssh://git@host/apps.git');
  });

  it('normalises the scp-like form to ssh:// for display, keeping the path git would send', () => {
    expect(ssh('git@github.com:org/repo.git')).toEqual({
      kind: 'ssh',
      user: 'git',
      host: 'github.com',
      port: 22,
      path: 'org/repo.git',
      display: 'ssh://git@github.com/org/repo.git',
    });
    expect(ssh('deploy@git.internal:/srv/git/apps.git')).toMatchObject({
      path: '/srv/git/apps.git',
      display: 'ssh://deploy@git.internal/srv/git/apps.git',
    });
    expect(ssh('git@[::1]:apps.git')).toMatchObject({ host: '::1', display: 'ssh://git@[::1]/apps.git' });
    expect(ssh('git.internal:apps.git')).toMatchObject({ user: 'git', host: 'git.internal' });
  });

  it('keeps https and http, without credentials in the display form', () => {
    expect(ssh('https://git.example.com/apps.git?x=1#y')).toEqual({
      kind: 'https',
      display: 'https://git.example.com/apps.git',
    });
    expect(ssh('http://127.0.0.1:8080/apps.git').kind).toBe('http');
  });

  it('refuses credentials, bad ports, shell characters and unknown schemes, naming the problem', () => {
    expect(refusal('https://user:pw@git.example.com/x.git')).toContain('credentials');
    expect(refusal('ssh://git:secret@host/x.git')).toContain('credentials');
    expect(refusal('ssh://git@host:0/x.git')).toContain('port');
    expect(refusal('ssh://git@host:65536/x.git')).toContain('port');
    expect(refusal('ssh://git@host:22a/x.git')).toContain('port');
    expect(refusal("ssh://git@host/x'; rm -rf /")).toContain('whitespace');
    expect(refusal("ssh://git@host/x';rm")).toContain('path');
    expect(refusal('git@host:$(reboot)')).toContain('path');
    expect(refusal('git@host:a`b`')).toContain('path');
    expect(refusal('ssh://git@host/')).toContain('path');
    expect(refusal('ssh://git@-oProxyCommand=x/a.git')).toContain('host');
    expect(refusal('ssh://git@ho..st/a.git')).toContain('host');
    expect(refusal('ssh://git@[zz]/a.git')).toContain('IPv6');
    expect(refusal('ftp://host/x.git')).toContain('not supported');
    expect(refusal('file:///srv/x.git')).toContain('not supported');
    expect(refusal('/srv/x.git')).toContain('not a valid URL');
    expect(refusal('ssh://host')).toContain('ssh://');
    expect(refusal('git@host:a\nb')).toContain('whitespace');
  });

  it('displayGitUrl never echoes what it refused', () => {
    expect(displayGitUrl('ssh://git:secret@host/x.git')).toBe('(invalid URL)');
    expect(displayGitUrl('git@host:org/x.git')).toBe('ssh://git@host/org/x.git');
    expect(displayGitUrl('https://user:pw@host/x.git?token=1')).toBe('https://host/x.git');
    expect(
      displayGitUrl(`https://signet-ssh.invalid/${encodeURIComponent('ssh://git@h/x.git')}/git-upload-pack`),
    ).toBe('ssh://git@h/x.git/git-upload-pack');
  });

  it('quotes like git sq_quote', () => {
    expect(quoteShellArgument('/srv/git/apps.git')).toBe("'/srv/git/apps.git'");
    expect(quoteShellArgument("a'b!c")).toBe("'a'\\''b'\\!'c'");
  });
});

describe('endOfFirstFlush (the end of an advertisement on an SSH channel)', () => {
  it('finds the flush after whole pkt-lines, waits for more, and refuses garbage', async () => {
    const { endOfFirstFlush } = await import('../../src/source/ssh-transport.ts');
    expect(endOfFirstFlush(Buffer.from('000eversion 2\n0000rest'))).toBe(18);
    expect(endOfFirstFlush(Buffer.from('000eversion 2\n00'))).toBe(-1);
    expect(endOfFirstFlush(Buffer.from('0008abcd'))).toBe(-1);
    expect(endOfFirstFlush(Buffer.from('0001000aabcdef0000'))).toBe(18);
    expect(() => endOfFirstFlush(Buffer.from('zzzz'))).toThrow('malformed pkt-line');
  });
});
