import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { setAbnormal, setCondition } from '../../src/api/conditions.ts';
import { durationPattern, parseDuration } from '../../src/api/duration.ts';
import {
  alertEventKinds,
  crossNamespaceRefMessage,
  defaults,
  driftModes,
  localReferenceFields,
  parseGitRepository,
  referenceKinds,
  SpecValidationError,
  verifyModes,
} from '../../src/api/gitrepository.ts';
import { formatRevision, parseRevision } from '../../src/api/revision.ts';

function repo(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name: 'apps', namespace: 'team-a', generation: 3, ...metadata },
    spec: {
      url: 'https://git.example.com/apps.git',
      ref: { branch: 'main' },
      verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
      ...spec,
    },
  };
}

function fieldsOf(input: unknown): string[] {
  try {
    parseGitRepository(input);
  } catch (error) {
    if (error instanceof SpecValidationError) return error.fields.map((f) => f.field);
    throw error;
  }
  return [];
}

describe('parseGitRepository', () => {
  it('defaults every optional field', () => {
    const parsed = parseGitRepository(repo({}));
    expect(parsed.spec).toEqual({
      url: 'https://git.example.com/apps.git',
      insecure: false,
      ref: { branch: 'main' },
      intervalMs: 300_000,
      timeoutMs: 60_000,
      path: '',
      suspend: false,
      verify: {
        mode: 'HEAD',
        matchCommitter: false,
        allowRollback: false,
        keyless: [],
        signersRef: { kind: 'ConfigMap', name: 'signers' },
      },
      prune: true,
      force: false,
      drift: { mode: 'Revert' },
      alerts: {},
    });
    expect(parsed.metadata.generation).toBe(3);
  });

  it('names every invalid field at once', () => {
    const fields = fieldsOf(
      repo({
        url: 'http://git.example.com/apps.git',
        ref: { branch: 'main', tag: 'v1' },
        interval: '5 minutes',
        path: '../etc',
        verify: { mode: 'Strange' },
        drift: { mode: 'Ignore' },
        alerts: { slack: { secretRef: { name: 'hook' }, events: ['Everything'] } },
      }),
    );
    expect(fields).toEqual([
      'spec.url',
      'spec.path',
      'spec.ref',
      'spec.interval',
      'spec.verify',
      'spec.verify.mode',
      'spec.drift.mode',
      'spec.alerts.slack.events',
    ]);
  });

  it('accepts http only with insecure, and keyless-only verification', () => {
    const parsed = parseGitRepository(
      repo({
        url: 'http://127.0.0.1:8080/apps.git',
        insecure: true,
        verify: { mode: 'Range', keyless: [{ issuer: 'https://issuer', subjectRegExp: '.*@example.com' }] },
        path: './clusters/prod/',
      }),
    );
    expect(parsed.spec.verify.mode).toBe('Range');
    expect(parsed.spec.path).toBe('clusters/prod');
  });

  it('refuses a provenance bundlePath outside .signet/ (it would be rendered as manifests)', () => {
    const withBundle = (bundlePath: string) =>
      repo({
        verify: {
          signersRef: { kind: 'ConfigMap', name: 'signers' },
          provenance: { keysRef: { name: 'keys' }, bundlePath },
        },
      });
    for (const bad of [
      'provenance.json',
      'deploy.yaml',
      'ci/provenance.sigstore.json',
      'apps/.signet/provenance.yml',
      '.signet',
      '.signet/',
      '.signet/../deployment.yaml',
      './.signet/provenance.sigstore.json',
      '.signet//provenance.sigstore.json',
      '/.signet/provenance.sigstore.json',
      '.signet\\..\\x.json',
    ]) {
      expect(fieldsOf(withBundle(bad)), bad).toEqual(['spec.verify.provenance.bundlePath']);
    }
    expect(() => parseGitRepository(withBundle('deploy.yaml'))).toThrow(/must be a file under \.signet\//);
    for (const good of ['.signet/provenance.sigstore.json', '.signet/ci/release.sigstore.json']) {
      expect(parseGitRepository(withBundle(good)).spec.verify.provenance?.bundlePath).toBe(good);
    }
  });

  it('accepts ssh:// and scp-like URLs and refuses the same shapes the CRD pattern refuses', () => {
    const crd = parse(
      readFileSync(new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url), 'utf8'),
    );
    const pattern = new RegExp(
      crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.url.pattern,
    );
    for (const url of [
      'ssh://git@git.example.com/apps.git',
      'ssh://deploy@127.0.0.1:2222/srv/git/apps.git',
      'git@github.com:org/apps.git',
      'git@[::1]:apps.git',
    ]) {
      expect(fieldsOf(repo({ url })), url).toEqual([]);
      expect(pattern.test(url), url).toBe(true);
    }
    for (const url of ['ssh://git:pw@host/x.git', 'https://u:p@host/x.git', 'git@host:a b']) {
      expect(fieldsOf(repo({ url })), url).toEqual(['spec.url']);
      expect(pattern.test(url), url).toBe(false);
    }
    expect(fieldsOf(repo({ url: 'ftp://host/x.git' }))).toEqual(['spec.url']);
  });

  it('refuses credentials in the URL and a commit ref that is not a full SHA', () => {
    expect(fieldsOf(repo({ url: 'https://user:pw@git.example.com/x.git' }))).toEqual(['spec.url']);
    expect(fieldsOf(repo({ ref: { commit: 'abc123' } }))).toEqual(['spec.ref.commit']);
  });

  it('agrees with the CRD on enums and defaults', () => {
    const crd = parse(
      readFileSync(new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url), 'utf8'),
    );
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect(spec.verify.properties.mode.enum).toEqual([...verifyModes]);
    expect(spec.verify.properties.mode.default).toBe(defaults.verifyMode);
    expect(spec.drift.properties.mode.enum).toEqual([...driftModes]);
    expect(spec.drift.properties.mode.default).toBe(defaults.driftMode);
    expect(spec.alerts.properties.slack.properties.events.items.enum).toEqual([...alertEventKinds]);
    expect(spec.interval.default).toBe(defaults.interval);
    expect(spec.timeout.default).toBe(defaults.timeout);
    expect(spec.path.default).toBe(defaults.path);
    expect(spec.verify.properties.provenance.properties.bundlePath.default).toBe(defaults.bundlePath);
    expect(spec.verify.properties.signersRef.properties.kind.enum).toEqual([...referenceKinds]);
    expect(Object.keys(spec.ref.properties).sort()).toEqual(['branch', 'commit', 'semver', 'tag']);
    for (const field of ['interval', 'timeout']) {
      expect(spec[field].pattern).toBe(durationPattern);
      expect(spec[field]['x-kubernetes-validations'][0].rule).toBe("duration(self) > duration('0s')");
    }
    expect(spec.prune.default).toBe(true);
    expect(spec.force.default).toBe(false);
    expect(spec.suspend.default).toBe(false);
    expect(spec.insecure.default).toBe(false);
    expect(spec.verify.properties.allowRollback.default).toBe(false);
    const parsed = parseGitRepository(repo({}));
    expect(parsed.spec.prune).toBe(true);
    expect(parsed.spec.verify.allowRollback).toBe(false);
  });

  it('refuses a namespace in every Secret/ConfigMap reference, naming the field', () => {
    const withNamespace = (field: string): Record<string, unknown> => {
      const ref = { name: 'creds', namespace: 'other' };
      switch (field) {
        case 'spec.secretRef':
          return { secretRef: ref };
        case 'spec.verify.signersRef':
          return { verify: { signersRef: { kind: 'ConfigMap', ...ref } } };
        case 'spec.verify.trustedRootRef':
          return { verify: { signersRef: { kind: 'ConfigMap', name: 'signers' }, trustedRootRef: ref } };
        case 'spec.verify.provenance.keysRef':
          return {
            verify: {
              signersRef: { kind: 'ConfigMap', name: 'signers' },
              provenance: { keysRef: { kind: 'Secret', ...ref } },
            },
          };
        case 'spec.verify.imagePullSecretRef':
          return { verify: { signersRef: { kind: 'ConfigMap', name: 'signers' }, imagePullSecretRef: ref } };
        case 'spec.alerts.slack.secretRef':
          return { alerts: { slack: { secretRef: ref } } };
        default:
          throw new Error(`no fixture for ${field}`);
      }
    };
    for (const field of localReferenceFields) {
      let refused: unknown;
      try {
        parseGitRepository(repo(withNamespace(field)));
      } catch (error) {
        refused = error;
      }
      expect(refused, field).toBeInstanceOf(SpecValidationError);
      // Only the namespace is reported: the reference is not also called missing.
      expect((refused as SpecValidationError).fields).toEqual([
        { field: `${field}.namespace`, message: crossNamespaceRefMessage(field) },
      ]);
      expect((refused as Error).message).toBe(
        `${field}.namespace: references are namespace-local: a GitRepository may only use Secrets/ConfigMaps in its own namespace; remove ${field}.namespace`,
      );
    }
    // The GitRepository's own namespace spelled out is refused too: references carry no namespace.
    expect(fieldsOf(repo({ secretRef: { name: 'creds', namespace: 'team-a' } }))).toEqual([
      'spec.secretRef.namespace',
    ]);
  });

  it('agrees with the CRD: every reference has a namespace property refused by CEL with the parser message', () => {
    const crd = parse(
      readFileSync(new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url), 'utf8'),
    );
    interface Schema {
      type?: string;
      properties?: Record<string, Schema>;
      'x-kubernetes-validations'?: { rule: string; message: string; fieldPath?: string }[];
    }
    const root: Schema = crd.spec.versions[0].schema.openAPIV3Schema;
    // Every schema property named `…Ref` is a reference: find them all, so a new one cannot be missed.
    const found: string[] = [];
    const walk = (schema: Schema, path: string): void => {
      const properties = schema.properties ?? {};
      if (path.endsWith('Ref')) found.push(path);
      for (const [key, child] of Object.entries(properties))
        walk(child, path === '' ? key : `${path}.${key}`);
    };
    walk(root, '');
    expect(found.sort()).toEqual([...localReferenceFields].sort());
    for (const field of localReferenceFields) {
      const schema = field.split('.').reduce<Schema | undefined>((s, key) => s?.properties?.[key], root);
      expect(schema?.properties?.namespace?.type, field).toBe('string');
      expect(schema?.['x-kubernetes-validations'], field).toEqual([
        { rule: '!has(self.namespace)', message: crossNamespaceRefMessage(field), fieldPath: '.namespace' },
      ]);
    }
  });

  it('checks the semver range and names the field', () => {
    expect(parseGitRepository(repo({ ref: { semver: '>=1.2.0 <2.0.0' } })).spec.ref).toEqual({
      semver: '>=1.2.0 <2.0.0',
    });
    expect(fieldsOf(repo({ ref: { semver: 'not a range!' } }))).toEqual(['spec.ref.semver']);
  });

  it('says which ref fields clash, with the contract message', () => {
    try {
      parseGitRepository(repo({ ref: { branch: 'main', commit: 'a'.repeat(40) } }));
      expect.unreachable();
    } catch (error) {
      expect(String(error)).toContain('spec.ref: exactly one of branch, tag, semver, commit must be set');
    }
    expect(fieldsOf(repo({ ref: {} }))).toEqual(['spec.ref']);
    expect(fieldsOf(repo({ timeout: '0s' }))).toEqual(['spec.timeout']);
    expect(parseGitRepository(repo({ interval: '1m30s', timeout: '1.5s' })).spec).toMatchObject({
      intervalMs: 90_000,
      timeoutMs: 1_500,
    });
  });
});

describe('durations, revisions and conditions', () => {
  it('parses Go durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
  });

  it('formats and parses revisions', () => {
    const commit = 'a'.repeat(40);
    expect(formatRevision({ ref: 'main', commit })).toBe(`main@sha1:${commit}`);
    expect(formatRevision({ commit })).toBe(`sha1:${commit}`);
    expect(parseRevision(`v1.2.0@sha1:${commit}`)).toEqual({ ref: 'v1.2.0', commit });
    expect(parseRevision('garbage')).toBeUndefined();
  });

  it('keeps lastTransitionTime while the status holds and removes abnormal conditions when false', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const t1 = new Date('2026-01-01T00:05:00Z');
    let conditions = setCondition([], { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 1, t0);
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'False', reason: 'B', message: 'b' },
      2,
      t1,
    );
    expect(conditions[0]?.lastTransitionTime).toBe(t0.toISOString());
    expect(conditions[0]?.observedGeneration).toBe(2);
    conditions = setAbnormal(conditions, 'Stalled', { reason: 'InvalidSpec', message: 'x' }, 2, t1);
    expect(conditions.map((c) => c.type)).toEqual(['Ready', 'Stalled']);
    conditions = setAbnormal(conditions, 'Stalled', undefined, 2, t1);
    expect(conditions.map((c) => c.type)).toEqual(['Ready']);
  });
});
