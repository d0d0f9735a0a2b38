// `make demo`: a local control plane, a signed repository over HTTPS, the operator (the built CLI,
// as a separate process) reconciling it, a new signed commit rolled out, an unsigned commit
// rejected with the last good revision in force, a manifest deleted from Git and pruned, and an
// out-of-band edit reverted and alerted to a local Slack stand-in. Fails loudly if a step does
// not happen. KEEP=1 leaves everything running after a successful demo; a failed or interrupted
// demo always tears everything down (the control plane's logs are kept for diagnosis).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type ControlPlane,
  repoRoot,
  startControlPlane,
  stopControlPlaneAt,
} from '../e2e/support/controlplane.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadKubeClient } from '../src/kube/load.ts';
import type { KubeObject } from '../src/render/object.ts';
import { allowedSignersLine, createRepo, generateSshKey, makeTempDir } from '../test/support/git-fixtures.ts';
import { startGitServer } from '../test/support/git-server.ts';

const run = promisify(execFile);
const keep = process.env.KEEP === '1';
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`\n${bold('▶')} ${s}\n`);
const info = (s: string) => process.stdout.write(`  ${s}\n`);

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(`demo step failed: ${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stops what the demo started besides the control plane (operator, Git server, Slack stand-in, client). */
const cleanups: (() => Promise<void>)[] = [];
/** The control plane once started (or reused), until it is torn down. */
let runningPlane: ControlPlane | undefined;

async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
}

/**
 * After a failure or an interruption: stop everything, the control plane included (also with
 * KEEP=1, which keeps a successful demo only), keeping the plane's logs for diagnosis.
 */
async function tearDownAfterFailure(): Promise<void> {
  await runCleanups();
  const plane = runningPlane;
  runningPlane = undefined;
  const note = (s: string) => process.stderr.write(`  ${s}\n`);
  if (keep) note('KEEP=1 keeps a successful demo only: tearing everything down after the failure.');
  note('stopped the operator, the Git server and the Slack stand-in');
  if (plane === undefined) return;
  try {
    await stopControlPlaneAt(plane.stateDir, { keepState: true });
    note(
      `stopped the control plane (etcd, kube-apiserver, kube-controller-manager${plane.reused ? '; it was already running before the demo' : ''}); its logs stay in ${plane.logDir}`,
    );
  } catch (error) {
    note(
      `could not stop the control plane (${error instanceof Error ? error.message : String(error)}): stop it with \`make cluster-down\``,
    );
  }
}

async function main(): Promise<void> {
  say('Starting a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)');
  const plane = await startControlPlane({ signal: AbortSignal.timeout(60 * 60_000) });
  runningPlane = plane;
  info(
    `API server ${plane.server}${plane.reused ? ' (reused)' : ''}; export KUBECONFIG=${plane.kubeconfigPath}`,
  );
  const kubectl = async (...args: string[]) =>
    (
      await run(join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, ...args], {
        timeout: 60_000,
      })
    ).stdout;
  const admin: KubeClient = await loadKubeClient({
    kubeconfig: plane.kubeconfigPath,
    userAgent: 'signet-demo',
  });
  cleanups.push(() => admin.close());
  const ns = `demo-${Date.now().toString(36)}`;

  say('Installing the GitRepository CRD');
  info((await kubectl('apply', '--server-side', '-f', join(repoRoot, 'crds'))).trim());
  await kubectl('wait', '--for=condition=Established', 'crd/gitrepositories.signet.dev', '--timeout=30s');
  await kubectl('create', 'namespace', ns);

  say(
    'Creating a Git repository whose commits are signed with an SSH key, served over HTTPS by git http-backend',
  );
  const repo = await createRepo();
  const key = await generateSshKey(await makeTempDir('demo-keys'), 'ed25519', 'release@example.com');
  const git = await startGitServer();
  cleanups.push(() => git.close());
  const url = git.serve('platform', join(repo.dir, '.git'));
  const { mkdir: mk, writeFile, rm } = await import('node:fs/promises');
  const commit = async (files: Record<string, string | null>, signed: boolean, message: string) => {
    for (const [path, content] of Object.entries(files)) {
      const full = join(repo.dir, path);
      if (content === null) await rm(full);
      else {
        await mk(join(full, '..'), { recursive: true });
        await writeFile(full, content);
      }
      await repo.git(['add', '-A', path]);
    }
    return repo.commit({ files: {}, message, ...(signed ? { sign: { format: 'ssh' as const, key } } : {}) });
  };
  const cm = (name: string, data: Record<string, string>) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${Object.entries(data)
      .map(([k, v]) => `  ${k}: "${v}"`)
      .join('\n')}\n`;
  const c1 = await commit(
    {
      'clusters/demo/app.yaml': cm('app', { replicas: '2', color: 'blue' }),
      'clusters/demo/feature.yaml': cm('feature-flags', { beta: 'on' }),
    },
    true,
    'first release',
  );
  info(`${url}  commit ${c1.slice(0, 12)} signed by release@example.com (ed25519)`);

  say('Starting a local Slack stand-in (an HTTP receiver for incoming-webhook payloads)');
  const slackMessages: { text: string }[] = [];
  const slack = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      const parsed = JSON.parse(body) as { text: string };
      slackMessages.push(parsed);
      info(`Slack ◀ ${parsed.text.split('\n')[0]}`);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => slack.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise((r) => slack.close(() => r())));
  const slackUrl = `http://127.0.0.1:${(slack.address() as AddressInfo).port}/services/T000/B000/demo`;

  say('Starting the Signet operator (bin/signet run) against the local cluster');
  const stateDir = join(repoRoot, '.signet', 'demo');
  await mkdir(stateDir, { recursive: true });
  const logPath = join(stateDir, 'operator.log');
  const operator: ChildProcess = spawn(
    join(repoRoot, 'bin', 'signet'),
    [
      'run',
      '--kubeconfig',
      plane.kubeconfigPath,
      '--metrics-addr',
      '127.0.0.1:0',
      '--health-addr',
      '127.0.0.1:0',
      '--cluster-name',
      'demo',
      '--alert-batch-window',
      '300',
      '--cache-dir',
      join(stateDir, 'git'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = createWriteStream(logPath);
  operator.stdout?.pipe(log);
  operator.stderr?.pipe(log);
  const operatorExited = new Promise<void>((resolve) => {
    operator.once('exit', () => resolve());
    operator.once('error', () => resolve());
  });
  cleanups.push(async () => {
    if (operator.exitCode !== null || operator.signalCode !== null) return;
    operator.kill('SIGTERM');
    // A graceful stop takes up to its 20 s grace; then SIGKILL.
    const timer = setTimeout(() => operator.kill('SIGKILL'), 30_000);
    await operatorExited;
    clearTimeout(timer);
  });
  info(`operator pid ${operator.pid}, JSON logs in ${logPath}`);

  say('Applying a GitRepository that trusts only release@example.com, with Slack alerts');
  const manifest = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'release-signers', namespace: ns },
      data: { allowed_signers: `${allowedSignersLine('release@example.com', key)}\n` },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'git-ca', namespace: ns },
      stringData: { 'ca.crt': git.caPem },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'slack-webhook', namespace: ns },
      stringData: { address: slackUrl },
    },
    {
      apiVersion: 'signet.dev/v1alpha1',
      kind: 'GitRepository',
      metadata: { name: 'platform', namespace: ns },
      spec: {
        url,
        ref: { branch: 'main' },
        interval: '2s',
        path: './clusters/demo',
        secretRef: { name: 'git-ca' },
        verify: { mode: 'Range', signersRef: { kind: 'ConfigMap', name: 'release-signers' } },
        alerts: { slack: { secretRef: { name: 'slack-webhook' } } },
      },
    },
  ];
  for (const object of manifest)
    await admin.apply(object as unknown as KubeObject, { fieldManager: 'demo-user', force: true });
  const status = async () =>
    ((
      await admin.get({
        apiVersion: 'signet.dev/v1alpha1',
        kind: 'GitRepository',
        name: 'platform',
        namespace: ns,
      })
    )?.status ?? {}) as {
      lastAppliedRevision?: string;
      lastAttemptedRevision?: string;
      conditions?: { type: string; status: string; reason: string; message: string }[];
    };
  const conditionOf = async (type: string) => (await status()).conditions?.find((c) => c.type === type);
  const configMap = (name: string) => admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns });

  await waitFor(
    'the first revision verified and applied',
    async () => (await status()).lastAppliedRevision === `main@sha1:${c1}`,
  );
  info((await conditionOf('Ready'))?.message ?? '');
  info((await kubectl('get', 'gitrepositories', '-n', ns)).trim().replaceAll('\n', '\n  '));

  say('Pushing a new signed commit: it is verified and rolled out');
  const c2 = await commit(
    { 'clusters/demo/app.yaml': cm('app', { replicas: '3', color: 'blue' }) },
    true,
    'scale to 3',
  );
  await waitFor(
    'the signed commit rolled out',
    async () => ((await configMap('app'))?.data as Record<string, string> | undefined)?.replicas === '3',
  );
  info(`ConfigMap app now has replicas=3 (revision main@sha1:${c2.slice(0, 12)})`);

  say('Pushing an UNSIGNED commit (someone with push access, but not the release key)');
  const bad = await commit(
    { 'clusters/demo/app.yaml': cm('app', { replicas: '3', color: 'EVIL' }) },
    false,
    'totally harmless',
  );
  const rejected = await waitFor('the unsigned commit rejected', async () => {
    const c = await conditionOf('Verified');
    return c?.status === 'False' ? c : undefined;
  });
  info(`Verified=False (${rejected.reason}): ${rejected.message}`);
  const color = ((await configMap('app'))?.data as Record<string, string> | undefined)?.color;
  if (color !== 'blue')
    throw new Error(`demo step failed: the unsigned change reached the cluster (color=${color})`);
  info(
    `the cluster still runs main@sha1:${c2.slice(0, 12)}: color=${color}; lastAttemptedRevision=${(await status()).lastAttemptedRevision}`,
  );
  await waitFor('the VerificationFailed alert', async () =>
    slackMessages.some((m) => m.text.includes('VerificationFailed')),
  );
  info(`(bad commit was ${bad.slice(0, 12)})`);

  say(
    'Reverting it with a signed commit and deleting feature.yaml from Git: verified (Range), applied, pruned',
  );
  await repo.git(['revert', '--no-edit', '--no-commit', 'HEAD']);
  const c3 = await commit(
    { 'clusters/demo/feature.yaml': null },
    true,
    'revert the unsigned change; drop feature flags',
  );
  // Range mode also checks the unsigned commit still in history since the last applied revision:
  // it stays refused until a signer vouches for a history without unsigned commits.
  await waitFor(
    'Range mode refusing a range that contains the unsigned commit',
    async () => (await status()).lastAttemptedRevision === `main@sha1:${c3}`,
  );
  info(`Range mode: ${(await conditionOf('Verified'))?.message}`);
  say(
    'Rewriting history back to the last good commit plus a signed fix (force-push), as a release manager would',
  );
  await repo.git(['reset', '--hard', c2]);
  const c4 = await commit({ 'clusters/demo/feature.yaml': null }, true, 'drop feature flags');
  await waitFor(
    'the signed fix applied',
    async () => (await status()).lastAppliedRevision === `main@sha1:${c4}`,
  );
  await waitFor('feature-flags pruned', async () => (await configMap('feature-flags')) === undefined);
  info(`ConfigMap feature-flags left Git and was pruned; Ready: ${(await conditionOf('Ready'))?.message}`);

  say('Someone edits the live ConfigMap with kubectl (drift)');
  const editedAt = Date.now();
  await kubectl('patch', 'configmap', 'app', '-n', ns, '--type=merge', '-p', '{"data":{"color":"red"}}');
  await waitFor(
    'the drift reverted',
    async () => ((await configMap('app'))?.data as Record<string, string> | undefined)?.color === 'blue',
    15_000,
  );
  info(`reverted to color=blue ${Date.now() - editedAt} ms after the edit`);
  await waitFor(
    'the DriftReverted alert',
    async () => slackMessages.some((m) => m.text.includes('DriftReverted')),
    15_000,
  );

  say('Done: every step happened.');
  if (keep)
    info(
      `KEEP=1: the control plane, Git server and operator keep running. export KUBECONFIG=${plane.kubeconfigPath} (namespace ${ns})`,
    );
  const events = await kubectl(
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    'involvedObject.kind=GitRepository',
    '-o',
    'custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message',
  );
  info(
    events
      .trim()
      .split('\n')
      .slice(0, 8)
      .map((l) => l.slice(0, 160))
      .join('\n  '),
  );
}

let exitCode = 0;
let interrupted = false;
// Ctrl-C or SIGTERM while the demo runs: the control plane runs detached, so tear it down here.
const onSignal = (signalName: NodeJS.Signals) => {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\n✗ interrupted (${signalName}): tearing down\n`);
  void tearDownAfterFailure().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
try {
  await main();
} catch (error) {
  exitCode = 1;
  process.stderr.write(
    `\n✗ ${error instanceof Error ? error.message : String(error)}\n  operator logs: .signet/demo/operator.log\n`,
  );
}
if (interrupted) {
  // onSignal tears down and exits.
  await new Promise<never>(() => undefined);
}
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
if (exitCode !== 0) {
  await tearDownAfterFailure();
} else if (!keep) {
  await runCleanups();
  await runningPlane?.stop();
} else {
  process.stdout.write(
    '\n(KEEP=1: leaving everything running; Ctrl-C stops the operator, Git server and Slack stand-in.\n' +
      ' The control plane keeps running after that: stop it with `make cluster-down`.)\n',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await runCleanups();
  process.stdout.write(
    'stopped the operator, Git server and Slack stand-in; `make cluster-down` stops the control plane\n',
  );
}
process.exit(exitCode);
