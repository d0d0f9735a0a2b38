// The start and the end most e2e suites share: an admin client with the CRD installed, a signed
// repository served over HTTPS, its trust objects (signers ConfigMap, CA Secret and, with a Slack
// stand-in, the slack Secret) in the suite's namespace; and the teardown that stops and closes what
// was started, in order, skipping what beforeAll never reached.
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/render/object.ts';
import type { Receiver } from '../../test/notify/support.ts';
import { createObjects, trustObjects } from './fixtures.ts';
import { adminClient, createSignedRepo, installCrd, type SignedRepo } from './signet.ts';

export interface SuiteOptions {
  readonly namespace: string;
  /** Served as /<repoName>; also names the signing key in the secret scan. */
  readonly repoName?: string;
  /** A Slack stand-in: started here, its http address in the `slack` Secret. */
  readonly slack?: Receiver;
  /** Created with the trust objects (e.g. a trusted root ConfigMap). */
  readonly objects?: readonly KubeObject[];
}

export interface Suite {
  readonly admin: KubeClient;
  readonly signed: SignedRepo;
}

/** Admin client, CRD, signed repository, Slack stand-in and trust objects; on failure closes what it opened. */
export async function startSuite(options: SuiteOptions): Promise<Suite> {
  const admin = await adminClient();
  let signed: SignedRepo | undefined;
  try {
    await installCrd(admin);
    signed = await createSignedRepo(options.repoName);
    await options.slack?.listen();
    await createObjects(admin, [
      ...trustObjects(
        signed,
        options.namespace,
        options.slack === undefined ? {} : { slackAddress: options.slack.url('http') },
      ),
      ...(options.objects ?? []),
    ]);
    return { admin, signed };
  } catch (error) {
    await closeAll(signed, admin);
    throw error;
  }
}

type Closable = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

/** Stops (operators) or closes (clients, servers, repositories) each in turn; undefined ones are skipped. */
export async function closeAll(...parts: readonly (Closable | undefined)[]): Promise<void> {
  for (const part of parts) {
    if (part === undefined) continue;
    if ('stop' in part) await part.stop();
    else await part.close();
  }
}
