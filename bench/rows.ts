// The rows `make bench` prints and how each is judged: pure, so that bench/run.ts and every bench's
// own entry point print and judge them the same way (test/bench/rows.test.ts).

/** One figure of `make bench`: its value, the same-run baseline, the target and the verdict. */
export interface BenchRow {
  readonly bench: string;
  readonly figure: string;
  readonly value: string;
  readonly baseline: string;
  readonly ratio: string;
  /** What the figure is judged against; for an `info` row, why it is not judged. */
  readonly target: string;
  /** Whether the target was met, or `'info'`: reported for information, not judged. */
  readonly pass: boolean | 'info';
}

/** A figure with `digits` decimals; NaN and infinities as themselves (a failed measurement shows). */
export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

/** Bytes as MiB (a number, for ratios and slopes). */
export const mib = (bytes: number): number => bytes / 2 ** 20;

/** Whether a row is judged and missed. Anything but `true` or `'info'` counts as missed (fail closed). */
export function missed(row: BenchRow): boolean {
  return row.pass !== true && row.pass !== 'info';
}

/** `✓`, `✗`, or `info (not judged)`. */
export function verdictMark(row: BenchRow): string {
  if (row.pass === 'info') return 'info (not judged)';
  return missed(row) ? '✗' : '✓';
}

/** The console line of one row. */
export function formatRowLine(row: BenchRow): string {
  return `${row.figure}: ${row.value} | baseline ${row.baseline} | ratio ${row.ratio} | target ${row.target} ${verdictMark(row)}`;
}

/** The docs/benchmarks.md table row: the last column says yes, no or info. */
export function formatTableRow(row: BenchRow): string {
  const met = row.pass === 'info' ? 'info' : missed(row) ? 'no' : 'yes';
  return `| ${row.bench} | ${row.figure} | ${row.value} | ${row.baseline} | ${row.ratio} | ${row.target} | ${met} |`;
}

/**
 * The verdict of a run: exit code 1 when a judged target was missed or a bench did not complete,
 * with a line naming each such row or bench.
 */
export function judge(
  rows: readonly BenchRow[],
  failures: readonly string[],
): { exitCode: 0 | 1; lines: string[] } {
  const misses = rows.filter(missed);
  const judged = rows.filter((r) => r.pass !== 'info').length;
  const lines = [
    `${judged - misses.length} of ${judged} judged targets met, ${rows.length - judged} row(s) for information`,
    ...misses.map((r) => `target missed: ${r.bench}: ${r.figure} (${r.value}; target ${r.target})`),
    ...failures.map((f) => `did not complete: ${f}`),
  ];
  return { exitCode: misses.length > 0 || failures.length > 0 ? 1 : 0, lines };
}
