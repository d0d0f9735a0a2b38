/**
 * Image references as the distribution project's reference grammar defines them, parsed and
 * normalised the way the container runtime does (docker.io default registry, `library/` for
 * one-segment Docker Hub names, `latest` when neither tag nor digest is given). Pure.
 */

export interface ImageReference {
  /** The reference as written in the manifest. */
  readonly original: string;
  /** Registry host (and port) as named: `docker.io` for Docker Hub. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. `library/nginx`. */
  readonly repository: string;
  /** The tag written, or `latest` when neither tag nor digest was. */
  readonly tag?: string;
  /** `sha256:<64 hex>` when written. */
  readonly digest?: string;
  /** The name part as written (no tag, no digest): pinned references keep it. */
  readonly writtenName: string;
}

export type ReferenceParse =
  | { readonly ok: true; readonly ref: ImageReference }
  | { readonly ok: false; readonly message: string };

const component = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainPattern =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^sha256:[a-f0-9]{64}$/;
export const maxReferenceLength = 512;
const maxNameLength = 255;

export const dockerHub = 'docker.io';

/** Whether the first segment names a registry (has a dot or a port, or is localhost). */
function isDomain(segment: string): boolean {
  return (
    segment.includes('.') ||
    segment.includes(':') ||
    segment === 'localhost' ||
    segment !== segment.toLowerCase()
  );
}

function fail(text: string, why: string): ReferenceParse {
  return { ok: false, message: `image reference ${JSON.stringify(text.slice(0, 200))} ${why}` };
}

/** Splits `name[:tag][@digest]`; the tag's colon is the last one after the last slash. */
function splitTagAndDigest(text: string): { name: string; tag?: string; digest?: string } {
  const at = text.indexOf('@');
  const beforeDigest = at === -1 ? text : text.slice(0, at);
  const digest = at === -1 ? undefined : text.slice(at + 1);
  const slash = beforeDigest.lastIndexOf('/');
  const colon = beforeDigest.lastIndexOf(':');
  const hasTag = colon > slash;
  const name = hasTag ? beforeDigest.slice(0, colon) : beforeDigest;
  const tag = hasTag ? beforeDigest.slice(colon + 1) : undefined;
  return { name, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** Parses and normalises one image reference; refuses (with the reason) anything the grammar does not allow. */
export function parseImageReference(text: string): ReferenceParse {
  if (text.length === 0) return fail(text, 'is empty');
  if (text.length > maxReferenceLength) return fail(text, `is longer than ${maxReferenceLength} characters`);
  if (/\s/.test(text)) return fail(text, 'contains white space');
  const { name, tag, digest } = splitTagAndDigest(text);
  if (digest !== undefined && !digestPattern.test(digest))
    return fail(
      text,
      'has a digest that is not sha256:<64 lowercase hex> (only sha256 digests are accepted)',
    );
  if (tag !== undefined && !tagPattern.test(tag))
    return fail(text, `has an invalid tag ${JSON.stringify(tag)}`);
  const segments = name.split('/');
  const first = segments[0] ?? '';
  const hasDomain = segments.length > 1 && isDomain(first);
  const registry = hasDomain ? first : dockerHub;
  if (hasDomain && !domainPattern.test(first))
    return fail(text, `has an invalid registry host ${JSON.stringify(first)}`);
  const path = hasDomain ? segments.slice(1) : segments;
  if (path.length === 0 || !path.every((segment) => component.test(segment)))
    return fail(text, 'has an invalid repository name (lowercase letters, digits and separators . _ __ - /)');
  if (name.length > maxNameLength) return fail(text, `has a name longer than ${maxNameLength} characters`);
  const normalisedRegistry = registry === 'index.docker.io' ? dockerHub : registry;
  const repository =
    normalisedRegistry === dockerHub && path.length === 1 ? `library/${path[0]}` : path.join('/');
  return {
    ok: true,
    ref: {
      original: text,
      registry: normalisedRegistry,
      repository,
      writtenName: name,
      ...(digest === undefined ? { tag: tag ?? 'latest' } : tag === undefined ? {} : { tag }),
      ...(digest === undefined ? {} : { digest }),
    },
  };
}

/** `registry/repository`, the name policies match against. */
export function canonicalName(ref: Pick<ImageReference, 'registry' | 'repository'>): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The reference the applied object names: as written, its tag kept, pinned to `digest`. */
export function pinnedReference(ref: ImageReference, digest: string): string {
  return `${ref.writtenName}${ref.tag === undefined ? '' : `:${ref.tag}`}@${digest}`;
}

/** The host the registry API is served at (Docker Hub's API is not at docker.io). */
export function registryHost(registry: string): string {
  return registry === dockerHub ? 'registry-1.docker.io' : registry;
}
