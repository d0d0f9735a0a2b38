/**
 * Which spec.verify.images policy covers an image: globs over the normalised name
 * (`registry/repository`), `*` within one path segment, `**` across segments. The first policy
 * with a matching glob wins; none matching is a refusal (default deny). Pure.
 */
import type { ImagePolicySpec } from '../api/gitrepository.ts';
import { dockerHub } from './reference.ts';

/** Normalises a glob like a reference: no registry means Docker Hub, one segment means `library/`. */
export function normaliseGlob(glob: string): string {
  const segments = glob.split('/');
  const first = segments[0] ?? '';
  const hasDomain =
    segments.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasDomain) return glob;
  if (segments.length === 1 && !glob.includes('**')) return `${dockerHub}/library/${glob}`;
  return `${dockerHub}/${glob}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** A glob compiled to an anchored regular expression. */
export function globRegExp(glob: string): RegExp {
  const parts = normaliseGlob(glob)
    .split('**')
    .map((part) => part.split('*').map(escapeRegExp).join('[^/]*'));
  return new RegExp(`^${parts.join('.*')}$`);
}

export function globMatches(glob: string, name: string): boolean {
  return globRegExp(glob).test(name);
}

/** The index of the first policy with a glob matching `name`, or undefined (refused). */
export function policyFor(policies: readonly ImagePolicySpec[], name: string): number | undefined {
  const index = policies.findIndex((policy) => policy.match.some((glob) => globMatches(glob, name)));
  return index === -1 ? undefined : index;
}
