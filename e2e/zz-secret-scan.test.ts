// The suite-wide secret scan: runs after every other e2e file (e2e/support/sequencer.ts) and scans
// every line each operator log sink of this run wrote (in-process loggers and `bin/signet` processes,
// e2e/support/secret-scan.ts) for every secret any file registered, in every form it could take.
// A hit fails this test, naming the log file and line and the secret's label, never its value.
// Run alone it has nothing to scan and says so; run it with the files it should cover, e.g.
// `npx vitest run --project e2e e2e/hostile.test.ts e2e/zz-secret-scan.test.ts`.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { secretPath } from '../test/notify/support.ts';
import { kubeconfigPath, loadKubeConfig } from './support/kube.ts';
import {
  formatHit,
  type RegisteredSecret,
  readRegisteredSecrets,
  scanLogSinks,
  secretForms,
} from './support/secret-scan.ts';

/** Secrets every file shares without registering them: the Slack stand-in's path and the admin credentials. */
function suiteSecrets(): RegisteredSecret[] {
  const source = 'zz-secret-scan.test.ts';
  const secrets: RegisteredSecret[] = [
    // Every Receiver of test/notify/support.ts serves the webhook under this path.
    { label: 'Slack webhook path of the Receiver', value: secretPath, source },
  ];
  for (const user of loadKubeConfig(kubeconfigPath()).users) {
    if (user.keyData !== undefined && user.keyData !== '')
      secrets.push({
        label: `admin kubeconfig client key (${user.name})`,
        value: Buffer.from(user.keyData, 'base64').toString('utf8'),
        source,
      });
    if (user.token !== undefined && user.token !== '')
      secrets.push({ label: `admin kubeconfig token (${user.name})`, value: user.token, source });
  }
  return secrets;
}

describe('suite-wide secret scan of operator log lines', () => {
  it('the scanner finds a secret in each form it can take, and nothing in clean lines (self-test)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'signet-scan-selftest-'));
    try {
      const token = `planted-${randomBytes(12).toString('hex')}`;
      const webhook = `https://hooks.example.com/services/T1/B2/${randomBytes(12).toString('hex')}`;
      const secrets: RegisteredSecret[] = [
        { label: 'planted token', value: token, source: 'self-test' },
        { label: 'planted webhook', value: webhook, source: 'self-test' },
      ];
      const basic = Buffer.from(`user:${token}`).toString('base64');
      const lines = [
        '{"level":30,"msg":"clean line","gitrepository":"ns/apps"}',
        `{"level":30,"msg":"raw","v":"${token}"}`,
        `{"level":30,"msg":"basic auth header","authorization":"Basic ${basic}"}`,
        `{"level":30,"msg":"url path","path":"${new URL(webhook).pathname}"}`,
        `{"level":30,"msg":"encoded","q":"${encodeURIComponent(webhook)}"}`,
        '{"level":30,"msg":"another clean line"}',
      ];
      await mkdir(join(dir, 'logs'));
      await writeFile(join(dir, 'logs', 'planted.log'), `${lines.join('\n')}\n`);
      const result = scanLogSinks(dir, secrets);
      expect(result).toMatchObject({ files: 1, lines: 6, secrets: 2 });
      const hitLines = [...new Set(result.hits.map((h) => h.line))].sort((a, b) => a - b);
      expect(hitLines).toEqual([2, 3, 4, 5]);
      expect(result.hits.find((h) => h.line === 3)?.form).toMatch(/^base64 \(offset \d\)$/);
      expect(formatHit(dir, result.hits[0] as (typeof result.hits)[number])).toMatch(
        /planted\.log:2: planted token \(raw; registered by self-test\)$/,
      );
      // A hit report never carries the secret itself.
      for (const hit of result.hits) expect(formatHit(dir, hit)).not.toContain(token);
      expect(secretForms(webhook).map((f) => f.form)).toEqual(
        expect.arrayContaining(['raw', 'URL path', 'URL last path segment', 'percent-encoded']),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('no line of any operator log sink of this run carries a registered secret', () => {
    const dir = inject('secretScanDir');
    const registered = readRegisteredSecrets(dir);
    const secrets = [...registered, ...suiteSecrets()];
    const result = scanLogSinks(dir, secrets);
    const registeredBy = [...new Set(registered.map((s) => s.source))].sort();
    console.log(
      `secret scan of ${dir}: ${result.files} log sinks, ${result.lines} lines (${result.bytes} bytes), ` +
        `${result.secrets} secrets (${registered.length} registered by ${registeredBy.join(', ') || 'no file'}) ` +
        `in ${result.forms} forms, ${result.hits.length} hits`,
    );
    if (result.files === 0) {
      throw new Error(
        `no operator log sink was written in this run (${dir}/logs is empty): this file scans the logs of the e2e files that ran before it; run it with them (npx vitest run --project e2e <files> e2e/zz-secret-scan.test.ts)`,
      );
    }
    expect(result.lines).toBeGreaterThan(0);
    expect(result.hits.map((hit) => formatHit(dir, hit))).toEqual([]);
  });
});
