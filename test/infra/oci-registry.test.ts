// The test registry itself (test/support/oci-registry.ts, hack/registry): TLS with its own CA, the
// distribution spec's token flow, the request log the image tests count with, referrers as OCI 1.1
// lists them (and their absence), moved tags and injected faults.
import { randomBytes } from 'node:crypto';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getManifest,
  listReferrers,
  moveTag,
  OCI_EMPTY,
  OCI_MANIFEST,
  type OciRegistry,
  pushImage,
  putManifest,
  registryBuildTimeoutMs,
  sha256Digest,
  startRegistry,
  uploadBlob,
} from '../support/oci-registry.ts';

const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

async function attachArtifact(
  registry: OciRegistry,
  repository: string,
  subject: { digest: string; size: number },
  artifactType: string,
): Promise<{ digest: string; subjectHeader: string | null }> {
  const empty = await uploadBlob(registry, repository, Buffer.from('{}'), OCI_EMPTY);
  const layer = await uploadBlob(registry, repository, randomBytes(32), artifactType);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: empty,
      layers: [layer],
      subject: { mediaType: OCI_MANIFEST, ...subject },
    }),
  );
  return putManifest(registry, repository, sha256Digest(manifest), manifest, OCI_MANIFEST);
}

describe('test registry with auth and referrers', () => {
  let registry: OciRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  }, registryBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes an image over TLS and serves it back by tag and digest', async () => {
    const image = await pushImage(registry, 'team/app', 'v1');
    expect(image.reference).toBe(`${registry.host}/team/app:v1`);
    const byTag = await getManifest(registry, 'team/app', 'v1');
    expect(byTag.digest).toBe(image.digest);
    expect(byTag.mediaType).toBe(OCI_MANIFEST);
    expect((await getManifest(registry, 'team/app', image.digest)).bytes.equals(image.manifest)).toBe(true);
  });

  it('refuses requests without credentials with a Bearer challenge naming realm, service and scope', async () => {
    const response = await fetch(`https://${registry.host}/v2/team/app/manifests/v1`, {
      dispatcher: registry.dispatcher,
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer realm="https://${registry.host}/token",service="signet-test-registry",scope="repository:team/app:pull"`,
    );
    const wrong = await fetch(`https://${registry.host}/token?scope=repository:team/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from('signet:wrong').toString('base64')}` },
      dispatcher: registry.dispatcher,
    });
    expect(wrong.status).toBe(401);
  });

  it('issues bearer tokens for the scopes asked, and only those', async () => {
    await pushImage(registry, 'team/other', 'v1');
    const basic = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    const tokenResponse = await fetch(
      `https://${registry.host}/token?service=signet-test-registry&scope=repository:team/app:pull`,
      { headers: { authorization: `Basic ${basic}` }, dispatcher: registry.dispatcher },
    );
    expect(tokenResponse.status).toBe(200);
    const { token, expires_in } = (await tokenResponse.json()) as { token: string; expires_in: number };
    expect(expires_in).toBe(300);
    const withToken = (path: string) =>
      fetch(`https://${registry.host}${path}`, {
        headers: { authorization: `Bearer ${token}`, accept: OCI_MANIFEST },
        dispatcher: registry.dispatcher,
      });
    expect((await withToken('/v2/team/app/manifests/v1')).status).toBe(200);
    expect((await withToken('/v2/team/other/manifests/v1')).status).toBe(401);
    const forged = await fetch(`https://${registry.host}/v2/team/app/manifests/v1`, {
      headers: { authorization: `Bearer ${token.slice(0, -2)}00` },
      dispatcher: registry.dispatcher,
    });
    expect(forged.status).toBe(401);
  });

  it('logs every request with its status, counted from resetRequests()', async () => {
    await pushImage(registry, 'team/app', 'v2');
    registry.resetRequests();
    await getManifest(registry, 'team/app', 'v2');
    await fetch(`https://${registry.host}/v2/team/app/tags/list`, { dispatcher: registry.dispatcher });
    expect(registry.requests()).toEqual([
      { method: 'GET', path: '/v2/team/app/manifests/v2', query: '', status: 200 },
      { method: 'GET', path: '/v2/team/app/tags/list', query: '', status: 401 },
    ]);
  });

  it('stores a large manifest intact (for client size-limit tests)', async () => {
    const padding = 'x'.repeat(5 * 1024 * 1024);
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { padding } }),
    );
    const { digest } = await putManifest(registry, 'team/large', 'v1', manifest, OCI_MANIFEST);
    const served = await getManifest(registry, 'team/large', 'v1');
    expect(served.digest).toBe(digest);
    expect(served.bytes.length).toBe(manifest.length);
  });

  it('moves a tag to another manifest', async () => {
    const first = await pushImage(registry, 'team/moving', 'stable');
    const second = await pushImage(registry, 'team/moving', 'next');
    expect(first.digest).not.toBe(second.digest);
    await moveTag(registry, 'team/moving', 'stable', second.digest);
    expect((await getManifest(registry, 'team/moving', 'stable')).digest).toBe(second.digest);
  });

  it('lists referrers with their artifactType, filtered on request, and answers OCI-Subject', async () => {
    const image = await pushImage(registry, 'team/referred', 'v1');
    const subject = { digest: image.digest, size: image.manifest.length };
    const bundle = await attachArtifact(registry, 'team/referred', subject, SIGSTORE_BUNDLE);
    const other = await attachArtifact(registry, 'team/referred', subject, 'application/example');
    expect(bundle.subjectHeader).toBe(image.digest);
    const all = await listReferrers(registry, 'team/referred', image.digest);
    expect(all.manifests.map((d) => [d.digest, d.artifactType]).sort()).toEqual(
      [
        [bundle.digest, SIGSTORE_BUNDLE],
        [other.digest, 'application/example'],
      ].sort(),
    );
    const filtered = await listReferrers(registry, 'team/referred', image.digest, SIGSTORE_BUNDLE);
    expect(filtered.manifests.map((d) => d.digest)).toEqual([bundle.digest]);
  });

  it('fails or hangs every request while a fault is set', async () => {
    await registry.setFault('fail');
    const failed = await fetch(`https://${registry.host}/v2/`, { dispatcher: registry.dispatcher });
    expect(failed.status).toBe(503);
    await registry.setFault('hang');
    const hung = fetch(`https://${registry.host}/v2/`, {
      dispatcher: registry.dispatcher,
      signal: AbortSignal.timeout(500),
    });
    await expect(hung).rejects.toThrow();
    await registry.setFault('none');
    await expect(getManifest(registry, 'team/app', 'v1')).resolves.toBeDefined();
  });
});

describe('test registry without the referrers API', () => {
  let registry: OciRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ referrers: false, auth: false });
  }, registryBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
  });

  it('answers 404 on the referrers endpoint and no OCI-Subject, so clients use the tag schema', async () => {
    const image = await pushImage(registry, 'app', 'v1', { mediaTypes: 'docker' });
    const attached = await attachArtifact(
      registry,
      'app',
      { digest: image.digest, size: image.manifest.length },
      SIGSTORE_BUNDLE,
    );
    expect(attached.subjectHeader).toBeNull();
    expect((await listReferrers(registry, 'app', image.digest)).status).toBe(404);
    const anonymous = await fetch(`https://${registry.host}/v2/app/manifests/v1`, {
      dispatcher: registry.dispatcher,
    });
    expect(anonymous.status).toBe(200);
  });
});

describe('test registry with expiring tokens', () => {
  let registry: OciRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ tokenTtlSeconds: 0 });
  }, registryBuildTimeoutMs);
  afterAll(async () => {
    await registry?.stop();
  });

  it('refuses a bearer token once it has expired', async () => {
    await pushImage(registry, 'team/app', 'v1');
    const basic = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
    const issued = await fetch(`https://${registry.host}/token?scope=repository:team/app:pull`, {
      headers: { authorization: `Basic ${basic}` },
      dispatcher: registry.dispatcher,
    });
    const { token, expires_in } = (await issued.json()) as { token: string; expires_in: number };
    expect(expires_in).toBe(0);
    const response = await fetch(`https://${registry.host}/v2/team/app/manifests/v1`, {
      headers: { authorization: `Bearer ${token}` },
      dispatcher: registry.dispatcher,
    });
    expect(response.status).toBe(401);
  });
});
