// Hostile kustomizations: whatever the bytes, checkKustomization returns or throws a RenderError
// (never a TypeError or a yaml library error that would escape the BuildFailed path).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { checkKustomization } from '../../src/render/kustomize-policy.ts';

const encoder = new TextEncoder();

function outcome(kustomization: string, extra: Record<string, string> = {}): 'ok' | RenderError {
  const files = Object.entries({
    'app/kustomization.yaml': kustomization,
    'base/kustomization.yaml': '',
    ...extra,
  }).map(([path, content]) => ({ path, content: encoder.encode(content) }));
  try {
    checkKustomization({ files }, 'app');
    return 'ok';
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
}

const fields = [
  'resources',
  'components',
  'bases',
  'crds',
  'patches',
  'patchesStrategicMerge',
  'patchesJson6902',
  'configMapGenerator',
  'secretGenerator',
  'replacements',
  'configurations',
  'openapi',
  'generators',
  'transformers',
  'validators',
];
const values = fc.oneof(
  fc.constantFrom(
    'null',
    '1',
    '"x"',
    '[]',
    '{}',
    '[1, null, {}]',
    '[../base]',
    '[{path: 1}]',
    '[{files: [1, "a="]}]',
  ),
  fc.constantFrom(
    '[{path: ../../x}]',
    '{path: [1]}',
    '["|\\n  apiVersion: builtin"]',
    '[../base, ../base]',
    '[.]',
    '[""]',
  ),
  fc.string({ maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc.string({ maxLength: 20 }).map((s) => `[${JSON.stringify(s)}]`),
);

describe('checkKustomization on hostile input', () => {
  it('any field holding any value: returns or throws a RenderError', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...fields), values), { maxLength: 6 }), (pairs) => {
        const text = [...new Map(pairs).entries()].map(([field, value]) => `${field}: ${value}`).join('\n');
        expect(['ok', expect.any(RenderError)]).toContainEqual(outcome(`${text}\n`));
      }),
      { numRuns: 2_000 },
    );
  });

  it('arbitrary text: returns or throws a RenderError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        expect(['ok', expect.any(RenderError)]).toContainEqual(outcome(text));
      }),
      { numRuns: 1_000 },
    );
  });

  it('a kustomization that includes itself or a cycle of bases ends', () => {
    expect(outcome('resources: [.]\n')).toBe('ok');
    expect(outcome('resources: [../base]\n', { 'base/kustomization.yaml': 'resources: [../app]\n' })).toBe(
      'ok',
    );
  });
});
