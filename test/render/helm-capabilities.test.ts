// What Helm's .Capabilities is made of: the API server's /version, /api and /apis (Discovery).
import { describe, expect, it } from 'vitest';
import { Discovery, parseCapabilities } from '../../src/kube/discovery.ts';
import type { JsonObject } from '../../src/render/object.ts';

const version: JsonObject = { major: '1', minor: '36', gitVersion: 'v1.36.0' };
const core: JsonObject = { kind: 'APIVersions', versions: ['v1'] };
const groups: JsonObject = {
  kind: 'APIGroupList',
  groups: [
    { name: 'apps', versions: [{ groupVersion: 'apps/v1', version: 'v1' }] },
    {
      name: 'signet.dev',
      versions: [
        { groupVersion: 'signet.dev/v1alpha1', version: 'v1alpha1' },
        { groupVersion: 'signet.dev/v1beta1', version: 'v1beta1' },
      ],
    },
    { name: 'broken' },
  ],
};

describe('cluster capabilities', () => {
  it('lists the server version and every served group-version', () => {
    expect(parseCapabilities(version, core, groups)).toEqual({
      kubeVersion: 'v1.36.0',
      apiVersions: ['v1', 'apps/v1', 'signet.dev/v1alpha1', 'signet.dev/v1beta1'],
    });
  });

  it('fails closed without a server version', () => {
    expect(() => parseCapabilities(undefined, core, groups)).toThrow(/did not report its version/);
    expect(() => parseCapabilities({ gitVersion: '' }, core, groups)).toThrow(/gitVersion/);
  });

  it('Discovery.capabilities reads /version, /api and /apis fresh each time, and the kinds of each group-version once', async () => {
    const asked: string[] = [];
    const documents: Record<string, JsonObject> = {
      '/version': version,
      '/api': core,
      '/apis': groups,
      '/api/v1': { resources: [{ name: 'configmaps', kind: 'ConfigMap', namespaced: true }] },
      '/apis/apps/v1': {
        resources: [
          { name: 'deployments', kind: 'Deployment', namespaced: true },
          { name: 'deployments/status', kind: 'Deployment', namespaced: true },
        ],
      },
    };
    const discovery = new Discovery(async (path) => {
      asked.push(path);
      if (path === '/apis/signet.dev/v1beta1') throw new Error('503 service unavailable');
      return documents[path];
    });
    expect((await discovery.capabilities()).apiVersions).toEqual([
      'v1',
      'apps/v1',
      'signet.dev/v1alpha1',
      'signet.dev/v1beta1',
      'v1/ConfigMap',
      'apps/v1/Deployment',
    ]);
    await discovery.capabilities();
    // signet.dev documents are missing (undefined): asked again, never cached, never failing.
    expect(asked.sort()).toEqual([
      '/api',
      '/api',
      '/api/v1',
      '/apis',
      '/apis',
      '/apis/apps/v1',
      '/apis/signet.dev/v1alpha1',
      '/apis/signet.dev/v1alpha1',
      '/apis/signet.dev/v1beta1',
      '/apis/signet.dev/v1beta1',
      '/version',
      '/version',
    ]);
  });
});
