import { describe, expect, it } from 'vitest';
import { excerpt, QUOTE_MAX, quote } from '../../src/util/quote.ts';

describe('quote and excerpt', () => {
  it('leaves short printable text alone (quote adds double quotes)', () => {
    expect(excerpt('1.2.840.113549.1.7.2')).toBe('1.2.840.113549.1.7.2');
    expect(quote('alice@example.com')).toBe('"alice@example.com"');
    expect(excerpt('déjà vu 日本 🚀')).toBe('déjà vu 日本 🚀');
  });

  it('escapes control, bidi and separator characters, backslashes and the quote character', () => {
    expect(excerpt('a\nb\r\tc\u001b[31m\u0000')).toBe('a\\nb\\r\\tc\\x1b[31m\\x00');
    expect(excerpt('safe\u202etxt.exe\u2028')).toBe('safe\\u202etxt.exe\\u2028');
    expect(quote('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(excerpt('\ud800x')).toBe('\\ud800x');
  });

  it('cuts long text to at most max characters and says how much was left out', () => {
    const cut = excerpt('x'.repeat(400_000));
    expect(cut).toBe(`${'x'.repeat(QUOTE_MAX)}… (399800 more characters)`);
    expect(excerpt('abcdef', 3)).toBe('abc… (3 more characters)');
    expect(quote('\n'.repeat(1_000), 10)).toBe(`"${'\\n'.repeat(5)}… (995 more characters)"`);
  });

  it('never splits a surrogate pair or an escape sequence', () => {
    expect(excerpt('🚀🚀🚀', 3)).toBe('🚀… (4 more characters)');
    expect(excerpt('ab\u001b', 4)).toBe('ab… (1 more characters)');
  });

  it('costs the same for a 4 MB input as for a short one', () => {
    const big = 'y'.repeat(4_000_000);
    const start = performance.now();
    for (let i = 0; i < 1_000; i += 1) excerpt(big);
    expect(performance.now() - start).toBeLessThan(500);
  });
});
