// cosign's legacy keyless `.sig` layer (signature, certificate, chain and Rekor SET annotations)
// converted to a sigstore bundle v0.1 and verified offline like any keyless bundle. Signatures are
// made by the sigstore test bed (mock Fulcio, Rekor and trusted root), no registry: the conversion
// refuses each missing or malformed annotation, a Rekor entry of another payload or certificate,
// a SET that does not sign the body, and the verifier refuses another identity or an untrusted CA.
import { bundleFromJSON } from '@sigstore/bundle';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  certificateAnnotation,
  chainAnnotation,
  defaultLegacyKeylessLimits,
  legacyKeylessBundle,
  rekorBundleAnnotation,
  signatureAnnotation,
} from '../../src/images/legacy-keyless.ts';
import { type ImageTrust, verifyKeylessSimpleSigning } from '../../src/images/signature.ts';
import { keylessSigAnnotations, simpleSigningPayload } from '../support/image-signing.ts';
import {
  createSigstoreTestbed,
  DEFAULT_SUBJECT,
  OIDC_ISSUER,
  type SigstoreTestbed,
} from '../support/sigstore-fixtures.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const OTHER_DIGEST = `sha256:${'b'.repeat(64)}`;
const OTHER_SUBJECT = 'https://github.com/mallory/fork/.github/workflows/release.yml@refs/heads/main';
const payload = simpleSigningPayload('registry.test/team/app', DIGEST);

let bed: SigstoreTestbed;
let otherBed: SigstoreTestbed;
let good: Record<string, string>;

const trustFor = (testbed: SigstoreTestbed, subject = DEFAULT_SUBJECT): ImageTrust => ({
  identities: [{ issuer: OIDC_ISSUER, subject }],
  keys: {},
  trustedRoot: testbed.trustedRoot,
});

function without(annotations: Record<string, string>, key: string): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).filter(([name]) => name !== key));
}

function conversionError(annotations: Record<string, string>, bytes = payload): string {
  const result = legacyKeylessBundle(annotations, bytes);
  if (result.ok) throw new Error('converted');
  return result.message;
}

function refusal(check: ReturnType<typeof verifyKeylessSimpleSigning>): string {
  if (check.ok) throw new Error(`accepted: ${check.signer}`);
  return check.message;
}

/** The Rekor SET annotation with its Payload edited. */
function editedSet(annotations: Record<string, string>, edit: (payload: Record<string, unknown>) => void) {
  const set = JSON.parse(annotations[rekorBundleAnnotation] ?? '{}') as { Payload: Record<string, unknown> };
  edit(set.Payload);
  return { ...annotations, [rekorBundleAnnotation]: JSON.stringify(set) };
}

beforeAll(async () => {
  bed = await createSigstoreTestbed();
  otherBed = await createSigstoreTestbed();
  good = await keylessSigAnnotations(payload, { testbed: bed });
});

describe('legacy keyless .sig layer to sigstore bundle', () => {
  it('builds a v0.1 bundle (leaf and chain, one hashedrekord entry with the SET, message signature over the payload)', () => {
    const result = legacyKeylessBundle(good, payload);
    if (!result.ok) throw new Error(result.message);
    const bundle = bundleFromJSON(result.bundle);
    expect(bundle.mediaType).toBe('application/vnd.dev.sigstore.bundle+json;version=0.1');
    const material = bundle.verificationMaterial;
    expect(material.content.$case).toBe('x509CertificateChain');
    if (material.content.$case === 'x509CertificateChain')
      expect(material.content.x509CertificateChain.certificates).toHaveLength(2);
    expect(material.tlogEntries).toHaveLength(1);
    expect(material.tlogEntries[0]?.kindVersion).toEqual({ kind: 'hashedrekord', version: '0.0.1' });
    expect(material.tlogEntries[0]?.inclusionPromise?.signedEntryTimestamp.length).toBeGreaterThan(0);
    if (bundle.content.$case !== 'messageSignature') throw new Error('not a message signature');
    expect(bundle.content.messageSignature.signature.toString('base64')).toBe(good[signatureAnnotation]);
  });

  it('verifies the allowed identity against the trusted root, offline', () => {
    const check = verifyKeylessSimpleSigning(payload, good, DIGEST, trustFor(bed));
    expect(check).toEqual({ ok: true, signer: `${DEFAULT_SUBJECT} (${OIDC_ISSUER})` });
    // The chain annotation is optional: the trusted root supplies the CAs.
    expect(
      verifyKeylessSimpleSigning(payload, without(good, chainAnnotation), DIGEST, trustFor(bed)).ok,
    ).toBe(true);
  });

  it('refuses each required annotation missing, naming it', () => {
    for (const key of [signatureAnnotation, certificateAnnotation, rekorBundleAnnotation])
      expect(conversionError(without(good, key))).toBe(`annotation ${key} is missing`);
  });

  it('refuses malformed annotations, naming what is wrong', () => {
    expect(conversionError({ ...good, [signatureAnnotation]: 'not base64!' })).toContain('is not base64');
    expect(conversionError({ ...good, [certificateAnnotation]: 'no pem here' })).toContain(
      'holds no PEM certificate',
    );
    expect(
      conversionError({
        ...good,
        [certificateAnnotation]: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      }),
    ).toContain('is not an X.509 certificate');
    expect(conversionError({ ...good, [chainAnnotation]: 'garbage' })).toContain(
      `annotation ${chainAnnotation} holds no PEM certificate`,
    );
    expect(conversionError({ ...good, [rekorBundleAnnotation]: '{' })).toContain('is not JSON');
    expect(conversionError({ ...good, [rekorBundleAnnotation]: '{"Payload":{}}' })).toContain(
      'has no SignedEntryTimestamp or Payload',
    );
    expect(conversionError(editedSet(good, (p) => Object.assign(p, { logID: 'zz' })))).toContain(
      'Payload.logID is not a 64-digit hex log id',
    );
    expect(conversionError(editedSet(good, (p) => Object.assign(p, { integratedTime: -1 })))).toContain(
      'Payload.integratedTime is not a non-negative integer',
    );
    expect(conversionError(editedSet(good, (p) => Object.assign(p, { logIndex: '7' })))).toContain(
      'Payload.logIndex is not a non-negative integer',
    );
  });

  it('refuses an annotation longer than its bound, unread', () => {
    const long = `${good[chainAnnotation]}${' '.repeat(defaultLegacyKeylessLimits.chain)}`;
    expect(conversionError({ ...good, [chainAnnotation]: long })).toBe(
      `annotation ${chainAnnotation} is longer than ${defaultLegacyKeylessLimits.chain} characters`,
    );
    const tight = { ...defaultLegacyKeylessLimits, signature: 16 };
    const result = legacyKeylessBundle(good, payload, tight);
    expect(result).toEqual({
      ok: false,
      message: `annotation ${signatureAnnotation} is longer than 16 characters`,
    });
  });

  it('refuses a Rekor entry of another payload, signature or certificate', async () => {
    const other = await keylessSigAnnotations(simpleSigningPayload('registry.test/team/app', OTHER_DIGEST), {
      testbed: bed,
    });
    // The SET (and its body) of another signing, with this layer's signature and certificate.
    expect(conversionError({ ...good, [rekorBundleAnnotation]: other[rekorBundleAnnotation] ?? '' })).toBe(
      'the Rekor entry is for another payload (digest mismatch)',
    );
    // This entry, with another signature or certificate.
    expect(conversionError({ ...good, [signatureAnnotation]: other[signatureAnnotation] ?? '' })).toBe(
      'the Rekor entry is for another signature',
    );
    expect(conversionError({ ...good, [certificateAnnotation]: other[certificateAnnotation] ?? '' })).toBe(
      'the Rekor entry is for another certificate',
    );
  });

  it('refuses a body that matches this signature under a SET signed over another body', async () => {
    const other = await keylessSigAnnotations(simpleSigningPayload('registry.test/team/app', OTHER_DIGEST), {
      testbed: bed,
    });
    const body = (JSON.parse(good[rekorBundleAnnotation] ?? '{}') as { Payload: { body: string } }).Payload
      .body;
    const forged = editedSet(other, (p) => Object.assign(p, { body }));
    // The conversion accepts it (the body is this signature's); the SET does not verify over it.
    expect(
      legacyKeylessBundle({ ...good, [rekorBundleAnnotation]: forged[rekorBundleAnnotation] ?? '' }, payload)
        .ok,
    ).toBe(true);
    const message = refusal(
      verifyKeylessSimpleSigning(
        payload,
        { ...good, [rekorBundleAnnotation]: forged[rekorBundleAnnotation] ?? '' },
        DIGEST,
        trustFor(bed),
      ),
    );
    expect(message).toContain('TLOG_INCLUSION_PROMISE_ERROR');
  });

  it('refuses a certificate of another identity, an untrusted CA, a payload for another digest and a log absent from the root', async () => {
    expect(
      refusal(verifyKeylessSimpleSigning(payload, good, DIGEST, trustFor(bed, OTHER_SUBJECT))),
    ).toContain(`signed by "${DEFAULT_SUBJECT}" (issuer "${OIDC_ISSUER}"), not an allowed identity`);
    const mallory = await keylessSigAnnotations(payload, { testbed: bed, subject: OTHER_SUBJECT });
    expect(refusal(verifyKeylessSimpleSigning(payload, mallory, DIGEST, trustFor(bed)))).toContain(
      `signed by "${OTHER_SUBJECT}"`,
    );
    expect(refusal(verifyKeylessSimpleSigning(payload, good, DIGEST, trustFor(otherBed)))).toContain(
      'CERTIFICATE_ERROR',
    );
    expect(refusal(verifyKeylessSimpleSigning(payload, good, OTHER_DIGEST, trustFor(bed)))).toBe(
      `the signature covers ${DIGEST}, not the image's digest ${OTHER_DIGEST}`,
    );
    const foreign = await keylessSigAnnotations(payload, { testbed: bed, log: 'foreign' });
    expect(refusal(verifyKeylessSimpleSigning(payload, foreign, DIGEST, trustFor(bed)))).toContain(
      'TLOG_INCLUSION_PROMISE_ERROR',
    );
    const unlogged = await keylessSigAnnotations(payload, { testbed: bed, log: 'none' });
    expect(refusal(verifyKeylessSimpleSigning(payload, unlogged, DIGEST, trustFor(bed)))).toContain(
      `annotation ${rekorBundleAnnotation} is missing`,
    );
    expect(
      refusal(verifyKeylessSimpleSigning(payload, good, DIGEST, { ...trustFor(bed), identities: [] })),
    ).toContain('the policy allows no identities');
  });
});
