// Offline Sigstore test bed: a Fulcio CA, CT log, Rekor log and TSA from @sigstore/mock (called
// directly, no HTTP), a matching trusted_root.json, and builders for gitsign CMS signatures, signed git
// commits and Sigstore bundles (keyless and keyed, message signature and DSSE).
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject, randomInt, sign } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initializeCA, initializeCTLog, initializeTLog, initializeTSA } from '@sigstore/mock';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { TrustedRootJSON } from '../../src/trust-root/index.ts';
import { certificatePEM, OID_REKOR_TLOG_ENTRY, OID_TIMESTAMP_TOKEN } from '../../src/verify/gitsign.ts';
import {
  type DecodedTransparencyLogEntry,
  encodeTransparencyLogEntry,
} from '../../src/verify/keyless-proto.ts';
import { runCommand, type TestRepo } from './git-fixtures.ts';

const run = promisify(execFile);

type MockCA = Awaited<ReturnType<typeof initializeCA>>;
type MockTLog = Awaited<ReturnType<typeof initializeTLog>>;
type MockTSA = Awaited<ReturnType<typeof initializeTSA>>;

export const OIDC_ISSUER = 'https://token.actions.githubusercontent.com';
export const OTHER_ISSUER = 'https://accounts.google.com';
export const DEFAULT_SUBJECT = 'https://github.com/acme/deploy/.github/workflows/release.yml@refs/heads/main';
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_DATA = '1.2.840.113549.1.7.1';
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const MINUTE = 60_000;

function ecKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

const bytesOf = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
const b64 = (bytes: ArrayBufferView): string => bytesOf(bytes).toString('base64');
const sha256 = (bytes: Uint8Array | string): Buffer => createHash('sha256').update(bytes).digest();

export interface LeafOptions {
  subject?: string;
  issuer?: string;
  /** When the CA issues the leaf (default: now). Leaves are valid for 10 minutes. */
  issuedAt?: Date;
}

export interface TLogOptions {
  /** Which log records the entry: the trusted one (default), a log absent from the trusted root, or none. */
  log?: 'trusted' | 'foreign' | 'none';
  /** When the log integrates the entry (default: now). */
  integratedAt?: Date;
  /** Attach an RFC 3161 timestamp from the mock TSA. */
  withTimestamp?: boolean;
  /** Drop the SET (inclusion promise), keeping only the inclusion proof, as Rekor v2 entries are. */
  withoutInclusionPromise?: boolean;
}

interface Leaf {
  certificate: Buffer;
  privateKey: KeyObject;
}

/** Rekor's v1 JSON log entry, as the mock returns it. */
interface RekorLogEntry {
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification: {
    inclusionProof: {
      logIndex: number;
      treeSize: number;
      rootHash: string;
      hashes: string[];
      checkpoint: string;
    };
    signedEntryTimestamp: string;
  };
}

export function rekorEntryToTLE(
  response: object,
  kindVersion: { kind: string; version: string },
): DecodedTransparencyLogEntry {
  const entry = Object.values(response)[0] as RekorLogEntry;
  return {
    logIndex: String(entry.logIndex),
    logId: { keyId: Buffer.from(entry.logID, 'hex') },
    kindVersion,
    integratedTime: String(entry.integratedTime),
    inclusionPromise: {
      signedEntryTimestamp: Buffer.from(entry.verification.signedEntryTimestamp, 'base64'),
    },
    inclusionProof: {
      logIndex: String(entry.verification.inclusionProof.logIndex),
      rootHash: Buffer.from(entry.verification.inclusionProof.rootHash, 'hex'),
      treeSize: String(entry.verification.inclusionProof.treeSize),
      hashes: entry.verification.inclusionProof.hashes.map((h) => Buffer.from(h, 'hex')),
      checkpoint: { envelope: entry.verification.inclusionProof.checkpoint },
    },
    canonicalizedBody: Buffer.from(entry.body, 'base64'),
  };
}

export function tleToJSON(entry: DecodedTransparencyLogEntry): Record<string, unknown> {
  return {
    logIndex: entry.logIndex,
    logId: { keyId: b64(entry.logId?.keyId ?? Buffer.alloc(0)) },
    kindVersion: entry.kindVersion,
    integratedTime: entry.integratedTime,
    inclusionPromise: entry.inclusionPromise
      ? { signedEntryTimestamp: b64(entry.inclusionPromise.signedEntryTimestamp) }
      : undefined,
    inclusionProof: entry.inclusionProof
      ? {
          logIndex: entry.inclusionProof.logIndex,
          rootHash: b64(entry.inclusionProof.rootHash),
          treeSize: entry.inclusionProof.treeSize,
          hashes: entry.inclusionProof.hashes.map(b64),
          checkpoint: entry.inclusionProof.checkpoint,
        }
      : undefined,
    canonicalizedBody: b64(entry.canonicalizedBody),
  };
}

function spkiPEM(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType);
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

export interface SigstoreTestbed {
  trustedRoot: TrustedRootJSON;
  /** PEM of the mock Fulcio root (for `openssl cms -verify -CAfile`). */
  fulcioRootPEM: string;
  issueLeaf(options?: LeafOptions): Promise<Leaf>;
  logEntry(
    proposal: object,
    kind: string,
    options?: TLogOptions,
  ): Promise<DecodedTransparencyLogEntry | undefined>;
  timestamp(signature: Buffer): Promise<Buffer>;
}

/** Creates a fresh mock Sigstore deployment and its trusted root (about 50 ms). */
export async function createSigstoreTestbed(): Promise<SigstoreTestbed> {
  const caClock = new Date();
  const tlogClock = new Date();
  // The TSA's certificates are dated from this clock: a minute in the past, so a timestamp made in
  // the same second as the testbed never precedes them (whole-second certificate times).
  const tsaClock = new Date(Date.now() - 60_000);
  const ctlog = await initializeCTLog(ecKeyPair(), caClock);
  const ca: MockCA = await initializeCA(ecKeyPair(), ctlog, caClock);
  const tlog: MockTLog = await initializeTLog('https://rekor.signet.test', ecKeyPair(), tlogClock);
  const foreignTlog: MockTLog = await initializeTLog('https://rekor.elsewhere.test', ecKeyPair(), tlogClock);
  const tsa: MockTSA = await initializeTSA(ecKeyPair(), tsaClock);
  const start = new Date(Date.now() - 60 * MINUTE).toISOString();
  const logEntryOf = (url: string, publicKey: Buffer, keyId: Buffer) => ({
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: b64(publicKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
    logId: { keyId: b64(keyId) },
  });
  const trustedRoot: TrustedRootJSON = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [logEntryOf('https://rekor.signet.test', tlog.publicKey, sha256(tlog.publicKey))],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: 'https://fulcio.signet.test',
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start },
      },
    ],
    ctlogs: [logEntryOf('https://ctfe.signet.test', ctlog.publicKey, bytesOf(ctlog.logID))],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: 'https://tsa.signet.test',
        certChain: {
          certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }],
        },
        validFor: { start },
      },
    ],
  };
  return {
    trustedRoot,
    fulcioRootPEM: certificatePEM(bytesOf(ca.rootCertificate)),
    async issueLeaf(options = {}) {
      const key = ecKeyPair();
      // Issued a little in the past: timestamps with whole-second precision made in the same second
      // as the leaf could otherwise fall before its notBefore (a fixture race, not a verifier bug).
      caClock.setTime((options.issuedAt ?? new Date(Date.now() - 2_000)).getTime());
      const issuer = options.issuer ?? OIDC_ISSUER;
      const certificate = bytesOf(
        await ca.issueCertificate({
          publicKey: key.publicKey.export({ format: 'der', type: 'spki' }),
          subjectAltName: options.subject ?? DEFAULT_SUBJECT,
          extensions: [
            { oid: '1.3.6.1.4.1.57264.1.1', value: issuer, legacy: true },
            { oid: '1.3.6.1.4.1.57264.1.8', value: issuer },
          ],
        }),
      );
      return { certificate, privateKey: key.privateKey };
    },
    async logEntry(proposal, kind, options = {}) {
      const which = options.log ?? 'trusted';
      if (which === 'none') return undefined;
      tlogClock.setTime((options.integratedAt ?? new Date()).getTime());
      const response = await (which === 'trusted' ? tlog : foreignTlog).log(proposal);
      const entry = rekorEntryToTLE(response, { kind, version: '0.0.1' });
      if (options.withoutInclusionPromise) delete entry.inclusionPromise;
      return entry;
    },
    async timestamp(signature) {
      // Whole seconds: @sigstore/core parses GeneralizedTime fractions only with exactly three digits,
      // and DER drops trailing zeros (…05.5Z), so a millisecond value like 500 would be rejected.
      tsaClock.setTime(Math.floor(Date.now() / 1_000) * 1_000);
      return bytesOf(
        await tsa.timestamp({
          artifactHash: sha256(signature),
          hashAlgorithmOID: OID_SHA256,
          nonce: randomInt(1, 2 ** 31),
          policyOID: '1.3.6.1.4.1.57264.2',
          certReq: true,
        }),
      );
    },
  };
}

/** The TimeStampToken (ContentInfo) inside a TimeStampResp. */
export function timestampTokenOf(response: Buffer): Buffer {
  const parsed = asn1js.fromBER(response).result as asn1js.Sequence;
  const token = parsed.valueBlock.value[1];
  if (!token) throw new Error('TimeStampResp has no token');
  return Buffer.from(token.toBER(false));
}

function hashedRekordProposal(digest: Buffer, signature: Buffer, publicKeyPEM: string): object {
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: digest.toString('hex') } },
      signature: { content: b64(signature), publicKey: { content: b64(Buffer.from(publicKeyPEM)) } },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// gitsign

export interface GitsignOptions extends LeafOptions, TLogOptions {
  /** Sign this instead of the payload (to make a messageDigest that does not match). */
  signedPayloadOverride?: Uint8Array;
}

function derSetOf(attributes: pkijs.Attribute[]): { sorted: pkijs.Attribute[]; der: Buffer } {
  const encoded = attributes.map((attribute) => ({
    attribute,
    der: Buffer.from(attribute.toSchema().toBER(false)),
  }));
  encoded.sort((a, b) => Buffer.compare(a.der, b.der));
  const body = Buffer.concat(encoded.map((e) => e.der));
  const der = Buffer.from(
    new asn1js.Set({ value: encoded.map((e) => asn1js.fromBER(e.der).result) }).toBER(false),
  );
  if (!der.subarray(der.length - body.length).equals(body)) throw new Error('SET OF encoding mismatch');
  return { sorted: encoded.map((e) => e.attribute), der };
}

export function armorSignedMessage(der: Uint8Array): string {
  const lines = b64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN SIGNED MESSAGE-----\n${lines.join('\n')}\n-----END SIGNED MESSAGE-----\n`;
}

/** A gitsign-shaped detached CMS signature over `payload`, armored as gitsign writes it. */
export async function makeGitsignSignature(
  bed: SigstoreTestbed,
  payload: Uint8Array,
  options: GitsignOptions = {},
): Promise<{ armored: string; der: Buffer; leaf: Leaf }> {
  const leaf = await bed.issueLeaf(options);
  const certificate = pkijs.Certificate.fromBER(leaf.certificate);
  const { sorted, der: signedAttrsDER } = derSetOf([
    new pkijs.Attribute({
      type: '1.2.840.113549.1.9.3',
      values: [new asn1js.ObjectIdentifier({ value: OID_DATA })],
    }),
    new pkijs.Attribute({
      type: '1.2.840.113549.1.9.5',
      values: [new asn1js.UTCTime({ valueDate: new Date() })],
    }),
    new pkijs.Attribute({
      type: '1.2.840.113549.1.9.4',
      values: [new asn1js.OctetString({ valueHex: sha256(options.signedPayloadOverride ?? payload) })],
    }),
  ]);
  const signature = sign('sha256', signedAttrsDER, leaf.privateKey);
  const unsigned: pkijs.Attribute[] = [];
  const entry = await bed.logEntry(
    hashedRekordProposal(sha256(signedAttrsDER), signature, certificatePEM(leaf.certificate)),
    'hashedrekord',
    options,
  );
  if (entry) {
    // gitsign clears the body: the verifier has to rebuild it byte for byte.
    const cleared = { ...entry, canonicalizedBody: Buffer.alloc(0) };
    unsigned.push(
      new pkijs.Attribute({
        type: OID_REKOR_TLOG_ENTRY,
        values: [new asn1js.OctetString({ valueHex: encodeTransparencyLogEntry(cleared) })],
      }),
    );
  }
  if (options.withTimestamp) {
    const token = timestampTokenOf(await bed.timestamp(signature));
    unsigned.push(new pkijs.Attribute({ type: OID_TIMESTAMP_TOKEN, values: [asn1js.fromBER(token).result] }));
  }
  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({
      issuer: certificate.issuer,
      serialNumber: certificate.serialNumber,
    }),
    digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID_SHA256 }),
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: sorted }),
    signatureAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID_ECDSA_SHA256 }),
    signature: new asn1js.OctetString({ valueHex: signature }),
  });
  if (unsigned.length > 0) {
    signerInfo.unsignedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 1, attributes: unsigned });
  }
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: OID_SHA256 })],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID_DATA }),
    certificates: [certificate],
    signerInfos: [signerInfo],
  });
  const der = Buffer.from(
    new pkijs.ContentInfo({ contentType: OID_SIGNED_DATA, content: signedData.toSchema(true) })
      .toSchema()
      .toBER(false),
  );
  return { armored: armorSignedMessage(der), der, leaf };
}

// ---------------------------------------------------------------------------------------------
// git

async function git(cwd: string, args: string[], input?: Buffer): Promise<Buffer> {
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'Alice',
    GIT_AUTHOR_EMAIL: 'alice@example.com',
    GIT_AUTHOR_DATE: '1700000000 +0000',
    GIT_COMMITTER_NAME: 'Alice',
    GIT_COMMITTER_EMAIL: 'alice@example.com',
    GIT_COMMITTER_DATE: '1700000000 +0000',
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: cwd,
  };
  const child = run('git', args, { cwd, env, encoding: 'buffer', timeout: 10_000, maxBuffer: 16 << 20 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout;
}

/**
 * Commits the index of `repo` on its current branch with a gitsign-shaped signature (as gitsign with
 * rekorMode offline: the log entry is embedded) and moves the branch to it; returns the commit.
 */
export async function gitsignCommit(
  bed: SigstoreTestbed,
  repo: TestRepo,
  message: string,
  options: GitsignOptions = {},
): Promise<string> {
  return signedCommit(
    repo,
    message,
    async (payload) => (await makeGitsignSignature(bed, payload, options)).armored,
  );
}

/** `payload` (a commit object) with a gpgsig header holding `armored`, the way git writes signed commits. */
export function withGpgsig(payload: Buffer, armored: string): Buffer {
  const split = payload.indexOf('\n\n');
  return Buffer.concat([
    payload.subarray(0, split + 1),
    Buffer.from(`gpgsig ${armored.replace(/\n$/, '').split('\n').join('\n ')}\n`),
    payload.subarray(split + 1),
  ]);
}

/**
 * A commit of `tree` (default: the index) on `parent` (default: HEAD) whose gpgsig header is
 * `sign(payload)`, written with system git and moved to `ref` (default: the current branch).
 */
export async function signedCommit(
  repo: TestRepo,
  message: string,
  sign: (payload: Buffer) => Promise<string>,
  place: { readonly tree?: string; readonly parent?: string; readonly ref?: string } = {},
): Promise<string> {
  const tree = place.tree ?? (await repo.git(['write-tree']));
  const parent = place.parent ?? (await repo.git(['rev-parse', 'HEAD']));
  const unsigned = await repo.git(['commit-tree', tree, '-p', parent, '-m', message]);
  const payload = (await runCommand('git', ['cat-file', 'commit', unsigned], { cwd: repo.dir })).stdout;
  const raw = withGpgsig(payload, await sign(payload));
  const oid = await repo.git(['hash-object', '-t', 'commit', '-w', '--stdin'], { input: raw });
  await repo.git(['update-ref', place.ref ?? (await repo.git(['symbolic-ref', 'HEAD'])), oid]);
  return oid;
}

export async function createScratchRepo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-gitsign-'));
  await git(dir, ['init', '-q', '-b', 'main']);
  return dir;
}

/** Splits a raw commit into payload and gpgsig the way git does (test-side copy; production code lives elsewhere). */
export function splitCommit(raw: Buffer): { payload: Buffer; signature?: string } {
  const keep: Buffer[] = [];
  const sig: Buffer[] = [];
  let offset = 0;
  let inSig = false;
  while (offset < raw.length) {
    let nl = raw.indexOf(0x0a, offset);
    nl = nl === -1 ? raw.length : nl + 1;
    const line = raw.subarray(offset, nl);
    if (line.length === 1 && line[0] === 0x0a) {
      keep.push(raw.subarray(offset));
      break;
    }
    if (line.subarray(0, 7).toString() === 'gpgsig ') {
      inSig = true;
      sig.push(line.subarray(7));
    } else if (inSig && line[0] === 0x20) {
      sig.push(line.subarray(1));
    } else {
      inSig = false;
      keep.push(line);
    }
    offset = nl;
  }
  return {
    payload: Buffer.concat(keep),
    signature: sig.length > 0 ? Buffer.concat(sig).toString() : undefined,
  };
}

export interface SignedCommit {
  oid: string;
  /** The commit object as stored (with gpgsig). */
  raw: Buffer;
  /** The signed payload (commit without gpgsig). */
  payload: Buffer;
  armored: string;
}

/**
 * Writes a commit signed with `sign(payload)` into `repo` with system git: commit-tree → insert a gpgsig
 * header → hash-object -w → update-ref refs/heads/main.
 */
export async function writeSignedCommit(
  repo: string,
  message: string,
  signPayload: (payload: Buffer) => Promise<string>,
): Promise<SignedCommit> {
  const tree = (await git(repo, ['mktree'], Buffer.alloc(0))).toString().trim();
  const unsigned = (await git(repo, ['commit-tree', tree, '-m', message])).toString().trim();
  const payload = await git(repo, ['cat-file', 'commit', unsigned]);
  const armored = await signPayload(payload);
  const raw = withGpgsig(payload, armored);
  const oid = (await git(repo, ['hash-object', '-t', 'commit', '-w', '--stdin'], raw)).toString().trim();
  await git(repo, ['update-ref', 'refs/heads/main', oid]);
  const stored = await git(repo, ['cat-file', 'commit', oid]);
  const parts = splitCommit(stored);
  if (!parts.payload.equals(payload) || parts.signature !== armored) {
    throw new Error('signed commit did not round-trip through git');
  }
  return { oid, raw: stored, payload, armored };
}

/** `openssl cms -verify` of a detached gitsign signature against the mock Fulcio root. */
export async function opensslVerifyCms(
  bed: SigstoreTestbed,
  der: Buffer,
  payload: Buffer,
): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'signet-cms-'));
  await writeFile(join(dir, 'sig.der'), der);
  await writeFile(join(dir, 'payload'), payload);
  await writeFile(join(dir, 'root.pem'), bed.fulcioRootPEM);
  try {
    const { stdout, stderr } = await run(
      'openssl',
      [
        'cms',
        '-verify',
        '-binary',
        '-inform',
        'DER',
        '-in',
        'sig.der',
        '-content',
        'payload',
        '-CAfile',
        'root.pem',
        '-purpose',
        'any',
        '-out',
        '/dev/null',
      ],
      { cwd: dir, timeout: 10_000 },
    );
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    return { ok: false, output: failure.stderr ?? failure.message };
  }
}

// ---------------------------------------------------------------------------------------------
// bundles

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface KeylessBundleOptions extends LeafOptions, TLogOptions {
  /** How the DSSE entry is recorded: as real Rekor stores it (default) or the raw proposal (mock pitfall). */
  dsseEntryShape?: 'rekor' | 'raw-proposal';
}

function bundleJSON(
  verificationContent: Record<string, unknown>,
  entries: DecodedTransparencyLogEntry[],
  timestamps: Buffer[],
  content: Record<string, unknown>,
): Record<string, unknown> {
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: {
      ...verificationContent,
      tlogEntries: entries.map(tleToJSON),
      timestampVerificationData: { rfc3161Timestamps: timestamps.map((t) => ({ signedTimestamp: b64(t) })) },
    },
    ...content,
  };
}

/** A keyless message-signature bundle over `artifact`. */
export async function makeMessageBundle(
  bed: SigstoreTestbed,
  artifact: Uint8Array,
  options: KeylessBundleOptions = {},
): Promise<Record<string, unknown>> {
  const leaf = await bed.issueLeaf(options);
  const signature = sign('sha256', artifact, leaf.privateKey);
  const digest = sha256(artifact);
  const entry = await bed.logEntry(
    hashedRekordProposal(digest, signature, certificatePEM(leaf.certificate)),
    'hashedrekord',
    options,
  );
  const timestamps = options.withTimestamp ? [await bed.timestamp(signature)] : [];
  return bundleJSON({ certificate: { rawBytes: b64(leaf.certificate) } }, entry ? [entry] : [], timestamps, {
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: b64(digest) },
      signature: b64(signature),
    },
  });
}

function dsseProposal(
  envelope: object,
  payload: Buffer,
  signature: Buffer,
  verifierPEM: string,
  shape: 'rekor' | 'raw-proposal',
): object {
  if (shape === 'raw-proposal') {
    return {
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        proposedContent: { envelope: JSON.stringify(envelope), verifiers: [b64(Buffer.from(verifierPEM))] },
      },
    };
  }
  // What a real Rekor stores for a dsse proposal.
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256(JSON.stringify(envelope)).toString('hex') },
      payloadHash: { algorithm: 'sha256', value: sha256(payload).toString('hex') },
      signatures: [{ signature: b64(signature), verifier: b64(Buffer.from(verifierPEM)) }],
    },
  };
}

/** A keyless DSSE bundle whose payload is `statement` (JSON-serialized). */
export async function makeDsseBundle(
  bed: SigstoreTestbed,
  statement: object,
  options: KeylessBundleOptions = {},
): Promise<Record<string, unknown>> {
  const leaf = await bed.issueLeaf(options);
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = sign('sha256', pae(IN_TOTO_PAYLOAD_TYPE, payload), leaf.privateKey);
  const envelope = {
    payload: b64(payload),
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    signatures: [{ sig: b64(signature), keyid: '' }],
  };
  const entry = await bed.logEntry(
    dsseProposal(
      envelope,
      payload,
      signature,
      certificatePEM(leaf.certificate),
      options.dsseEntryShape ?? 'rekor',
    ),
    'dsse',
    options,
  );
  const timestamps = options.withTimestamp ? [await bed.timestamp(signature)] : [];
  return bundleJSON({ certificate: { rawBytes: b64(leaf.certificate) } }, entry ? [entry] : [], timestamps, {
    dsseEnvelope: envelope,
  });
}

export interface KeyedSigner {
  hint: string;
  privateKey: KeyObject;
  publicKeyPEM: string;
}

export function makeKeyedSigner(hint: string): KeyedSigner {
  const { privateKey, publicKey } = ecKeyPair();
  return { hint, privateKey, publicKeyPEM: spkiPEM(publicKey) };
}

/** A keyed message-signature bundle (cosign sign-blob --key style), optionally recorded in the mock log. */
export async function makeKeyedMessageBundle(
  bed: SigstoreTestbed,
  signer: KeyedSigner,
  artifact: Uint8Array,
  options: { log?: 'trusted' | 'foreign' | 'none' } = {},
): Promise<Record<string, unknown>> {
  const signature = sign('sha256', artifact, signer.privateKey);
  const digest = sha256(artifact);
  const entry = await bed.logEntry(
    hashedRekordProposal(digest, signature, signer.publicKeyPEM),
    'hashedrekord',
    {
      log: options.log ?? 'none',
    },
  );
  return bundleJSON({ publicKey: { hint: signer.hint } }, entry ? [entry] : [], [], {
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: b64(digest) },
      signature: b64(signature),
    },
  });
}

/** A keyed DSSE bundle over an in-toto statement. */
export async function makeKeyedDsseBundle(
  bed: SigstoreTestbed,
  signer: KeyedSigner,
  statement: object,
  options: { log?: 'trusted' | 'foreign' | 'none' } = {},
): Promise<Record<string, unknown>> {
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = sign('sha256', pae(IN_TOTO_PAYLOAD_TYPE, payload), signer.privateKey);
  const envelope = {
    payload: b64(payload),
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    signatures: [{ sig: b64(signature), keyid: signer.hint }],
  };
  const entry = await bed.logEntry(
    dsseProposal(envelope, payload, signature, signer.publicKeyPEM, 'rekor'),
    'dsse',
    { log: options.log ?? 'none' },
  );
  return bundleJSON({ publicKey: { hint: signer.hint } }, entry ? [entry] : [], [], {
    dsseEnvelope: envelope,
  });
}

/** An in-toto v1 statement with a SLSA v1 provenance predicate for the given tree digest. */
export function slsaStatement(options: {
  treeDigestHex: string;
  builderId?: string;
  predicateType?: string;
  repository?: string;
  commit?: string;
}): object {
  const repository = options.repository ?? 'https://github.com/acme/deploy';
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'manifests', digest: { sha256: options.treeDigestHex } }],
    predicateType: options.predicateType ?? 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType: 'https://signet.dev/manifest-bundle/v1',
        externalParameters: {
          workflow: { ref: 'refs/heads/main', repository, path: '.github/workflows/release.yml' },
        },
        resolvedDependencies: [
          {
            uri: `git+${repository}@refs/heads/main`,
            digest: { gitCommit: options.commit ?? 'a'.repeat(40) },
          },
        ],
      },
      runDetails: {
        builder: {
          id:
            options.builderId ??
            'https://github.com/acme/deploy/.github/workflows/release.yml@refs/heads/main',
        },
        metadata: { invocationId: 'https://github.com/acme/deploy/actions/runs/1/attempts/1' },
      },
    },
  };
}
