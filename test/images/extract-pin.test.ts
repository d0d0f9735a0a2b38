import { describe, expect, it } from 'vitest';
import { extractImages, fieldPath } from '../../src/images/extract.ts';
import { pinImages } from '../../src/images/pin.ts';
import type { KubeObject } from '../../src/render/object.ts';

const podSpec = (prefix: string) => ({
  initContainers: [{ name: 'init', image: `${prefix}-init` }],
  containers: [
    { name: 'main', image: `${prefix}-main` },
    { name: 'side', image: `${prefix}-side` },
  ],
  ephemeralContainers: [{ name: 'debug', image: `${prefix}-debug` }],
});

const template = (prefix: string) => ({ template: { spec: podSpec(prefix) } });

function object(apiVersion: string, kind: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion,
    kind,
    metadata: { name: kind.toLowerCase(), namespace: 'team-a' },
    spec,
  } as KubeObject;
}

const workloads: KubeObject[] = [
  object('v1', 'Pod', podSpec('pod')),
  object('v1', 'ReplicationController', template('rc')),
  object('apps/v1', 'Deployment', template('deploy')),
  object('apps/v1', 'StatefulSet', template('sts')),
  object('apps/v1', 'DaemonSet', template('ds')),
  object('apps/v1', 'ReplicaSet', template('rs')),
  object('batch/v1', 'Job', template('job')),
  object('batch/v1', 'CronJob', { jobTemplate: { spec: template('cron') } }),
];

describe('image extraction', () => {
  it('finds init, regular and ephemeral containers in every workload kind, with their paths', () => {
    const found = extractImages(workloads);
    expect(found).toHaveLength(workloads.length * 4);
    for (const [index, kindPrefix] of ['pod', 'rc', 'deploy', 'sts', 'ds', 'rs', 'job', 'cron'].entries()) {
      const mine = found.filter((l) => l.objectIndex === index);
      expect(mine.map((l) => l.image)).toEqual([
        `${kindPrefix}-init`,
        `${kindPrefix}-main`,
        `${kindPrefix}-side`,
        `${kindPrefix}-debug`,
      ]);
    }
    const cron = found.find((l) => l.image === 'cron-side');
    expect(cron?.subject).toBe('CronJob team-a/cronjob');
    expect(cron && fieldPath(cron)).toBe('spec.jobTemplate.spec.template.spec.containers[1].image');
    const pod = found.find((l) => l.image === 'pod-debug');
    expect(pod && fieldPath(pod)).toBe('spec.ephemeralContainers[0].image');
  });

  it('ignores kinds that run no Pods and same-named kinds of other groups', () => {
    const others = [
      object('v1', 'ConfigMap', podSpec('cm')),
      object('example.com/v1', 'Deployment', template('custom')),
      object('apps/v1', 'Deployment', {}),
    ];
    expect(extractImages(others)).toEqual([]);
  });

  it('reports a container without an image (refused by the caller)', () => {
    const [location] = extractImages([object('v1', 'Pod', { containers: [{ name: 'x' }] })]);
    expect(location?.image).toBeUndefined();
    expect(location?.containerName).toBe('x');
  });
});

describe('pinning', () => {
  it('rewrites exactly the located images, in new objects', () => {
    const objects = [workloads[2] as KubeObject, workloads[7] as KubeObject, object('v1', 'ConfigMap', {})];
    const locations = extractImages(objects).filter((l) => l.field === 'containers');
    const pinned = pinImages(
      objects,
      locations.map((location) => ({ location, pinned: `${location.image}@sha256:pinned` })),
    );
    const after = extractImages(pinned);
    expect(
      after.filter((l) => l.field === 'containers').every((l) => l.image?.endsWith('@sha256:pinned')),
    ).toBe(true);
    expect(after.filter((l) => l.field !== 'containers').some((l) => l.image?.includes('@'))).toBe(false);
    // The input objects are unchanged, and an object without pins is the same object.
    expect(extractImages(objects).some((l) => l.image?.includes('@'))).toBe(false);
    expect(pinned[2]).toBe(objects[2]);
  });
});
