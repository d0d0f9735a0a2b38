/**
 * OpenSSH known_hosts (pure): parsing, host matching and the host key decision.
 *
 * Supported lines (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): `[marker] hostpatterns keytype base64key
 * [comment]` with plain patterns (`host`, `[host]:port`, `*`/`?` wildcards, `!negation`), hashed
 * hosts (`|1|base64(salt)|base64(HMAC-SHA1(salt, host))`), and the markers `@revoked` and
 * `@cert-authority`. Comments and blank lines are skipped.
 *
 * Fail closed: a line that cannot be parsed refuses the whole file (naming the line), a key whose
 * blob does not carry the type the line names is refused, and a revoked key is refused for every
 * host. `@cert-authority` lines never vouch for a plain host key: they vouch only for a host
 * certificate (host-certificate.ts decides those), so a host known only through a CA that offers a
 * plain key is refused.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type KnownHostMarker = 'revoked' | 'cert-authority';

export type HostMatcher =
  | { readonly kind: 'patterns'; readonly patterns: readonly string[] }
  | { readonly kind: 'hashed'; readonly salt: Uint8Array; readonly hash: Uint8Array };

export interface KnownHostEntry {
  readonly line: number;
  readonly marker?: KnownHostMarker;
  readonly hosts: HostMatcher;
  readonly keyType: string;
  /** The public key blob in SSH wire format. */
  readonly key: Uint8Array;
}

export type KnownHostsParse =
  | { readonly ok: true; readonly entries: readonly KnownHostEntry[] }
  | { readonly ok: false; readonly reason: string };

/** Host key types a known_hosts line may pin (the ones ssh2 verifies as host keys). */
export const hostKeyTypes = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;

const maxLines = 10_000;

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` elsewhere. */
export function hostLookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:<base64 without padding>`, as ssh-keygen -l prints it. */
export function fingerprintSha256(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type string at the start of an SSH public key blob, or undefined when malformed. */
export function blobKeyType(blob: Uint8Array): string | undefined {
  if (blob.length < 4) return undefined;
  const length = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(0);
  if (length === 0 || length > 64 || 4 + length > blob.length) return undefined;
  return Buffer.from(blob.subarray(4, 4 + length)).toString('latin1');
}

function decodeBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === 0 ? undefined : new Uint8Array(bytes);
}

function parseHosts(field: string): HostMatcher | undefined {
  if (field.startsWith('|1|')) {
    const [salt, hash] = field.slice(3).split('|');
    const saltBytes = salt === undefined ? undefined : decodeBase64(salt);
    const hashBytes = hash === undefined ? undefined : decodeBase64(hash);
    if (saltBytes?.length !== 20 || hashBytes?.length !== 20) return undefined;
    return { kind: 'hashed', salt: saltBytes, hash: hashBytes };
  }
  if (field.startsWith('|')) return undefined;
  const patterns = field.split(',');
  if (patterns.some((p) => p === '' || p === '!')) return undefined;
  return { kind: 'patterns', patterns };
}

function parseLine(text: string, line: number): KnownHostEntry | string | undefined {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return undefined;
  const fields = trimmed.split(/[ \t]+/);
  let marker: KnownHostMarker | undefined;
  if (fields[0]?.startsWith('@')) {
    const name = fields.shift();
    if (name !== '@revoked' && name !== '@cert-authority') return `unknown marker ${name}`;
    marker = name === '@revoked' ? 'revoked' : 'cert-authority';
  }
  const [hostField, keyType, keyText] = fields;
  if (hostField === undefined || keyType === undefined || keyText === undefined) {
    return 'expected "[marker] hosts keytype base64-key [comment]"';
  }
  const hosts = parseHosts(hostField);
  if (hosts === undefined) return `cannot read the host field "${hostField.slice(0, 80)}"`;
  if (!(hostKeyTypes as readonly string[]).includes(keyType)) {
    return `key type ${keyType.slice(0, 40)} is not one of ${hostKeyTypes.join(', ')}`;
  }
  const key = decodeBase64(keyText);
  if (key === undefined) return 'the key is not valid base64';
  if (blobKeyType(key) !== keyType) return `the key's blob is not a ${keyType} key`;
  return { line, ...(marker === undefined ? {} : { marker }), hosts, keyType, key };
}

/** Parses a whole known_hosts file; any malformed line refuses the file, naming the line. */
export function parseKnownHosts(text: string): KnownHostsParse {
  const lines = text.split(/\r?\n/);
  if (lines.length > maxLines) return { ok: false, reason: `more than ${maxLines} lines` };
  const entries: KnownHostEntry[] = [];
  for (const [index, content] of lines.entries()) {
    const parsed = parseLine(content, index + 1);
    if (typeof parsed === 'string') return { ok: false, reason: `line ${index + 1}: ${parsed}` };
    if (parsed !== undefined) entries.push(parsed);
  }
  if (entries.length === 0) return { ok: false, reason: 'no host key lines' };
  return { ok: true, entries };
}

/** OpenSSH's match_pattern: `*` any run, `?` any one character; case-insensitive for hosts. */
export function wildcardMatch(pattern: string, value: string): boolean {
  const source = pattern
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(value.toLowerCase());
}

/** Whether a host field names `lookupName` (negated patterns veto, as in match_hostname). */
export function hostsMatch(hosts: HostMatcher, lookupName: string): boolean {
  if (hosts.kind === 'hashed') {
    const digest = createHmac('sha1', hosts.salt).update(lookupName).digest();
    return timingSafeEqual(digest, hosts.hash);
  }
  let matched = false;
  for (const pattern of hosts.patterns) {
    const negated = pattern.startsWith('!');
    if (!wildcardMatch(negated ? pattern.slice(1) : pattern, lookupName)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export type HostKeyDecision =
  | { readonly ok: true; readonly fingerprint: string; readonly line: number }
  | {
      readonly ok: false;
      readonly fingerprint: string;
      readonly cause: 'revoked' | 'mismatch' | 'unknown-host' | 'ca-only';
    };

/** The entries that can authorise a plain key for this host (no markers). */
export function pinnedEntriesFor(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
): KnownHostEntry[] {
  const name = hostLookupName(host, port);
  return entries.filter((e) => e.marker === undefined && hostsMatch(e.hosts, name));
}

/** Accepts `offered` only when a plain line for the host pins exactly that key and no line revokes it. */
export function decideHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  offered: Uint8Array,
): HostKeyDecision {
  const fingerprint = fingerprintSha256(offered);
  if (entries.some((e) => e.marker === 'revoked' && sameBytes(e.key, offered))) {
    return { ok: false, fingerprint, cause: 'revoked' };
  }
  const pinned = pinnedEntriesFor(entries, host, port);
  const match = pinned.find((e) => sameBytes(e.key, offered));
  if (match !== undefined) return { ok: true, fingerprint, line: match.line };
  if (pinned.length > 0) return { ok: false, fingerprint, cause: 'mismatch' };
  const name = hostLookupName(host, port);
  const caOnly = entries.some((e) => e.marker === 'cert-authority' && hostsMatch(e.hosts, name));
  return { ok: false, fingerprint, cause: caOnly ? 'ca-only' : 'unknown-host' };
}

/** ssh2 host key algorithm names for a pinned key type, strongest first (no SHA-1 ssh-rsa). */
function algorithmsFor(keyType: string): string[] {
  return keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [keyType];
}

const algorithmPreference = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
];

/** Whether a `@cert-authority` line names this host. */
export function hasCertAuthorityFor(entries: readonly KnownHostEntry[], host: string, port: number): boolean {
  const name = hostLookupName(host, port);
  return entries.some((e) => e.marker === 'cert-authority' && hostsMatch(e.hosts, name));
}

/**
 * The host key algorithms to offer: only the types pinned for this host, so the server presents
 * a key we can check (OpenSSH's client orders its offer by known_hosts the same way). A host with
 * a `@cert-authority` line gets the certificate algorithms first (when `certificates`: the SSH
 * library negotiates them), then its pinned plain types, or every plain type when none is pinned
 * (so a server without a certificate presents a key the refusal can name).
 */
export function hostKeyAlgorithmsFor(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  certificates = false,
): string[] {
  const wanted = new Set(pinnedEntriesFor(entries, host, port).flatMap((e) => algorithmsFor(e.keyType)));
  if (!hasCertAuthorityFor(entries, host, port))
    return algorithmPreference.filter((name) => wanted.has(name));
  const plain =
    wanted.size === 0 ? algorithmPreference : algorithmPreference.filter((name) => wanted.has(name));
  return [
    ...(certificates ? algorithmPreference.map((name) => `${name}-cert-v01@openssh.com`) : []),
    ...plain,
  ];
}

/** The user-facing refusal for a host key decision; names the host, the fingerprint and the Secret key. */
export function hostKeyRefusal(
  decision: Extract<HostKeyDecision, { ok: false }>,
  host: string,
  port: number,
  keyType: string,
): string {
  const name = hostLookupName(host, port);
  const offered = `${keyType} key ${decision.fingerprint}`;
  switch (decision.cause) {
    case 'revoked':
      return `host key of ${name} is revoked (@revoked in known_hosts): the server offered ${offered}; nothing was fetched`;
    case 'mismatch':
      return `host key of ${name} does not match known_hosts: the server offered ${offered}; if the server's key really changed, update the known_hosts key of spec.secretRef`;
    case 'ca-only':
      return `host ${name} is known only through @cert-authority lines, but the server offered a plain ${offered}, not a host certificate; pin that key in the known_hosts key of spec.secretRef if it is the host's, or give the server a certificate`;
    case 'unknown-host':
      return `host ${name} is not in known_hosts: the server offered ${offered}; add its host key to the known_hosts key of spec.secretRef (e.g. from ssh-keyscan, checked out of band)`;
  }
}
