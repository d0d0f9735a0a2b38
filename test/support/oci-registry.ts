/**
 * A real OCI registry for tests and benchmarks: hack/registry (the in-memory registry of
 * github.com/google/go-containerregistry wrapped with TLS, token auth, a request log and faults; see
 * hack/registry/main.go), built from Go modules into ~/.cache/signet on first use and run on a
 * loopback port with a test CA of its own. Images are small synthetic ones pushed through the
 * registry API from Node.
 *
 * Stable API (the image tests build on it):
 *   startRegistry({ auth?, referrers?, tokenTtlSeconds? }) → OciRegistry
 *     host              '127.0.0.1:<port>' (image references are `${host}/<repository>:<tag>`)
 *     caPem, caPath     the test CA (PEM text and file)
 *     username, password, dockerConfigJson (a kubernetes.io/dockerconfigjson `.dockerconfigjson`)
 *     dockerConfigDir   a directory holding that config.json (DOCKER_CONFIG for cosign)
 *     dispatcher        an undici Agent that trusts the CA
 *     requests()        the request log since the last resetRequests(): {method, path, query, status}
 *     resetRequests()   starts counting afresh
 *     setFault(mode)    'none' | 'fail' (503 on every /v2/ and /token request) | 'hang'
 *     stop()            kills the registry and removes its files
 *   pushImage(registry, repository, tag, { layers?, mediaTypes? }) → PushedImage
 *   moveTag(registry, repository, tag, digest)   points an existing tag at another manifest
 *   uploadBlob, putManifest, getManifest          the raw API calls the helpers use
 * With `auth` (default true) every /v2/ request needs credentials: a bearer token from
 * `https://<host>/token` (Basic credentials; the 401 challenge names realm, service and scope) or
 * plain Basic. The helpers here use Basic, so they never touch /token.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, fetch } from 'undici';
import { createTestPki } from './git-server.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Time a test file's beforeAll allows for a first build of the registry (seconds when warm). */
export const registryBuildTimeoutMs = 600_000;
const requestTimeoutMs = 30_000;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface RegistryOptions {
  /** Require credentials (default true). */
  readonly auth?: boolean;
  /** Serve the OCI 1.1 referrers API (default true); false: clients use the sha256-<hex> tag. */
  readonly referrers?: boolean;
  /** Lifetime of the bearer tokens /token issues (default 300). */
  readonly tokenTtlSeconds?: number;
}

export interface RegistryRequest {
  readonly method: string;
  readonly path: string;
  /** The raw query string without `?` ('' when none). */
  readonly query: string;
  readonly status: number;
}

export type RegistryFault = 'none' | 'fail' | 'hang';

export interface OciRegistry {
  readonly host: string;
  readonly caPem: string;
  readonly caPath: string;
  readonly username: string;
  readonly password: string;
  readonly dockerConfigJson: string;
  readonly dockerConfigDir: string;
  readonly dispatcher: Agent;
  requests(): RegistryRequest[];
  resetRequests(): void;
  setFault(mode: RegistryFault): Promise<void>;
  stop(): Promise<void>;
}

let built: Promise<string> | undefined;

/** Builds (first use) or finds hack/registry's binary; resolves to its path. */
export function ensureRegistryBinary(): Promise<string> {
  built ??= (async () => {
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', 'PATH="$(hack/go.sh):$PATH" exec hack/registry/build.sh'],
      { cwd: repoRoot, timeout: registryBuildTimeoutMs, maxBuffer: 1024 * 1024 },
    );
    return join(stdout.trim().split('\n').pop() ?? '', 'bin', 'registry');
  })();
  return built;
}

function readAddress(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('registry did not announce its address in 30 s')),
      30_000,
    );
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const parsed = JSON.parse(line) as { address?: string };
      if (typeof parsed.address === 'string') resolve(parsed.address);
      else reject(new Error(`registry announced ${line}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited ${code} before listening`));
    });
  });
}

function parseLog(text: string): RegistryRequest[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const entry = JSON.parse(line) as Partial<RegistryRequest>;
      return {
        method: entry.method ?? '',
        path: entry.path ?? '',
        query: entry.query ?? '',
        status: entry.status ?? 0,
      };
    });
}

export async function startRegistry(options: RegistryOptions = {}): Promise<OciRegistry> {
  const binary = await ensureRegistryBinary();
  const pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), 'signet-registry-'));
  const logPath = join(dir, 'requests.jsonl');
  await writeFile(logPath, '');
  const username = 'signet';
  const password = randomBytes(12).toString('hex');
  const auth = options.auth ?? true;
  const args = [
    '-addr=127.0.0.1:0',
    `-tls-cert=${join(pki.dir, 'server.crt')}`,
    `-tls-key=${join(pki.dir, 'server.key')}`,
    `-log=${logPath}`,
    `-referrers=${options.referrers ?? true}`,
    `-token-ttl=${options.tokenTtlSeconds ?? 300}s`,
    ...(auth ? [`-username=${username}`, `-password=${password}`] : []),
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const host = await readAddress(child).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const basic = Buffer.from(`${username}:${password}`).toString('base64');
  const dockerConfigJson = JSON.stringify({ auths: { [host]: { username, password, auth: basic } } });
  const dockerConfigDir = join(dir, 'docker');
  await mkdir(dockerConfigDir);
  await writeFile(join(dockerConfigDir, 'config.json'), dockerConfigJson);
  const dispatcher = new Agent({ connect: { ca: pki.caPem } });
  let offset = 0;
  return {
    host,
    caPem: pki.caPem,
    caPath: pki.caPath,
    username,
    password,
    dockerConfigJson,
    dockerConfigDir,
    dispatcher,
    requests: () => parseLog(readFileSync(logPath).subarray(offset).toString('utf8')),
    resetRequests: () => {
      offset = statSync(logPath).size;
    },
    async setFault(mode) {
      const response = await fetch(`https://${host}/_control/fault`, {
        method: 'PUT',
        body: mode,
        dispatcher,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      if (response.status !== 204) throw new Error(`setFault(${mode}): HTTP ${response.status}`);
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await dispatcher.close();
      await rm(dir, { recursive: true, force: true });
      await rm(pki.dir, { recursive: true, force: true });
    },
  };
}

// --- the registry API, as the helpers use it -------------------------------------------------

export const sha256Digest = (bytes: Uint8Array): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function headers(registry: OciRegistry, extra: Record<string, string> = {}): Record<string, string> {
  const basic = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
  return { authorization: `Basic ${basic}`, ...extra };
}

async function call(
  registry: OciRegistry,
  method: string,
  url: string,
  init: { body?: Uint8Array; headers?: Record<string, string> } = {},
) {
  const absolute = url.startsWith('https://') ? url : `https://${registry.host}${url}`;
  return fetch(absolute, {
    method,
    headers: headers(registry, init.headers),
    ...(init.body === undefined ? {} : { body: init.body }),
    dispatcher: registry.dispatcher,
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
}

async function expectStatus(
  response: Awaited<ReturnType<typeof fetch>>,
  status: number,
  what: string,
): Promise<void> {
  if (response.status !== status) {
    throw new Error(`${what}: HTTP ${response.status} (expected ${status}): ${await response.text()}`);
  }
}

/** Uploads a blob (POST then PUT with the digest); resolves to its descriptor. */
export async function uploadBlob(
  registry: OciRegistry,
  repository: string,
  bytes: Uint8Array,
  mediaType: string,
): Promise<Descriptor> {
  const digest = sha256Digest(bytes);
  const started = await call(registry, 'POST', `/v2/${repository}/blobs/uploads/`);
  await expectStatus(started, 202, `start upload to ${repository}`);
  const location = new URL(started.headers.get('location') ?? '', `https://${registry.host}`);
  location.searchParams.set('digest', digest);
  const finished = await call(registry, 'PUT', location.toString(), {
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  await expectStatus(finished, 201, `upload ${digest} to ${repository}`);
  return { mediaType, digest, size: bytes.byteLength };
}

/** Puts a manifest under a tag or its digest; resolves to the manifest's digest. */
export async function putManifest(
  registry: OciRegistry,
  repository: string,
  reference: string,
  manifest: Uint8Array,
  mediaType: string,
): Promise<{ digest: string; subjectHeader: string | null }> {
  const response = await call(registry, 'PUT', `/v2/${repository}/manifests/${reference}`, {
    body: manifest,
    headers: { 'content-type': mediaType },
  });
  await expectStatus(response, 201, `put manifest ${repository}:${reference}`);
  return { digest: sha256Digest(manifest), subjectHeader: response.headers.get('oci-subject') };
}

/** Gets a manifest's bytes and media type by tag or digest. */
export async function getManifest(
  registry: OciRegistry,
  repository: string,
  reference: string,
): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
  const response = await call(registry, 'GET', `/v2/${repository}/manifests/${reference}`, {
    headers: { accept: [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST].join(', ') },
  });
  await expectStatus(response, 200, `get manifest ${repository}:${reference}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  return { bytes, mediaType: response.headers.get('content-type') ?? '', digest: sha256Digest(bytes) };
}

/** Gets a blob's bytes by digest. */
export async function getBlob(registry: OciRegistry, repository: string, digest: string): Promise<Buffer> {
  const response = await call(registry, 'GET', `/v2/${repository}/blobs/${digest}`);
  await expectStatus(response, 200, `get blob ${repository}@${digest}`);
  return Buffer.from(await response.arrayBuffer());
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** GET /v2/<repository>/referrers/<digest> (optionally filtered): the descriptors listed. */
export async function listReferrers(
  registry: OciRegistry,
  repository: string,
  digest: string,
  artifactType?: string,
): Promise<{ status: number; manifests: Descriptor[] }> {
  const query = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
  const response = await call(registry, 'GET', `/v2/${repository}/referrers/${digest}${query}`);
  if (response.status !== 200) return { status: response.status, manifests: [] };
  const index = (await response.json()) as { manifests?: Descriptor[] };
  return { status: 200, manifests: index.manifests ?? [] };
}

export interface PushImageOptions {
  /** Layer contents (default: one layer of 64 random bytes, so every push is a distinct image). */
  readonly layers?: readonly Uint8Array[];
  /** OCI (default) or Docker schema 2 media types. */
  readonly mediaTypes?: 'oci' | 'docker';
}

export interface PushedImage {
  /** The manifest digest, `sha256:<hex>`. */
  readonly digest: string;
  /** `${host}/${repository}:${tag}`. */
  readonly reference: string;
  /** `${host}/${repository}@${digest}`. */
  readonly pinned: string;
  readonly repository: string;
  readonly tag: string;
  readonly manifest: Buffer;
}

/** Pushes a small synthetic image (a config and its layers) and tags it. */
export async function pushImage(
  registry: OciRegistry,
  repository: string,
  tag: string,
  options: PushImageOptions = {},
): Promise<PushedImage> {
  const docker = options.mediaTypes === 'docker';
  const layerType = docker ? DOCKER_LAYER : OCI_LAYER;
  const contents = options.layers ?? [randomBytes(64)];
  const layers: Descriptor[] = [];
  for (const content of contents) layers.push(await uploadBlob(registry, repository, content, layerType));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/app'] },
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
    }),
  );
  const configDescriptor = await uploadBlob(
    registry,
    repository,
    config,
    docker ? DOCKER_CONFIG : OCI_CONFIG,
  );
  const mediaType = docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType, config: configDescriptor, layers }),
  );
  const { digest } = await putManifest(registry, repository, tag, manifest, mediaType);
  return {
    digest,
    reference: `${registry.host}/${repository}:${tag}`,
    pinned: `${registry.host}/${repository}@${digest}`,
    repository,
    tag,
    manifest,
  };
}

/** Points `tag` at the manifest `digest` already in `repository` (a tag moved after signing). */
export async function moveTag(
  registry: OciRegistry,
  repository: string,
  tag: string,
  digest: string,
): Promise<void> {
  const { bytes, mediaType } = await getManifest(registry, repository, digest);
  await putManifest(registry, repository, tag, bytes, mediaType);
}
