/**
 * A small bounded HTTPS client for the OCI distribution API: manifests (by tag or digest), the
 * referrers API and blobs. TLS always verified (system roots plus an optional CA), token auth per
 * the distribution spec (Bearer challenge answered with the dockerconfigjson credentials, tokens
 * kept until they expire), a size limit on every manifest and blob, a timeout and an AbortSignal
 * on every request, and blob digests checked before the bytes are returned.
 */
import { createHash } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { registryHost } from './reference.ts';
import {
  type Challenge,
  type Credentials,
  parseChallenge,
  type RegistryCredential,
  tokenUrl,
} from './registry-auth.ts';

export const manifestMediaTypes = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
] as const;
export const ociIndexMediaType = 'application/vnd.oci.image.index.v1+json';

export interface RegistryLimits {
  readonly maxManifestBytes: number;
  readonly maxBlobBytes: number;
}

export const defaultRegistryLimits: RegistryLimits = {
  maxManifestBytes: 4 * 1024 * 1024,
  maxBlobBytes: 4 * 1024 * 1024,
};

export type RegistryErrorCode =
  | 'Unreachable'
  | 'Unauthorized'
  | 'TooLarge'
  | 'DigestMismatch'
  | 'BadResponse'
  | 'Timeout';

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  constructor(code: RegistryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface Manifest {
  /** sha256 of the bytes, computed here. */
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export interface Repo {
  readonly registry: string;
  readonly repository: string;
}

/** What the image verification needs of a registry (tests and benchmarks pass the real one). */
export interface RegistryPort {
  /** undefined when the registry answers 404. */
  manifest(repo: Repo, reference: string, signal: AbortSignal): Promise<Manifest | undefined>;
  /** The referrers index of `digest`; undefined when the registry has no referrers API (404). */
  referrers(repo: Repo, digest: string, signal: AbortSignal): Promise<Manifest | undefined>;
  blob(repo: Repo, digest: string, maxBytes: number, signal: AbortSignal): Promise<Buffer>;
  /**
   * Optional: authenticates for pulls from all `repos` up front (one token request per registry for
   * many repositories) so that the checks themselves need no challenge round trip. Never throws:
   * a registry that cannot be reached here fails in the check that needs it, with its own message.
   */
  authorize?(repos: readonly Repo[], signal: AbortSignal): Promise<void>;
}

export interface RegistryClientOptions {
  readonly credentials: Credentials;
  readonly caPem?: string;
  readonly timeoutMs: number;
  readonly limits: RegistryLimits;
  /** Counts requests (tests and benchmarks). */
  readonly onRequest?: (method: string, url: string) => void;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Token {
  readonly header: string;
  readonly expiresAt: number;
}

const agents = new Map<string, Agent>();

/** One connection pool per CA (bounded: a handful of CAs exist in practice). */
function agentFor(caPem: string | undefined): Agent {
  const key = caPem ?? '';
  let agent = agents.get(key);
  if (agent === undefined) {
    if (agents.size >= 16) {
      const [oldestKey, oldest] = agents.entries().next().value ?? [];
      if (oldestKey !== undefined) agents.delete(oldestKey);
      void oldest?.close();
    }
    agent = new Agent({
      connect: { timeout: 10_000, ...(caPem === undefined ? {} : { ca: [...rootCertificates, caPem] }) },
    });
    agents.set(key, agent);
  }
  return agent;
}

async function readBounded(body: AsyncIterable<unknown>, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > max) throw new RegistryError('TooLarge', `${what} is larger than ${max} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** Tokens by registry, scope and credential, shared by every client of the process. */
const tokens = new Map<string, Token>();
const maxTokens = 4_096;
/** Each registry's challenge as last seen (`none`: it served /v2/ without credentials). */
const challenges = new Map<string, Challenge | 'none'>();
const maxChallenges = 256;
/** Scopes asked for in one token request (the URL stays short). */
const scopesPerTokenRequest = 32;

function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

function withoutScope(params: Readonly<Record<string, string>>): Record<string, string> {
  const { scope: _scope, ...rest } = params;
  return rest;
}

export class RegistryClient implements RegistryPort {
  readonly #options: RegistryClientOptions;
  readonly #agent: Agent;

  constructor(options: RegistryClientOptions) {
    this.#options = options;
    this.#agent = agentFor(options.caPem);
  }

  async manifest(repo: Repo, reference: string, signal: AbortSignal): Promise<Manifest | undefined> {
    const response = await this.#get(
      repo,
      `manifests/${reference}`,
      manifestMediaTypes.join(', '),
      this.#options.limits.maxManifestBytes,
      signal,
    );
    if (response.status === 404) return undefined;
    this.#expectOk(response, repo, `manifest ${reference}`);
    const digest = sha256Digest(response.body);
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new RegistryError(
        'DigestMismatch',
        `${repo.registry}/${repo.repository}: the manifest served for ${reference} hashes to ${digest}`,
      );
    const claimed = header(response.headers, 'docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest)
      throw new RegistryError(
        'DigestMismatch',
        `${repo.registry}/${repo.repository}:${reference}: Docker-Content-Digest ${claimed} is not the served manifest's ${digest}`,
      );
    const mediaType = header(response.headers, 'content-type')?.split(';')[0]?.trim() ?? '';
    return { digest, mediaType, bytes: response.body };
  }

  async referrers(repo: Repo, digest: string, signal: AbortSignal): Promise<Manifest | undefined> {
    const response = await this.#get(
      repo,
      `referrers/${digest}`,
      ociIndexMediaType,
      this.#options.limits.maxManifestBytes,
      signal,
    );
    if (response.status === 404) return undefined;
    this.#expectOk(response, repo, `referrers of ${digest}`);
    return { digest: sha256Digest(response.body), mediaType: ociIndexMediaType, bytes: response.body };
  }

  async blob(repo: Repo, digest: string, maxBytes: number, signal: AbortSignal): Promise<Buffer> {
    const limit = Math.min(maxBytes, this.#options.limits.maxBlobBytes);
    const response = await this.#get(repo, `blobs/${digest}`, '*/*', limit, signal);
    this.#expectOk(response, repo, `blob ${digest}`);
    const actual = sha256Digest(response.body);
    if (actual !== digest)
      throw new RegistryError(
        'DigestMismatch',
        `${repo.registry}/${repo.repository}: blob ${digest} hashes to ${actual}`,
      );
    return response.body;
  }

  #expectOk(response: Response, repo: Repo, what: string): void {
    if (response.status === 401 || response.status === 403)
      throw new RegistryError(
        'Unauthorized',
        `${repo.registry}/${repo.repository}: ${what}: HTTP ${response.status} (check spec.verify.imagePullSecretRef)`,
      );
    if (response.status !== 200)
      throw new RegistryError(
        'BadResponse',
        `${repo.registry}/${repo.repository}: ${what}: HTTP ${response.status}`,
      );
  }

  #credential(repo: Repo): RegistryCredential | undefined {
    return this.#options.credentials.get(repo.registry);
  }

  #tokenKey(repo: Repo): string {
    const credential = this.#credential(repo);
    const who =
      credential === undefined
        ? ''
        : createHash('sha256').update(`${credential.username}\0${credential.password}`).digest('hex');
    return `${repo.registry}|${repo.repository}|${who}`;
  }

  /** GET with auth: a cached token first; on a challenge, authenticate once and retry. */
  async #get(repo: Repo, path: string, accept: string, max: number, signal: AbortSignal): Promise<Response> {
    const url = new URL(`https://${registryHost(repo.registry)}/v2/${repo.repository}/${path}`);
    const key = this.#tokenKey(repo);
    const cached = tokens.get(key);
    const authorization = cached !== undefined && cached.expiresAt > Date.now() ? cached.header : undefined;
    const first = await this.#send(url, accept, authorization, max, signal, 0);
    if (first.status !== 401) return first;
    const challenge = parseChallenge(header(first.headers, 'www-authenticate'));
    if (challenge === undefined) return first;
    // Remembered without its scope, for authorize() to ask for other repositories.
    remember(
      challenges,
      repo.registry,
      { ...challenge, params: withoutScope(challenge.params) },
      maxChallenges,
    );
    const fresh = await this.#authenticate(repo, challenge, [`repository:${repo.repository}:pull`], signal);
    if (fresh === undefined) return first;
    remember(tokens, key, fresh, maxTokens);
    return this.#send(url, accept, fresh.header, max, signal, 0);
  }

  async authorize(repos: readonly Repo[], signal: AbortSignal): Promise<void> {
    const byRegistry = new Map<string, Repo[]>();
    for (const repo of repos) {
      const cached = tokens.get(this.#tokenKey(repo));
      if (cached !== undefined && cached.expiresAt > Date.now()) continue;
      const list = byRegistry.get(repo.registry) ?? [];
      if (!list.some((r) => r.repository === repo.repository)) list.push(repo);
      byRegistry.set(repo.registry, list);
    }
    await Promise.all(
      [...byRegistry.values()].map((list) =>
        this.#authorizeRegistry(list, signal).catch(() => {
          signal.throwIfAborted();
        }),
      ),
    );
  }

  /** The registry's challenge (one GET /v2/ the first time), then one token per 32 repositories. */
  async #authorizeRegistry(repos: readonly Repo[], signal: AbortSignal): Promise<void> {
    const first = repos[0];
    if (first === undefined) return;
    let challenge = challenges.get(first.registry);
    if (challenge === undefined) {
      const probe = await this.#send(
        new URL(`https://${registryHost(first.registry)}/v2/`),
        'application/json',
        undefined,
        64 * 1024,
        signal,
        0,
      );
      const parsed =
        probe.status === 401 ? parseChallenge(header(probe.headers, 'www-authenticate')) : 'none';
      if (parsed === undefined) return;
      challenge = parsed === 'none' ? 'none' : { ...parsed, params: withoutScope(parsed.params) };
      remember(challenges, first.registry, challenge, maxChallenges);
    }
    if (challenge === 'none') return;
    for (let i = 0; i < repos.length; i += scopesPerTokenRequest) {
      const batch = repos.slice(i, i + scopesPerTokenRequest);
      const scopes = batch.map((repo) => `repository:${repo.repository}:pull`);
      const token = await this.#authenticate(first, challenge, scopes, signal);
      if (token === undefined) return;
      for (const repo of batch) remember(tokens, this.#tokenKey(repo), token, maxTokens);
    }
  }

  async #authenticate(
    repo: Repo,
    challenge: Challenge,
    scopes: readonly string[],
    signal: AbortSignal,
  ): Promise<Token | undefined> {
    const credential = this.#credential(repo);
    const basic =
      credential === undefined
        ? undefined
        : `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
    if (challenge.scheme === 'basic')
      return basic === undefined ? undefined : { header: basic, expiresAt: Date.now() + 3_600_000 };
    const url = tokenUrl(challenge, scopes);
    const response = await this.#send(url, 'application/json', basic, 64 * 1024, signal, 0);
    if (response.status !== 200)
      throw new RegistryError(
        'Unauthorized',
        `${repo.registry}: the token endpoint ${url.origin}${url.pathname} answered HTTP ${response.status} (check spec.verify.imagePullSecretRef)`,
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new RegistryError('BadResponse', `${repo.registry}: the token endpoint answered no JSON`);
    }
    const body = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '')
      throw new RegistryError('BadResponse', `${repo.registry}: the token endpoint answered no token`);
    const seconds =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? Math.min(body.expires_in, 3_600) : 60;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + (seconds - 5) * 1_000 };
  }

  async #send(
    url: URL,
    accept: string,
    authorization: string | undefined,
    max: number,
    signal: AbortSignal,
    redirects: number,
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    const where = `${url.host}${url.pathname}`;
    this.#options.onRequest?.('GET', where);
    try {
      const response = await request(url, {
        method: 'GET',
        headers: {
          accept,
          'user-agent': 'signet',
          ...(authorization === undefined ? {} : { authorization }),
        },
        dispatcher: this.#agent,
        signal: AbortSignal.any([signal, timeout]),
        headersTimeout: this.#options.timeoutMs,
        bodyTimeout: this.#options.timeoutMs,
      });
      const location = header(response.headers, 'location');
      if (response.statusCode >= 300 && response.statusCode < 400 && location !== undefined) {
        await response.body.dump();
        if (redirects >= 3) throw new RegistryError('BadResponse', `${where}: too many redirects`);
        const next = new URL(location, url);
        if (next.protocol !== 'https:')
          throw new RegistryError('BadResponse', `${where}: redirected to a non-https URL`);
        // Credentials go only to the registry's own host.
        return this.#send(
          next,
          accept,
          next.host === url.host ? authorization : undefined,
          max,
          signal,
          redirects + 1,
        );
      }
      const length = Number(header(response.headers, 'content-length') ?? '0');
      if (length > max) {
        await response.body.dump();
        throw new RegistryError('TooLarge', `${where}: ${length} bytes, more than the limit of ${max}`);
      }
      const body = await readBounded(response.body, max, where);
      return { status: response.statusCode, headers: response.headers, body };
    } catch (error) {
      signal.throwIfAborted();
      if (error instanceof RegistryError) throw error;
      if (timeout.aborted)
        throw new RegistryError(
          'Timeout',
          `${where}: no answer within spec.timeout (${this.#options.timeoutMs} ms)`,
          { cause: error },
        );
      throw new RegistryError(
        'Unreachable',
        `${where}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }
}
