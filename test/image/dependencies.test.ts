// The image ships `npm ci --omit=dev` (Dockerfile stage prod-deps, hack/runtime-tree.sh): what
// package.json lists under dependencies, and only that, ends up in it. This test ties that list
// to what the compiled code (src/) imports, so a library used only by tests or hack/ (asn1js,
// pkijs and sigstore build test fixtures and refresh the trust root) is not shipped, and a
// library src/ needs is not left out. The lockfile must agree (its dev flags decide what npm ci
// installs).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

interface Manifest {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
interface Lockfile {
  packages: Record<string, { dev?: boolean; dependencies?: Record<string, string> } & Partial<Manifest>>;
}

const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Manifest;
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as Lockfile;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Package names of the bare specifiers src/ imports or requires (createRequire) at run time (type-only imports left out). */
function packagesImportedBySrc(): Set<string> {
  const names = new Set<string>();
  const specifier =
    /^\s*(import|export)\s+(?!type\s)[^'";]*?\sfrom\s+'([^'.][^']*)'|import\('([^'.][^']*)'\)|\brequire\w*\('([^'.][^']*)'\)/gm;
  for (const file of sourceFiles(join(repoRoot, 'src'))) {
    for (const match of readFileSync(file, 'utf8').matchAll(specifier)) {
      const name = match[2] ?? match[3] ?? match[4] ?? '';
      if (name.startsWith('node:')) continue;
      const parts = name.split('/');
      names.add(name.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? name));
    }
  }
  return names;
}

describe('production dependencies', () => {
  it('are exactly the packages src/ imports', () => {
    expect(Object.keys(manifest.dependencies).sort()).toEqual([...packagesImportedBySrc()].sort());
  });

  it('asn1js, pkijs and sigstore (tests and hack/ only) are dev dependencies, in package.json and the lockfile', () => {
    for (const name of ['asn1js', 'pkijs', 'sigstore']) {
      expect(manifest.dependencies[name], name).toBeUndefined();
      expect(manifest.devDependencies[name], name).toBeDefined();
      expect(lock.packages[`node_modules/${name}`]?.dev, `${name} in package-lock.json`).toBe(true);
    }
  });

  it('the lockfile records the same dependency lists as package.json', () => {
    const root = lock.packages[''];
    expect(root?.dependencies).toEqual(manifest.dependencies);
    expect(root?.devDependencies).toEqual(manifest.devDependencies);
  });
});
