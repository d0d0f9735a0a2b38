/**
 * The flags that bound image verification (spec.verify.images), for `signet run`: the limits come
 * from the operator, never from a registry or the repository (docs/images.md).
 */
import { defaultImageVerificationLimits, type ImageVerificationLimits } from '../images/verify-images.ts';

export const imageLimitOptions = {
  'max-image-manifest-bytes': { type: 'string' },
  'max-image-signature-bytes': { type: 'string' },
  'max-image-signatures': { type: 'string' },
  'image-cache-entries': { type: 'string' },
} as const;

const d = defaultImageVerificationLimits;
export const imageLimitUsage = `  --max-image-manifest-bytes <n>    largest image manifest or referrers list read (default ${d.maxManifestBytes})
  --max-image-signature-bytes <n>   largest signature payload or sigstore bundle read (default ${d.maxSignatureBytes})
  --max-image-signatures <n>        most signatures and referrers examined per image (default ${d.maxSignatures})
  --image-cache-entries <n>         image verdicts kept (default ${d.cacheEntries})
`;

type Values = Partial<Record<keyof typeof imageLimitOptions, string>>;

/** The limits the flags set; defaults for those absent. */
export function imageLimitsOf(values: Values): ImageVerificationLimits {
  const read = (name: keyof Values, fallback: number): number => {
    const text = values[name];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  return {
    ...d,
    maxManifestBytes: read('max-image-manifest-bytes', d.maxManifestBytes),
    maxSignatureBytes: read('max-image-signature-bytes', d.maxSignatureBytes),
    maxSignatures: read('max-image-signatures', d.maxSignatures),
    cacheEntries: read('image-cache-entries', d.cacheEntries),
  };
}
