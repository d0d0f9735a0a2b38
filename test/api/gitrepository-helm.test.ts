import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseGitRepository, SpecValidationError } from '../../src/api/gitrepository.ts';

function repo(spec: Record<string, unknown>, name = 'apps'): unknown {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name, namespace: 'team-a' },
    spec: {
      url: 'https://git.example.com/apps.git',
      ref: { branch: 'main' },
      verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
      ...spec,
    },
  };
}

function errorsOf(input: unknown): Record<string, string> {
  try {
    parseGitRepository(input);
  } catch (error) {
    if (error instanceof SpecValidationError)
      return Object.fromEntries(error.fields.map((f) => [f.field, f.message]));
    throw error;
  }
  return {};
}

describe('spec.helm', () => {
  it('is absent unless set', () => {
    expect(parseGitRepository(repo({})).spec.helm).toBeUndefined();
  });

  it('defaults chart to spec.path, releaseName to the name, includeCRDs to true', () => {
    const spec = parseGitRepository(repo({ path: './charts/web/', helm: {} })).spec;
    expect(spec.helm).toEqual({
      chart: 'charts/web',
      releaseName: 'apps',
      valuesFiles: [],
      values: {},
      includeCRDs: true,
    });
  });

  it('normalises chart and values files and keeps inline values', () => {
    const spec = parseGitRepository(
      repo({
        helm: {
          chart: './charts/web',
          releaseName: 'web',
          valuesFiles: ['values/base.yaml', './values/prod.yaml'],
          values: { replicas: 3, image: { tag: 'v2' } },
          includeCRDs: false,
        },
      }),
    ).spec;
    expect(spec.helm).toEqual({
      chart: 'charts/web',
      releaseName: 'web',
      valuesFiles: ['values/base.yaml', 'values/prod.yaml'],
      values: { replicas: 3, image: { tag: 'v2' } },
      includeCRDs: false,
    });
  });

  it('refuses paths leaving the repository, naming the field', () => {
    const errors = errorsOf(
      repo({ helm: { chart: '../other', valuesFiles: ['ok.yaml', '/etc/passwd', 'a/../../b', './'] } }),
    );
    expect(Object.keys(errors).sort()).toEqual([
      'spec.helm.chart',
      'spec.helm.valuesFiles[1]',
      'spec.helm.valuesFiles[2]',
      'spec.helm.valuesFiles[3]',
    ]);
    expect(errors['spec.helm.chart']).toMatch(/inside the repository/);
  });

  it('refuses bad release names and a default name Helm would refuse', () => {
    expect(Object.keys(errorsOf(repo({ helm: { releaseName: 'Web_1' } })))).toEqual([
      'spec.helm.releaseName',
    ]);
    const long = 'a'.repeat(60);
    const errors = errorsOf(repo({ helm: {} }, long));
    expect(errors['spec.helm.releaseName']).toMatch(/set spec.helm.releaseName/);
    expect(parseGitRepository(repo({ helm: { releaseName: 'web' } }, long)).spec.helm?.releaseName).toBe(
      'web',
    );
  });

  it('refuses wrong types, naming the field', () => {
    const errors = errorsOf(
      repo({ helm: { values: ['a'], includeCRDs: 'yes', valuesFiles: 'values.yaml' } }),
    );
    expect(Object.keys(errors).sort()).toEqual([
      'spec.helm.includeCRDs',
      'spec.helm.values',
      'spec.helm.valuesFiles',
    ]);
    expect(Object.keys(errorsOf(repo({ helm: 'web' })))).toEqual(['spec.helm']);
  });

  it('agrees with the CRD: fields, default, CEL rules naming the field', () => {
    const crd = parse(
      readFileSync(new URL('../../crds/signet.dev_gitrepositories.yaml', import.meta.url), 'utf8'),
    );
    const helm = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.helm;
    expect(Object.keys(helm.properties).sort()).toEqual([
      'chart',
      'includeCRDs',
      'releaseName',
      'values',
      'valuesFiles',
    ]);
    expect(helm.properties.includeCRDs.default).toBe(true);
    expect(helm.properties.releaseName.maxLength).toBe(53);
    expect(helm.properties.values['x-kubernetes-preserve-unknown-fields']).toBe(true);
    const rules = helm['x-kubernetes-validations'] as { message: string; fieldPath: string }[];
    expect(rules.map((r) => [r.fieldPath, r.message.split(' ')[0]])).toEqual([
      ['.chart', 'spec.helm.chart'],
      ['.valuesFiles', 'spec.helm.valuesFiles'],
    ]);
  });
});
