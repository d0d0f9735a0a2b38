import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VersionInfo {
  readonly version: string;
  readonly node: string;
}

/** Finds the project's package.json whether running from src/ (tests) or dist/ (built CLI). */
function findPackageJson(fromDir: string): string | undefined {
  let dir = fromDir;
  for (let depth = 0; depth < 6; depth++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

export function readVersionInfo(): VersionInfo {
  const packageJsonPath = findPackageJson(dirname(fileURLToPath(import.meta.url)));
  let version = 'unknown';
  if (packageJsonPath !== undefined) {
    const parsed: unknown = JSON.parse(readFileSync(packageJsonPath, 'utf8'));
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      'version' in parsed &&
      typeof parsed.version === 'string'
    ) {
      version = parsed.version;
    }
  }
  return { version, node: process.versions.node };
}
