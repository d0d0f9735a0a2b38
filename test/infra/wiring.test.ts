// `make test` (hack/test.sh, which .ci/run ends in) builds the image tests' registry and cosign before
// vitest starts, so that on a clean clone no test file's beforeAll spends its timeout on a cold build;
// `make registry cosign` runs the same scripts.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('build wiring of the image test infrastructure', () => {
  it('hack/test.sh builds the registry and cosign before vitest runs', async () => {
    const script = await readFile(`${repoRoot}/hack/test.sh`, 'utf8');
    const vitest = script.indexOf('npx vitest run');
    for (const build of ['hack/registry/build.sh', 'hack/cosign/build.sh']) {
      expect(script.indexOf(build)).toBeGreaterThan(-1);
      expect(script.indexOf(build)).toBeLessThan(vitest);
    }
  });

  it('make registry cosign runs the same build scripts', async () => {
    const { stdout } = await promisify(execFile)('make', ['-s', '-n', 'registry', 'cosign'], {
      cwd: repoRoot,
      timeout: 60_000,
    });
    expect(stdout).toContain('hack/registry/build.sh');
    expect(stdout).toContain('hack/cosign/build.sh');
  });
});
