// Re-extracts the pinned Sigstore public-good trusted root from the TUF seed that ships inside
// @sigstore/tuf (a dependency of the `sigstore` package) and writes it to
// src/trust-root/public-good.trusted_root.json.
//
//   node hack/update-trusted-root.ts            # rewrite the pinned file from node_modules
//   node hack/update-trusted-root.ts --check    # exit 1 if the pinned file differs from the seed
//   node hack/update-trusted-root.ts --from FILE  # pin a trusted_root.json fetched out of band
//                                                 # (e.g. `cosign trusted-root create` / a TUF client)
//
// The seed is only as fresh as the installed @sigstore/tuf release: refresh it by upgrading
// `sigstore` (which pulls a newer @sigstore/tuf) or by passing --from with a file obtained through
// TUF on a machine with network access, then review and commit the diff.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const SEED_REPOSITORY = 'https://tuf-repo-cdn.sigstore.dev';
const TARGET_NAME = 'trusted_root.json';
const pinnedPath = fileURLToPath(new URL('../src/trust-root/public-good.trusted_root.json', import.meta.url));

function locateSeeds(): string {
  // Prefer the copy that `sigstore` itself resolves, so the pin matches what the library would use.
  const sigstoreEntry = fileURLToPath(import.meta.resolve('sigstore'));
  try {
    return createRequire(sigstoreEntry).resolve('@sigstore/tuf/seeds.json');
  } catch {
    return createRequire(import.meta.url).resolve('@sigstore/tuf/seeds.json');
  }
}

interface TufSeeds {
  [repository: string]: { targets?: Record<string, string> } | undefined;
}

function trustedRootFromSeeds(seedsPath: string): unknown {
  const seeds = JSON.parse(readFileSync(seedsPath, 'utf8')) as TufSeeds;
  const encoded = seeds[SEED_REPOSITORY]?.targets?.[TARGET_NAME];
  if (typeof encoded !== 'string') {
    throw new Error(`${seedsPath} has no ${TARGET_NAME} target for ${SEED_REPOSITORY}`);
  }
  return JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
}

function render(root: unknown): string {
  const parsed = root as { mediaType?: unknown; tlogs?: unknown; certificateAuthorities?: unknown };
  if (
    typeof parsed.mediaType !== 'string' ||
    !parsed.mediaType.startsWith('application/vnd.dev.sigstore.trustedroot') ||
    !Array.isArray(parsed.tlogs) ||
    !Array.isArray(parsed.certificateAuthorities)
  ) {
    throw new Error('input is not a Sigstore trusted_root.json (mediaType/tlogs/certificateAuthorities)');
  }
  return `${JSON.stringify(root, null, 2)}\n`;
}

const args = process.argv.slice(2);
const fromIndex = args.indexOf('--from');
let source: string;
let rendered: string;
if (fromIndex >= 0) {
  const file = args[fromIndex + 1];
  if (!file) throw new Error('--from needs a file path');
  source = file;
  rendered = render(JSON.parse(readFileSync(file, 'utf8')));
} else {
  source = locateSeeds();
  rendered = render(trustedRootFromSeeds(source));
}

if (args.includes('--check')) {
  const current = readFileSync(pinnedPath, 'utf8');
  if (current !== rendered) {
    console.error(`${pinnedPath} differs from ${source}; run node hack/update-trusted-root.ts`);
    process.exit(1);
  }
  console.log(`${pinnedPath} matches ${source}`);
} else {
  writeFileSync(pinnedPath, rendered);
  console.log(`wrote ${pinnedPath} from ${source}`);
}
