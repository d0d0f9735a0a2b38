/**
 * Trust material: the signers map (Secret/ConfigMap key → text) parsed once into cached key objects.
 * Build it once per Secret version and reuse it: parsing costs milliseconds, lookups are O(1).
 */
import { createHash } from 'node:crypto';
import { type AllowedSigner, parseAllowedSigners } from './allowed-signers.ts';
import type { VerificationError } from './errors.ts';
import { type OpenPgpKeyEntry, parseArmoredPublicKeys } from './openpgp.ts';

export interface TrustMaterial {
  /** SSH allowed signers, in file order. */
  readonly ssh: readonly AllowedSigner[];
  /** SSH entries indexed by the base64 key blob. */
  readonly sshByKey: ReadonlyMap<string, readonly AllowedSigner[]>;
  readonly openpgp: readonly OpenPgpKeyEntry[];
  /** Bad key files or lines, each naming the signers key (and line). Those keys are not trusted. */
  readonly problems: readonly VerificationError[];
  /** Keys of the map that are neither `.pub`, `allowed_signers` nor `.asc` (left for other verifiers). */
  readonly ignoredKeys: readonly string[];
}

export function isSshSignersKey(name: string): boolean {
  return name.endsWith('.pub') || name === 'allowed_signers' || name.endsWith('/allowed_signers');
}

export function isOpenPgpSignersKey(name: string): boolean {
  return name.endsWith('.asc');
}

/** Parses every signers file. Never throws for bad content: problems are collected in `problems`. */
export async function loadTrustMaterial(files: Readonly<Record<string, string>>): Promise<TrustMaterial> {
  const ssh: AllowedSigner[] = [];
  const openpgp: OpenPgpKeyEntry[] = [];
  const problems: VerificationError[] = [];
  const ignoredKeys: string[] = [];
  for (const name of Object.keys(files).sort()) {
    const text = files[name] ?? '';
    if (isSshSignersKey(name)) {
      const result = parseAllowedSigners(text, name, name.endsWith('.pub') ? 'pub' : 'allowed_signers');
      ssh.push(...result.entries);
      problems.push(...result.problems);
    } else if (isOpenPgpSignersKey(name)) {
      const result = await parseArmoredPublicKeys(text, name);
      openpgp.push(...result.keys);
      problems.push(...result.problems);
    } else {
      ignoredKeys.push(name);
    }
  }
  const sshByKey = new Map<string, AllowedSigner[]>();
  for (const entry of ssh) {
    const list = sshByKey.get(entry.key.blobBase64);
    if (list === undefined) sshByKey.set(entry.key.blobBase64, [entry]);
    else list.push(entry);
  }
  return { ssh, sshByKey, openpgp, problems, ignoredKeys };
}

/** Empty trust material: every signature is UntrustedSigner. */
export const EMPTY_TRUST: TrustMaterial = {
  ssh: [],
  sshByKey: new Map(),
  openpgp: [],
  problems: [],
  ignoredKeys: [],
};

export interface TrustMaterialCache {
  /** Returns the parsed material for these files, parsing only when the content changed. */
  load(files: Readonly<Record<string, string>>): Promise<TrustMaterial>;
  readonly size: number;
}

/** Memoises loadTrustMaterial by content digest (keys stay parsed KeyObjects across reconciles). */
export function createTrustMaterialCache(maxEntries = 16): TrustMaterialCache {
  const entries = new Map<string, Promise<TrustMaterial>>();
  return {
    get size() {
      return entries.size;
    },
    load(files) {
      const hash = createHash('sha256');
      for (const name of Object.keys(files).sort()) {
        hash
          .update(name)
          .update('\0')
          .update(files[name] ?? '')
          .update('\0');
      }
      const digest = hash.digest('hex');
      const cached = entries.get(digest);
      if (cached !== undefined) {
        entries.delete(digest);
        entries.set(digest, cached); // most recently used last
        return cached;
      }
      const loading = loadTrustMaterial(files);
      entries.set(digest, loading);
      loading.catch(() => entries.delete(digest));
      while (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
      return loading;
    },
  };
}
