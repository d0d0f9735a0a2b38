/** Revisions as Flux writes them (RFC-0005): `<ref>@sha1:<commit>`, or `sha1:<commit>` for a commit ref. */
export interface Revision {
  readonly ref?: string;
  readonly commit: string;
}

export function formatRevision(revision: Revision): string {
  return revision.ref === undefined || revision.ref === ''
    ? `sha1:${revision.commit}`
    : `${revision.ref}@sha1:${revision.commit}`;
}

export function parseRevision(text: string | undefined): Revision | undefined {
  if (text === undefined || text === '') return undefined;
  const match = /^(?:(.+)@)?sha1:([0-9a-f]{40})$/.exec(text);
  if (match === null) return undefined;
  const commit = match[2] ?? '';
  return match[1] === undefined ? { commit } : { ref: match[1], commit };
}

export function shortCommit(commit: string): string {
  return commit.slice(0, 12);
}
