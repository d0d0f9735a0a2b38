import { describe, expect, it } from 'vitest';
import {
  type BenchRow,
  formatRowLine,
  formatTableRow,
  judge,
  missed,
  verdictMark,
} from '../../bench/rows.ts';

const row = (figure: string, pass: BenchRow['pass']): BenchRow => ({
  bench: 'drift',
  figure,
  value: '17 ms',
  baseline: 'Flux 30 s',
  ratio: '0.02×',
  target: 'p50 ≤ 1 s',
  pass,
});

describe('bench rows', () => {
  it('marks met, missed and information rows', () => {
    expect(verdictMark(row('a', true))).toBe('✓');
    expect(verdictMark(row('a', false))).toBe('✗');
    expect(verdictMark(row('a', 'info'))).toBe('info (not judged)');
    expect(formatRowLine(row('revert latency', false))).toBe(
      'revert latency: 17 ms | baseline Flux 30 s | ratio 0.02× | target p50 ≤ 1 s ✗',
    );
  });

  it('writes yes, no or info in the table, never a dash', () => {
    expect(formatTableRow(row('a', true))).toBe(
      '| drift | a | 17 ms | Flux 30 s | 0.02× | p50 ≤ 1 s | yes |',
    );
    expect(formatTableRow(row('a', false)).endsWith('| no |')).toBe(true);
    expect(formatTableRow(row('a', 'info')).endsWith('| info |')).toBe(true);
  });

  it('counts a row without a verdict as missed (fail closed)', () => {
    // A child bench hands its rows back as JSON: a row built without a verdict arrives without one.
    const unjudged = JSON.parse(JSON.stringify({ ...row('idle CPU', true), pass: undefined })) as BenchRow;
    expect(missed(unjudged)).toBe(true);
    expect(formatTableRow(unjudged).endsWith('| no |')).toBe(true);
  });

  it('exits 0 when every judged target is met, information rows aside', () => {
    const verdict = judge([row('a', true), row('b', 'info')], []);
    expect(verdict.exitCode).toBe(0);
    expect(verdict.lines).toEqual(['1 of 1 judged targets met, 1 row(s) for information']);
  });

  it('exits 1 naming each missed row', () => {
    const verdict = judge([row('revert latency', false), row('b', true), row('c', 'info')], []);
    expect(verdict.exitCode).toBe(1);
    expect(verdict.lines).toEqual([
      '1 of 2 judged targets met, 1 row(s) for information',
      'target missed: drift: revert latency (17 ms; target p50 ≤ 1 s)',
    ]);
  });

  it('exits 1 naming a bench that did not complete', () => {
    const verdict = judge([row('a', true)], ['git: bench git exited with 1']);
    expect(verdict.exitCode).toBe(1);
    expect(verdict.lines).toContain('did not complete: git: bench git exited with 1');
  });
});
