// The GitRepository API as the real kube-apiserver serves it from crds/signet.dev_gitrepositories.yaml:
// each CEL rule refuses a violating object with 422 and the rule's contract message (server-side
// dry-run, so nothing is stored), a valid variant of each is admitted, and discovery shows the short
// name, category and printer columns that `kubectl get gitrepo` relies on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGitRepository, SpecValidationError } from '../src/api/gitrepository.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { KubeApiError } from '../src/kube/errors.ts';
import type { JsonObject, KubeObject } from '../src/render/object.ts';
import { useTestNamespace } from './support/namespace.ts';
import { adminClient, installCrd } from './support/signet.ts';

const ns = useTestNamespace('signet-api');
let admin: KubeClient;

beforeAll(async () => {
  admin = await adminClient();
  await installCrd(admin);
}, 60_000);

/** The refusals as the API server words them, printed at the end. */
const observed: Record<string, string> = {};

afterAll(async () => {
  console.log(`api.test.ts refusals: ${JSON.stringify(observed, null, 2)}`);
  await admin?.close();
});

const baseSpec = {
  url: 'https://git.example.com/platform.git',
  ref: { branch: 'main' },
  verify: { signersRef: { kind: 'ConfigMap', name: 'signers' } },
};

function gitRepository(name: string, spec: JsonObject): KubeObject {
  return {
    apiVersion: 'signet.dev/v1alpha1',
    kind: 'GitRepository',
    metadata: { name, namespace: ns.name },
    spec: { ...baseSpec, ...spec },
  };
}

const ref = (name: string) => ({
  apiVersion: 'signet.dev/v1alpha1',
  kind: 'GitRepository',
  name,
  namespace: ns.name,
});

/** Server-side apply with dryRun=All: the refusal, or undefined when the server admitted the object. */
async function dryRun(object: KubeObject): Promise<KubeApiError | KubeObject> {
  return admin.apply(object, { fieldManager: 'e2e', dryRun: true }).then(
    (result) => result.object,
    (error: unknown) => {
      if (error instanceof KubeApiError) return error;
      throw error;
    },
  );
}

interface Violation {
  readonly name: string;
  readonly spec: JsonObject;
  /** The field the server names (the rule's fieldPath, or the object carrying the rule). */
  readonly field: string;
  readonly message: string;
}

const exactlyOneRef = 'exactly one of branch, tag, semver, commit must be set';
const positiveDuration = (field: string) =>
  `${field} must be a positive Go duration such as 30s, 5m or 1h30m`;
const urlRuleMessage =
  'spec.url must be https://, ssh://[user@]host[:port]/path or [user@]host:path (http:// only with spec.insecure: true)';

const violations: readonly Violation[] = [
  {
    name: 'two ref fields',
    spec: { ref: { branch: 'main', tag: 'v1.0.0' } },
    field: 'spec.ref',
    message: exactlyOneRef,
  },
  {
    name: 'all four ref fields',
    spec: { ref: { branch: 'main', tag: 'v1', semver: '^1', commit: 'a'.repeat(40) } },
    field: 'spec.ref',
    message: exactlyOneRef,
  },
  { name: 'no ref field', spec: { ref: {} }, field: 'spec.ref', message: exactlyOneRef },
  {
    name: 'a zero interval',
    spec: { interval: '0s' },
    field: 'spec.interval',
    message: positiveDuration('spec.interval'),
  },
  {
    name: 'a zero timeout',
    spec: { timeout: '0ms' },
    field: 'spec.timeout',
    message: positiveDuration('spec.timeout'),
  },
  {
    name: 'an ftp:// URL',
    spec: { url: 'ftp://git.example.com/platform.git' },
    field: 'spec.url',
    message: urlRuleMessage,
  },
  {
    name: 'http:// without insecure',
    spec: { url: 'http://git.example.com/platform.git' },
    field: 'spec.url',
    message: urlRuleMessage,
  },
  {
    name: 'http:// with insecure: false',
    spec: { url: 'http://git.example.com/platform.git', insecure: false },
    field: 'spec.url',
    message: urlRuleMessage,
  },
  {
    name: 'an absolute path',
    spec: { path: '/etc/kubernetes' },
    field: 'spec.path',
    message: "spec.path must be relative and must not contain '..'",
  },
  {
    name: 'no signer at all',
    spec: { verify: { mode: 'HEAD' } },
    field: 'spec.verify',
    message: 'at least one of signersRef or keyless must be set',
  },
  {
    name: 'a keyless identity with both subject and subjectRegExp',
    spec: {
      verify: {
        keyless: [
          { issuer: 'https://token.actions.githubusercontent.com', subject: 'a', subjectRegExp: 'a.*' },
        ],
      },
    },
    field: 'spec.verify.keyless[0]',
    message: 'exactly one of subject, subjectRegExp must be set',
  },
  {
    name: 'a keyless identity with neither subject nor subjectRegExp (it would trust the whole issuer)',
    spec: { verify: { keyless: [{ issuer: 'https://token.actions.githubusercontent.com' }] } },
    field: 'spec.verify.keyless[0]',
    message: 'exactly one of subject, subjectRegExp must be set',
  },
  {
    name: 'provenance without any signer',
    spec: {
      verify: { ...baseSpec.verify, provenance: { predicateTypes: ['https://slsa.dev/provenance/v1'] } },
    },
    field: 'spec.verify.provenance',
    message: 'at least one of keyless or keysRef must be set',
  },
  {
    name: 'an image policy without any signer (every image it matches would pass unchecked)',
    spec: { verify: { ...baseSpec.verify, images: [{ match: ['ghcr.io/acme/*'] }] } },
    field: 'spec.verify.images[0]',
    message: 'at least one of keyless or keysRef must be set',
  },
  {
    name: 'an image glob with characters no image reference has',
    spec: {
      verify: { ...baseSpec.verify, images: [{ match: ['GHCR.io/Acme app'], keysRef: { name: 'keys' } }] },
    },
    field: 'spec.verify.images[0].match[0]',
    message: 'image globs: lowercase registry/repository characters and *',
  },
  {
    name: 'an image keysRef in another namespace',
    spec: {
      verify: {
        ...baseSpec.verify,
        images: [{ match: ['ghcr.io/acme/*'], keysRef: { name: 'keys', namespace: 'kube-system' } }],
      },
    },
    field: 'spec.verify.images[0].keysRef.namespace',
    message: 'references are namespace-local',
  },
  ...['provenance.json', 'ci/bundle.yaml', '.signet/../deployment.yaml', './.signet/bundle.json'].map(
    (bundlePath) => ({
      name: `a provenance bundlePath ${bundlePath} (outside .signet/, it would be rendered as manifests)`,
      spec: { verify: { ...baseSpec.verify, provenance: { keysRef: { name: 'keys' }, bundlePath } } },
      field: 'spec.verify.provenance.bundlePath',
      message: 'bundlePath must be a file under .signet/',
    }),
  ),
];

describe('CEL rules of the GitRepository CRD on a real API server', () => {
  for (const [index, violation] of violations.entries()) {
    it(`${violation.name}: 422 with the contract message, nothing stored`, async () => {
      const name = `cel-${index}`;
      const result = await dryRun(gitRepository(name, violation.spec));
      expect(result, violation.name).toBeInstanceOf(KubeApiError);
      const error = result as KubeApiError;
      expect(error.status).toBe(422);
      expect(error.reason).toBe('Invalid');
      expect(error.serverMessage).toContain(`${violation.field}: `);
      expect(error.serverMessage).toContain(violation.message);
      observed[violation.name] = error.serverMessage;
      // The operator's parser refuses the same object, naming the same field.
      expect(() => parseGitRepository(gitRepository(name, violation.spec))).toThrow(SpecValidationError);
      expect(await admin.get(ref(name))).toBeUndefined();
    });
  }

  it('a malformed duration is refused too (by the schema pattern and the CEL rule)', async () => {
    const result = await dryRun(gitRepository('bad-duration', { interval: '5 minutes' }));
    expect(result).toBeInstanceOf(KubeApiError);
    expect((result as KubeApiError).status).toBe(422);
    expect((result as KubeApiError).serverMessage).toContain('spec.interval in body should match');
    // The CEL rule cannot convert it either and reports its contract message alongside.
    expect((result as KubeApiError).serverMessage).toContain(positiveDuration('spec.interval'));
    expect(() => parseGitRepository(gitRepository('bad-duration', { interval: '5 minutes' }))).toThrow(
      SpecValidationError,
    );
    observed['5 minutes'] = (result as KubeApiError).serverMessage;
  });

  it('http:// with insecure: true is admitted, with the documented defaults', async () => {
    const result = await dryRun(
      gitRepository('plain-http', { url: 'http://git.internal/platform.git', insecure: true }),
    );
    if (result instanceof KubeApiError) throw result;
    expect(result.spec).toMatchObject({
      url: 'http://git.internal/platform.git',
      insecure: true,
      interval: '5m',
      timeout: '60s',
      path: './',
      suspend: false,
      prune: true,
      verify: { mode: 'HEAD', allowRollback: false, matchCommitter: false },
    });
    expect(await admin.get(ref('plain-http'))).toBeUndefined();
  });

  it('each valid variant of the refused fields is admitted', async () => {
    const valid: JsonObject[] = [
      { ref: { tag: 'v1.0.0' } },
      { url: 'ssh://git@git.example.com/platform.git' },
      { url: 'ssh://deploy@[::1]:2222/srv/git/platform.git' },
      { url: 'git@git.example.com:platform.git' },
      { url: 'git@git.example.com:/srv/git/platform.git' },
      { url: 'git@[::1]:platform.git' },
      { ref: { semver: '>=1.2.0 <2.0.0' } },
      { ref: { commit: 'a'.repeat(40) } },
      { interval: '1h30m', timeout: '90s' },
      { path: 'clusters/prod' },
      { verify: { keyless: [{ issuer: 'https://accounts.google.com', subjectRegExp: '.*@acme\\.dev' }] } },
      { verify: { ...baseSpec.verify, provenance: { keysRef: { name: 'keys' } } } },
      {
        verify: {
          ...baseSpec.verify,
          imagePullSecretRef: { name: 'registry' },
          images: [
            { match: ['registry.example.com:5000/team/**', 'nginx'], keysRef: { name: 'keys' } },
            {
              match: ['ghcr.io/acme/*'],
              keyless: [{ issuer: 'https://token.actions.githubusercontent.com', subjectRegExp: '.*' }],
              attestations: [{ predicateType: 'https://slsa.dev/provenance/v1' }],
            },
          ],
        },
      },
      {
        verify: {
          ...baseSpec.verify,
          provenance: { keysRef: { name: 'keys' }, bundlePath: '.signet/ci/release.sigstore.json' },
        },
      },
    ];
    for (const [index, spec] of valid.entries()) {
      const result = await dryRun(gitRepository(`valid-${index}`, spec));
      if (result instanceof KubeApiError) throw new Error(`${JSON.stringify(spec)}: ${result.message}`);
    }
  });

  it('a bad semver range has no CEL rule: the API server admits it and the operator refuses it (Stalled, InvalidSpec)', async () => {
    // CEL has no semver-range library, so the CRD cannot check the range; the parser does, naming
    // the field, and the reconciler turns that into Stalled=True InvalidSpec.
    const object = gitRepository('bad-semver', { ref: { semver: 'not a range' } });
    expect(await dryRun(object)).not.toBeInstanceOf(KubeApiError);
    expect(() => parseGitRepository(object)).toThrow(
      'spec.ref.semver: "not a range" is not a valid semver range (e.g. ">=1.2.0 <2.0.0", "^1.2")',
    );
  });
});

describe('discovery and printer columns', () => {
  it('serves the short name gitrepo and the category signet', async () => {
    const response = await admin.request({ method: 'GET', path: '/apis/signet.dev/v1alpha1' });
    expect(response.status).toBe(200);
    const list = JSON.parse(response.body) as {
      resources: {
        name: string;
        kind: string;
        namespaced: boolean;
        shortNames?: string[];
        categories?: string[];
      }[];
    };
    expect(list.resources.find((r) => r.name === 'gitrepositories')).toMatchObject({
      kind: 'GitRepository',
      namespaced: true,
      shortNames: ['gitrepo'],
      categories: ['signet'],
    });
    expect(list.resources.map((r) => r.name)).toContain('gitrepositories/status');
  });

  it('prints Ready, Verified, Revision, Drifted and Age (and Status with -o wide) from status', async () => {
    const name = 'columns';
    await admin.create(gitRepository(name, {}));
    const now = new Date().toISOString();
    const condition = (type: string, status: string, message: string) => ({
      type,
      status,
      reason: status === 'True' ? 'Ok' : 'NotOk',
      message,
      lastTransitionTime: now,
    });
    await admin.patchStatus(ref(name), {
      lastAppliedRevision: `main@sha1:${'b'.repeat(40)}`,
      conditions: [
        condition('Ready', 'True', 'Applied revision main'),
        condition('Verified', 'True', 'verified HEAD'),
        condition('Drifted', 'False', 'live state matches'),
      ],
    } as never);
    const table = await admin.request({
      method: 'GET',
      path: `/apis/signet.dev/v1alpha1/namespaces/${ns.name}/gitrepositories/${name}`,
      headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    expect(table.status).toBe(200);
    const parsed = JSON.parse(table.body) as {
      kind: string;
      columnDefinitions: { name: string; priority: number }[];
      rows: { cells: unknown[] }[];
    };
    expect(parsed.kind).toBe('Table');
    expect(parsed.columnDefinitions.map((c) => [c.name, c.priority])).toEqual([
      ['Name', 0],
      ['Ready', 0],
      ['Verified', 0],
      ['Revision', 0],
      ['Drifted', 0],
      ['Age', 0],
      ['Status', 1],
    ]);
    const cells = parsed.rows[0]?.cells ?? [];
    expect(cells.slice(0, 5)).toEqual([name, 'True', 'True', `main@sha1:${'b'.repeat(40)}`, 'False']);
    expect(cells[5]).toMatch(/^\d+s$/);
    expect(cells[6]).toBe('Applied revision main');
    await admin.delete(ref(name));
  });
});
