/**
 * Benchmark: offline keyless verification. Times verifyGitsignSignature per gitsign-signed commit payload
 * and verifyProvenance per bundle (keyless message signature, keyless DSSE SLSA statement, keyed), cold
 * (first verification against a trusted root not seen before: includes building its trust material) and
 * warm (p50 over repeated verifications), against one raw ECDSA P-256 verify in the same process.
 *
 * Run: node bench/keyless.bench.ts   (prints one JSON line, then one human line)
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type TreeFile, treeDigest, verifyProvenance } from '../src/provenance/index.ts';
import type { TrustedRootJSON } from '../src/trust-root/index.ts';
import { verifyGitsignSignature } from '../src/verify/gitsign.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  makeDsseBundle,
  makeGitsignSignature,
  makeKeyedMessageBundle,
  makeKeyedSigner,
  makeMessageBundle,
  OIDC_ISSUER,
  type SigstoreTestbed,
  slsaStatement,
} from '../test/support/sigstore-fixtures.ts';

export interface KeylessBenchTiming {
  /** ms, first verification against a fresh trusted root (median over the cold samples). */
  readonly coldMs: number;
  /** ms, median of warm verifications. */
  readonly warmP50Ms: number;
  /** warmP50Ms / raw ECDSA verify p50. */
  readonly ratioToEcdsa: number;
}

export interface KeylessBenchResult {
  readonly bench: 'keyless';
  readonly node: string;
  /** ms, the very first gitsign verification in this process (module warm-up and JIT included). */
  readonly firstCallInProcessMs: number;
  readonly rawEcdsaP256VerifyP50Ms: number;
  readonly gitsignCommit: KeylessBenchTiming;
  readonly keylessMessageBundle: KeylessBenchTiming;
  readonly keylessDsseBundle: KeylessBenchTiming;
  readonly keyedBundle: KeylessBenchTiming;
  readonly samples: { readonly cold: number; readonly warm: number };
}

export interface KeylessBenchOptions {
  readonly coldSamples?: number;
  readonly warmIterations?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

interface Workload {
  bed: SigstoreTestbed;
  commit: () => Promise<unknown>;
  message: () => Promise<unknown>;
  dsse: () => Promise<unknown>;
  keyed: () => Promise<unknown>;
}

async function expectOk(result: Promise<{ ok: boolean; message?: string }>): Promise<void> {
  const r = await result;
  if (!r.ok) throw new Error(`benchmark verification failed: ${r.message ?? ''}`);
}

async function workload(index: number): Promise<Workload> {
  const bed = await createSigstoreTestbed();
  const payload = Buffer.from(
    `tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1700000000 +0000\n` +
      `committer A <a@example.com> 1700000000 +0000\n\nbench commit ${index}\n`,
  );
  const { armored } = await makeGitsignSignature(bed, payload);
  const files: TreeFile[] = Array.from({ length: 20 }, (_, i) => ({
    path: `manifests/obj-${i}.yaml`,
    content: Buffer.from(
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  k: "${'v'.repeat(200)}"\n`,
    ),
  }));
  const tree = treeDigest(files);
  const source = { url: 'https://github.com/acme/deploy', commit: 'a'.repeat(40) };
  const identities = [{ issuer: OIDC_ISSUER, subject: DEFAULT_SUBJECT }];
  const messageBundle = await makeMessageBundle(bed, Buffer.from(tree.digest));
  const dsseBundle = await makeDsseBundle(
    bed,
    slsaStatement({ treeDigestHex: tree.sha256, repository: source.url, commit: source.commit }),
  );
  const signer = makeKeyedSigner('bench');
  const keyedBundle = await makeKeyedMessageBundle(bed, signer, Buffer.from(tree.digest));
  // Each kind gets its own copy of the root (differing in an ignored field), so the first verification of
  // every kind builds its trust material: that is what "cold" measures.
  const rootFor = (kind: string): TrustedRootJSON =>
    ({ ...bed.trustedRoot, benchCopy: kind }) as TrustedRootJSON;
  const commitPolicy = { trustedRoot: rootFor('commit'), identities };
  const messagePolicy = { trustedRoot: rootFor('message'), identities };
  const dssePolicy = { trustedRoot: rootFor('dsse'), identities };
  const keyedPolicy = { trustedRoot: rootFor('keyed'), keys: { bench: signer.publicKeyPEM } };
  return {
    bed,
    commit: () => expectOk(verifyGitsignSignature(payload, armored, commitPolicy)),
    message: () =>
      expectOk(verifyProvenance({ files, bundleJson: messageBundle, policy: messagePolicy, source })),
    dsse: () => expectOk(verifyProvenance({ files, bundleJson: dsseBundle, policy: dssePolicy, source })),
    keyed: () => expectOk(verifyProvenance({ files, bundleJson: keyedBundle, policy: keyedPolicy, source })),
  };
}

export async function runKeylessBench(options: KeylessBenchOptions = {}): Promise<KeylessBenchResult> {
  const coldSamples = options.coldSamples ?? 5;
  const warmIterations = options.warmIterations ?? 200;
  const loads: Workload[] = [];
  for (let i = 0; i < coldSamples; i++) loads.push(await workload(i));

  const firstCallInProcessMs = await time(() => (loads[0] as Workload).commit());
  const kinds = ['commit', 'message', 'dsse', 'keyed'] as const;
  const cold: Record<(typeof kinds)[number], number[]> = { commit: [], message: [], dsse: [], keyed: [] };
  // Cold: each workload has its own trusted root, so its first use builds (and caches) trust material.
  // Workload 0 already warmed the commit path above, so cold samples for commits start at workload 1.
  for (const [i, load] of loads.entries()) {
    for (const kind of kinds) {
      if (kind === 'commit' && i === 0) continue;
      cold[kind].push(await time(load[kind]));
    }
  }
  const warm: Record<(typeof kinds)[number], number[]> = { commit: [], message: [], dsse: [], keyed: [] };
  const hot = loads[0] as Workload;
  for (let i = 0; i < warmIterations; i++) {
    for (const kind of kinds) warm[kind].push(await time(hot[kind]));
  }

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = createHash('sha256').update('signed attributes').digest();
  const signature = sign('sha256', data, privateKey);
  const raw: number[] = [];
  for (let i = 0; i < warmIterations * 5; i++) {
    const start = performance.now();
    if (!verify('sha256', data, publicKey, signature)) throw new Error('raw ECDSA verify failed');
    raw.push(performance.now() - start);
  }
  const rawP50 = median(raw);
  const timing = (kind: (typeof kinds)[number]): KeylessBenchTiming => ({
    coldMs: round(median(cold[kind])),
    warmP50Ms: round(median(warm[kind])),
    ratioToEcdsa: Math.round(median(warm[kind]) / rawP50),
  });
  return {
    bench: 'keyless',
    node: process.version,
    firstCallInProcessMs: round(firstCallInProcessMs),
    rawEcdsaP256VerifyP50Ms: round(rawP50),
    gitsignCommit: timing('commit'),
    keylessMessageBundle: timing('message'),
    keylessDsseBundle: timing('dsse'),
    keyedBundle: timing('keyed'),
    samples: { cold: coldSamples, warm: warmIterations },
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = await runKeylessBench();
  console.log(JSON.stringify(result));
  const line = (name: string, t: KeylessBenchTiming) =>
    `${name} cold ${t.coldMs} ms, warm p50 ${t.warmP50Ms} ms (${t.ratioToEcdsa}× raw ECDSA)`;
  console.log(
    [
      `first call ${result.firstCallInProcessMs} ms; raw ECDSA P-256 verify p50 ${result.rawEcdsaP256VerifyP50Ms} ms`,
      line('gitsign commit', result.gitsignCommit),
      line('keyless message bundle', result.keylessMessageBundle),
      line('keyless DSSE bundle', result.keylessDsseBundle),
      line('keyed bundle', result.keyedBundle),
    ].join('; '),
  );
}
