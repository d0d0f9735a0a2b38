// A small reader for the repository's Dockerfile: enough of the syntax (line continuations,
// comments, FROM ... AS, WORKDIR, COPY [--from] [--chown], RUN, ENV k=v, USER, exec-form
// ENTRYPOINT, EXPOSE, ARG) for tests to hold hack/runtime-tree.sh and the e2e runtime-tree test
// to what the image really contains. Any other instruction, or flag, is an error, so a change the
// tests do not model cannot go unnoticed.
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

export class DockerfileError extends Error {
  readonly code = 'DOCKERFILE_UNSUPPORTED';
  constructor(message: string) {
    super(message);
    this.name = 'DockerfileError';
  }
}

export interface CopyInstruction {
  /** Stage name of `--from`, or undefined for the build context. */
  readonly from: string | undefined;
  readonly chown: string | undefined;
  readonly sources: readonly string[];
  /** Absolute destination (resolved against the stage's WORKDIR). */
  readonly destination: string;
}

export interface Stage {
  readonly name: string | undefined;
  readonly image: string;
  readonly workdir: string | undefined;
  readonly copies: readonly CopyInstruction[];
  readonly runs: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly user: string | undefined;
  readonly entrypoint: readonly string[] | undefined;
  readonly expose: readonly string[];
}

interface MutableStage {
  name: string | undefined;
  image: string;
  workdir: string | undefined;
  copies: CopyInstruction[];
  runs: string[];
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[] | undefined;
  expose: string[];
}

/** Logical instructions: comments and blank lines dropped, `\` continuations joined. */
function instructions(text: string): { keyword: string; rest: string }[] {
  const result: { keyword: string; rest: string }[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continuation
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const space = full.search(/\s/);
    result.push({
      keyword: (space < 0 ? full : full.slice(0, space)).toUpperCase(),
      rest: space < 0 ? '' : full.slice(space + 1).trim(),
    });
  }
  return result;
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== '');
}

/** `ENV a=b c=d` (the legacy `ENV a b` form too). */
function parseEnv(rest: string): Record<string, string> {
  const env: Record<string, string> = {};
  const parts = words(rest);
  if (parts.length === 2 && !parts[0]?.includes('=')) {
    env[parts[0] ?? ''] = parts[1] ?? '';
    return env;
  }
  for (const part of parts) {
    const index = part.indexOf('=');
    if (index <= 0) throw new DockerfileError(`ENV ${rest}: expected key=value`);
    env[part.slice(0, index)] = part.slice(index + 1).replace(/^"(.*)"$/, '$1');
  }
  return env;
}

export function parseDockerfile(text: string): Stage[] {
  const args: Record<string, string> = {};
  const stages: MutableStage[] = [];
  const expand = (value: string): string =>
    value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? '';
      const resolved = args[name];
      if (resolved === undefined) throw new DockerfileError(`\${${name}} is not a global ARG with a default`);
      return resolved;
    });
  for (const { keyword, rest } of instructions(text)) {
    const stage = stages[stages.length - 1];
    if (keyword === 'ARG' && stage === undefined) {
      const [name, value] = rest.split('=', 2);
      if (name !== undefined && value !== undefined) args[name] = value;
      continue;
    }
    if (keyword === 'FROM') {
      const [image, as, name] = words(rest);
      if (image === undefined || (as !== undefined && as.toUpperCase() !== 'AS')) {
        throw new DockerfileError(`FROM ${rest}: expected <image> [AS <name>]`);
      }
      stages.push({
        name,
        image: expand(image),
        workdir: undefined,
        copies: [],
        runs: [],
        env: {},
        user: undefined,
        entrypoint: undefined,
        expose: [],
      });
      continue;
    }
    if (stage === undefined) throw new DockerfileError(`${keyword} before the first FROM`);
    switch (keyword) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir ?? '/', rest);
        break;
      case 'COPY': {
        const parts = words(rest);
        let from: string | undefined;
        let chown: string | undefined;
        while (parts[0]?.startsWith('--')) {
          const flag = parts.shift() ?? '';
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else if (flag.startsWith('--chown=')) chown = flag.slice('--chown='.length);
          else throw new DockerfileError(`COPY ${rest}: unsupported flag ${flag}`);
        }
        const destination = parts.pop();
        if (destination === undefined || parts.length === 0) {
          throw new DockerfileError(`COPY ${rest}: expected sources and a destination`);
        }
        stage.copies.push({
          from,
          chown,
          sources: parts,
          destination: posix.resolve(stage.workdir ?? '/', destination),
        });
        break;
      }
      case 'RUN':
        stage.runs.push(rest);
        break;
      case 'ARG':
        break;
      case 'ENV':
        Object.assign(stage.env, parseEnv(rest));
        break;
      case 'USER':
        stage.user = rest;
        break;
      case 'EXPOSE':
        stage.expose.push(...words(rest));
        break;
      case 'ENTRYPOINT': {
        let parsed: unknown;
        try {
          parsed = JSON.parse(rest);
        } catch {
          throw new DockerfileError(`ENTRYPOINT ${rest}: only the exec (JSON) form is supported`);
        }
        if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string')) {
          throw new DockerfileError(`ENTRYPOINT ${rest}: expected a JSON array of strings`);
        }
        stage.entrypoint = parsed;
        break;
      }
      default:
        throw new DockerfileError(`unsupported instruction ${keyword} ${rest}`);
    }
  }
  return stages;
}

/** The repository's Dockerfile, parsed. */
export function readDockerfile(repoRoot: string): Stage[] {
  return parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
}

/** The final stage: what the image runs. */
export function runtimeStage(stages: readonly Stage[]): Stage {
  const last = stages[stages.length - 1];
  if (last === undefined) throw new DockerfileError('the Dockerfile has no FROM');
  return last;
}

/**
 * What the runtime stage holds under its WORKDIR: one entry per COPY, relative to WORKDIR
 * (`node_modules`, `dist`, `package.json`), with the stage and path it comes from.
 */
export function runtimeTree(
  stages: readonly Stage[],
): { entry: string; from: string | undefined; source: string }[] {
  const runtime = runtimeStage(stages);
  const workdir = runtime.workdir;
  if (workdir === undefined) throw new DockerfileError('the runtime stage sets no WORKDIR');
  return runtime.copies.flatMap((copy) =>
    copy.sources.map((source) => {
      // `COPY a b ./` puts each source under the directory; `COPY a ./x` names the target.
      const target =
        copy.sources.length > 1 || copy.destination === workdir
          ? posix.join(copy.destination, posix.basename(source))
          : copy.destination;
      const entry = posix.relative(workdir, target);
      if (entry === '' || entry.startsWith('..') || entry.includes('/')) {
        throw new DockerfileError(`COPY to ${copy.destination} is not a top-level entry of ${workdir}`);
      }
      return { entry, from: copy.from, source };
    }),
  );
}

/** The interpreter flags of an exec-form ENTRYPOINT: the `--…` words between the interpreter and the script. */
export function entrypointNodeFlags(entrypoint: readonly string[]): string[] {
  const flags: string[] = [];
  for (const word of entrypoint.slice(1)) {
    if (!word.startsWith('--')) break;
    flags.push(word);
  }
  return flags;
}
