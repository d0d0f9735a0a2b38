/**
 * Registry credentials and the distribution spec's auth challenge, as data: a
 * kubernetes.io/dockerconfigjson Secret parsed into per-registry credentials, and a
 * `WWW-Authenticate` header parsed into its scheme and parameters. Pure.
 */
import { dockerHub } from './reference.ts';

export interface RegistryCredential {
  readonly username: string;
  readonly password: string;
}

export type Credentials = ReadonlyMap<string, RegistryCredential>;

export class RegistryConfigError extends Error {
  override readonly name = 'RegistryConfigError';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `https://index.docker.io/v1/` and friends → the registry name references use. */
export function registryKey(server: string): string {
  const host = server
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? dockerHub : host;
}

/** Credentials by registry from a `.dockerconfigjson` value; throws naming what is wrong (never a secret). */
export function parseDockerConfig(text: string): Credentials {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RegistryConfigError('.dockerconfigjson is not JSON');
  }
  const auths = isRecord(parsed) ? parsed.auths : undefined;
  if (!isRecord(auths)) throw new RegistryConfigError('.dockerconfigjson has no "auths" object');
  const credentials = new Map<string, RegistryCredential>();
  for (const [server, entry] of Object.entries(auths)) {
    if (!isRecord(entry)) continue;
    let username = typeof entry.username === 'string' ? entry.username : undefined;
    let password = typeof entry.password === 'string' ? entry.password : undefined;
    if ((username === undefined || password === undefined) && typeof entry.auth === 'string') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1)
        throw new RegistryConfigError(
          `.dockerconfigjson: the auth of ${registryKey(server)} is not base64 user:password`,
        );
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    if (username !== undefined && password !== undefined)
      credentials.set(registryKey(server), { username, password });
  }
  return credentials;
}

export interface Challenge {
  readonly scheme: 'bearer' | 'basic';
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic); undefined for anything else. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (match === null) return undefined;
  const scheme = (match[1] ?? '').toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const pair = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  for (const found of (match[2] ?? '').matchAll(pair)) {
    const key = (found[1] ?? '').toLowerCase();
    params[key] = found[2] !== undefined ? found[2].replace(/\\(.)/g, '$1') : (found[3] ?? '');
  }
  return { scheme, params };
}

/**
 * The token endpoint URL for a Bearer challenge, asking for `scopes` (the challenge's own scope
 * when it names one); refuses a realm that is not https (credentials would leak).
 */
export function tokenUrl(challenge: Challenge, scopes: readonly string[], allowHttp = false): URL {
  const realm = challenge.params.realm;
  if (realm === undefined) throw new RegistryConfigError("the registry's Bearer challenge names no realm");
  const url = new URL(realm);
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:'))
    throw new RegistryConfigError(`the registry's token realm ${url.origin} is not https`);
  if (challenge.params.service !== undefined) url.searchParams.set('service', challenge.params.service);
  const own = challenge.params.scope;
  for (const scope of own !== undefined && own !== '' ? [own] : scopes)
    url.searchParams.append('scope', scope);
  return url;
}
