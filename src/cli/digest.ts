import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { normaliseRepoPath } from '../api/gitrepository.ts';
import { kustomizeProvenanceScope } from '../provenance/kustomize-scope.ts';
import { treeDigest } from '../provenance/tree-digest.ts';
import { kustomizationFileIn } from '../render/kustomize-policy.ts';
import { readLocalTree } from './local-tree.ts';

export const digestUsage = `Usage: signet digest <path> [--bundle-path <relative path>]
       signet digest <repository root> --path <spec.path> [--helm] [--bundle-path <relative path>]

Prints the provenance tree digest (sha256:<hex>) of a manifest directory: the value a CI job
signs (e.g. with \`cosign sign-blob\` or \`cosign attest-blob\`, see docs/provenance.md) and that
spec.verify.provenance checks. Symlinks are refused; .signet/ is excluded.
With --path, the argument is the repository root and --path is spec.path: when spec.path holds a
kustomization the digest covers the whole repository root (everything a Kustomize build can read;
.signet/ at the top of the root and of spec.path, where the bundle lives, left out), as the operator
checks it; the same when spec.helm is set (--helm, or spec.path holds Chart.yaml): a chart, its
vendored dependencies and its values files may be anywhere in the repository (docs/helm.md);
otherwise it is the digest of <repository root>/<spec.path>.
`;

export async function digestCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      'bundle-path': { type: 'string' },
      path: { type: 'string' },
      helm: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    (values.help ? process.stdout : process.stderr).write(digestUsage);
    return values.help ? 0 : 2;
  }
  const root = positionals[0] ?? '.';
  const specPath = values.path === undefined ? undefined : normaliseRepoPath(values.path);
  if (values.path !== undefined && specPath === undefined) {
    process.stderr.write(
      'signet digest: --path must be a relative path inside the repository, without ".."\n',
    );
    return 2;
  }
  const bundlePath = values['bundle-path'];
  if (specPath !== undefined && specPath !== '') {
    const dir = await readLocalTree(join(root, specPath));
    const helm = values.helm === true || dir.files.some((file) => file.path === 'Chart.yaml');
    if (helm || kustomizationFileIn(dir.files, '') !== undefined) {
      const tree = kustomizeProvenanceScope(await readLocalTree(root), specPath);
      const digest = treeDigest(tree.files, tree.symlinks);
      process.stdout.write(`${digest.digest}\n`);
      return 0;
    }
  }
  const tree = await readLocalTree(specPath === undefined ? root : join(root, specPath));
  const digest = treeDigest(tree.files, tree.symlinks, {
    ...(bundlePath === undefined ? {} : { exclude: [bundlePath] }),
  });
  process.stdout.write(`${digest.digest}\n`);
  return 0;
}
