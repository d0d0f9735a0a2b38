import { describe, expect, it } from 'vitest';
import {
  parseChallenge,
  parseDockerConfig,
  RegistryConfigError,
  tokenUrl,
} from '../../src/images/registry-auth.ts';

describe('registry credentials', () => {
  it('reads username/password or auth per registry, normalising Docker Hub', () => {
    const auth = Buffer.from('robot:s3:cret').toString('base64');
    const credentials = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth },
          'registry.example.com:5000': { username: 'u', password: 'p' },
          'ghcr.io': { identitytoken: 'ignored' },
        },
      }),
    );
    expect(credentials.get('docker.io')).toEqual({ username: 'robot', password: 's3:cret' });
    expect(credentials.get('registry.example.com:5000')).toEqual({ username: 'u', password: 'p' });
    expect(credentials.has('ghcr.io')).toBe(false);
  });

  it('refuses what is not a dockerconfigjson, without echoing it', () => {
    expect(() => parseDockerConfig('not json')).toThrow(RegistryConfigError);
    expect(() => parseDockerConfig('{"x":1}')).toThrow('no "auths" object');
    const bad = Buffer.from('no-colon-secret').toString('base64');
    let message = '';
    try {
      parseDockerConfig(JSON.stringify({ auths: { 'r.example': { auth: bad } } }));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('r.example');
    expect(message).not.toContain('no-colon-secret');
  });
});

describe('the distribution auth challenge', () => {
  it('parses Bearer and Basic challenges with quoted parameters', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scope: 'repository:a/b:pull',
      },
    });
    expect(parseChallenge('Basic realm="Registry"')).toEqual({
      scheme: 'basic',
      params: { realm: 'Registry' },
    });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });

  it('asks the realm for every scope at once, and refuses a realm that is not https', () => {
    const challenge = {
      scheme: 'bearer' as const,
      params: { realm: 'https://auth.example/token', service: 'reg' },
    };
    const url = tokenUrl(challenge, ['repository:a:pull', 'repository:b:pull']);
    expect(url.origin + url.pathname).toBe('https://auth.example/token');
    expect(url.searchParams.get('service')).toBe('reg');
    expect(url.searchParams.getAll('scope')).toEqual(['repository:a:pull', 'repository:b:pull']);
    expect(() => tokenUrl({ scheme: 'bearer', params: { realm: 'http://auth.example/token' } }, [])).toThrow(
      'is not https',
    );
    expect(() => tokenUrl({ scheme: 'bearer', params: {} }, [])).toThrow('names no realm');
  });
});

describe('image verification bounds from the operator flags', () => {
  it('takes positive integers and defaults the rest', async () => {
    const { imageLimitsOf } = await import('../../src/cli/image-limits.ts');
    const { defaultImageVerificationLimits } = await import('../../src/images/verify-images.ts');
    expect(imageLimitsOf({})).toEqual(defaultImageVerificationLimits);
    expect(imageLimitsOf({ 'max-image-manifest-bytes': '1024', 'image-cache-entries': '5' })).toMatchObject({
      maxManifestBytes: 1024,
      cacheEntries: 5,
      maxSignatureBytes: defaultImageVerificationLimits.maxSignatureBytes,
    });
    expect(() => imageLimitsOf({ 'max-image-signatures': '0' })).toThrow(
      '--max-image-signatures must be a positive integer',
    );
    expect(() => imageLimitsOf({ 'max-image-signature-bytes': 'lots' })).toThrow('positive integer');
  });
});
