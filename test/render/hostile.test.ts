// Hostile input to the renderer: whatever the bytes, renderManifests returns objects or throws a
// RenderError (never a TypeError, RangeError or a yaml library error that would escape the
// reconciler's BuildFailed path).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RenderError } from '../../src/render/errors.ts';
import { renderManifests } from '../../src/render/render.ts';

const owner = { name: 'repo', namespace: 'tenant' };
const encoder = new TextEncoder();

function renderOutcome(content: Uint8Array, path = 'm.yaml'): 'ok' | RenderError {
  try {
    renderManifests({ files: [{ path, content }] }, { owner, limits: { maxObjects: 50 } });
    return 'ok';
  } catch (error) {
    if (error instanceof RenderError) return error;
    throw error;
  }
}

/** YAML-ish text: fragments that exercise anchors, aliases, merges, tags, flow collections, documents. */
const yamlish = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'apiVersion: v1\n',
        'kind: ConfigMap\n',
        'kind: List\nitems:\n',
        'metadata:\n  name: a\n',
        'metadata: {name: b, namespace: c}\n',
        '---\n',
        '...\n',
        '- ',
        '  ',
        '&a ',
        '*a',
        '<<: *a\n',
        '!!binary ',
        '!!str ',
        '!custom ',
        '[',
        ']',
        '{',
        '}',
        ': ',
        ', ',
        '"',
        "'",
        '|\n',
        '>-\n',
        '? ',
        '%YAML 1.2\n',
        '%TAG ! tag:x,2000:\n',
        '#',
        '\n',
        '\t',
        '\u0000',
        '\ufeff',
        'data:\n  k: v\n',
        'labels: {x: 1}\n',
        'metadata:\n  labels: [1]\n',
      ),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

describe('renderManifests on hostile input', () => {
  it('throws nothing but RenderError for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const outcome = renderOutcome(bytes);
        expect(outcome === 'ok' || outcome instanceof RenderError).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('throws nothing but RenderError for YAML-ish text (anchors, aliases, merges, tags, flow, documents)', () => {
    fc.assert(
      fc.property(yamlish, fc.constantFrom('m.yaml', 'm.json', 'm.yml'), (text, path) => {
        const outcome = renderOutcome(encoder.encode(text), path);
        expect(outcome === 'ok' || outcome instanceof RenderError).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuses very deep flow nesting with a RenderError, not a stack overflow', () => {
    for (const depth of [100, 1_000, 20_000]) {
      const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
      const outcome = renderOutcome(encoder.encode(text));
      expect(outcome).toBeInstanceOf(RenderError);
      expect((outcome as RenderError).code).toMatch(/^(TooDeep|ParseError)$/);
    }
  });

  it('refuses very deep block nesting with a RenderError', () => {
    const lines = Array.from({ length: 500 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`);
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata:\n${lines.join('\n')} 1\n`;
    const outcome = renderOutcome(encoder.encode(text));
    expect(outcome).toBeInstanceOf(RenderError);
    expect((outcome as RenderError).code).toMatch(/^(TooDeep|ParseError)$/);
  });

  it('bounds a nested alias bomb with anchors on every level', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const next = String.fromCharCode(97 + i);
      levels.push(
        `${next}: &${next} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`,
      );
    }
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    const outcome = renderOutcome(encoder.encode(text));
    expect(outcome).toBeInstanceOf(RenderError);
    expect((outcome as RenderError).code).toBe('TooManyAliases');
  });
});
