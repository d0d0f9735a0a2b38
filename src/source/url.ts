/**
 * Git repository URLs (pure): `https://` (and `http://` with spec.insecure), `ssh://[user@]host[:port]/path`
 * and git's scp-like `user@host:path`. SSH URLs are normalised to `ssh://` for status and messages.
 *
 * The path git sends to the server follows git's own rules (connect.c): an `ssh://` path is sent as
 * written (`/org/repo.git`, or `~/repo.git` for `ssh://host/~/repo.git`); an scp-like path is sent
 * as written too, so `git@host:org/repo.git` asks for `org/repo.git` (relative to the login's home)
 * although its display form is `ssh://git@host/org/repo.git`, the convention other GitOps tools use.
 *
 * Everything outside a conservative character set is refused rather than quoted: no credentials
 * in the URL (passwords and keys come from spec.secretRef), no whitespace or shell metacharacters
 * in the path, a port in 1..65535.
 */

export interface SshUrl {
  readonly kind: 'ssh';
  /** The login user (`git` when the URL names none, as GitHub, GitLab and Gitea expect). */
  readonly user: string;
  /** Host name or IP address; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  /** The repository path exactly as `git-upload-pack '<path>'` receives it. */
  readonly path: string;
  /** `ssh://user@host[:port]/path`, the form shown in status and messages. */
  readonly display: string;
}

export interface HttpUrl {
  readonly kind: 'https' | 'http';
  /** Without userinfo, query or fragment. */
  readonly display: string;
}

export type GitUrl = SshUrl | HttpUrl;

export type GitUrlResult = { ok: true; url: GitUrl } | { ok: false; reason: string };

export const defaultSshUser = 'git';
export const defaultSshPort = 22;

const userPattern = /^[A-Za-z0-9._~-]{1,64}$/;
const hostnamePattern = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const ipv6Pattern = /^[0-9A-Fa-f:.]{2,45}$/;
const pathPattern = /^[A-Za-z0-9._~/+@=,:-]{1,1024}$/;

/** `ssh://` URL form: `ssh://[user@]host[:port]/path` with IPv6 hosts in brackets. */
const sshUrlPattern = /^ssh:\/\/(?:([^@/]*)@)?(\[[^\]]*\]|[^/:[\]]*)(?::([^/]*))?(\/.*)$/s;
/** git's scp-like form: `[user@]host:path`, no `://`, the host ends at the first colon. */
const scpPattern = /^(?:([^@/:]*)@)?(\[[^\]]*\]|[^/:[\]@]+):(.*)$/s;

function fail(reason: string): GitUrlResult {
  return { ok: false, reason };
}

function checkHost(rawHost: string): string | { reason: string } {
  if (rawHost.startsWith('[')) {
    const inner = rawHost.slice(1, -1);
    return ipv6Pattern.test(inner) && inner.includes(':')
      ? inner
      : { reason: `host ${rawHost} is not an IPv6 address` };
  }
  if (!hostnamePattern.test(rawHost) || rawHost.includes('..')) {
    return { reason: 'the host must be a DNS name or an IP address' };
  }
  return rawHost;
}

function displayOf(user: string, host: string, port: number, path: string): string {
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const portPart = port === defaultSshPort ? '' : `:${port}`;
  const pathPart = path.startsWith('/') ? path : `/${path}`;
  return `ssh://${user}@${hostPart}${portPart}${pathPart}`;
}

function sshUrl(
  rawUser: string | undefined,
  rawHost: string,
  rawPort: string | undefined,
  path: string,
): GitUrlResult {
  if (rawUser !== undefined && !userPattern.test(rawUser)) {
    return fail(
      rawUser.includes(':')
        ? 'must not embed credentials; use spec.secretRef (identity, password)'
        : 'the SSH user may hold only letters, digits and . _ ~ -',
    );
  }
  const host = checkHost(rawHost);
  if (typeof host !== 'string') return fail(host.reason);
  let port = defaultSshPort;
  if (rawPort !== undefined) {
    if (!/^[0-9]{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65_535) {
      return fail('the SSH port must be a number from 1 to 65535');
    }
    port = Number(rawPort);
  }
  if (!pathPattern.test(path) || path === '/') {
    return fail(
      'the repository path may hold only letters, digits and . _ ~ / + @ = , : - (no spaces, quotes or shell characters)',
    );
  }
  const user = rawUser ?? defaultSshUser;
  return {
    ok: true,
    url: { kind: 'ssh', user, host, port, path, display: displayOf(user, host, port, path) },
  };
}

function parseSshScheme(raw: string): GitUrlResult {
  const match = sshUrlPattern.exec(raw);
  if (match === null) return fail('is not an ssh://[user@]host[:port]/path URL');
  const [, user, host = '', port, path = ''] = match;
  // git strips the slash before a home-relative path: ssh://host/~/repo.git asks for ~/repo.git.
  return sshUrl(user, host, port, path.startsWith('/~') ? path.slice(1) : path);
}

function parseHttp(raw: string, scheme: 'https' | 'http'): GitUrlResult {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return fail('is not a valid URL');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    return fail('must not embed credentials; use spec.secretRef');
  }
  return { ok: true, url: { kind: scheme, display: `${parsed.protocol}//${parsed.host}${parsed.pathname}` } };
}

/** Classifies and checks a repository URL. Pure; never echoes credentials in `reason`. */
export function parseGitUrl(raw: string): GitUrlResult {
  if (/[\s\0]/.test(raw)) return fail('must not contain whitespace or control characters');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase();
  if (scheme === 'https' || scheme === 'http') return parseHttp(raw, scheme);
  if (scheme === 'ssh') return parseSshScheme(raw);
  if (scheme !== undefined) {
    return fail(`scheme ${scheme}:// is not supported; use https://, ssh:// or user@host:path`);
  }
  const scp = scpPattern.exec(raw);
  if (scp === null) return fail('is not a valid URL (https://, ssh:// or user@host:path)');
  const [, user, host = '', path = ''] = scp;
  return sshUrl(user, host, undefined, path);
}

/**
 * isomorphic-git speaks only HTTP(S), so an SSH remote is handed to it as this synthetic URL
 * (ssh-transport.ts answers its requests); the `.invalid` TLD (RFC 2606) never resolves.
 */
const sshTransportPrefix = 'https://signet-ssh.invalid/';

export function sshTransportUrl(url: SshUrl): string {
  return `${sshTransportPrefix}${encodeURIComponent(url.display)}`;
}

/** The credential-free display form of a URL, for messages; `(invalid URL)` when unparsable. */
export function displayGitUrl(raw: string): string {
  if (raw.startsWith(sshTransportPrefix)) {
    const [encoded = '', ...rest] = raw.slice(sshTransportPrefix.length).split(/[?#]/)[0]?.split('/') ?? [];
    return [decodeURIComponent(encoded), ...rest].join('/');
  }
  if (/^https?:\/\//i.test(raw)) {
    // HTTP(S) as before: credentials, query and fragment dropped, whatever else is wrong with it.
    try {
      const parsed = new URL(raw);
      return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    } catch {
      return '(invalid URL)';
    }
  }
  const parsed = parseGitUrl(raw);
  return parsed.ok ? parsed.url.display : '(invalid URL)';
}

/** git's sq_quote: the path in single quotes, `'` and `!` escaped (the path pattern admits neither). */
export function quoteShellArgument(value: string): string {
  return `'${value.replace(/['!]/g, (c) => `'\\${c}'`)}'`;
}
