import { describe, expect, it } from 'vitest';
import { resumesApplied } from '../../src/controller/reconciler.ts';
import type { GitRepositoryStatus } from '../../src/controller/status.ts';

const revision = 'main@sha1:1111111111111111111111111111111111111111';
const ready: GitRepositoryStatus = {
  observedGeneration: 3,
  lastAppliedRevision: revision,
  inventory: { entries: [] },
  conditions: [
    {
      type: 'Ready',
      status: 'True',
      reason: 'ReconciliationSucceeded',
      message: 'applied',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 3,
    },
  ],
};

describe('resumesApplied: a reconcile with nothing in memory resumes what the status records', () => {
  it('resumes the same revision at the same generation, Ready, with an inventory', () => {
    expect(resumesApplied(ready, revision, 3, undefined)).toBe(true);
  });

  it('does not resume a new revision, a new generation, a failing or inventory-less status', () => {
    expect(resumesApplied(ready, 'main@sha1:2222222222222222222222222222222222222222', 3, undefined)).toBe(
      false,
    );
    expect(resumesApplied(ready, revision, 4, undefined)).toBe(false);
    const failing = { ...ready, conditions: [{ ...ready.conditions[0]!, status: 'False' as const }] };
    expect(resumesApplied(failing, revision, 3, undefined)).toBe(false);
    const { inventory: _none, ...noInventory } = ready;
    expect(resumesApplied(noInventory, revision, 3, undefined)).toBe(false);
  });
});
