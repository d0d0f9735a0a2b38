/** Go-style durations (`1h30m`, `90s`, `500ms`, `1.5h`), as Kubernetes APIs spell them. */
const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** The same pattern the CRD's schema uses, so the API server and this module agree. */
export const durationPattern = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';
const durationRegExp = new RegExp(durationPattern);
const partRegExp = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g;

/** Milliseconds, or undefined when `text` is not a well-formed duration. */
export function parseDuration(text: string): number | undefined {
  if (!durationRegExp.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(partRegExp)) {
    total += Number(match[1]) * (unitMs[match[2] ?? ''] ?? Number.NaN);
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
