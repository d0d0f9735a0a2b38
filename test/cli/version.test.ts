import { describe, expect, it } from 'vitest';
import { operatorUserAgent, readVersionInfo } from '../../src/cli/version.ts';

describe('readVersionInfo', () => {
  it('reads the version from package.json and reports the running Node', () => {
    const info = readVersionInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number(info.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });
});

describe('operatorUserAgent', () => {
  it('names the pod after the version, so the audit log tells replicas apart', () => {
    expect(operatorUserAgent('0.1.0', 'signet-a-5d8f9-x2k4q')).toBe('signet/0.1.0 (signet-a-5d8f9-x2k4q)');
  });

  it('is the bare version without a pod name, or with one that is not a DNS subdomain', () => {
    expect(operatorUserAgent('0.1.0', undefined)).toBe('signet/0.1.0');
    expect(operatorUserAgent('0.1.0', 'evil\r\nX-Injected: 1')).toBe('signet/0.1.0');
    expect(operatorUserAgent('0.1.0', 'Upper')).toBe('signet/0.1.0');
    expect(operatorUserAgent('0.1.0', 'a'.repeat(254))).toBe('signet/0.1.0');
  });
});
