import { parseArgs } from 'node:util';
import { treeDigest } from '../provenance/tree-digest.ts';
import { readLocalTree } from './local-tree.ts';

export const digestUsage = `Usage: signet digest <path> [--bundle-path <relative path>]

Prints the provenance tree digest (sha256:<hex>) of a manifest directory: the value a CI job
signs (e.g. with \`cosign sign-blob\` or \`cosign attest-blob\`, see docs/provenance.md) and that
spec.verify.provenance checks. Symlinks are refused; .signet/ is excluded.
`;

export async function digestCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { 'bundle-path': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    (values.help ? process.stdout : process.stderr).write(digestUsage);
    return values.help ? 0 : 2;
  }
  const tree = await readLocalTree(positionals[0] ?? '.');
  const digest = treeDigest(tree.files, tree.symlinks, {
    ...(values['bundle-path'] === undefined ? {} : { exclude: [values['bundle-path']] }),
  });
  process.stdout.write(`${digest.digest}\n`);
  return 0;
}
