// CRLF commit messages through the reader the operator uses (src/source/repo-reader.ts over
// isomorphic-git, and the HTTPS Git source with its native pack receiver), not the git CLI reader of
// ssh-verify/openpgp-verify: the signed payload must reach the verifier byte for byte, so SSH and
// OpenPGP signatures over a message with CRLF line endings (and trailing blank CRLF lines, which
// `git commit` would strip) verify from loose objects, from a pack, and after a fetch over HTTPS;
// the same commit with its line endings rewritten to LF is refused.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGitSource } from '../../src/source/git-source.ts';
import { openRepoReader } from '../../src/source/repo-reader.ts';
import { createLogger } from '../../src/util/logger.ts';
import { parseCommit } from '../../src/verify/signed-object.ts';
import { loadTrustMaterial, type TrustMaterial } from '../../src/verify/trust.ts';
import { type RevisionReader, verifyRevision } from '../../src/verify/verify-revision.ts';
import {
  allowedSignersLine,
  createGpgHome,
  createRepo,
  type GpgHome,
  generateSshKey,
  makeTempDir,
  type TestRepo,
} from '../support/git-fixtures.ts';
import { type GitServer, startGitServer } from '../support/git-server.ts';

const crlfMessage = 'deploy: rotate keys\r\n\r\nwritten on Windows\r\n\r\n\r\n';
let dir: string;
let repo: TestRepo;
let gpg: GpgHome;
let server: GitServer;
let trust: TrustMaterial;
const commits: Record<'ssh' | 'openpgp' | 'sshLf' | 'openpgpLf', string> = {
  ssh: '',
  openpgp: '',
  sshLf: '',
  openpgpLf: '',
};
const cases = [
  { name: 'SSH', commit: () => commits.ssh, lf: () => commits.sshLf, type: 'ssh' },
  { name: 'OpenPGP', commit: () => commits.openpgp, lf: () => commits.openpgpLf, type: 'openpgp' },
] as const;

function verify(reader: RevisionReader, commit: string) {
  return verifyRevision({
    reader,
    mode: 'HEAD',
    commit,
    allowRollback: false,
    matchCommitter: false,
    trust,
    now: new Date(),
  });
}

/** The same commit with CRLF rewritten to LF (what a reader that normalises line endings would hand on). */
async function lfCopy(commit: string): Promise<string> {
  const raw = (await repo.readRaw(commit)).toString('latin1').replaceAll('\r\n', '\n');
  return repo.writeRaw('commit', Buffer.from(raw, 'latin1'));
}

beforeAll(async () => {
  dir = await makeTempDir('crlf-reader');
  repo = await createRepo();
  gpg = await createGpgHome();
  const key = await generateSshKey(dir, 'ed25519', 'committer@example.com');
  const fingerprint = await gpg.generateKey('Erin <committer@example.com>');
  trust = await loadTrustMaterial({
    allowed_signers: `${allowedSignersLine('committer@example.com', key)}\n`,
    'erin.asc': await gpg.exportPublicKey(fingerprint),
  });
  expect(trust.problems).toEqual([]);
  commits.ssh = await repo.commit({ sign: { format: 'ssh', key }, message: crlfMessage, verbatim: true });
  commits.openpgp = await repo.commit({
    sign: { format: 'openpgp', gpg, fingerprint },
    message: crlfMessage,
    verbatim: true,
  });
  commits.sshLf = await lfCopy(commits.ssh);
  commits.openpgpLf = await lfCopy(commits.openpgp);
  for (const name of ['ssh', 'openpgp'] as const) await repo.git(['branch', `crlf-${name}`, commits[name]]);
  server = await startGitServer();
  server.serve('crlf', join(repo.dir, '.git'));
}, 120_000);

afterAll(async () => {
  await server?.close();
  await repo?.close();
  await gpg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('CRLF commit messages through the production reader', () => {
  it('the fixtures hold CRLF messages verbatim (git did not clean them up)', async () => {
    for (const { commit } of cases) {
      const raw = await repo.readRaw(commit());
      expect(raw.toString('latin1').endsWith(crlfMessage)).toBe(true);
    }
  });

  it.each(cases)(
    '$name: openRepoReader hands the raw bytes on unchanged from loose objects, and verifies',
    async ({ commit, type }) => {
      const reader = openRepoReader(join(repo.dir, '.git'));
      const object = await reader.readObject(commit());
      expect(object.type).toBe('commit');
      expect(Buffer.from(object.raw).equals(await repo.readRaw(commit()))).toBe(true);
      const parsed = parseCommit(object.raw);
      expect(Buffer.from(parsed.payload).toString('latin1').endsWith(crlfMessage)).toBe(true);
      const verdict = await verify(reader, commit());
      expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
      if (verdict.verified) expect(verdict.evidence.signer.type).toBe(type);
    },
  );

  it.each(cases)('$name: the same commit rewritten to LF is refused (InvalidSignature)', async ({ lf }) => {
    const verdict = await verify(openRepoReader(join(repo.dir, '.git')), lf());
    expect(verdict.verified).toBe(false);
    if (!verdict.verified) expect(verdict.reason).toBe('InvalidSignature');
  });

  it.each(cases)(
    '$name: verifies from a pack (git repack -a -d), read by isomorphic-git',
    async ({ commit }) => {
      const packed = await makeTempDir('crlf-packed');
      try {
        await repo.git(['clone', '-q', '--bare', '--no-local', repo.dir, packed]);
        // Every object is in the pack: none is loose.
        const counts = await repo.git(['-C', packed, 'count-objects', '-v']);
        expect(counts).toMatch(/^count: 0$/m);
        expect(counts).toMatch(/^packs: 1$/m);
        const verdict = await verify(openRepoReader(packed), commit());
        expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
      } finally {
        await rm(packed, { recursive: true, force: true });
      }
    },
  );

  it.each(cases)(
    "$name: verifies after the operator's HTTPS fetch (pack receiver, native idx)",
    async ({ name, commit, type }) => {
      const cacheDir = join(dir, `cache-${name}`);
      const source = createGitSource({ cacheDir, logger: createLogger({ level: 'silent' }) });
      const remote = {
        url: server.serve('crlf', join(repo.dir, '.git')),
        insecure: false,
        timeoutMs: 20_000,
        credentials: { caPem: server.caPem },
      };
      const ref = { branch: `crlf-${type}` };
      const signal = AbortSignal.timeout(30_000);
      const resolved = await source.resolve(remote, ref, signal);
      expect(resolved.commit).toBe(commit());
      const fetched = await source.fetch(`crlf/${name}`, remote, ref, resolved, { depth: 1 }, signal);
      expect(Buffer.from((await fetched.readObject(commit())).raw).equals(await repo.readRaw(commit()))).toBe(
        true,
      );
      const verdict = await verify(fetched, commit());
      expect(verdict.verified, JSON.stringify(verdict)).toBe(true);
    },
  );
});
