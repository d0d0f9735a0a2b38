import { defineConfig } from 'vitest/config';
import { SecretScanLastSequencer } from './e2e/support/sequencer.ts';

export default defineConfig({
  test: {
    // e2e/zz-secret-scan.test.ts runs after every other file (it scans their logs).
    sequence: { sequencer: SecretScanLastSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['e2e/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['e2e/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
