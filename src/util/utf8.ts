/**
 * Bytes from the network become text here, never chunk by chunk: a network chunk ends wherever
 * the connection happened to cut it, often inside a multi-byte UTF-8 character (2 bytes for
 * `é`, 3 for `漢`, 4 for `🙂`). Decoding each chunk on its own turns both halves of such a
 * character into U+FFFD, which silently changes the text (a watch event then differs from what
 * the API server stored, and is taken for drift). One stateful decoder per stream keeps the
 * incomplete tail of a chunk until the next chunk completes it.
 */

/**
 * Splits a UTF-8 byte stream into lines (`\n`-terminated, the `\n` removed; a `\r` is kept).
 * Feed every chunk in order to `push`, then call `end` once when the stream closes.
 * Malformed bytes (not a split character) still decode to U+FFFD, as `Buffer#toString` does.
 */
export class Utf8LineSplitter {
  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  /** Text after the last newline seen so far. */
  #pending = '';

  /** The lines this chunk completes, in order (possibly none). */
  push(chunk: Uint8Array): string[] {
    return this.#split(this.#decoder.decode(chunk, { stream: true }));
  }

  /** The stream ended: the last, unterminated line (if any text is left). */
  end(): string[] {
    const rest = this.#pending + this.#decoder.decode();
    this.#pending = '';
    return rest === '' ? [] : [rest];
  }

  #split(text: string): string[] {
    let newline = text.indexOf('\n');
    if (newline === -1) {
      this.#pending += text;
      return [];
    }
    const lines = [this.#pending + text.slice(0, newline)];
    let start = newline + 1;
    for (newline = text.indexOf('\n', start); newline !== -1; newline = text.indexOf('\n', start)) {
      lines.push(text.slice(start, newline));
      start = newline + 1;
    }
    this.#pending = text.slice(start);
    return lines;
  }
}

/**
 * The text of at most the first `maxBytes` bytes of `chunks`, decoded once. A character the
 * bound cuts in two is left out (not turned into U+FFFD); the rest decodes as `Buffer#toString`.
 */
export function decodeUtf8Prefix(chunks: readonly Uint8Array[], maxBytes: number): string {
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let text = '';
  let left = maxBytes;
  for (const chunk of chunks) {
    if (left <= 0) break;
    const part = chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
    text += decoder.decode(part, { stream: true });
    left -= part.byteLength;
  }
  // No final flush when the bound was reached: an incomplete last character is dropped.
  return left > 0 ? text + decoder.decode() : text;
}
