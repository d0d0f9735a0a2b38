import { describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import type { KubeObject } from '../../src/render/object.ts';
import type { RenderedObject } from '../../src/render/render.ts';
import { applyScope, type ScopeLookup } from '../../src/render/scope.ts';

function rendered(object: KubeObject, file = 'a.yaml'): RenderedObject {
  return { object, source: { file, documentIndex: 0 } };
}

const scopes: ScopeLookup = (apiVersion, kind) => {
  if (apiVersion === 'v1' && (kind === 'ConfigMap' || kind === 'Secret')) return 'Namespaced';
  if (apiVersion === 'v1' && kind === 'Namespace') return 'Cluster';
  if (apiVersion === 'rbac.authorization.k8s.io/v1' && kind === 'ClusterRole') return 'Cluster';
  return undefined;
};

describe('applyScope', () => {
  const cm = rendered({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'keep' } });
  const bare = rendered({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } });
  const role = rendered({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'r', namespace: 'stray' },
  });

  it('sets targetNamespace on namespaced objects only and strips it from cluster-scoped ones', () => {
    const out = applyScope([cm, bare, role], { targetNamespace: 'target' }, scopes);
    expect(out.map((o) => o.object.metadata.namespace)).toEqual(['target', 'target', undefined]);
    expect(cm.object.metadata.namespace).toBe('keep');
  });

  it('keeps namespaces without targetNamespace and defaults the missing ones', () => {
    const out = applyScope([cm, bare], { defaultNamespace: 'dflt' }, scopes);
    expect(out.map((o) => o.object.metadata.namespace)).toEqual(['keep', 'dflt']);
    expect(applyScope([bare], {}, scopes)[0]?.object.metadata.namespace).toBe('default');
  });

  it('learns the scope of custom kinds from CRDs in the same set', () => {
    const crd = rendered({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: { group: 'example.com', scope: 'Namespaced', names: { kind: 'Widget', plural: 'widgets' } },
    });
    const widget = rendered({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } });
    const lookup: ScopeLookup = (apiVersion, kind) =>
      kind === 'CustomResourceDefinition' ? 'Cluster' : scopes(apiVersion, kind);
    const out = applyScope([crd, widget], { targetNamespace: 't' }, lookup);
    expect(out[1]?.object.metadata.namespace).toBe('t');
  });

  it('refuses unknown kinds with the file that holds them', () => {
    const unknown = rendered(
      { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g' } },
      'g.yaml',
    );
    expect(() => applyScope([unknown], {}, scopes)).toThrow(RenderError);
    try {
      applyScope([unknown], {}, scopes);
    } catch (error) {
      expect(error).toMatchObject({ code: 'UnknownScope', file: 'g.yaml' });
    }
  });
});
