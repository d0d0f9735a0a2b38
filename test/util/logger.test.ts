import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/util/logger.ts';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines };
}

const privateKey =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';

describe('createLogger redaction', () => {
  it('censors fetch credentials wherever they are nested, SSH identity key included', () => {
    const { stream, lines } = capture();
    const logger = createLogger({ destination: stream });
    logger.info({ credentials: { identity: privateKey, password: 'hunter2' } }, 'top level');
    logger.info({ remote: { credentials: { identity: privateKey, username: 'git' } } }, 'nested');
    logger.info({ key: { privateKey, passphrase: 'open sesame' } }, 'key fields');
    const text = JSON.stringify(lines());
    expect(text).not.toContain('OPENSSH PRIVATE KEY');
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('open sesame');
    expect(lines()[0]).toMatchObject({ credentials: '[redacted]' });
    expect(lines()[1]).toMatchObject({ remote: { credentials: '[redacted]' } });
  });

  it('keeps the leader-election identity, which is not a secret and which operators need to read', () => {
    const { stream, lines } = capture();
    const logger = createLogger({ destination: stream });
    logger.info({ identity: 'signet-7f9c-abcde', lease: { identity: 'signet-7f9c-abcde' } }, 'leading');
    expect(lines()[0]).toMatchObject({
      identity: 'signet-7f9c-abcde',
      lease: { identity: 'signet-7f9c-abcde' },
    });
  });
});
