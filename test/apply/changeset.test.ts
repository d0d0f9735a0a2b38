import { describe, expect, it } from 'vitest';
import {
  changeEntry,
  failedPrunes,
  formatChangeSet,
  formatSummary,
  summariseChangeSet,
} from '../../src/apply/changeset.ts';
import { ApplyError } from '../../src/apply/errors.ts';
import { mapConcurrent } from '../../src/apply/manager.ts';

const id = (name: string) => ({ group: '', version: 'v1', kind: 'ConfigMap', namespace: 'ns', name });

describe('changeset', () => {
  it('summarises and formats entries', () => {
    const changeSet = {
      entries: [
        changeEntry(id('a'), 'created'),
        changeEntry(id('b'), 'unchanged'),
        changeEntry(id('c'), 'skipped', { reason: 'not-owned' }),
        changeEntry(id('d'), 'failed', {
          error: new ApplyError('Forbidden', 'ConfigMap/ns/d', 'no rights'),
          reason: 'prune',
        }),
      ],
    };
    const summary = summariseChangeSet(changeSet);
    expect(summary).toMatchObject({ created: 1, unchanged: 1, skipped: 1, failed: 1 });
    expect(formatSummary(summary)).toBe('1 created, 1 unchanged, 1 skipped, 1 failed');
    expect(formatChangeSet(changeSet)).toEqual([
      'ConfigMap/ns/a created',
      'ConfigMap/ns/c skipped (not-owned)',
      'ConfigMap/ns/d failed: no rights',
    ]);
    expect(failedPrunes(changeSet)).toEqual([{ id: 'ns_d__ConfigMap', v: 'v1' }]);
  });

  it('bounds concurrency and keeps order', async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await mapConcurrent([5, 1, 4, 2, 3], 2, async (value) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return value * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });
});
