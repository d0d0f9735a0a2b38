// The e2e file order: vitest's own (failed first, then longest first), except that the suite-wide
// secret scan (e2e/zz-secret-scan.test.ts) always runs last, after every file whose logs it scans.
// e2e files run one at a time (fileParallelism: false), so "last" means after all of them ended.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const lastTestFile = 'e2e/zz-secret-scan.test.ts';

function runsLast(spec: TestSpecification): boolean {
  return spec.moduleId.replaceAll('\\', '/').endsWith(`/${lastTestFile}`);
}

export class SecretScanLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    return [...sorted.filter((spec) => !runsLast(spec)), ...sorted.filter(runsLast)];
  }
}
