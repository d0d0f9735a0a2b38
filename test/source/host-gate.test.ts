import { describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import { gitHostOf, HostGate } from '../../src/source/host-gate.ts';

describe('HostGate', () => {
  it('names the host and port a remote talks to, default ports filled in', () => {
    expect(gitHostOf('https://Git.Example.com/org/repo.git')).toBe('git.example.com:443');
    expect(gitHostOf('https://git.example.com:8443/org/repo.git')).toBe('git.example.com:8443');
    expect(gitHostOf('http://git.example.com/repo')).toBe('git.example.com:80');
    expect(gitHostOf('git@Git.Example.com:org/repo.git')).toBe('git.example.com:22');
    expect(gitHostOf('ssh://git@host:2222/repo.git')).toBe('host:2222');
  });

  it('refuses a request over the per-host limit at once (HostBusy), other hosts unaffected, slots freed on failure', async () => {
    const gate = new HostGate(2);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = gate.run('a:443', () => held);
    const second = gate.run('a:443', () => held);
    const refused = await gate.run('a:443', async () => 'ran').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SourceError);
    expect((refused as SourceError).code).toBe('HostBusy');
    expect(await gate.run('b:443', async () => 'other host')).toBe('other host');
    release();
    await Promise.all([first, second]);
    await expect(gate.run('a:443', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await gate.run('a:443', async () => 'free again')).toBe('free again');
    expect(gate.hosts).toBe(0);
  });
});
