import { describe, expect, it } from 'vitest';
import { readVersionInfo } from '../../src/cli/version.ts';

describe('readVersionInfo', () => {
  it('reads the version from package.json and reports the running Node', () => {
    const info = readVersionInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Number(info.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });
});
