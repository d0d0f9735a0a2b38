// The bounded history walks of openRepoReader: a merge-base style search from both ends stops as soon
// as the answer is known, so a bound far below the history's length still answers the common cases
// (fast-forward, sibling, force push back); an unrelated history hits the bound and is refused.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/source/errors.ts';
import { openRepoReader } from '../../src/source/repo-reader.ts';
import { fastImportHistory } from '../support/git-bombs.ts';
import { makeTempDir, runCommand } from '../support/git-fixtures.ts';

let gitdir: string;
const c: Record<string, string> = {};
const oid = (name: string) => c[name] ?? '';

beforeAll(async () => {
  gitdir = join(await makeTempDir('history-walk'), 'repo.git');
  await runCommand('git', ['init', '-q', '--bare', gitdir]);
  // main: 20,000 commits; `a` and `d`: one commit each on top of main's tip; `other`: 1,000
  // unrelated commits.
  const branches = [
    'commit refs/heads/a\ncommitter T <t@example.com> 1800000000 +0000\ndata 1\na\nfrom :20000\n',
    'commit refs/heads/d\ncommitter T <t@example.com> 1800000001 +0000\ndata 1\nd\nfrom :20000\n',
  ].join('\n');
  await runCommand('git', ['fast-import', '--quiet'], {
    cwd: gitdir,
    input: `${fastImportHistory('refs/heads/main', 20_000, 1_700_000_000)}${branches}\n${fastImportHistory('refs/heads/other', 1_000, 1_900_000_000, 'o')}`,
    timeoutMs: 60_000,
  });
  for (const ref of ['main', 'a', 'd', 'other', 'main~10']) {
    c[ref] = (await runCommand('git', ['rev-parse', ref], { cwd: gitdir })).stdout.toString().trim();
  }
});
afterAll(async () => {
  await runCommand('rm', ['-rf', join(gitdir, '..')]);
});

describe('bounded ancestry and range walks', () => {
  const reader = () => openRepoReader(gitdir, { maxWalkCommits: 50 });

  it('answers fast-forward, sibling and force-push-back cases within 50 commits of a 20,000-commit history', async () => {
    expect(await reader().isAncestor(oid('main'), oid('d'))).toBe(true);
    expect(await reader().isAncestor(oid('main~10'), oid('d'))).toBe(true);
    expect(await reader().isAncestor(oid('a'), oid('d'))).toBe(false);
    // A rollback: the new head is older than the last applied one.
    expect(await reader().isAncestor(oid('d'), oid('main~10'))).toBe(false);
    expect(await reader().listRange(oid('d'), oid('a'))).toEqual([oid('d')]);
    expect(await reader().listRange(oid('d'), oid('main~10'))).toHaveLength(11);
  });

  it('refuses (TooLarge) when an unrelated history must be walked past the bound', async () => {
    const error = await reader()
      .isAncestor(oid('a'), oid('other'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).code).toBe('TooLarge');
    expect((error as SourceError).message).toBe(
      `deciding whether ${oid('other')} descends from ${oid('a')} (rollback protection): more than 50 commits would have to be read; refused (raise the bound with --max-walk-commits)`,
    );
    // With room, the same question is answered: not an ancestor.
    expect(await openRepoReader(gitdir, { maxWalkCommits: 2_000 }).isAncestor(oid('a'), oid('other'))).toBe(
      false,
    );
  });

  it('stops when its signal fires', async () => {
    const controller = new AbortController();
    const walk = openRepoReader(gitdir).listRange(oid('main'), undefined, controller.signal);
    setTimeout(() => controller.abort(new Error('stop')), 5);
    await expect(walk).rejects.toThrow('stop');
  });
});
