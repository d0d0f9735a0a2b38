import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const configJs = createRequire(import.meta.url).resolve('@kubernetes/client-node/dist/config.js');
const hookModule = fileURLToPath(new URL('../../src/kube/kubeconfig-only.ts', import.meta.url));
const loadModule = fileURLToPath(new URL('../../src/kube/load.ts', import.meta.url));

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: { server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true }
users:
- name: u
  user: { token: abc }
contexts:
- name: x
  context: { cluster: c, user: u }
current-context: x
`;

describe("client-node's KubeConfig without the generated API (kube/kubeconfig-only.ts)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'signet-kubeconfig-only-'));
    await writeFile(join(dir, 'kubeconfig'), kubeconfig);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("dist/config.js imports from the barrel only the two names client-node-gen.ts exports, as the barrel's own objects", async () => {
    const source = await readFile(configJs, 'utf8');
    const barrelImports = [...source.matchAll(/import\s*\{([^}]*)\}\s*from\s*'\.\/gen\/index\.js'/g)];
    expect(barrelImports).toHaveLength(1);
    expect(source.split("'./gen/index.js'")).toHaveLength(2);
    const names = (barrelImports[0]?.[1] ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    const slim = await import('../../src/kube/client-node-gen.ts');
    const barrel = await import('@kubernetes/client-node/dist/gen/index.js');
    expect(Object.keys(slim).sort()).toEqual([...names].sort());
    expect(slim.createConfiguration).toBe(barrel.createConfiguration);
    expect(slim.ServerConfiguration).toBe(barrel.ServerConfiguration);
  });

  it('with the hook, a KubeClient is loaded from a kubeconfig and no generated API or model module is resolved', async () => {
    // Hooks run last-registered first: the recorder sees what the kubeconfig-only hook resolved.
    const script = `
      import { registerHooks } from 'node:module';
      const { registerKubeConfigOnly } = await import(${JSON.stringify(hookModule)});
      registerKubeConfigOnly();
      const resolved = [];
      registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); resolved.push(result.url); return result; } });
      const { loadKubeClient } = await import(${JSON.stringify(loadModule)});
      const client = await loadKubeClient({ kubeconfig: ${JSON.stringify(join(dir, 'kubeconfig'))}, userAgent: 'test/0' });
      await client.close();
      process.stdout.write(JSON.stringify({ resolved, client: typeof client }));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 60_000,
    });
    const { resolved, client } = JSON.parse(stdout) as { resolved: string[]; client: string };
    expect(client).toBe('object');
    expect(resolved.some((url) => url.endsWith('/src/kube/client-node-gen.ts'))).toBe(true);
    expect(resolved.some((url) => url.endsWith('/@kubernetes/client-node/dist/config.js'))).toBe(true);
    const generated = resolved.filter((url) =>
      /\/client-node\/dist\/gen\/(index|apis|models|types)\b/.test(url),
    );
    expect(generated).toEqual([]);
  });

  it('without the hook the same kubeconfig loads too (tests and benches importing src/ directly)', async () => {
    const { loadKubeClient } = await import('../../src/kube/load.ts');
    const client = await loadKubeClient({ kubeconfig: join(dir, 'kubeconfig'), userAgent: 'test/0' });
    expect(client).toBeDefined();
    await client.close();
  });
});
