/**
 * The real `cosign` CLI for the image tests: hack/cosign/build.sh builds it from Go modules
 * (github.com/sigstore/cosign/v3, pinned in hack/cosign/cli/go.mod) into ~/.cache/signet on first
 * use (337 CPU-seconds cold, see docs/images.md) and reuses it afterwards. Everything runs offline: keyed
 * signatures only, no transparency log upload (`--use-signing-config=false --tlog-upload=false`),
 * HOME in a temporary directory (no TUF cache), the registry's CA as SSL_CERT_FILE and its
 * credentials as DOCKER_CONFIG. docs/images.md ("Test infrastructure") records what cosign writes.
 *
 * Stable API (the image tests build on it):
 *   ensureCosign() → path of the binary;  cosignBuildTimeoutMs for a beforeAll
 *   generateKeyPair(dir) → CosignKeyPair {privateKeyPath, publicKeyPath, publicKeyPem, password}
 *   signKeyed(registry, ref, key, { format })    format 'legacy-sig-tag' (the sha256-<hex>.sig tag,
 *       simple signing) or 'bundle-referrer' (a sigstore bundle v0.3 with a DSSE envelope, attached as
 *       an OCI referrer, or under the sha256-<hex> tag index when the registry lacks the referrers API)
 *   attestKeyed(registry, ref, key, { predicateType, predicate, format })   an in-toto attestation
 *   verifyKeyed(registry, ref, key, { format })  `cosign verify --key --insecure-ignore-tlog`, the
 *       oracle; rejects with CommandError when cosign refuses
 *   verifyAttestationKeyed(registry, ref, key, { predicateType, format })
 *   verifyKeyless(registry, ref, { trustedRoot, issuer, subject, format })   `cosign verify
 *       --trusted-root --certificate-identity --certificate-oidc-issuer`, the oracle for keyless
 *       signatures made with the sigstore fixtures (test/support/image-signing.ts)
 * `ref` is an image reference in the registry (`${host}/repo:tag` or `${host}/repo@sha256:…`);
 * cosign signs the digest it resolves, so sign the pinned reference when a tag may move.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir, type RunResult, runCommand } from './git-fixtures.ts';
import type { OciRegistry } from './oci-registry.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Time a test file's beforeAll allows for a first (cold) build of cosign. */
export const cosignBuildTimeoutMs = 1_800_000;
const commandTimeoutMs = 60_000;

let built: Promise<string> | undefined;

/** Builds (first use) or finds cosign; resolves to the binary's path. */
export function ensureCosign(): Promise<string> {
  built ??= (async () => {
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', 'PATH="$(hack/go.sh):$PATH" exec hack/cosign/build.sh'],
      { cwd: repoRoot, timeout: cosignBuildTimeoutMs, maxBuffer: 1024 * 1024 },
    );
    return join(stdout.trim().split('\n').pop() ?? '', 'bin', 'cosign');
  })();
  return built;
}

export interface CosignKeyPair {
  readonly privateKeyPath: string;
  readonly publicKeyPath: string;
  readonly publicKeyPem: string;
  /** COSIGN_PASSWORD of the encrypted private key. */
  readonly password: string;
}

/** A cosign public key (PEM, PKIX) in a file: what verification needs. */
export interface PublicKeyFile {
  readonly publicKeyPath: string;
}

export type SignatureFormat = 'legacy-sig-tag' | 'bundle-referrer';

async function cosign(
  args: readonly string[],
  options: { cwd: string; registry?: OciRegistry; password?: string },
): Promise<RunResult> {
  const binary = await ensureCosign();
  const home = join(options.cwd, '.cosign-home');
  await mkdir(home, { recursive: true });
  const env: Record<string, string> = {
    HOME: home,
    COSIGN_PASSWORD: options.password ?? '',
    COSIGN_YES: 'true',
    ...(options.registry === undefined
      ? {}
      : { SSL_CERT_FILE: options.registry.caPath, DOCKER_CONFIG: options.registry.dockerConfigDir }),
  };
  return runCommand(binary, args, { cwd: options.cwd, env, timeoutMs: commandTimeoutMs });
}

/** `cosign generate-key-pair` in `dir` (cosign.key, encrypted with a random password, and cosign.pub). */
export async function generateKeyPair(dir: string): Promise<CosignKeyPair> {
  const password = randomBytes(12).toString('hex');
  await cosign(['generate-key-pair'], { cwd: dir, password });
  const publicKeyPath = join(dir, 'cosign.pub');
  return {
    privateKeyPath: join(dir, 'cosign.key'),
    publicKeyPath,
    publicKeyPem: await readFile(publicKeyPath, 'utf8'),
    password,
  };
}

const offline = ['--use-signing-config=false', '--tlog-upload=false', '--yes'];
const formatFlag = (format: SignatureFormat) => `--new-bundle-format=${format === 'bundle-referrer'}`;
const workDir = (key: CosignKeyPair) => dirname(key.privateKeyPath);

/** Signs `ref` with the key, storing the signature in `format`. */
export async function signKeyed(
  registry: OciRegistry,
  ref: string,
  key: CosignKeyPair,
  options: { format: SignatureFormat },
): Promise<void> {
  await cosign(['sign', '--key', key.privateKeyPath, ...offline, formatFlag(options.format), ref], {
    cwd: workDir(key),
    registry,
    password: key.password,
  });
}

/** Attests `predicate` (an in-toto predicate of `predicateType`, e.g. SLSA provenance) about `ref`. */
export async function attestKeyed(
  registry: OciRegistry,
  ref: string,
  key: CosignKeyPair,
  options: { predicateType: string; predicate: unknown; format: SignatureFormat },
): Promise<void> {
  const predicatePath = join(workDir(key), `predicate-${randomBytes(6).toString('hex')}.json`);
  await writeFile(predicatePath, JSON.stringify(options.predicate));
  const args = ['attest', '--key', key.privateKeyPath, '--type', options.predicateType, '--predicate'];
  await cosign([...args, predicatePath, ...offline, formatFlag(options.format), ref], {
    cwd: workDir(key),
    registry,
    password: key.password,
  });
}

/** `cosign verify --key <pub> --insecure-ignore-tlog`: resolves with cosign's output, rejects if it refuses. */
export async function verifyKeyed(
  registry: OciRegistry,
  ref: string,
  key: PublicKeyFile,
  options: { format: SignatureFormat },
): Promise<RunResult> {
  const args = [
    'verify',
    '--key',
    key.publicKeyPath,
    '--insecure-ignore-tlog',
    formatFlag(options.format),
    ref,
  ];
  return cosign(args, { cwd: dirname(key.publicKeyPath), registry });
}

/** `cosign verify-attestation --key <pub> --insecure-ignore-tlog --type <predicateType>`. */
export async function verifyAttestationKeyed(
  registry: OciRegistry,
  ref: string,
  key: PublicKeyFile,
  options: { predicateType: string; format: SignatureFormat },
): Promise<RunResult> {
  const args = ['verify-attestation', '--key', key.publicKeyPath, '--insecure-ignore-tlog'];
  return cosign([...args, '--type', options.predicateType, formatFlag(options.format), ref], {
    cwd: dirname(key.publicKeyPath),
    registry,
  });
}

/**
 * `cosign verify --trusted-root <root> --certificate-identity <subject> --certificate-oidc-issuer
 * <issuer>`: the oracle for keyless signatures made with the sigstore fixtures (their trusted root).
 */
export async function verifyKeyless(
  registry: OciRegistry,
  ref: string,
  options: { trustedRoot: object; issuer: string; subject: string; format: SignatureFormat },
): Promise<RunResult> {
  const dir = await makeTempDir('cosign-keyless');
  try {
    const rootPath = join(dir, 'trusted_root.json');
    await writeFile(rootPath, JSON.stringify(options.trustedRoot));
    const identity = ['--certificate-identity', options.subject, '--certificate-oidc-issuer', options.issuer];
    const args = ['verify', '--trusted-root', rootPath, ...identity, formatFlag(options.format), ref];
    return await cosign(args, { cwd: dir, registry });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
