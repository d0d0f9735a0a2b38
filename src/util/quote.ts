// Untrusted text (anything read from a commit, a signature or a certificate) made safe to put in a
// message: control, format and line-separator characters are escaped, and at most `max` characters are
// written, whatever the input's length. The work is O(max), so a 400 KB input costs no more than a short one.

/** How many characters of untrusted input a verification message quotes unless told otherwise. */
export const QUOTE_MAX = 200;

// C0, DEL, C1, soft hyphen, zero-width and bidi controls, line/paragraph separators, BOM, lone surrogates.
const UNSAFE_RANGES: readonly (readonly [number, number])[] = [
  [0x00, 0x1f],
  [0x7f, 0x9f],
  [0xad, 0xad],
  [0x200b, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x2069],
  [0xd800, 0xdfff],
  [0xfeff, 0xfeff],
];

function unsafe(code: number): boolean {
  return UNSAFE_RANGES.some(([low, high]) => code >= low && code <= high);
}

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function escapeChar(char: string, quoteChar: string): string {
  if (char === quoteChar) return `\\${char}`;
  const named = NAMED[char];
  if (named !== undefined) return named;
  const code = char.codePointAt(0) ?? 0;
  if (!unsafe(code)) return char;
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

function render(text: string, max: number, quoteChar: string): string {
  let out = '';
  let index = 0;
  while (index < text.length) {
    const code = text.codePointAt(index) ?? 0;
    const char = String.fromCodePoint(code);
    const piece = escapeChar(char, quoteChar);
    if (out.length + piece.length > max) break;
    out += piece;
    index += char.length;
  }
  const rest = text.length - index;
  return rest === 0 ? out : `${out}… (${rest} more characters)`;
}

/**
 * `text` with control characters escaped (\n, \x1b, \u202e, …) and cut to at most `max` characters (plus a
 * short "… (N more characters)" suffix when cut). For untrusted text placed inside a message.
 */
export function excerpt(text: string, max: number = QUOTE_MAX): string {
  return render(text, Math.max(0, max), '');
}

/** Like excerpt, inside double quotes (an embedded `"` is escaped), so where the text ends is unambiguous. */
export function quote(text: string, max: number = QUOTE_MAX): string {
  return `"${render(text, Math.max(0, max), '"')}"`;
}
