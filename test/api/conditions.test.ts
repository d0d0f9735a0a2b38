// kstatus condition semantics, pure.
import { describe, expect, it } from 'vitest';
import {
  type Condition,
  findCondition,
  isConditionTrue,
  maxConditionMessageLength,
  removeCondition,
  sameConditions,
  setAbnormal,
  setCondition,
} from '../../src/api/conditions.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:01:00Z');
const t2 = new Date('2026-01-01T00:02:00Z');

describe('conditions', () => {
  it('changes lastTransitionTime only when the status changes, and records observedGeneration on each', () => {
    let c: Condition[] = setCondition(
      [],
      { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'fetching' },
      1,
      t0,
    );
    c = setCondition(
      c,
      { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'verifying' },
      1,
      t1,
    );
    expect(findCondition(c, 'Ready')).toMatchObject({
      lastTransitionTime: t0.toISOString(),
      message: 'verifying',
    });
    c = setCondition(
      c,
      { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'applied' },
      2,
      t2,
    );
    expect(findCondition(c, 'Ready')).toMatchObject({
      status: 'True',
      lastTransitionTime: t2.toISOString(),
      observedGeneration: 2,
    });
    expect(isConditionTrue(c, 'Ready')).toBe(true);
  });

  it('keeps Reconciling and Stalled only while True (abnormal-true), in a stable order', () => {
    let c: Condition[] = setCondition(
      [],
      { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: '' },
      1,
      t0,
    );
    c = setCondition(c, { type: 'Drifted', status: 'False', reason: 'NoDrift', message: '' }, 1, t0);
    c = setCondition(c, { type: 'Verified', status: 'True', reason: 'Verified', message: '' }, 1, t0);
    c = setAbnormal(c, 'Reconciling', { reason: 'Progressing', message: 'applying' }, 1, t0);
    c = setAbnormal(c, 'Stalled', { reason: 'InvalidSpec', message: 'bad' }, 1, t0);
    expect(c.map((x) => x.type)).toEqual(['Ready', 'Reconciling', 'Stalled', 'Verified', 'Drifted']);
    expect(findCondition(c, 'Reconciling')?.status).toBe('True');
    c = setAbnormal(c, 'Reconciling', undefined, 1, t1);
    c = setAbnormal(c, 'Stalled', undefined, 1, t1);
    expect(c.map((x) => x.type)).toEqual(['Ready', 'Verified', 'Drifted']);
    expect(removeCondition(c, 'Drifted').map((x) => x.type)).toEqual(['Ready', 'Verified']);
  });

  it('bounds hostile messages and compares condition lists without timestamps', () => {
    const long = setCondition(
      [],
      { type: 'Ready', status: 'False', reason: 'Failed', message: 'x'.repeat(100_000) },
      1,
      t0,
    );
    expect(long[0]?.message.length).toBe(maxConditionMessageLength);
    const a = setCondition([], { type: 'Ready', status: 'True', reason: 'R', message: 'm' }, 1, t0);
    const b = setCondition([], { type: 'Ready', status: 'True', reason: 'R', message: 'm' }, 1, t1);
    expect(sameConditions(a, b)).toBe(true);
    expect(
      sameConditions(a, setCondition(b, { type: 'Ready', status: 'True', reason: 'R', message: 'n' }, 1, t1)),
    ).toBe(false);
  });
});
