import { describe, expect, it } from 'vitest';
import {
  canonicalName,
  type ImageReference,
  parseImageReference,
  pinnedReference,
  registryHost,
} from '../../src/images/reference.ts';

const digest = `sha256:${'a'.repeat(64)}`;

function parsed(text: string): ImageReference {
  const result = parseImageReference(text);
  if (!result.ok) throw new Error(result.message);
  return result.ref;
}

function refusal(text: string): string {
  const result = parseImageReference(text);
  if (result.ok) throw new Error(`${text} was accepted`);
  return result.message;
}

describe('image references', () => {
  it('defaults Docker Hub, library/ and latest as the runtime does', () => {
    expect(parsed('nginx')).toMatchObject({
      registry: 'docker.io',
      repository: 'library/nginx',
      tag: 'latest',
    });
    expect(parsed('team/app:1.2')).toMatchObject({
      registry: 'docker.io',
      repository: 'team/app',
      tag: '1.2',
    });
    expect(parsed('index.docker.io/library/nginx:1')).toMatchObject({
      registry: 'docker.io',
      repository: 'library/nginx',
    });
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('ghcr.io')).toBe('ghcr.io');
  });

  it('tells a registry host from a first path segment (dot, port or localhost)', () => {
    expect(parsed('ghcr.io/org/app:v1')).toMatchObject({
      registry: 'ghcr.io',
      repository: 'org/app',
      tag: 'v1',
    });
    expect(parsed('127.0.0.1:5000/team/app:v1')).toMatchObject({
      registry: '127.0.0.1:5000',
      repository: 'team/app',
      tag: 'v1',
    });
    expect(parsed('localhost/app')).toMatchObject({ registry: 'localhost', repository: 'app' });
    // A port without a tag: the colon before the last slash is the port's.
    expect(parsed('registry.example.com:443/a/b')).toMatchObject({
      registry: 'registry.example.com:443',
      tag: 'latest',
    });
  });

  it('keeps tag and digest apart; a digest without a tag has no tag', () => {
    expect(parsed(`ghcr.io/org/app:v1@${digest}`)).toMatchObject({ tag: 'v1', digest });
    const byDigest = parsed(`ghcr.io/org/app@${digest}`);
    expect(byDigest.digest).toBe(digest);
    expect(byDigest.tag).toBeUndefined();
  });

  it('pins as name:tag@digest, keeping the name as written', () => {
    expect(pinnedReference(parsed('nginx:1.27'), digest)).toBe(`nginx:1.27@${digest}`);
    expect(pinnedReference(parsed('nginx'), digest)).toBe(`nginx:latest@${digest}`);
    expect(pinnedReference(parsed(`ghcr.io/org/app:v1@${'sha256:'.padEnd(71, 'b')}`), digest)).toBe(
      `ghcr.io/org/app:v1@${digest}`,
    );
    expect(canonicalName(parsed('nginx'))).toBe('docker.io/library/nginx');
  });

  it('refuses what the grammar does not allow, saying why', () => {
    expect(refusal('')).toContain('is empty');
    expect(refusal('Nginx')).toContain('invalid repository name');
    expect(refusal('ghcr.io/org/app@sha512:abc')).toContain('only sha256');
    expect(refusal(`ghcr.io/org/app@sha256:${'A'.repeat(64)}`)).toContain('sha256:<64 lowercase hex>');
    expect(refusal('ghcr.io/org/app:-bad')).toContain('invalid tag');
    expect(refusal('ghcr.io/org//app')).toContain('invalid repository name');
    expect(refusal('app name')).toContain('white space');
    expect(refusal(`ghcr.io/${'a'.repeat(600)}`)).toContain('longer than');
    expect(refusal('bad_host!/x/y')).toContain('invalid');
  });
});
