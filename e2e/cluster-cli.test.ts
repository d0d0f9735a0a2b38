// `make cluster-up` / `make cluster-down` as a user runs them: the Makefile's recipe
// (`node e2e/support/cluster-cli.ts up|down`) as a separate process, on its own plane in a separate
// state directory (SIGNET_CLUSTER_DIR), beside the run's shared plane. `up` prints
// `export KUBECONFIG=<absolute path>`, real curl with the admin client certificate gets `ok` from
// /readyz, a second `up` adopts the running processes (same pids), and `down` leaves no process of
// that plane and no state. The first `up` is a warm start (the binaries are cached by the run's
// global setup) and must be ready in under 30 s, as issue 2 and the README promise.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot, resolveBinDir, stopControlPlaneAt } from './support/controlplane.ts';
import { type ProcessResult, runProcess } from './support/run.ts';

const execFileAsync = promisify(execFile);
const stateDir = join(
  repoRoot,
  '.signet',
  'e2e-cluster-cli',
  `${process.pid}-${randomBytes(3).toString('hex')}`,
);
const components = ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const;
type Component = (typeof components)[number];

interface CliResult extends ProcessResult {
  readonly seconds: number;
}

/** `node e2e/support/cluster-cli.ts <command>` with SIGNET_CLUSTER_DIR=<stateDir>, timed. */
async function cli(command: 'up' | 'down', timeoutMs = 120_000): Promise<CliResult> {
  const startedAt = performance.now();
  const result = await runProcess(process.execPath, ['e2e/support/cluster-cli.ts', command], {
    cwd: repoRoot,
    env: { ...process.env, SIGNET_CLUSTER_DIR: stateDir },
    timeoutMs,
  });
  return { ...result, seconds: (performance.now() - startedAt) / 1000 };
}

/** The pids `up` reports on stderr. */
function reportedPids(stderr: string): Record<Component, number> {
  const match = /etcd pid (\d+), kube-apiserver pid (\d+), kube-controller-manager pid (\d+)/.exec(stderr);
  if (match === null) throw new Error(`cluster-cli up reported no pids:\n${stderr}`);
  return {
    etcd: Number(match[1]),
    'kube-apiserver': Number(match[2]),
    'kube-controller-manager': Number(match[3]),
  };
}

/** argv of a live (not zombie) process, or undefined. */
function liveArgv(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((arg) => arg !== '');
  } catch {
    return undefined;
  }
}

/** Live processes whose command line mentions the plane's state directory (any component, any pid). */
function processesOfPlane(): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = liveArgv(Number(entry));
    if (argv?.some((arg) => arg.includes(stateDir))) found.push({ pid: Number(entry), argv });
  }
  return found;
}

function exportedKubeconfig(stdout: string): string {
  const lines = stdout.trim().split('\n');
  const match = /^export KUBECONFIG=(.+)$/.exec(lines[lines.length - 1] ?? '');
  if (match?.[1] === undefined) throw new Error(`cluster-cli up printed no export line:\n${stdout}`);
  return match[1];
}

afterAll(async () => {
  // Whatever happened above, nothing of this plane outlives the file.
  await stopControlPlaneAt(stateDir, { graceMs: 3_000 });
});

describe('make cluster-up / make cluster-down', () => {
  let binDir = '';
  let firstPids: Record<Component, number> | undefined;
  let kubeconfig = '';
  let firstStderr = '';
  let server = '';

  it('are the Makefile recipes this file runs', async () => {
    const { stdout } = await execFileAsync('make', ['-s', '-n', 'cluster-up', 'cluster-down'], {
      cwd: repoRoot,
      timeout: 120_000,
    });
    const recipes = stdout.split('\n').filter((line) => line.includes('cluster-cli'));
    expect(recipes).toEqual(['node e2e/support/cluster-cli.ts up', 'node e2e/support/cluster-cli.ts down']);
  });

  it('up (warm): prints export KUBECONFIG=<absolute path> and is ready in under 30 s', async () => {
    binDir = await resolveBinDir(AbortSignal.timeout(60 * 60_000));
    const up = await cli('up');
    expect(up.code, up.stderr).toBe(0);
    kubeconfig = exportedKubeconfig(up.stdout);
    expect(kubeconfig).toBe(join(stateDir, 'kubeconfig'));
    expect(kubeconfig.startsWith('/')).toBe(true);
    expect(existsSync(kubeconfig)).toBe(true);
    expect(up.stderr).toMatch(/\[cluster\] started control plane at https:\/\/127\.0\.0\.1:\d+ in /);
    firstStderr = up.stderr;
    firstPids = reportedPids(up.stderr);
    for (const component of components) {
      expect(liveArgv(firstPids[component])?.[0], component).toBe(join(binDir, component));
    }
    // Stated in README.md ("a warm `make cluster-up` is ready in ...").
    console.info(`[cluster-cli.test] warm cluster-up: ${up.seconds.toFixed(1)} s`);
    expect(up.seconds).toBeLessThan(30);
  });

  it('kube-controller-manager runs exactly the controllers README.md lists', async () => {
    if (firstPids === undefined) throw new Error('up did not run');
    const argv = liveArgv(firstPids['kube-controller-manager']) ?? [];
    const running = argv.find((arg) => arg.startsWith('--controllers='));
    const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
    const documented = /`(--controllers=[^`]+)`/.exec(readme)?.[1];
    expect(documented).toBeDefined();
    expect(running).toBe(documented);
    // Every controller listed is also explained in the README (named in its own code span).
    for (const name of (running ?? '').slice('--controllers='.length).split(',')) {
      expect(readme.includes(`\`${name}\``), name).toBe(true);
    }
  });

  it('/readyz answers ok to real curl with the admin client certificate', async () => {
    const config = parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    server = config.clusters[0]?.cluster.server ?? '';
    expect(server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const pki = join(stateDir, 'pki');
    const curlArgs = [
      '--cacert',
      join(pki, 'ca.crt'),
      '--cert',
      join(pki, 'admin.crt'),
      '--key',
      join(pki, 'admin.key'),
      `${server}/readyz`,
    ];
    // The command `up` tells the user to run is exactly this one.
    expect(firstStderr).toContain(`[cluster] check: curl ${curlArgs.join(' ')}\n`);
    const { stdout } = await execFileAsync(
      'curl',
      ['--silent', '--show-error', '--max-time', '10', ...curlArgs],
      {
        timeout: 20_000,
      },
    );
    expect(stdout).toBe('ok');
    // The CA really is checked: without it curl refuses the server's certificate.
    await expect(
      execFileAsync('curl', ['--silent', '--show-error', '--max-time', '10', `${server}/readyz`], {
        timeout: 20_000,
      }),
    ).rejects.toMatchObject({ code: 60 });
  });

  it('up again reuses the running plane: same pids, same kubeconfig, fast', async () => {
    const again = await cli('up');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/\[cluster\] reusing running control plane at /);
    expect(reportedPids(again.stderr)).toEqual(firstPids);
    expect(exportedKubeconfig(again.stdout)).toBe(kubeconfig);
    console.info(`[cluster-cli.test] cluster-up reusing the plane: ${again.seconds.toFixed(1)} s`);
    expect(again.seconds).toBeLessThan(10);
  });

  it('down stops etcd, kube-apiserver and kube-controller-manager of that plane and removes its state', async () => {
    if (firstPids === undefined) throw new Error('up did not run');
    expect(
      processesOfPlane()
        .map((p) => p.pid)
        .sort(),
    ).toEqual(Object.values(firstPids).sort());
    const down = await cli('down');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toContain(`[cluster] stopped; removed ${stateDir}`);
    for (const component of components) {
      expect(liveArgv(firstPids[component]), `${component} pid ${firstPids[component]}`).toBeUndefined();
    }
    expect(processesOfPlane()).toEqual([]);
    expect(existsSync(stateDir)).toBe(false);
    // Stopped means stopped: nothing listens on the API server's port any more (curl: 7, could not connect).
    await expect(
      execFileAsync('curl', ['--silent', '--insecure', '--max-time', '5', `${server}/readyz`], {
        timeout: 20_000,
      }),
    ).rejects.toMatchObject({ code: 7 });
  });
});
