// Issue 13, items 2 and 4, end to end: an unsigned pusher's commit whose gpgsig is a SIGNED MESSAGE holding
// one 200,000-byte OBJECT IDENTIFIER, on the branch of a GitRepository with spec.verify.keyless, served
// over HTTPS by git http-backend to the in-process operator on a real API server. It is refused
// (Verified=False InvalidSignature, a short message, the last genuine gitsign revision stays in force)
// while another GitRepository beside it applies a new revision, and the event loop the operator shares
// with this test is never blocked for 100 ms or more. Before the bounds, each refusal blocked it ~20 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../src/kube/client.ts';
import { createLogger } from '../src/util/logger.ts';
import { contentInfoWithLongOid } from '../test/support/der.ts';
import { measureEventLoop } from '../test/support/event-loop.ts';
import {
  armorSignedMessage,
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeGitsignSignature,
  OIDC_ISSUER,
  type SigstoreTestbed,
  signedCommit,
} from '../test/support/sigstore-fixtures.ts';
import { deleteGitRepositoryAndWait, gitRepositoryObject } from './support/fixtures.ts';
import { waitFor } from './support/kube.ts';
import { useTestNamespace } from './support/namespace.ts';
import {
  condition,
  configMapYaml,
  type RepoStatus,
  repoStatus,
  type SignedRepo,
  startTestOperator,
  waitRepoStatus,
} from './support/signet.ts';
import { closeAll, startSuite } from './support/suite.ts';

/**
 * Issue 13 item 4: no hostile input keeps the event loop busy for more than 100 ms per MiB received.
 * Judged on the loop thread's CPU time between ticks (`maxBusyMs`), as e2e/event-loop.test.ts
 * does: wall-clock delay on a loaded 2-core machine also counts time spent waiting for a core.
 */
const MAX_EVENT_LOOP_BUSY_MS = 100;
const ns = useTestNamespace('signet-hostile-gitsign');
const identity = { issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT };
let admin: KubeClient;
let signed: SignedRepo;
let bed: SigstoreTestbed;
let operator: Awaited<ReturnType<typeof startTestOperator>>;
const commits: Record<string, string> = {};

const status = (name: string): Promise<RepoStatus> => repoStatus(admin, ns.name, name);
const colorOf = async (name: string): Promise<string | undefined> =>
  (
    (await admin.get({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns.name }))?.data as
      | Record<string, string>
      | undefined
  )?.color;

/** A commit of `tree` on `parent` whose gpgsig header is made by `sign`, written to refs/heads/`branch`. */
async function commitOnBranch(
  branch: string,
  parent: string,
  message: string,
  sign: (payload: Buffer) => Promise<string>,
): Promise<string> {
  const tree = await signed.repo.git(['rev-parse', `${parent}^{tree}`]);
  return signedCommit(signed.repo, message, sign, { tree, parent, ref: `refs/heads/${branch}` });
}

async function waitApplied(name: string, revision: string): Promise<RepoStatus> {
  return waitRepoStatus(
    admin,
    ns.name,
    name,
    (s) => s.lastAppliedRevision === revision && condition(s, 'Ready')?.status === 'True',
    { timeoutMs: 60_000, description: `${name}: ${revision} applied and Ready` },
  );
}

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  ({ admin, signed } = await startSuite({
    namespace: ns.name,
    repoName: 'hostile-gitsign',
    objects: [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'sigstore-root', namespace: ns.name },
        data: { 'trusted_root.json': JSON.stringify(bed.trustedRoot) },
      },
    ],
  }));
  commits.steady = await signed.commit({
    'steady/app.yaml': configMapYaml('steady', { color: 'v1' }),
    'keyless/app.yaml': configMapYaml('keyless', { color: 'genuine' }),
  });
  commits.genuine = await commitOnBranch('keyless', commits.steady, 'genuine gitsign commit\n', async (p) => {
    return (await makeGitsignSignature(bed, p, {})).armored;
  });
  operator = await startTestOperator({ namespace: ns.name }, createLogger({ level: 'error' }));
  await admin.apply(gitRepositoryObject(signed, ns.name, 'steady', { interval: '1s', path: './steady' }), {
    fieldManager: 'e2e',
  });
  await admin.apply(
    gitRepositoryObject(signed, ns.name, 'keyless', {
      interval: '1s',
      path: './keyless',
      ref: { branch: 'keyless' },
      verify: { mode: 'HEAD', keyless: [identity], trustedRootRef: { name: 'sigstore-root' } },
    }),
    { fieldManager: 'e2e' },
  );
}, 120_000);

afterAll(async () => {
  if (admin !== undefined) {
    for (const name of ['steady', 'keyless']) {
      await deleteGitRepositoryAndWait(admin, ns.name, name).catch(() => undefined);
    }
  }
  await closeAll(operator, signed, admin);
});

describe('a hostile gitsign signature beside a GitRepository that keeps reconciling', () => {
  it('applies a genuine gitsign commit from the test CA', async () => {
    const applied = await waitApplied('keyless', `keyless@sha1:${commits.genuine}`);
    expect(condition(applied, 'Verified')).toMatchObject({ status: 'True', reason: 'Verified' });
    expect(await colorOf('keyless')).toBe('genuine');
    await waitApplied('steady', `main@sha1:${commits.steady}`);
  });

  it('refuses the 200,000-byte OID without stalling the loop while the other repository applies', async () => {
    const measured = await measureEventLoop(async () => {
      const hostile = await commitOnBranch('keyless', commits.genuine ?? '', 'hostile\n', async () =>
        armorSignedMessage(contentInfoWithLongOid(200_000)),
      );
      const next = await signed.commit({ 'steady/app.yaml': configMapYaml('steady', { color: 'v2' }) });
      const refused = await waitFor(
        async () => {
          const s = await status('keyless');
          return s.lastAttemptedRevision === `keyless@sha1:${hostile}` &&
            condition(s, 'Verified')?.reason === 'InvalidSignature'
            ? s
            : undefined;
        },
        { timeoutMs: 60_000, description: 'the hostile commit refused with InvalidSignature' },
      );
      await waitApplied('steady', `main@sha1:${next}`);
      // Let a few more 1 s intervals retry the hostile head inside the measured window.
      const attempts = operator.operator.metrics.verificationFailuresTotal;
      const count = async (): Promise<number> =>
        (await attempts.get()).values
          .filter((v) => v.labels.reason === 'InvalidSignature')
          .reduce((sum, v) => sum + v.value, 0);
      const before = await count();
      await waitFor(async () => (await count()) >= before + 2, {
        timeoutMs: 20_000,
        description: 'two more InvalidSignature refusals',
      });
      return { hostile, refused };
    });
    const { hostile, refused } = measured.result;
    console.log(
      `e2e hostile gitsign: ${measured.elapsedMs.toFixed(0)} ms window, event-loop max delay ` +
        `${measured.maxDelayMs.toFixed(1)} ms, p99 ${measured.p99DelayMs.toFixed(1)} ms, busiest tick ${measured.maxBusyMs.toFixed(1)} ms of CPU, ` +
        `peak RSS ${measured.peakRssMiB.toFixed(0)} MiB (+${measured.peakRssGrowthMiB.toFixed(0)})`,
    );
    const verified = condition(refused, 'Verified');
    expect(verified?.message).toContain(`keyless@sha1:${hostile} rejected (InvalidSignature)`);
    expect(verified?.message).toMatch(/the signature is 270915 characters long; at most 65536 bytes of DER/);
    expect(verified?.message.length).toBeLessThan(2_000);
    expect(refused.lastAppliedRevision).toBe(`keyless@sha1:${commits.genuine}`);
    expect(await colorOf('keyless')).toBe('genuine');
    expect(await colorOf('steady')).toBe('v2');
    expect(measured.maxBusyMs).toBeLessThan(MAX_EVENT_LOOP_BUSY_MS);
  });
});
