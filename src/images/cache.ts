/**
 * Verdicts already reached, keyed by the image's repository and digest and the fingerprint of the
 * trust it was judged by: an unchanged image under unchanged trust needs no registry request.
 * Bounded (least recently used evicted). Only successes are kept: a refusal is re-checked.
 */

export interface ImageEvidence {
  /** `registry/repository`. */
  readonly name: string;
  readonly digest: string;
  /** Who signed: `key <sha256 fingerprint>` or the keyless identity and issuer. */
  readonly signer: string;
  /** legacy-sig-tag or bundle-referrer. */
  readonly format: 'legacy-sig-tag' | 'bundle-referrer';
  /** Attested predicate types. */
  readonly attestations: readonly string[];
}

export class VerdictCache {
  readonly #entries = new Map<string, ImageEvidence>();
  /** The format a registry's signatures were last found in: looked for first next time (bounded). */
  readonly #formats = new Map<string, ImageEvidence['format']>();
  readonly #maxEntries: number;
  #hits = 0;
  #misses = 0;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1)
      throw new RangeError('maxEntries must be a positive integer');
    this.#maxEntries = maxEntries;
  }

  static key(name: string, digest: string, fingerprint: string): string {
    return `${name}@${digest}|${fingerprint}`;
  }

  get(key: string): ImageEvidence | undefined {
    const found = this.#entries.get(key);
    if (found === undefined) {
      this.#misses += 1;
      return undefined;
    }
    this.#hits += 1;
    // Most recently used last: Map keeps insertion order.
    this.#entries.delete(key);
    this.#entries.set(key, found);
    return found;
  }

  set(key: string, evidence: ImageEvidence): void {
    this.#entries.delete(key);
    this.#entries.set(key, evidence);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  /** Where to look first for signatures in `registry`: where they were found last. */
  preferredFormat(registry: string): ImageEvidence['format'] | undefined {
    return this.#formats.get(registry);
  }

  noteFormat(registry: string, format: ImageEvidence['format']): void {
    this.#formats.delete(registry);
    this.#formats.set(registry, format);
    if (this.#formats.size > 256) {
      const oldest = this.#formats.keys().next().value;
      if (oldest !== undefined) this.#formats.delete(oldest);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }
}
