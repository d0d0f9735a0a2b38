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

  it('Discovery.capabilities reads /version, /api and /apis, fresh each time', async () => {
    const asked: string[] = [];
    const documents: Record<string, JsonObject> = { '/version': version, '/api': core, '/apis': groups };
    const discovery = new Discovery(async (path) => {
      asked.push(path);
      return documents[path];
    });
    expect((await discovery.capabilities()).apiVersions).toContain('apps/v1');
    await discovery.capabilities();
    expect(asked.sort()).toEqual(['/api', '/api', '/apis', '/apis', '/version', '/version']);
  });
});
