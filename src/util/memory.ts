/**
 * Gives memory back after work went away. V8 collects garbage when it allocates, so an operator
 * that went idle after GitRepositories were deleted would keep their garbage (and the pages it
 * sits on) until its next burst of work. `MemoryReleaser` runs one full collection a moment after
 * the last of a batch of releases (debounced), so RSS follows the work.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's full collection, made reachable once (`--expose-gc` set at run time, taken from a fresh context). */
function loadCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const collector: unknown = runInNewContext('gc');
    return typeof collector === 'function' ? (collector as () => void) : undefined;
  } catch {
    return undefined;
  }
}

export class MemoryReleaser {
  readonly #delayMs: number;
  readonly #collect: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Full collections run so far. */
  collections = 0;

  constructor(delayMs = 2_000, collect: (() => void) | undefined = loadCollector()) {
    this.#delayMs = delayMs;
    this.#collect = collect;
  }

  /** Something was released: one collection `delayMs` after the last such call. */
  released(): void {
    if (this.#collect === undefined) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.collections++;
      this.#collect?.();
    }, this.#delayMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
