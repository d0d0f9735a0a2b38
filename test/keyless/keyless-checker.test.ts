import { beforeAll, describe, expect, it } from 'vitest';
import { keylessX509Checker } from '../../src/verify/keyless-checker.ts';
import {
  createScratchRepo,
  createSigstoreTestbed,
  makeGitsignSignature,
  OTHER_ISSUER,
  type SigstoreTestbed,
  writeSignedCommit,
} from '../support/sigstore-fixtures.ts';

let bed: SigstoreTestbed;
let repo: string;

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  repo = await createScratchRepo();
});

describe('keylessX509Checker', () => {
  it('returns the x509 signer and whether an email SAN is the committer', async () => {
    const commit = await writeSignedCommit(
      repo,
      'email identity\n',
      async (payload) =>
        (await makeGitsignSignature(bed, payload, { subject: 'alice@example.com', issuer: OTHER_ISSUER }))
          .armored,
    );
    const checker = keylessX509Checker({
      trustedRoot: bed.trustedRoot,
      identities: [{ issuer: OTHER_ISSUER, subject: 'alice@example.com' }],
    });
    const committer = {
      name: 'Alice',
      email: 'Alice@Example.com',
      timestamp: 1_700_000_000,
      timezone: '+0000',
    };
    expect(await checker(commit.payload, commit.armored, committer)).toEqual({
      ok: true,
      signer: {
        type: 'x509',
        identity: 'alice@example.com',
        principal: 'alice@example.com',
        issuer: OTHER_ISSUER,
      },
      committerMatches: true,
    });
    const other = { ...committer, email: 'mallory@example.com' };
    expect(await checker(commit.payload, commit.armored, other)).toMatchObject({
      ok: true,
      committerMatches: false,
    });
    const strict = keylessX509Checker({
      trustedRoot: bed.trustedRoot,
      identities: [{ issuer: OTHER_ISSUER, subject: 'bob@example.com' }],
    });
    expect(await strict(commit.payload, commit.armored, committer)).toMatchObject({
      ok: false,
      reason: 'UntrustedSigner',
    });
  });
});
