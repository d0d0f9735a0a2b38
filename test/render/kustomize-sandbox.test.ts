/**
 * The native engine's Landlock sandbox, proved by calling the engine binary directly (no pre-build
 * policy check, no materialisation by Signet): every case is run twice, by the unconfined reference
 * `kustomize` binary (same module version) and by the confined engine, on the same directory.
 * Where the reference reads outside the tree, connects or execs, the engine must not: so each test
 * fails if the engine were not confined (the reference shows what an unconfined build does).
 */
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { nativeEngineEnv } from '../../src/render/kustomize-native-engine.ts';
import { type NativeCommand, runNative } from '../../src/render/native-runner.ts';
import type { WasmErrors } from '../../src/render/wasm-runner.ts';
import { ensureKustomize, type KustomizeBinaries, kustomizeBuildTimeoutMs } from '../support/kustomize.ts';

const errors: WasmErrors = {
  label: 'kustomize build',
  failed: 'KustomizeBuildFailed',
  timeout: 'KustomizeTimeout',
  tooLarge: 'KustomizeOutputTooLarge',
  unavailable: 'KustomizeEngineUnavailable',
};
const options = { timeoutMs: 60_000, maxOutputBytes: 4 * 1024 * 1024 };
const memory = 512 * 1024 * 1024;
const secret = 'signet-outside-secret-7f3a';
const passwdLine = fs.readFileSync('/etc/passwd', 'utf8').split('\n')[0] ?? 'root:x:0:0';

let binaries: KustomizeBinaries;
let scratch: string;
/** The tree the engine may read: scratch/tree. Beside it, scratch/outside, which it may not. */
let root: string;
/** A `git` that records its calls: a remote base makes an unconfined kustomize exec it. */
let recorderBin: string;
let recorderLog: string;

interface Outcome {
  readonly out: string;
  readonly error: string;
}

async function outcome(command: NativeCommand): Promise<Outcome> {
  try {
    return { out: new TextDecoder().decode(await runNative(command, options, errors)), error: '' };
  } catch (error) {
    if (error instanceof RenderError) return { out: '', error: error.message };
    throw error;
  }
}

/** The unconfined reference, with a PATH holding the recording `git` and a writable HOME/TMPDIR. */
const reference = (dir: string) =>
  outcome({
    binary: binaries.cli,
    args: ['build', join(root, dir)],
    root,
    env: { PATH: recorderBin, HOME: scratch, TMPDIR: scratch },
    program: 'kustomize',
  });

/** The confined engine, as Signet runs it, plus the same PATH and TMPDIR as the reference. */
const confined = (dir: string) =>
  outcome({
    binary: binaries.native,
    args: [join(root, dir)],
    root,
    env: { ...nativeEngineEnv(root, memory), PATH: recorderBin, HOME: scratch, TMPDIR: scratch },
    program: 'kustomize-engine',
  });

function write(path: string, content: string): void {
  fs.mkdirSync(join(path, '..'), { recursive: true });
  fs.writeFileSync(path, content);
}

const configMap = (name: string, value: string) =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  token: ${value}\n`;

beforeAll(async () => {
  binaries = await ensureKustomize();
  scratch = fs.mkdtempSync(join(tmpdir(), 'signet-sandbox-'));
  root = join(scratch, 'tree');
  recorderBin = join(scratch, 'bin');
  recorderLog = join(scratch, 'git.log');
  write(join(scratch, 'outside', 'kustomization.yaml'), 'resources: [cm.yaml]\n');
  write(join(scratch, 'outside', 'cm.yaml'), configMap('outside', secret));
  write(join(recorderBin, 'git'), `#!/bin/sh\necho "$@" >> ${recorderLog}\nexit 1\n`);
  fs.chmodSync(join(recorderBin, 'git'), 0o755);
  write(join(root, 'inside', 'kustomization.yaml'), 'resources: [cm.yaml]\n');
  write(join(root, 'inside', 'cm.yaml'), configMap('inside', 'ok'));
}, kustomizeBuildTimeoutMs);

afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the native engine confined by Landlock', () => {
  it('builds the tree it is given', async () => {
    const result = await confined('inside');
    expect(result.error).toBe('');
    expect(result.out).toContain('name: inside');
  });

  it('cannot read a kustomization outside the tree through ../.. (the reference can)', async () => {
    write(join(root, 'climb', 'kustomization.yaml'), 'resources: [../../outside]\n');
    expect((await reference('climb')).out).toContain(secret);
    const result = await confined('climb');
    expect(result.out).toBe('');
    expect(result.error).not.toContain(secret);
    expect(result.error).toMatch(/unable to find one of 'kustomization.yaml'/);
  });

  it('cannot read a kustomization outside the tree through a symlink (the reference can)', async () => {
    fs.mkdirSync(join(root, 'link'), { recursive: true });
    fs.symlinkSync(join(scratch, 'outside'), join(root, 'link', 'base'));
    write(join(root, 'link', 'kustomization.yaml'), 'resources: [base]\n');
    expect((await reference('link')).out).toContain(secret);
    const result = await confined('link');
    expect(result.out).toBe('');
    expect(result.error).not.toContain(secret);
  });

  it('cannot read /etc/passwd through ../.. or a symlink', async () => {
    write(
      join(root, 'passwd', 'kustomization.yaml'),
      'configMapGenerator:\n- name: pw\n  files: [../../../../../../../../etc/passwd]\n',
    );
    fs.mkdirSync(join(root, 'passwd-link'), { recursive: true });
    fs.symlinkSync('/etc/passwd', join(root, 'passwd-link', 'passwd'));
    write(
      join(root, 'passwd-link', 'kustomization.yaml'),
      'configMapGenerator:\n- name: pw\n  files: [passwd]\n',
    );
    fs.mkdirSync(join(root, 'passwd-kustomization'), { recursive: true });
    fs.symlinkSync('/etc/passwd', join(root, 'passwd-kustomization', 'kustomization.yaml'));
    for (const dir of ['passwd', 'passwd-link', 'passwd-kustomization']) {
      const result = await confined(dir);
      expect(result.out, dir).toBe('');
      expect(result.error, dir).not.toContain(passwdLine);
    }
  });

  it('cannot connect to a loopback HTTP server, by address or by name (the reference does)', async () => {
    let connections = 0;
    const server: Server = createServer((_request, response) => response.end(configMap('remote', secret)));
    server.on('connection', () => {
      connections++;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      write(join(root, 'remote', 'kustomization.yaml'), `resources:\n- http://127.0.0.1:${port}/cm.yaml\n`);
      write(
        join(root, 'remote-name', 'kustomization.yaml'),
        `resources:\n- http://localhost:${port}/cm.yaml\n`,
      );
      expect((await reference('remote')).out).toContain(secret);
      const before = connections;
      expect(before).toBeGreaterThan(0);
      const byAddress = await confined('remote');
      const byName = await confined('remote-name');
      expect(connections - before).toBe(0);
      expect(byAddress.out + byName.out).toBe('');
      expect(byAddress.error).toContain('connect: permission denied');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('cannot exec git for a remote base, nor create its clone directory (the reference does both)', async () => {
    write(
      join(root, 'git', 'kustomization.yaml'),
      'resources:\n- "https://127.0.0.1:9/org/repo//base?ref=main"\n',
    );
    fs.rmSync(recorderLog, { force: true });
    await reference('git');
    expect(fs.readFileSync(recorderLog, 'utf8')).toContain('init');
    fs.rmSync(recorderLog, { force: true });
    const entriesBefore = fs.readdirSync(scratch).sort();
    const result = await confined('git');
    expect(result.out).toBe('');
    expect(fs.existsSync(recorderLog)).toBe(false);
    expect(result.error).toMatch(/mkdir \S+: permission denied/);
    expect(fs.readdirSync(scratch).sort()).toEqual(entriesBefore);
  });

  it('refuses to run when it is not told which tree to confine itself to (exit 3, nothing read)', async () => {
    const result = await outcome({
      binary: binaries.native,
      args: [join(root, 'inside')],
      root,
      env: {},
      program: 'kustomize-engine',
    });
    expect(result.out).toBe('');
    expect(result.error).toContain('refusing to run unconfined');
  });
});
