/**
 * The one module that owns parsing, defaulting and validation of a GitRepository
 * (signet.dev/v1alpha1). Input is `unknown` (parsed YAML or an API object); output is a fully
 * defaulted, typed value. Every invalid field is collected and named in one SpecValidationError.
 * Keep in sync with crds/signet.dev_gitrepositories.yaml (test/api checks the enums and defaults).
 */
import semver from 'semver';
import { type AlertKind, alertKinds } from '../notify/alert.ts';
import { bundlePathProblem } from '../provenance/tree-digest.ts';
import { parseGitUrl } from '../source/url.ts';
import { durationPattern, parseDuration } from './duration.ts';

export const apiGroup = 'signet.dev';
export const apiVersion = 'signet.dev/v1alpha1';
export const gitRepositoryKind = 'GitRepository';
export const finalizerName = 'signet.dev/finalizer';
export const requestedAtAnnotation = 'reconcile.signet.dev/requestedAt';
export const shardLabel = 'signet.dev/shard';

export const verifyModes = ['HEAD', 'Tag', 'TagAndHEAD', 'Range'] as const;
export type VerifyMode = (typeof verifyModes)[number];
export const driftModes = ['Revert', 'Report', 'Deny'] as const;
export type DriftMode = (typeof driftModes)[number];
/** The alert kinds a GitRepository can subscribe to: the notifier's own list. */
export const alertEventKinds = alertKinds;
export type AlertEventKind = AlertKind;
export const referenceKinds = ['Secret', 'ConfigMap'] as const;
export type ReferenceKind = (typeof referenceKinds)[number];

export const defaults = {
  interval: '5m',
  timeout: '60s',
  path: './',
  verifyMode: 'HEAD' as VerifyMode,
  driftMode: 'Revert' as DriftMode,
  bundlePath: '.signet/provenance.sigstore.json',
  predicateTypes: ['https://slsa.dev/provenance/v1'],
};

export type GitRef =
  | { readonly branch: string }
  | { readonly tag: string }
  | { readonly semver: string }
  | { readonly commit: string };

export interface KeylessIdentity {
  readonly issuer: string;
  readonly subject?: string;
  readonly subjectRegExp?: string;
}

export interface LocalReference {
  readonly name: string;
}

export interface TypedReference {
  readonly kind: ReferenceKind;
  readonly name: string;
}

export interface ProvenanceSpec {
  /** Relative to spec.path. */
  readonly bundlePath: string;
  readonly predicateTypes: readonly string[];
  readonly builderIds: readonly string[];
  readonly keyless: readonly KeylessIdentity[];
  readonly keysRef?: TypedReference;
}

/** One entry of spec.verify.images: which images it covers and who must have signed them (docs/images.md). */
export interface ImagePolicySpec {
  /** Image reference globs (`*` within a path segment, `**` across segments), matched against the normalised name. */
  readonly match: readonly string[];
  readonly keyless: readonly KeylessIdentity[];
  /** cosign public keys (PEM), every value of the Secret or ConfigMap. */
  readonly keysRef?: TypedReference;
  /** Required in-toto predicate types, each attested with the same trust. */
  readonly attestations: readonly { readonly predicateType: string }[];
}

export interface VerifySpec {
  readonly mode: VerifyMode;
  /** Set: every image of a rendered revision must match one policy and verify (default deny). */
  readonly images?: readonly ImagePolicySpec[];
  /** A kubernetes.io/dockerconfigjson Secret with the registry credentials (and optionally ca.crt). */
  readonly imagePullSecretRef?: LocalReference;
  readonly signersRef?: TypedReference;
  readonly matchCommitter: boolean;
  readonly allowRollback: boolean;
  readonly keyless: readonly KeylessIdentity[];
  readonly trustedRootRef?: LocalReference;
  readonly provenance?: ProvenanceSpec;
}

export interface SlackAlertSpec {
  readonly secretRef: LocalReference;
  readonly events: readonly AlertEventKind[];
}

/** spec.helm: render the chart as `helm template` (docs/helm.md). Paths are normalised, from the repository root. */
export interface HelmSpec {
  /** The chart's directory; default spec.path. */
  readonly chart: string;
  /** .Release.Name; default the GitRepository's name. */
  readonly releaseName: string;
  readonly valuesFiles: readonly string[];
  /** Inline values, merged after valuesFiles. */
  readonly values: Readonly<Record<string, unknown>>;
  readonly includeCRDs: boolean;
}

export interface GitRepositorySpec {
  readonly url: string;
  readonly insecure: boolean;
  readonly ref: GitRef;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Normalised: no leading `./`, no trailing `/`; '' is the repository root. */
  readonly path: string;
  readonly secretRef?: LocalReference;
  readonly suspend: boolean;
  readonly verify: VerifySpec;
  readonly prune: boolean;
  readonly targetNamespace?: string;
  readonly force: boolean;
  readonly serviceAccountName?: string;
  readonly drift: { readonly mode: DriftMode };
  readonly alerts: { readonly slack?: SlackAlertSpec };
  readonly helm?: HelmSpec;
}

export interface GitRepositoryMeta {
  readonly name: string;
  readonly namespace: string;
  readonly uid?: string;
  readonly generation: number;
  readonly resourceVersion?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly finalizers: readonly string[];
  readonly deletionTimestamp?: string;
}

export interface GitRepository {
  readonly metadata: GitRepositoryMeta;
  readonly spec: GitRepositorySpec;
  /** Status is read as written by Signet; see status.ts for its shape. */
  readonly status: Readonly<Record<string, unknown>>;
}

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export class SpecValidationError extends Error {
  override readonly name = 'SpecValidationError';
  readonly code = 'InvalidSpec' as const;
  readonly fields: readonly FieldError[];
  constructor(fields: readonly FieldError[]) {
    super(fields.map((f) => `${f.field}: ${f.message}`).join('; '));
    this.fields = fields;
  }
}

type Json = Record<string, unknown>;

/**
 * Every Secret/ConfigMap reference of a GitRepository (field path from the object root). All are
 * local to the GitRepository's namespace; the CRD refuses a `namespace` key in each with a CEL rule
 * carrying crossNamespaceRefMessage (test/api checks that the two lists agree).
 */
export const localReferenceFields = [
  'spec.secretRef',
  'spec.verify.signersRef',
  'spec.verify.trustedRootRef',
  'spec.verify.provenance.keysRef',
  'spec.verify.imagePullSecretRef',
  'spec.alerts.slack.secretRef',
] as const;

/** Why a reference with a `namespace` is refused; the same text as the CRD's CEL rule message. */
export function crossNamespaceRefMessage(field: string): string {
  return `references are namespace-local: a GitRepository may only use Secrets/ConfigMaps in its own namespace; remove ${field}.namespace`;
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Collects field errors while reading typed values out of untrusted JSON. */
class Reader {
  readonly errors: FieldError[] = [];

  fail(field: string, message: string): void {
    this.errors.push({ field, message });
  }

  object(value: unknown, field: string, required = false): Json | undefined {
    if (value === undefined || value === null) {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (!isRecord(value)) {
      this.fail(field, 'must be an object');
      return undefined;
    }
    return value;
  }

  string(
    value: unknown,
    field: string,
    options: { required?: boolean; max?: number } = {},
  ): string | undefined {
    if (value === undefined || value === null || value === '') {
      if (options.required) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof value !== 'string') {
      this.fail(field, 'must be a string');
      return undefined;
    }
    if (value.length > (options.max ?? 2_048)) {
      this.fail(field, `must be at most ${options.max ?? 2_048} characters`);
      return undefined;
    }
    return value;
  }

  boolean(value: unknown, field: string, fallback: boolean): boolean {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') {
      this.fail(field, 'must be true or false');
      return fallback;
    }
    return value;
  }

  enumOf<T extends string>(value: unknown, field: string, allowed: readonly T[], fallback: T): T {
    if (value === undefined || value === null || value === '') return fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(field, `must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return value as T;
  }

  duration(value: unknown, field: string, fallback: string): number {
    const text = this.string(value, field) ?? fallback;
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0) {
      this.fail(field, `"${text}" is not a duration like 30s, 5m or 1h (pattern ${durationPattern})`);
      return parseDuration(fallback) ?? 60_000;
    }
    return ms;
  }

  name(value: unknown, field: string, required: boolean): string | undefined {
    const text = this.string(value, field, { required, max: 253 });
    if (text !== undefined && !dns1123Subdomain.test(text)) {
      this.fail(field, `"${text}" is not a valid Kubernetes name`);
      return undefined;
    }
    return text;
  }

  stringList(value: unknown, field: string): string[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.fail(field, 'must be a list of strings');
      return [];
    }
    return value.flatMap((item, index) => {
      const text = this.string(item, `${field}[${index}]`, { required: true });
      return text === undefined ? [] : [text];
    });
  }

  /** References are namespace-local: a `namespace` key is refused, never ignored (see crossNamespaceRefMessage). */
  private refusesNamespace(ref: Json, field: string): boolean {
    if (ref.namespace === undefined) return false;
    this.fail(`${field}.namespace`, crossNamespaceRefMessage(field));
    return true;
  }

  localRef(value: unknown, field: string): LocalReference | undefined {
    const ref = this.object(value, field);
    if (ref === undefined) return undefined;
    const crossNamespace = this.refusesNamespace(ref, field);
    const name = this.name(ref.name, `${field}.name`, true);
    return name === undefined || crossNamespace ? undefined : { name };
  }

  typedRef(value: unknown, field: string): TypedReference | undefined {
    const ref = this.object(value, field);
    if (ref === undefined) return undefined;
    const crossNamespace = this.refusesNamespace(ref, field);
    const kind = this.enumOf(ref.kind, `${field}.kind`, referenceKinds, 'Secret');
    const name = this.name(ref.name, `${field}.name`, true);
    return name === undefined || crossNamespace ? undefined : { kind, name };
  }

  keyless(value: unknown, field: string): KeylessIdentity[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.fail(field, 'must be a list of {issuer, subject | subjectRegExp}');
      return [];
    }
    return value.flatMap((item, index) => {
      const at = `${field}[${index}]`;
      const identity = this.object(item, at, true);
      if (identity === undefined) return [];
      const issuer = this.string(identity.issuer, `${at}.issuer`, { required: true });
      const subject = this.string(identity.subject, `${at}.subject`);
      const subjectRegExp = this.string(identity.subjectRegExp, `${at}.subjectRegExp`);
      if ((subject === undefined) === (subjectRegExp === undefined)) {
        this.fail(at, 'exactly one of subject, subjectRegExp must be set');
        return [];
      }
      if (subjectRegExp !== undefined) {
        try {
          new RegExp(subjectRegExp);
        } catch {
          this.fail(`${at}.subjectRegExp`, 'is not a valid regular expression');
          return [];
        }
      }
      if (issuer === undefined) return [];
      return [subject === undefined ? { issuer, subjectRegExp: subjectRegExp ?? '' } : { issuer, subject }];
    });
  }
}

/** Normalises spec.path; refuses absolute paths and `..` segments. */
export function normaliseRepoPath(path: string): string | undefined {
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0')) return undefined;
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return undefined;
  return segments.join('/');
}

function parseRef(reader: Reader, value: unknown): GitRef {
  const ref = reader.object(value, 'spec.ref', true) ?? {};
  const set = (['branch', 'tag', 'semver', 'commit'] as const).filter(
    (key) => ref[key] !== undefined && ref[key] !== '',
  );
  if (set.length !== 1) {
    reader.fail('spec.ref', 'exactly one of branch, tag, semver, commit must be set');
    return { branch: 'main' };
  }
  const key = set[0] ?? 'branch';
  const text = reader.string(ref[key], `spec.ref.${key}`, { required: true, max: 255 }) ?? '';
  if (key === 'commit' && !/^[0-9a-f]{40}$/.test(text)) {
    reader.fail('spec.ref.commit', 'must be a full 40-character lowercase hex SHA-1');
  }
  if (key === 'semver' && text !== '' && semver.validRange(text) === null) {
    reader.fail('spec.ref.semver', `"${text}" is not a valid semver range (e.g. ">=1.2.0 <2.0.0", "^1.2")`);
  }
  if ((key === 'branch' || key === 'tag') && (/\.\.|[\s~^:?*[\\]/.test(text) || text.startsWith('-'))) {
    reader.fail(`spec.ref.${key}`, `"${text}" is not a valid Git ref name`);
  }
  switch (key) {
    case 'branch':
      return { branch: text };
    case 'tag':
      return { tag: text };
    case 'semver':
      return { semver: text };
    case 'commit':
      return { commit: text };
  }
}

export const maxImagePolicies = 64;
export const maxImageGlobs = 64;
/** Characters of an image glob: a reference's own characters plus `*`. */
const imageGlobPattern = /^[a-z0-9._:*/-]+$/;

function parseImagePolicies(reader: Reader, value: unknown): ImagePolicySpec[] | undefined {
  if (value === undefined || value === null) return undefined;
  const field = 'spec.verify.images';
  if (!Array.isArray(value)) {
    reader.fail(field, 'must be a list of {match, keyless, keysRef, attestations}');
    return undefined;
  }
  if (value.length > maxImagePolicies) reader.fail(field, `must have at most ${maxImagePolicies} policies`);
  return value.slice(0, maxImagePolicies).flatMap((item, index) => {
    const at = `${field}[${index}]`;
    const policy = reader.object(item, at, true);
    if (policy === undefined) return [];
    const match = reader.stringList(policy.match, `${at}.match`);
    if (match.length === 0) reader.fail(`${at}.match`, 'must list at least one image glob');
    if (match.length > maxImageGlobs) reader.fail(`${at}.match`, `must have at most ${maxImageGlobs} globs`);
    match.forEach((glob, i) => {
      if (!imageGlobPattern.test(glob))
        reader.fail(
          `${at}.match[${i}]`,
          `"${glob}" is not an image glob (lowercase registry/repository characters and *, e.g. registry.example.com/team/*)`,
        );
    });
    const keyless = reader.keyless(policy.keyless, `${at}.keyless`);
    const keysRef = reader.typedRef(policy.keysRef, `${at}.keysRef`);
    const keysRefGiven = policy.keysRef !== undefined && policy.keysRef !== null;
    if (keyless.length === 0 && !keysRefGiven)
      reader.fail(at, 'at least one of keyless or keysRef must be set');
    const attestations = parseAttestations(reader, policy.attestations, `${at}.attestations`);
    return [{ match, keyless, attestations, ...(keysRef === undefined ? {} : { keysRef }) }];
  });
}

function parseAttestations(reader: Reader, value: unknown, field: string): { predicateType: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    reader.fail(field, 'must be a list of {predicateType}');
    return [];
  }
  return value.flatMap((item, index) => {
    const entry = reader.object(item, `${field}[${index}]`, true);
    const predicateType = reader.string(entry?.predicateType, `${field}[${index}].predicateType`, {
      required: entry !== undefined,
    });
    return predicateType === undefined ? [] : [{ predicateType }];
  });
}

function parseVerify(reader: Reader, value: unknown): VerifySpec {
  const verify = reader.object(value, 'spec.verify', true) ?? {};
  const signersRef = reader.typedRef(verify.signersRef, 'spec.verify.signersRef');
  const keyless = reader.keyless(verify.keyless, 'spec.verify.keyless');
  // The raw value: a signersRef refused for its own fields is reported there, not as missing too.
  if ((verify.signersRef === undefined || verify.signersRef === null) && keyless.length === 0) {
    reader.fail(
      'spec.verify',
      'at least one of signersRef or keyless must be set: Signet applies nothing whose origin it cannot prove',
    );
  }
  const trustedRootRef = reader.localRef(verify.trustedRootRef, 'spec.verify.trustedRootRef');
  const provenanceObject = reader.object(verify.provenance, 'spec.verify.provenance');
  let provenance: ProvenanceSpec | undefined;
  if (provenanceObject !== undefined) {
    const bundlePath =
      reader.string(provenanceObject.bundlePath, 'spec.verify.provenance.bundlePath') ?? defaults.bundlePath;
    const bundlePathRefusal = bundlePathProblem(bundlePath);
    if (bundlePathRefusal !== undefined) {
      reader.fail('spec.verify.provenance.bundlePath', bundlePathRefusal);
    }
    const predicateTypes = reader.stringList(
      provenanceObject.predicateTypes,
      'spec.verify.provenance.predicateTypes',
    );
    const provenanceKeyless = reader.keyless(provenanceObject.keyless, 'spec.verify.provenance.keyless');
    const keysRef = reader.typedRef(provenanceObject.keysRef, 'spec.verify.provenance.keysRef');
    const keysRefGiven = provenanceObject.keysRef !== undefined && provenanceObject.keysRef !== null;
    if (provenanceKeyless.length === 0 && !keysRefGiven) {
      reader.fail('spec.verify.provenance', 'at least one of keyless or keysRef must be set');
    }
    provenance = {
      bundlePath: bundlePathRefusal === undefined ? bundlePath : defaults.bundlePath,
      predicateTypes: predicateTypes.length > 0 ? predicateTypes : defaults.predicateTypes,
      builderIds: reader.stringList(provenanceObject.builderIds, 'spec.verify.provenance.builderIds'),
      keyless: provenanceKeyless,
      ...(keysRef === undefined ? {} : { keysRef }),
    };
  }
  const images = parseImagePolicies(reader, verify.images);
  const imagePullSecretRef = reader.localRef(verify.imagePullSecretRef, 'spec.verify.imagePullSecretRef');
  return {
    mode: reader.enumOf(verify.mode, 'spec.verify.mode', verifyModes, defaults.verifyMode),
    ...(images === undefined ? {} : { images }),
    ...(imagePullSecretRef === undefined ? {} : { imagePullSecretRef }),
    matchCommitter: reader.boolean(verify.matchCommitter, 'spec.verify.matchCommitter', false),
    allowRollback: reader.boolean(verify.allowRollback, 'spec.verify.allowRollback', false),
    keyless,
    ...(signersRef === undefined ? {} : { signersRef }),
    ...(trustedRootRef === undefined ? {} : { trustedRootRef }),
    ...(provenance === undefined ? {} : { provenance }),
  };
}

function parseAlerts(reader: Reader, value: unknown): GitRepositorySpec['alerts'] {
  const alerts = reader.object(value, 'spec.alerts');
  const slack = reader.object(alerts?.slack, 'spec.alerts.slack');
  if (slack === undefined) return {};
  const secretRef = reader.localRef(slack.secretRef, 'spec.alerts.slack.secretRef');
  if (secretRef === undefined) {
    if (slack.secretRef === undefined) reader.fail('spec.alerts.slack.secretRef', 'is required');
    return {};
  }
  const listed = reader.stringList(slack.events, 'spec.alerts.slack.events');
  const events = listed.filter((event): event is AlertEventKind => {
    const known = (alertEventKinds as readonly string[]).includes(event);
    if (!known)
      reader.fail(
        'spec.alerts.slack.events',
        `unknown event "${event}"; one of ${alertEventKinds.join(', ')}`,
      );
    return known;
  });
  return { slack: { secretRef, events: events.length > 0 ? events : [...alertEventKinds] } };
}

/** Helm's own rule for release names (chartutil.ValidateReleaseName): a DNS-1123 subdomain of at most 53. */
const helmReleaseName = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const helmReleaseNameMax = 53;

function parseHelm(reader: Reader, value: unknown, path: string, name: string): HelmSpec | undefined {
  const helm = reader.object(value, 'spec.helm');
  if (helm === undefined) return undefined;
  const repoPath = (raw: string | undefined, field: string): string | undefined => {
    if (raw === undefined) return undefined;
    const normal = normaliseRepoPath(raw);
    if (normal === undefined)
      reader.fail(field, 'must be a relative path inside the repository, without ".."');
    return normal;
  };
  const chart = repoPath(reader.string(helm.chart, 'spec.helm.chart', { max: 1024 }), 'spec.helm.chart');
  const explicitName = reader.string(helm.releaseName, 'spec.helm.releaseName', { max: 253 });
  const releaseName = explicitName ?? name;
  if (!helmReleaseName.test(releaseName) || releaseName.length > helmReleaseNameMax) {
    reader.fail(
      'spec.helm.releaseName',
      explicitName === undefined
        ? `the GitRepository's name "${name}" is not a valid Helm release name (DNS-1123, at most ${helmReleaseNameMax} characters): set spec.helm.releaseName`
        : `"${releaseName}" is not a valid Helm release name (DNS-1123, at most ${helmReleaseNameMax} characters)`,
    );
  }
  const valuesFiles = reader.stringList(helm.valuesFiles, 'spec.helm.valuesFiles').flatMap((file, index) => {
    const field = `spec.helm.valuesFiles[${index}]`;
    const normal = repoPath(file, field);
    if (normal === '') reader.fail(field, 'must name a file, not the repository root');
    return normal === undefined || normal === '' ? [] : [normal];
  });
  const values = reader.object(helm.values, 'spec.helm.values') ?? {};
  return {
    chart: chart ?? path,
    releaseName,
    valuesFiles,
    values,
    includeCRDs: reader.boolean(helm.includeCRDs, 'spec.helm.includeCRDs', true),
  };
}

function parseMetadata(
  reader: Reader,
  value: unknown,
  defaultNamespace: string | undefined,
): GitRepositoryMeta {
  const metadata = reader.object(value, 'metadata', true) ?? {};
  const name = reader.name(metadata.name, 'metadata.name', true) ?? '';
  const namespace = reader.name(metadata.namespace ?? defaultNamespace, 'metadata.namespace', true) ?? '';
  const stringMap = (input: unknown): Record<string, string> =>
    isRecord(input)
      ? Object.fromEntries(
          Object.entries(input).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
        )
      : {};
  return {
    name,
    namespace,
    generation: typeof metadata.generation === 'number' ? metadata.generation : 0,
    labels: stringMap(metadata.labels),
    annotations: stringMap(metadata.annotations),
    finalizers: Array.isArray(metadata.finalizers)
      ? metadata.finalizers.filter((f): f is string => typeof f === 'string')
      : [],
    ...(typeof metadata.uid === 'string' ? { uid: metadata.uid } : {}),
    ...(typeof metadata.resourceVersion === 'string' ? { resourceVersion: metadata.resourceVersion } : {}),
    ...(typeof metadata.deletionTimestamp === 'string'
      ? { deletionTimestamp: metadata.deletionTimestamp }
      : {}),
  };
}

/** Parses, defaults and validates a GitRepository; throws SpecValidationError naming every bad field. */
export function parseGitRepository(
  input: unknown,
  options: { defaultNamespace?: string } = {},
): GitRepository {
  const reader = new Reader();
  const object = reader.object(input, '(root)', true) ?? {};
  if (object.apiVersion !== apiVersion) reader.fail('apiVersion', `must be ${apiVersion}`);
  if (object.kind !== gitRepositoryKind) reader.fail('kind', `must be ${gitRepositoryKind}`);
  const metadata = parseMetadata(reader, object.metadata, options.defaultNamespace);
  const spec = reader.object(object.spec, 'spec', true) ?? {};

  const url = reader.string(spec.url, 'spec.url', { required: true }) ?? '';
  const insecure = reader.boolean(spec.insecure, 'spec.insecure', false);
  if (url !== '') {
    const parsed = parseGitUrl(url);
    if (!parsed.ok) {
      reader.fail('spec.url', parsed.reason);
    } else if (parsed.url.kind === 'http' && !insecure) {
      reader.fail(
        'spec.url',
        'http:// is refused: use https:// or ssh://, or set spec.insecure: true for a trusted local server',
      );
    }
  }
  const rawPath = reader.string(spec.path, 'spec.path') ?? defaults.path;
  const path = normaliseRepoPath(rawPath);
  if (path === undefined)
    reader.fail('spec.path', 'must be a relative path inside the repository, without ".."');

  const targetNamespace =
    spec.targetNamespace === undefined
      ? undefined
      : reader.name(spec.targetNamespace, 'spec.targetNamespace', false);
  if (targetNamespace !== undefined && !dns1123Label.test(targetNamespace)) {
    reader.fail('spec.targetNamespace', 'must be a DNS-1123 label');
  }
  const serviceAccountName = reader.name(spec.serviceAccountName, 'spec.serviceAccountName', false);
  const drift = reader.object(spec.drift, 'spec.drift') ?? {};
  const secretRef = reader.localRef(spec.secretRef, 'spec.secretRef');
  const helm = parseHelm(reader, spec.helm, path ?? '', metadata.name);

  const result: GitRepository = {
    metadata,
    spec: {
      url,
      insecure,
      ref: parseRef(reader, spec.ref),
      intervalMs: reader.duration(spec.interval, 'spec.interval', defaults.interval),
      timeoutMs: reader.duration(spec.timeout, 'spec.timeout', defaults.timeout),
      path: path ?? '',
      suspend: reader.boolean(spec.suspend, 'spec.suspend', false),
      verify: parseVerify(reader, spec.verify),
      prune: reader.boolean(spec.prune, 'spec.prune', true),
      force: reader.boolean(spec.force, 'spec.force', false),
      drift: { mode: reader.enumOf(drift.mode, 'spec.drift.mode', driftModes, defaults.driftMode) },
      alerts: parseAlerts(reader, spec.alerts),
      ...(helm === undefined ? {} : { helm }),
      ...(secretRef === undefined ? {} : { secretRef }),
      ...(targetNamespace === undefined ? {} : { targetNamespace }),
      ...(serviceAccountName === undefined ? {} : { serviceAccountName }),
    },
    status: isRecord(object.status) ? object.status : {},
  };
  if (reader.errors.length > 0) throw new SpecValidationError(reader.errors);
  return result;
}

/** The ref name used in revisions (`main@sha1:…`). */
export function refName(ref: GitRef): string | undefined {
  if ('branch' in ref) return ref.branch;
  if ('tag' in ref) return ref.tag;
  if ('semver' in ref) return undefined;
  return undefined;
}

export function objectKeyOf(repo: Pick<GitRepository, 'metadata'>): string {
  return `${repo.metadata.namespace}/${repo.metadata.name}`;
}
