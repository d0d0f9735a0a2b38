// A real local Kubernetes control plane for e2e tests and `make cluster-up`:
// etcd + kube-apiserver + kube-controller-manager built from Go modules by
// hack/controlplane/build.sh, started envtest-style on loopback with a test CA,
// a client-certificate admin (O=system:masters) and RBAC. Processes are detached
// and tracked by pid in a state directory, so a plane can outlive the process that
// started it (cluster-cli `up`) and be reused or stopped later by pid.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';

export const repoRoot: string = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** State directory used by `make cluster-up` / `make cluster-down`. */
export const defaultStateDir: string = join(repoRoot, '.signet', 'cluster');

export type ComponentName = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';
const stopOrder: readonly ComponentName[] = ['kube-controller-manager', 'kube-apiserver', 'etcd'];

/** Controllers kube-controller-manager runs (names as accepted by v1.36 `--controllers`). */
export const controllerNames: readonly string[] = [
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
];

export type ControlPlaneErrorCode =
  | 'BUILD_FAILED'
  | 'OPENSSL_FAILED'
  | 'PROCESS_EXITED'
  | 'NOT_READY'
  | 'STOP_FAILED'
  | 'ABORTED';

export class ControlPlaneError extends Error {
  readonly code: ControlPlaneErrorCode;
  readonly context: Readonly<Record<string, string | number>>;
  constructor(code: ControlPlaneErrorCode, message: string, context: Record<string, string | number> = {}) {
    super(message);
    this.name = 'ControlPlaneError';
    this.code = code;
    this.context = context;
  }
}

export interface ControlPlaneOptions {
  /** Where pids, logs, pki, etcd data and the kubeconfig live. Default: `<repo>/.signet/cluster`. */
  stateDir?: string;
  /** Directory with etcd, kube-apiserver, kube-controller-manager. Default: env `SIGNET_K8S_BIN_DIR`, else the output of hack/controlplane/build.sh (builds on first use). */
  binDir?: string;
  /** Reuse a plane already running from `stateDir` (all pids alive and /readyz ok). Default true. */
  reuse?: boolean;
  /** Deadline for the whole plane to become ready. Default 90 s. */
  readyTimeoutMs?: number;
  /** Record this process as the plane's owner so `reapOrphanedPlanes` can stop it if the owner dies without tearing down. */
  ownerPid?: number;
  signal?: AbortSignal;
}

export interface AdminResponse {
  readonly status: number;
  readonly body: string;
}

export interface ControlPlane {
  readonly stateDir: string;
  readonly binDir: string;
  /** Admin kubeconfig (client-certificate data embedded, user `admin`, group `system:masters`). */
  readonly kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  readonly caPem: string;
  readonly caCertPath: string;
  readonly adminCertPath: string;
  readonly adminKeyPath: string;
  readonly etcdUrl: string;
  /** kube-apiserver audit log (JSON lines, level Metadata: user, userAgent, verb, requestURI, responseStatus). */
  readonly auditLogPath: string;
  readonly logDir: string;
  /** True when an already running plane was adopted instead of started. */
  readonly reused: boolean;
  pidOf(component: ComponentName): number | undefined;
  isReady(signal?: AbortSignal): Promise<boolean>;
  waitForReady(timeoutMs?: number, signal?: AbortSignal): Promise<void>;
  /** GET a path on the apiserver as admin, e.g. `/metrics`. */
  adminGet(path: string, signal?: AbortSignal): Promise<AdminResponse>;
  /** Stops every process by pid (SIGTERM, SIGKILL after `graceMs`) and removes the state directory. */
  stop(): Promise<void>;
  stopApiServer(options?: StopOptions): Promise<void>;
  /** Starts kube-apiserver on the same port; waits for /readyz unless `waitReady: false`. */
  startApiServer(options?: StartOptions): Promise<void>;
  restartApiServer(options?: StopOptions & StartOptions): Promise<void>;
  stopEtcd(options?: StopOptions): Promise<void>;
  /** Starts etcd on the same port and data dir; waits for its /health. */
  startEtcd(options?: StartOptions): Promise<void>;
  stopControllerManager(options?: StopOptions): Promise<void>;
  startControllerManager(options?: StartOptions): Promise<void>;
}

export interface StopOptions {
  /** SIGKILL immediately instead of SIGTERM first. */
  force?: boolean;
  /** How long to wait after SIGTERM before SIGKILL. Default 3 s (kube-apiserver with open watches and etcd with
   * open gRPC streams linger ~10 s after SIGTERM; SIGKILL loses no data: writes are in the page cache). */
  graceMs?: number;
}

export interface StartOptions {
  waitReady?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface PlaneState {
  readonly version: 1;
  readonly binDir: string;
  readonly etcdPort: number;
  readonly etcdPeerPort: number;
  readonly apiPort: number;
  readonly ownerPid?: number;
  pids: Partial<Record<ComponentName, number>>;
}

const stateFileName = 'state.json';

// ---------- small process / IO helpers ----------

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ControlPlaneError('ABORTED', 'control-plane operation aborted');
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveDelay, rejectDelay) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveDelay();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      rejectDelay(new ControlPlaneError('ABORTED', 'control-plane operation aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function run(
  file: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs: number; signal?: AbortSignal; code: ControlPlaneErrorCode },
): Promise<string> {
  return new Promise((resolveRun, rejectRun) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd,
        timeout: options.timeoutMs,
        signal: options.signal,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error) {
          rejectRun(
            new ControlPlaneError(options.code, `${file} ${args[0] ?? ''} failed: ${error.message}`, {
              stderr: stderr.slice(-2000),
            }),
          );
          return;
        }
        resolveRun(stdout);
      },
    );
  });
}

/** Alive and not a zombie. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** True when `pid` runs the binary `binPath` (guards against pid reuse before signalling). */
function runsBinary(pid: number, binPath: string): boolean {
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    return argv0 === binPath && isAlive(pid);
  } catch {
    return false;
  }
}

async function stopPid(pid: number, binPath: string, options: StopOptions = {}): Promise<void> {
  if (!runsBinary(pid, binPath)) return;
  const graceMs = options.force ? 0 : (options.graceMs ?? 3_000);
  try {
    process.kill(pid, options.force ? 'SIGKILL' : 'SIGTERM');
  } catch {
    return;
  }
  const termDeadline = Date.now() + graceMs;
  while (Date.now() < termDeadline && isAlive(pid)) await delay(50);
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
  }
  const killDeadline = Date.now() + 5_000;
  while (Date.now() < killDeadline && isAlive(pid)) await delay(50);
  if (isAlive(pid)) {
    throw new ControlPlaneError('STOP_FAILED', `process ${pid} (${binPath}) survived SIGKILL`, { pid });
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const server = createServer();
    server.unref();
    server.on('error', rejectPort);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function tailOf(path: string, chars = 3000): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-chars);
  } catch {
    return '';
  }
}

// ---------- binaries ----------

export async function resolveBinDir(signal?: AbortSignal): Promise<string> {
  const fromEnv = process.env.SIGNET_K8S_BIN_DIR;
  if (fromEnv) return fromEnv;
  // Prints the bin directory; builds (minutes, first time only) when binaries are missing.
  const stdout = await run(join(repoRoot, 'hack', 'controlplane', 'build.sh'), [], {
    cwd: repoRoot,
    timeoutMs: 60 * 60_000,
    code: 'BUILD_FAILED',
    ...(signal ? { signal } : {}),
  });
  const lines = stdout.trim().split('\n');
  const binDir = lines[lines.length - 1]?.trim();
  if (!binDir)
    throw new ControlPlaneError('BUILD_FAILED', 'hack/controlplane/build.sh printed no bin directory');
  return binDir;
}

// ---------- PKI ----------

interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly saKey: string;
  readonly saPub: string;
}

function pkiPaths(stateDir: string): Pki {
  const dir = join(stateDir, 'pki');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'apiserver.crt'),
    serverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

async function generatePki(stateDir: string, signal?: AbortSignal): Promise<Pki> {
  const pki = pkiPaths(stateDir);
  await mkdir(pki.dir, { recursive: true, mode: 0o700 });
  const openssl = (args: readonly string[]): Promise<string> =>
    run('openssl', args, {
      cwd: pki.dir,
      timeoutMs: 30_000,
      code: 'OPENSSL_FAILED',
      ...(signal ? { signal } : {}),
    });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caConfig = join(pki.dir, 'ca.cnf');
  await writeFile(
    caConfig,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = v3_ca',
      'prompt = no',
      '[dn]',
      'CN = signet-test-ca',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-config',
    caConfig,
    '-days',
    '30',
    '-keyout',
    pki.caKey,
    '-out',
    pki.caCert,
  ]);

  const sign = async (name: string, subject: string, extensions: readonly string[]): Promise<void> => {
    const csr = join(pki.dir, `${name}.csr`);
    const ext = join(pki.dir, `${name}.ext`);
    await writeFile(ext, `${extensions.join('\n')}\n`);
    await openssl([
      'req',
      '-new',
      ...ec,
      '-subj',
      subject,
      '-keyout',
      join(pki.dir, `${name}.key`),
      '-out',
      csr,
    ]);
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      pki.caCert,
      '-CAkey',
      pki.caKey,
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      ext,
      '-out',
      join(pki.dir, `${name}.crt`),
    ]);
  };
  await sign('apiserver', '/CN=kube-apiserver', [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:kubernetes.default.svc',
  ]);
  await sign('admin', '/O=system:masters/CN=admin', [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = clientAuth',
  ]);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', pki.saKey]);
  await openssl(['pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  return pki;
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (path: string): string => readFileSync(path).toString('base64');
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'signet', cluster: { server, 'certificate-authority-data': b64(pki.caCert) } }],
    users: [
      {
        name: 'admin',
        user: { 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) },
      },
    ],
    contexts: [{ name: 'signet', context: { cluster: 'signet', user: 'admin' } }],
    'current-context': 'signet',
  });
}

const auditPolicyYaml = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]
  - level: Metadata
`;

// ---------- HTTP probes ----------

function probe(
  url: string,
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AdminResponse> {
  return new Promise((resolveProbe, rejectProbe) => {
    const options = {
      method: 'GET',
      timeout: timeoutMs,
      ...(signal ? { signal } : {}),
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
    };
    const req = (tls ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolveProbe({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', rejectProbe);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', rejectProbe);
    req.end();
  });
}

// ---------- the plane ----------

class LocalControlPlane implements ControlPlane {
  readonly stateDir: string;
  readonly binDir: string;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly caPem: string;
  readonly caCertPath: string;
  readonly adminCertPath: string;
  readonly adminKeyPath: string;
  readonly etcdUrl: string;
  readonly auditLogPath: string;
  readonly logDir: string;
  readonly reused: boolean;
  readonly #state: PlaneState;
  readonly #pki: Pki;
  readonly #tls: { ca: Buffer; cert: Buffer; key: Buffer };

  constructor(stateDir: string, state: PlaneState, reused: boolean) {
    this.stateDir = stateDir;
    this.binDir = state.binDir;
    this.#state = state;
    this.#pki = pkiPaths(stateDir);
    this.kubeconfigPath = join(stateDir, 'kubeconfig');
    this.server = `https://127.0.0.1:${state.apiPort}`;
    this.caCertPath = this.#pki.caCert;
    this.adminCertPath = this.#pki.adminCert;
    this.adminKeyPath = this.#pki.adminKey;
    this.caPem = readFileSync(this.#pki.caCert, 'utf8');
    this.#tls = {
      ca: readFileSync(this.#pki.caCert),
      cert: readFileSync(this.#pki.adminCert),
      key: readFileSync(this.#pki.adminKey),
    };
    this.etcdUrl = `http://127.0.0.1:${state.etcdPort}`;
    this.logDir = join(stateDir, 'logs');
    this.auditLogPath = join(this.logDir, 'audit.log');
    this.reused = reused;
  }

  pidOf(component: ComponentName): number | undefined {
    return this.#state.pids[component];
  }

  #bin(component: ComponentName): string {
    return join(this.binDir, component);
  }

  #args(component: ComponentName): string[] {
    const pki = this.#pki;
    const s = this.#state;
    switch (component) {
      case 'etcd':
        return [
          '--name=signet',
          `--data-dir=${join(this.stateDir, 'etcd-data')}`,
          `--listen-client-urls=${this.etcdUrl}`,
          `--advertise-client-urls=${this.etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${s.etcdPeerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${s.etcdPeerPort}`,
          `--initial-cluster=signet=http://127.0.0.1:${s.etcdPeerPort}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ];
      case 'kube-apiserver':
        return [
          `--etcd-servers=${this.etcdUrl}`,
          `--cert-dir=${pki.dir}`,
          `--tls-cert-file=${pki.serverCert}`,
          `--tls-private-key-file=${pki.serverKey}`,
          `--client-ca-file=${pki.caCert}`,
          `--secure-port=${s.apiPort}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          '--endpoint-reconciler-type=none',
          '--service-cluster-ip-range=10.0.0.0/24',
          `--service-account-issuer=https://127.0.0.1:${s.apiPort}`,
          `--service-account-key-file=${pki.saPub}`,
          `--service-account-signing-key-file=${pki.saKey}`,
          '--authorization-mode=RBAC',
          '--allow-privileged=true',
          '--profiling=false',
          `--audit-policy-file=${join(this.stateDir, 'audit-policy.yaml')}`,
          `--audit-log-path=${this.auditLogPath}`,
          '--audit-log-maxbackup=1',
          '--audit-log-maxsize=200',
        ];
      case 'kube-controller-manager':
        return [
          `--kubeconfig=${this.kubeconfigPath}`,
          '--leader-elect=false',
          `--controllers=${controllerNames.join(',')}`,
          `--service-account-private-key-file=${pki.saKey}`,
          `--root-ca-file=${pki.caCert}`,
          '--use-service-account-credentials=false',
          '--secure-port=0',
        ];
    }
  }

  async #persist(): Promise<void> {
    await writeFile(join(this.stateDir, stateFileName), `${JSON.stringify(this.#state, null, 2)}\n`);
  }

  async #spawn(component: ComponentName): Promise<void> {
    const existing = this.#state.pids[component];
    if (existing !== undefined && runsBinary(existing, this.#bin(component))) return;
    await mkdir(this.logDir, { recursive: true });
    const logPath = join(this.logDir, `${component}.log`);
    const logFd = openSync(logPath, 'a');
    try {
      const child = spawn(this.#bin(component), this.#args(component), {
        cwd: this.stateDir,
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      await new Promise<void>((resolveSpawn, rejectSpawn) => {
        child.once('spawn', resolveSpawn);
        child.once('error', (error) =>
          rejectSpawn(
            new ControlPlaneError('PROCESS_EXITED', `cannot start ${component}: ${error.message}`, {
              binary: this.#bin(component),
            }),
          ),
        );
      });
      child.unref();
      if (child.pid === undefined) throw new ControlPlaneError('PROCESS_EXITED', `${component} has no pid`);
      this.#state.pids[component] = child.pid;
    } finally {
      closeSync(logFd);
    }
    await this.#persist();
  }

  #assertRunning(component: ComponentName): void {
    const pid = this.#state.pids[component];
    if (pid === undefined || !isAlive(pid)) {
      const logPath = join(this.logDir, `${component}.log`);
      throw new ControlPlaneError(
        'PROCESS_EXITED',
        `${component} exited; see ${logPath}:\n${tailOf(logPath, 1500)}`,
        {
          logPath,
          logTail: tailOf(logPath),
        },
      );
    }
  }

  async #waitUntil(
    component: ComponentName,
    check: () => Promise<boolean>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      throwIfAborted(signal);
      this.#assertRunning(component);
      if (await check()) return;
      await delay(200, signal);
    }
    const logPath = join(this.logDir, `${component}.log`);
    throw new ControlPlaneError(
      'NOT_READY',
      `${component} not ready within ${timeoutMs} ms; see ${logPath}:\n${tailOf(logPath, 1500)}`,
      {
        logPath,
        logTail: tailOf(logPath),
      },
    );
  }

  async etcdHealthy(signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await probe(`${this.etcdUrl}/health`, undefined, 2_000, signal);
      return res.status === 200 && /"health":\s*"true"/.test(res.body);
    } catch {
      return false;
    }
  }

  async isReady(signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await probe(`${this.server}/readyz`, this.#tls, 3_000, signal);
      return res.status === 200 && res.body.trim() === 'ok';
    } catch {
      return false;
    }
  }

  async waitForReady(timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
    await this.#waitUntil('kube-apiserver', () => this.isReady(signal), timeoutMs, signal);
  }

  adminGet(path: string, signal?: AbortSignal): Promise<AdminResponse> {
    return probe(`${this.server}${path}`, this.#tls, 30_000, signal);
  }

  async startEtcd(options: StartOptions = {}): Promise<void> {
    await this.#spawn('etcd');
    if (options.waitReady === false) return;
    await this.#waitUntil(
      'etcd',
      () => this.etcdHealthy(options.signal),
      options.timeoutMs ?? 30_000,
      options.signal,
    );
  }

  async startApiServer(options: StartOptions = {}): Promise<void> {
    // A restart right after a SIGKILL can lose the race for the secure port (the old socket is
    // still being torn down) and exit at once; try again a few times, keeping the log tail.
    for (let attempt = 1; ; attempt++) {
      await this.#spawn('kube-apiserver');
      if (options.waitReady === false) return;
      try {
        await this.waitForReady(options.timeoutMs ?? 90_000, options.signal);
        return;
      } catch (error) {
        if (!(error instanceof ControlPlaneError) || error.code !== 'PROCESS_EXITED' || attempt >= 3)
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 1_000 * attempt));
      }
    }
  }

  async startControllerManager(options: StartOptions = {}): Promise<void> {
    await this.#spawn('kube-controller-manager');
    if (options.waitReady === false) return;
    // kube-controller-manager serves nothing here (--secure-port=0): "ready" means it stayed up
    // and reached its informer sync, visible as the default ServiceAccount in kube-system.
    await this.#waitUntil(
      'kube-controller-manager',
      async () => {
        try {
          const res = await this.adminGet(
            '/api/v1/namespaces/kube-system/serviceaccounts/default',
            options.signal,
          );
          return res.status === 200;
        } catch {
          return false;
        }
      },
      options.timeoutMs ?? 60_000,
      options.signal,
    );
  }

  async #stopComponent(component: ComponentName, options: StopOptions = {}): Promise<void> {
    const pid = this.#state.pids[component];
    if (pid !== undefined) await stopPid(pid, this.#bin(component), options);
    delete this.#state.pids[component];
    await this.#persist();
  }

  stopApiServer(options?: StopOptions): Promise<void> {
    return this.#stopComponent('kube-apiserver', options);
  }

  async restartApiServer(options: StopOptions & StartOptions = {}): Promise<void> {
    await this.stopApiServer(options);
    await this.startApiServer(options);
  }

  stopEtcd(options?: StopOptions): Promise<void> {
    return this.#stopComponent('etcd', options);
  }

  stopControllerManager(options?: StopOptions): Promise<void> {
    return this.#stopComponent('kube-controller-manager', options);
  }

  async stop(): Promise<void> {
    await stopControlPlaneAt(this.stateDir);
  }
}

async function readState(stateDir: string): Promise<PlaneState | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(join(stateDir, stateFileName), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && parsed.version === 1) {
      return parsed as PlaneState;
    }
  } catch {
    // missing or unreadable: no plane
  }
  return undefined;
}

/**
 * Stops every process recorded in `stateDir` by pid (only if the pid still runs the recorded
 * binary) and removes the directory. Safe to call when nothing runs.
 */
export async function stopControlPlaneAt(
  stateDir: string,
  options: StopOptions & { keepState?: boolean } = {},
): Promise<void> {
  const state = await readState(stateDir);
  if (state) {
    for (const component of stopOrder) {
      const pid = state.pids[component];
      if (pid !== undefined) await stopPid(pid, join(state.binDir, component), options);
    }
  }
  if (!options.keepState) await rm(stateDir, { recursive: true, force: true });
}

/**
 * Stops planes under `parentDir` (one sub-directory each) whose recorded owner process is dead,
 * e.g. left behind by a test run that was killed before its teardown.
 */
export async function reapOrphanedPlanes(parentDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(parentDir);
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const entry of entries) {
    const dir = join(parentDir, entry);
    const state = await readState(dir);
    if (state?.ownerPid !== undefined && !isAlive(state.ownerPid)) {
      await stopControlPlaneAt(dir, { graceMs: 3_000 });
      reaped.push(dir);
    }
  }
  return reaped;
}

async function adoptRunning(stateDir: string, signal?: AbortSignal): Promise<ControlPlane | undefined> {
  const state = await readState(stateDir);
  if (!state) return undefined;
  const allRunning = stopOrder.every((component) => {
    const pid = state.pids[component];
    return pid !== undefined && runsBinary(pid, join(state.binDir, component));
  });
  if (!allRunning) return undefined;
  const plane = new LocalControlPlane(stateDir, state, true);
  return (await plane.isReady(signal)) ? plane : undefined;
}

/**
 * Starts (or, with `reuse`, adopts) a control plane. On failure everything started is stopped
 * (logs stay in `<stateDir>/logs`) before the error is rethrown.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const stateDir = resolve(options.stateDir ?? defaultStateDir);
  const signal = options.signal;
  if (options.reuse !== false) {
    const running = await adoptRunning(stateDir, signal);
    if (running) return running;
  }
  await stopControlPlaneAt(stateDir, { graceMs: 3_000 });
  const binDir = options.binDir ?? (await resolveBinDir(signal));
  await mkdir(stateDir, { recursive: true });
  const pki = await generatePki(stateDir, signal);
  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const state: PlaneState = {
    version: 1,
    binDir,
    etcdPort,
    etcdPeerPort,
    apiPort,
    ...(options.ownerPid !== undefined ? { ownerPid: options.ownerPid } : {}),
    pids: {},
  };
  await writeFile(join(stateDir, stateFileName), `${JSON.stringify(state, null, 2)}\n`);
  await writeFile(join(stateDir, 'audit-policy.yaml'), auditPolicyYaml);
  await writeFile(join(stateDir, 'kubeconfig'), kubeconfigYaml(`https://127.0.0.1:${apiPort}`, pki), {
    mode: 0o600,
  });
  const plane = new LocalControlPlane(stateDir, state, false);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 90_000);
  const remaining = (): number => Math.max(1_000, deadline - Date.now());
  try {
    await plane.startEtcd({ timeoutMs: remaining(), ...(signal ? { signal } : {}) });
    await plane.startApiServer({ timeoutMs: remaining(), ...(signal ? { signal } : {}) });
    await plane.startControllerManager({ timeoutMs: remaining(), ...(signal ? { signal } : {}) });
  } catch (error) {
    // Keep the logs for diagnosis; the next start clears the directory.
    await stopControlPlaneAt(stateDir, { graceMs: 3_000, keepState: true });
    throw error;
  }
  return plane;
}
