import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseQuantity, sameQuantity } from '../../src/watch/quantity.ts';

describe('sameQuantity', () => {
  it('equates the spellings the API server normalises', () => {
    const pairs: [unknown, unknown][] = [
      ['1000m', '1'],
      ['1024Mi', '1Gi'],
      ['0.5', '500m'],
      ['.5', '500m'],
      ['1.5Gi', '1536Mi'],
      ['1e3', '1k'],
      ['1E3', '1k'],
      ['2e-3', '2m'],
      ['1000000u', '1'],
      ['1000n', '1u'],
      ['1.', '1'],
      ['+1', '1'],
      ['0', '0m'],
      ['-1', '-1000m'],
      ['1M', '1000k'],
      ['1E', '1000P'],
      ['1024Ki', '1Mi'],
      [2, '2'],
      [0.5, '500m'],
      [1, '1000m'],
    ];
    for (const [a, b] of pairs) {
      expect(sameQuantity(a, b), `${String(a)} = ${String(b)}`).toBe(true);
      expect(sameQuantity(b, a), `${String(b)} = ${String(a)}`).toBe(true);
    }
  });

  it('never equates different values, units or bases', () => {
    const pairs: [unknown, unknown][] = [
      ['1', '1Gi'],
      ['1', '2'],
      ['1000m', '1001m'],
      ['1G', '1Gi'],
      ['1k', '1Ki'],
      ['1m', '1M'],
      ['1Mi', '1M'],
      ['500m', '0.05'],
      ['1', '-1'],
      ['1E', '1e18Ki'],
      ['1.0000000001', '1'],
    ];
    for (const [a, b] of pairs) {
      expect(sameQuantity(a, b), `${String(a)} ≠ ${String(b)}`).toBe(false);
    }
  });

  it('refuses what is not a quantity', () => {
    for (const text of [
      '',
      '.',
      '+',
      'm',
      'Gi',
      '1 Gi',
      '1gi',
      '1KiB',
      '1e',
      '1e3.5',
      '0x10',
      'abc',
      '1..2',
      '∞',
    ]) {
      expect(parseQuantity(text), JSON.stringify(text)).toBeUndefined();
      expect(sameQuantity(text, text), JSON.stringify(text)).toBe(false);
    }
    expect(parseQuantity('1e1001')).toBeUndefined();
    expect(parseQuantity('1'.repeat(65))).toBeUndefined();
    expect(sameQuantity(true, 'true')).toBe(false);
    expect(sameQuantity(null, '0')).toBe(false);
    expect(sameQuantity(Number.NaN, 'NaN')).toBe(false);
    expect(sameQuantity({ cpu: '1' }, '1')).toBe(false);
  });

  it('agrees with exact arithmetic on integers times binary and decimal suffixes (property)', () => {
    const suffixes: [string, bigint, bigint][] = [
      ['', 1n, 1n],
      ['m', 1n, 1000n],
      ['u', 1n, 1_000_000n],
      ['n', 1n, 1_000_000_000n],
      ['k', 1000n, 1n],
      ['M', 1_000_000n, 1n],
      ['G', 1_000_000_000n, 1n],
      ['Ki', 1024n, 1n],
      ['Mi', 1024n ** 2n, 1n],
      ['Gi', 1024n ** 3n, 1n],
      ['e3', 1000n, 1n],
      ['e-2', 1n, 100n],
    ];
    const quantity = fc.tuple(fc.nat(1_000_000), fc.constantFrom(...suffixes));
    fc.assert(
      fc.property(quantity, quantity, ([a, [sa, na, da]], [b, [sb, nb, db]]) => {
        const exact = BigInt(a) * na * db === BigInt(b) * nb * da;
        expect(sameQuantity(`${a}${sa}`, `${b}${sb}`)).toBe(exact);
      }),
    );
  });
});
