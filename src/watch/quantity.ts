/**
 * Kubernetes resource quantities (`500m`, `1Gi`, `1e3`), pure: parsed exactly (rational numbers
 * on bigint, no floating point), so that two spellings of one value compare equal and any two
 * different values never do. The grammar is apimachinery's `resource.Quantity`:
 *
 *   quantity ::= signedNumber suffix
 *   suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | "" | k | M | G | T | P | E | (e|E) signedInteger
 *   number   ::= digits | digits "." digits | digits "." | "." digits
 */

interface Rational {
  readonly numerator: bigint;
  readonly denominator: bigint;
}

const pattern = /^([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/;

/** Longer text is not a quantity anyone writes; the bound keeps bigint work small. */
const maxLength = 64;
/** Decimal exponents beyond this are refused (apimachinery rejects them as well). */
const maxExponent = 1_000;

const binaryPowers: Readonly<Record<string, number>> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const decimalPowers: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

/** The exact value of a quantity, or undefined when `text` is not one. */
export function parseQuantity(text: string): Rational | undefined {
  if (text.length === 0 || text.length > maxLength) return undefined;
  const match = pattern.exec(text);
  if (match === null) return undefined;
  const [, sign = '', whole = '', fraction = '', suffix = ''] = match;
  if (whole === '' && fraction === '') return undefined;
  let numerator = BigInt(`${whole}${fraction}` || '0');
  let denominator = 10n ** BigInt(fraction.length);
  let decimalExponent = 0;
  if (suffix in binaryPowers) {
    numerator *= 1024n ** BigInt(binaryPowers[suffix]!);
  } else if (suffix in decimalPowers) {
    decimalExponent = decimalPowers[suffix]!;
  } else if (suffix !== '') {
    decimalExponent = Number(suffix.slice(1));
    if (!Number.isSafeInteger(decimalExponent) || Math.abs(decimalExponent) > maxExponent) return undefined;
  }
  if (decimalExponent > 0) numerator *= 10n ** BigInt(decimalExponent);
  if (decimalExponent < 0) denominator *= 10n ** BigInt(-decimalExponent);
  if (sign === '-') numerator = -numerator;
  return { numerator, denominator };
}

function asQuantityText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * True when both values are quantities (strings, or JSON numbers as YAML gives `cpu: 2`) that
 * denote the same amount: `1000m` and `1`, `1024Mi` and `1Gi`, `0.5` and `500m`. `1` and `1Gi`
 * differ, and so does anything that does not parse.
 */
export function sameQuantity(a: unknown, b: unknown): boolean {
  const left = asQuantityText(a);
  const right = asQuantityText(b);
  if (left === undefined || right === undefined) return false;
  const x = parseQuantity(left);
  const y = parseQuantity(right);
  if (x === undefined || y === undefined) return false;
  return x.numerator * y.denominator === y.numerator * x.denominator;
}
