/**
 * The flags that bound untrusted repository content, shared by `signet run`, `verify` and `diff`:
 * the limits come from the operator, never from the repository (docs/reliability.md).
 */
import {
  defaultMaxWalkCommits,
  defaultObjectLimits,
  defaultTreeLimits,
  type SourceLimits,
} from '../source/git-source.ts';

export const sourceLimitOptions = {
  'max-commit-bytes': { type: 'string' },
  'max-tree-bytes': { type: 'string' },
  'max-file-bytes': { type: 'string' },
  'max-walk-commits': { type: 'string' },
} as const;

export const sourceLimitUsage = `  --max-commit-bytes <n>            largest commit or tag object read (default ${defaultObjectLimits.commitBytes})
  --max-tree-bytes <n>              largest tree object read (default ${defaultObjectLimits.treeBytes})
  --max-file-bytes <n>              largest file (blob) read under spec.path (default ${defaultTreeLimits.maxFileBytes};
                                    manifests also stay within the renderer's own 4 MiB bound)
  --max-walk-commits <n>            most commits one Range listing or rollback check reads (default ${defaultMaxWalkCommits})
`;

type Values = Partial<Record<keyof typeof sourceLimitOptions, string>>;

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

/** The limits the flags set; defaults for those absent. */
export function sourceLimitsOf(values: Values): SourceLimits {
  const read = (name: keyof Values, fallback: number) => {
    const text = values[name];
    return text === undefined ? fallback : positive(name, text);
  };
  return {
    tree: { ...defaultTreeLimits, maxFileBytes: read('max-file-bytes', defaultTreeLimits.maxFileBytes) },
    objects: {
      commitBytes: read('max-commit-bytes', defaultObjectLimits.commitBytes),
      treeBytes: read('max-tree-bytes', defaultObjectLimits.treeBytes),
      blobBytes: read('max-file-bytes', defaultTreeLimits.maxFileBytes),
    },
    maxWalkCommits: read('max-walk-commits', defaultMaxWalkCommits),
  };
}
