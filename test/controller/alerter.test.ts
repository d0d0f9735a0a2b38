import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseGitRepository } from '../../src/api/gitrepository.ts';
import { createAlerter } from '../../src/controller/alerter.ts';
import { createLogger } from '../../src/util/logger.ts';
import { rawGitRepository } from '../support/gitrepository.ts';

function repo(alerts: Record<string, unknown> | undefined) {
  return parseGitRepository(rawGitRepository(alerts === undefined ? {} : { alerts }));
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('alerter: the Slack Secret comes from the reader it is given', () => {
  let receiver: Server;
  let posts: string[];
  let address: string;

  beforeEach(async () => {
    posts = [];
    receiver = createServer((request, response) => {
      void body(request).then((text) => {
        posts.push(text);
        response.end('ok');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    address = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterEach(async () => {
    receiver.close();
    await once(receiver, 'close');
  });

  it('reads the Secret named by spec.alerts.slack in the GitRepository namespace, never for a GitRepository without alerts', async () => {
    const reads: string[] = [];
    const alerter = createAlerter({
      readSecret: async (namespace, name, signal) => {
        expect(signal.aborted).toBe(false);
        reads.push(`${namespace}/${name}`);
        return { address };
      },
      clusterName: 'test',
      registry: new Registry(),
      logger: createLogger({ level: 'silent' }),
      batchWindowMs: 0,
    });
    alerter.alert(repo(undefined), { kind: 'VerificationFailed', message: 'unsigned' });
    alerter.alert(repo({ slack: { secretRef: { name: 'slack' } } }), {
      kind: 'VerificationFailed',
      message: 'unsigned head',
    });
    const deadline = Date.now() + 10_000;
    while (posts.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    await alerter.close();
    expect(reads).toEqual(['team-a/slack']);
    expect(posts).toHaveLength(1);
    expect(posts[0]).toContain('unsigned head');
    expect(alerter.held).toBe(0);
  });

  it('an unreadable Secret drops the alert (logged), and nothing is posted', async () => {
    const alerter = createAlerter({
      readSecret: async () => {
        throw new Error('Secret team-a/slack not found');
      },
      clusterName: 'test',
      registry: new Registry(),
      logger: createLogger({ level: 'silent' }),
      batchWindowMs: 0,
    });
    alerter.alert(repo({ slack: { secretRef: { name: 'slack' } } }), {
      kind: 'VerificationFailed',
      message: 'x',
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await alerter.close();
    expect(posts).toEqual([]);
    expect(alerter.held).toBe(0);
  });
});
