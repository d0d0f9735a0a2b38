import { describe, expect, it } from 'vitest';
import {
  applyStatusChanges,
  readStatus,
  statusChanged,
  statusMergePatch,
} from '../../src/controller/status.ts';
import type { Evidence } from '../../src/verify/types.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:01:00Z');
const commit = 'c'.repeat(40);
const evidence: Evidence = {
  commit,
  mode: 'HEAD',
  signer: { type: 'ssh', keyFingerprint: 'SHA256:abc', principal: 'release@example.com' },
  verifiedAt: t0.toISOString(),
};

describe('status changes (kstatus)', () => {
  it('applied: Ready=True, revisions, inventory, observedGeneration, no Reconciling/Stalled', () => {
    const progressing = applyStatusChanges(
      readStatus({}),
      [{ kind: 'progressing', message: 'applying', retry: false }],
      2,
      t0,
    );
    expect(progressing.conditions.map((c) => [c.type, c.status])).toEqual([
      ['Ready', 'Unknown'],
      ['Reconciling', 'True'],
    ]);
    const applied = applyStatusChanges(
      progressing,
      [
        { kind: 'verified', evidence },
        {
          kind: 'applied',
          revision: `main@sha1:${commit}`,
          message: 'Applied',
          inventory: { entries: [{ id: 'a', v: 'v1' }] },
        },
      ],
      2,
      t1,
    );
    expect(applied.conditions.map((c) => [c.type, c.status, c.observedGeneration])).toEqual([
      ['Ready', 'True', 2],
      ['Verified', 'True', 2],
    ]);
    expect(applied).toMatchObject({
      lastAppliedRevision: `main@sha1:${commit}`,
      lastAttemptedRevision: `main@sha1:${commit}`,
      observedGeneration: 2,
      inventory: { entries: [{ id: 'a', v: 'v1' }] },
      verification: {
        commit,
        mode: 'HEAD',
        signer: { type: 'ssh', keyFingerprint: 'SHA256:abc', principal: 'release@example.com' },
      },
    });
  });

  it('rejected: keeps lastAppliedRevision, records the attempt, Verified=False with the reason', () => {
    const before = applyStatusChanges(
      readStatus({}),
      [{ kind: 'applied', revision: 'main@sha1:old', message: 'ok', inventory: { entries: [] } }],
      1,
      t0,
    );
    const after = applyStatusChanges(
      before,
      [{ kind: 'rejected', reason: 'Unsigned', message: 'not signed', attemptedRevision: 'main@sha1:new' }],
      1,
      t1,
    );
    expect(after.lastAppliedRevision).toBe('main@sha1:old');
    expect(after.lastAttemptedRevision).toBe('main@sha1:new');
    expect(after.conditions.find((c) => c.type === 'Verified')).toMatchObject({
      status: 'False',
      reason: 'Unsigned',
    });
    expect(after.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'VerificationFailed',
    });
  });

  it('fetch failed: Verified=False FetchFailed naming the URL, lastAppliedRevision and evidence kept', () => {
    const before = applyStatusChanges(
      readStatus({}),
      [
        { kind: 'verified', evidence },
        { kind: 'applied', revision: `main@sha1:${commit}`, message: 'ok', inventory: { entries: [] } },
      ],
      1,
      t0,
    );
    const message = `fetching main@sha1:${'d'.repeat(40)} from https://git.example.com/platform.git: the Git server answered 500`;
    const after = applyStatusChanges(
      before,
      [{ kind: 'failed', reason: 'FetchFailed', message, attemptedRevision: `main@sha1:${'d'.repeat(40)}` }],
      1,
      t1,
    );
    expect(after.conditions.find((c) => c.type === 'Verified')).toMatchObject({
      status: 'False',
      reason: 'FetchFailed',
      message,
      lastTransitionTime: t1.toISOString(),
      observedGeneration: 1,
    });
    expect(after.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'FetchFailed',
      message,
    });
    expect(after.lastAppliedRevision).toBe(`main@sha1:${commit}`);
    expect(after.lastAttemptedRevision).toBe(`main@sha1:${'d'.repeat(40)}`);
    expect(after.verification).toEqual(before.verification);
    // The same failure again changes nothing (no status write, no new transition time).
    expect(
      statusChanged(
        after,
        applyStatusChanges(after, [{ kind: 'failed', reason: 'FetchFailed', message }], 1, t1),
      ),
    ).toBe(false);
    // Once fetched and verified again, Verified is True again.
    const recovered = applyStatusChanges(after, [{ kind: 'verified', evidence }], 1, t1);
    expect(recovered.conditions.find((c) => c.type === 'Verified')?.status).toBe('True');
  });

  it('build and apply failures leave Verified as it was (the revision was verified)', () => {
    const verified = applyStatusChanges(readStatus({}), [{ kind: 'verified', evidence }], 1, t0);
    for (const reason of ['BuildFailed', 'ApplyFailed']) {
      const after = applyStatusChanges(verified, [{ kind: 'failed', reason, message: 'x' }], 1, t1);
      expect(after.conditions.find((c) => c.type === 'Verified')).toMatchObject({
        status: 'True',
        reason: 'Verified',
      });
      expect(after.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason });
    }
  });

  it('drift: Drifted=True with a bounded list, cleared back to False; stalled sets Stalled only while true', () => {
    const objects = Array.from({ length: 80 }, (_, i) => ({
      id: `id${i}`,
      subject: `ConfigMap/ns/c${i}`,
      deleted: false,
      fields: ['.data.x'],
    }));
    const drifted = applyStatusChanges(readStatus({}), [{ kind: 'drift', objects, mode: 'Report' }], 1, t0);
    expect(drifted.drift?.total).toBe(80);
    expect(drifted.drift?.objects).toHaveLength(50);
    expect(drifted.conditions.find((c) => c.type === 'Drifted')?.status).toBe('True');
    const cleared = applyStatusChanges(drifted, [{ kind: 'drift', objects: [], mode: 'Report' }], 1, t1);
    expect(cleared.drift).toBeUndefined();
    expect(cleared.conditions.find((c) => c.type === 'Drifted')?.status).toBe('False');
    const stalled = applyStatusChanges(
      cleared,
      [{ kind: 'stalled', reason: 'InvalidSpec', message: 'spec.url: bad' }],
      3,
      t1,
    );
    expect(stalled.conditions.find((c) => c.type === 'Stalled')?.status).toBe('True');
    expect(stalled.observedGeneration).toBe(3);
  });

  it('statusChanged ignores identical updates', () => {
    const a = applyStatusChanges(
      readStatus({}),
      [{ kind: 'progressing', message: 'x', retry: false }],
      1,
      t0,
    );
    const b = applyStatusChanges(a, [{ kind: 'progressing', message: 'x', retry: false }], 1, t1);
    expect(statusChanged(a, b)).toBe(false);
  });

  it('the merge patch sends null for what a change removed (cleared drift leaves the object)', () => {
    const drifted = applyStatusChanges(
      readStatus({}),
      [
        {
          kind: 'drift',
          mode: 'Report',
          objects: [
            { id: 'ns_a__ConfigMap', subject: 'ConfigMap/ns/a', deleted: false, fields: ['.data.x'] },
          ],
        },
      ],
      1,
      t0,
    );
    expect(drifted.drift?.total).toBe(1);
    const cleared = applyStatusChanges(drifted, [{ kind: 'drift', mode: 'Report', objects: [] }], 1, t1);
    expect(cleared.drift).toBeUndefined();
    const patch = statusMergePatch(drifted, cleared);
    expect(patch.drift).toBeNull();
    expect(patch.conditions).toEqual(cleared.conditions);
    expect(statusMergePatch(cleared, cleared)).not.toHaveProperty('drift');
  });

  it('sends only the top-level keys that changed, so an unchanged inventory is not sent again', () => {
    const inventory = { entries: [{ id: 'ns_a__ConfigMap', v: 'v1' }] };
    const applying = applyStatusChanges(
      readStatus({}),
      [
        { kind: 'progressing', message: 'applying main@sha1:1', retry: false },
        { kind: 'inventory', inventory },
      ],
      1,
      t0,
    );
    const applied = applyStatusChanges(
      applying,
      [{ kind: 'applied', revision: 'main@sha1:1', message: 'Applied revision main@sha1:1', inventory }],
      1,
      t1,
    );
    const patch = statusMergePatch(applying, applied);
    expect(patch).not.toHaveProperty('inventory');
    expect(patch.lastAppliedRevision).toBe('main@sha1:1');
    expect(patch.conditions).toEqual(applied.conditions);
    // The patch turns the old status into the new one, key by key.
    const merged: Record<string, unknown> = { ...applying };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    expect(merged).toEqual(applied);
    const grown = { entries: [...inventory.entries, { id: 'ns_b__ConfigMap', v: 'v1' }] };
    expect(statusMergePatch(applied, { ...applied, inventory: grown }).inventory).toEqual(grown);
  });
});
