import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  configMapFiles,
  fleetFiles,
  fluxGitRepository,
  fluxKustomization,
  fluxTrustObjects,
  fluxUserAgents,
  kustomizationApplied,
  median,
  tallyAudit,
} from '../../bench/flux/objects.ts';

const spec = {
  namespace: 'flux-1000-r1',
  name: 'bench',
  url: 'https://127.0.0.1:4443/apps',
  caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  signerPublicKey: 'ssh-ed25519 AAAAC3Nza release@example.com',
  path: './deploy',
  interval: '10m',
  targetNamespace: 'flux-1000-r1',
};

function auditLine(fields: {
  id: string;
  agent: string;
  stage?: string;
  verb?: string;
  resource?: string;
  subresource?: string;
  code?: number;
  at?: string;
}): string {
  return JSON.stringify({
    auditID: fields.id,
    stage: fields.stage ?? 'ResponseComplete',
    verb: fields.verb ?? 'patch',
    userAgent: fields.agent,
    objectRef: { resource: fields.resource ?? 'configmaps', subresource: fields.subresource },
    responseStatus: fields.code === undefined ? undefined : { code: fields.code },
    requestReceivedTimestamp: fields.at ?? '2026-12-04T02:00:01.000000Z',
  });
}

describe('Flux objects', () => {
  it('fetch with the CA as ca.crt and verify HEAD against a .sshpub key, both by Secret name', () => {
    const [git, signers] = fluxTrustObjects(spec);
    const repository = fluxGitRepository(spec);
    expect(git?.stringData).toEqual({ 'ca.crt': spec.caPem });
    expect(signers?.stringData).toEqual({ 'release.sshpub': `${spec.signerPublicKey}\n` });
    expect(repository.spec).toMatchObject({
      url: spec.url,
      ref: { branch: 'main' },
      secretRef: { name: git?.metadata.name },
      verify: { mode: 'HEAD', secretRef: { name: signers?.metadata.name } },
    });
  });

  it('apply the path of that GitRepository into its own namespace with pruning', () => {
    expect(fluxKustomization(spec).spec).toMatchObject({
      path: './deploy',
      prune: true,
      targetNamespace: spec.namespace,
      sourceRef: { kind: 'GitRepository', name: spec.name },
    });
  });

  it('count as applied only with the revision and Ready=True', () => {
    const ready = [{ type: 'Ready', status: 'True' }];
    expect(
      kustomizationApplied({ lastAppliedRevision: 'main@sha1:abc', conditions: ready }, 'main@sha1:abc'),
    ).toBe(true);
    expect(
      kustomizationApplied({ lastAppliedRevision: 'main@sha1:old', conditions: ready }, 'main@sha1:abc'),
    ).toBe(false);
    expect(
      kustomizationApplied(
        { lastAppliedRevision: 'main@sha1:abc', conditions: [{ type: 'Ready', status: 'Unknown' }] },
        'main@sha1:abc',
      ),
    ).toBe(false);
    expect(kustomizationApplied({}, 'main@sha1:abc')).toBe(false);
  });
});

describe('configMapFiles', () => {
  it('writes count ConfigMaps, 100 a file, each with its index', () => {
    const files = configMapFiles(250);
    expect(Object.keys(files)).toEqual([
      'deploy/cm-00000.yaml',
      'deploy/cm-00100.yaml',
      'deploy/cm-00200.yaml',
    ]);
    const docs = Object.values(files).flatMap((text) => parseAllDocuments(text).map((d) => d.toJS()));
    expect(docs).toHaveLength(250);
    expect(docs[249]).toMatchObject({
      kind: 'ConfigMap',
      metadata: { name: 'cm-249' },
      data: { index: '249' },
    });
  });
});

describe('fleetFiles', () => {
  it('gives each tool its own path and namespace per app, with the four objects of the fleet', () => {
    const files = fleetFiles(3, 'flux');
    expect(Object.keys(files)).toEqual([
      'apps/flux/app-0/app.yaml',
      'apps/flux/app-1/app.yaml',
      'apps/flux/app-2/app.yaml',
    ]);
    const docs = parseAllDocuments(files['apps/flux/app-2/app.yaml'] ?? '').map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment']);
    expect(docs[0].metadata.name).toBe('flux-app-2');
    expect(docs.slice(1).every((d) => d.metadata.namespace === 'flux-app-2')).toBe(true);
    expect(Object.keys(fleetFiles(1, 'signet'))).toEqual(['apps/signet/app-0/app.yaml']);
  });
});

describe('tallyAudit', () => {
  it('counts each request once per auditID, by user-agent prefix, kind and 429', () => {
    const lines = [
      auditLine({
        id: 'a',
        agent: 'kustomize-controller/v0.0.0 (linux/amd64)',
        stage: 'ResponseStarted',
        verb: 'watch',
      }),
      auditLine({ id: 'a', agent: 'kustomize-controller/v0.0.0 (linux/amd64)', verb: 'watch' }),
      auditLine({ id: 'b', agent: 'kustomize-controller/v0.0.0 (linux/amd64)' }),
      auditLine({
        id: 'c',
        agent: 'source-controller/v0.0.0 (linux/amd64)',
        resource: 'gitrepositories',
        subresource: 'status',
        verb: 'update',
      }),
      auditLine({ id: 'd', agent: 'source-controller/v0.0.0', code: 429 }),
      auditLine({ id: 'e', agent: 'signet/0.1.0' }),
      'not json {"userAgent":"source-controller/',
    ];
    const tally = tallyAudit(lines, fluxUserAgents, 0);
    expect(tally.total).toBe(4);
    expect(tally.byAgent).toEqual({ 'kustomize-controller/': 2, 'source-controller/': 2 });
    expect(tally.byKind).toEqual({
      'watch configmaps': 1,
      'patch configmaps': 2,
      'update gitrepositories/status': 1,
    });
    expect(tally.throttled429).toBe(1);
    expect(tallyAudit(lines, ['signet/'], 0).total).toBe(1);
  });

  it('keeps only requests received inside the window', () => {
    const lines = [
      auditLine({ id: 'early', agent: 'signet/0.1.0', at: '2026-12-04T02:00:00.000Z' }),
      auditLine({ id: 'inside', agent: 'signet/0.1.0', at: '2026-12-04T02:00:05.000Z' }),
      auditLine({ id: 'late', agent: 'signet/0.1.0', at: '2026-12-04T02:00:10.000Z' }),
    ];
    const since = Date.parse('2026-12-04T02:00:01Z');
    const until = Date.parse('2026-12-04T02:00:09Z');
    expect(tallyAudit(lines, ['signet/'], since, until).total).toBe(1);
    expect(tallyAudit(lines, ['signet/'], since).total).toBe(2);
  });
});

describe('median', () => {
  it('is the middle value, the lower middle for an even count, NaN for none', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2);
    expect(median([])).toBeNaN();
  });
});
