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

/** A pod name as the downward API gives it: a DNS subdomain (so it is safe in a header). */
const podNamePattern = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * The operator's user agent: `signet/<version>`, plus ` (<pod>)` when the process knows its pod name
 * (POD_NAME), so the API server's audit log tells replicas and shards apart. A pod name that is not
 * a DNS subdomain is left out rather than sent.
 */
export function operatorUserAgent(version: string, podName: string | undefined): string {
  return podName !== undefined && podNamePattern.test(podName)
    ? `signet/${version} (${podName})`
    : `signet/${version}`;
}
