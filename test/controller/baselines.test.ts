import { describe, expect, it } from 'vitest';
import { DriftBaselines } from '../../src/controller/baselines.ts';
import type { KubeObject } from '../../src/render/object.ts';

const quota = (cpu: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ResourceQuota',
  metadata: { name: 'q', namespace: 'apps' },
  spec: { hard: { cpu } },
});
const id = 'apps_q__ResourceQuota';

describe('DriftBaselines', () => {
  it('stores a baseline only when the server normalised a desired value', () => {
    const baselines = new DriftBaselines();
    const desired = quota('1000m');
    baselines.record(id, desired, {
      ...quota('1000m'),
      metadata: { name: 'q', namespace: 'apps', uid: 'u' },
    });
    expect(baselines.of(id, desired)).toBe(desired);
    expect(baselines.normalized.size).toBe(0);
    baselines.record(id, desired, quota('1'));
    expect(baselines.of(id, desired)).toEqual(quota('1'));
    expect([...baselines.normalized.keys()]).toEqual([id]);
    // A later answer that stores the desired text again drops the stored baseline.
    baselines.record(id, desired, quota('1000m'));
    expect(baselines.normalized.size).toBe(0);
  });

  it('holds objects being applied as pending and calls back once their answer or failure settles them', () => {
    const baselines = new DriftBaselines();
    const calls: string[] = [];
    baselines.begin([id, 'apps_other__ConfigMap']);
    expect(baselines.isPending(id)).toBe(true);
    baselines.whenSettled(id, () => calls.push('first'));
    baselines.whenSettled(id, () => calls.push('second'));
    expect(calls).toEqual([]);
    baselines.record(id, quota('1000m'), quota('1'));
    expect(baselines.isPending(id)).toBe(false);
    // One call per settled object, however many events were deferred.
    expect(calls).toEqual(['second']);
    baselines.whenSettled(id, () => calls.push('now'));
    expect(calls).toEqual(['second', 'now']);
    baselines.whenSettled('apps_other__ConfigMap', () => calls.push('failed apply'));
    baselines.settleAll();
    expect(calls).toEqual(['second', 'now', 'failed apply']);
    expect(baselines.isPending('apps_other__ConfigMap')).toBe(false);
  });
});
