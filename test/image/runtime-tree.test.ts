// hack/runtime-tree.sh rebuilds by hand the /app tree of the Dockerfile's runtime stage (there is
// no container engine to build the image), and e2e/runtime-tree.test.ts runs the operator from that
// tree as the image would. This test reads the Dockerfile and the script and fails when they drift
// apart: a COPY added, removed or sourced differently, other npm ci flags or tsconfig, another
// ENTRYPOINT, USER or ENV, or a Deployment that no longer matches the image.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENGINE_ABI } from '../../src/render/wasm-runner.ts';
import {
  entrypointNodeFlags,
  parseDockerfile,
  readDockerfile,
  runtimeStage,
  runtimeTree,
  type Stage,
} from '../support/dockerfile.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const stages = readDockerfile(repoRoot);
const runtime = runtimeStage(stages);
const tree = runtimeTree(stages);
/** hack/runtime-tree.sh without comments (the header describes the tree; only commands count). */
const script = readFileSync(join(repoRoot, 'hack', 'runtime-tree.sh'), 'utf8')
  .split('\n')
  .filter((line) => !line.trim().startsWith('#'))
  .join('\n');
const deployment = parse(
  readFileSync(join(repoRoot, 'manifests', 'base', 'deployment.yaml'), 'utf8'),
) as V1Deployment;
const container = deployment.spec?.template.spec?.containers[0];

function stage(name: string | undefined): Stage {
  const found = stages.find((s) => s.name === name);
  if (found === undefined) throw new Error(`the Dockerfile has no stage ${name}`);
  return found;
}

/** The words of the single RUN of `stageName` that starts with `command` (e.g. `npm ci`). */
function runWords(stageName: string, command: string): string[] {
  const runs = stage(stageName).runs.filter((run) => run.startsWith(`${command} `));
  expect(runs, `${stageName}: RUN ${command}`).toHaveLength(1);
  return (runs[0] ?? '').split(/\s+/);
}

/** The script's `<command> ...` invocation words, up to the end of the command (`;`, `)`, `>`, `&&`). */
function scriptWords(command: string): string[] {
  const pattern = new RegExp(`${command.replace(/ /g, '\\s+')}\\s[^;)>&\\n]*`, 'g');
  // Messages (`echo "... npm ci ..."`) are not invocations.
  const commands = script
    .split('\n')
    .filter((line) => !line.trim().startsWith('echo '))
    .join('\n');
  const found = commands.match(pattern) ?? [];
  expect(found, `hack/runtime-tree.sh: ${command}`).toHaveLength(1);
  return (found[0] ?? '').trim().split(/\s+/);
}

const flags = (wordsOf: readonly string[]): string[] => wordsOf.filter((w) => w.startsWith('--')).sort();

describe('the Dockerfile reader', () => {
  it('joins continuations, resolves COPY destinations against WORKDIR and global ARGs in FROM', () => {
    const parsed = parseDockerfile(
      [
        'ARG BASE=img:1',
        '# comment',
        'FROM $BASE AS one',
        'WORKDIR /w',
        'COPY a b ./',
        'RUN echo \\',
        '    x',
        'ENV A=1 \\',
        '    B=2',
        'FROM scratch',
        'WORKDIR /app',
        'COPY --from=one --chown=0:0 /w/a ./x',
        'USER 1:1',
        'ENTRYPOINT ["/bin/x", "run"]',
      ].join('\n'),
    );
    expect(parsed[0]).toMatchObject({
      name: 'one',
      image: 'img:1',
      copies: [{ from: undefined, sources: ['a', 'b'], destination: '/w' }],
      runs: ['echo x'],
      env: { A: '1', B: '2' },
    });
    expect(runtimeTree(parsed)).toEqual([{ entry: 'x', from: 'one', source: '/w/a' }]);
    expect(runtimeStage(parsed)).toMatchObject({ user: '1:1', entrypoint: ['/bin/x', 'run'] });
  });

  it('refuses what it does not model', () => {
    expect(() => parseDockerfile('FROM a\nVOLUME /x')).toThrow(/unsupported instruction VOLUME/);
    expect(() => parseDockerfile('FROM a\nCOPY --link a b')).toThrow(/unsupported flag --link/);
    expect(() => parseDockerfile('FROM a\nENTRYPOINT node x')).toThrow(/exec \(JSON\) form/);
    expect(() => parseDockerfile('FROM a\nWORKDIR /app\nCOPY a ./sub/dir/')).not.toThrow();
    expect(() => runtimeTree(parseDockerfile('FROM a\nWORKDIR /app\nCOPY a ./sub/dir'))).toThrow(/top-level/);
  });
});

describe('hack/runtime-tree.sh assembles the Dockerfile runtime stage', () => {
  it('the runtime stage holds node_modules (prod-deps), dist (build) and package.json (context) under /app', () => {
    expect(runtime.workdir).toBe('/app');
    expect(tree).toEqual([
      { entry: 'node_modules', from: 'prod-deps', source: '/app/node_modules' },
      { entry: 'dist', from: 'build', source: '/src/dist' },
      { entry: 'package.json', from: undefined, source: 'package.json' },
      {
        entry: 'kustomize-engine.wasm',
        from: 'kustomize',
        source: '/out/kustomize/v5.8.2-api0.21.2-abi2/kustomize-engine.wasm',
      },
      {
        entry: 'kustomize-engine',
        from: 'kustomize',
        source: '/out/kustomize/v5.8.2-api0.21.2-abi2/kustomize-engine',
      },
      { entry: 'helm-engine.wasm', from: 'helm', source: '/out/helm/v4.3.2-abi2/helm-engine.wasm' },
    ]);
    // Root-owned: the non-root user cannot modify the tree.
    expect(runtime.copies.map((copy) => copy.chown)).toEqual(runtime.copies.map(() => '0:0'));
  });

  it('the script writes exactly those entries into <dest>', () => {
    const written = [...script.matchAll(/"\$dest\/([^"/]+)"/g)].map((match) => match[1]);
    expect([...new Set(written)].sort()).toEqual(tree.map((t) => t.entry).sort());
  });

  it('node_modules: the same npm ci over the same package.json and lockfile, moved into <dest>', () => {
    const prodDeps = stage('prod-deps');
    const entry = tree.find((t) => t.entry === 'node_modules');
    expect(entry?.source).toBe(posix.join(prodDeps.workdir ?? '', 'node_modules'));
    expect(prodDeps.copies[0]).toEqual({
      from: undefined,
      chown: undefined,
      sources: ['package.json', 'package-lock.json'],
      destination: '/app',
    });
    expect(script).toMatch(/cp "\$repo\/package\.json" "\$repo\/package-lock\.json" "\$work\/"/);
    const image = runWords('prod-deps', 'npm ci');
    const assembled = scriptWords('npm ci');
    // Same flags; --prefer-offline (read the npm cache first) changes no installed file.
    expect(flags(assembled).filter((flag) => flag !== '--prefer-offline')).toEqual(flags(image));
    expect(flags(image)).toEqual(expect.arrayContaining(['--omit=dev', '--ignore-scripts']));
    expect(script).toMatch(/mv "\$work\/node_modules" "\$dest\/node_modules"/);
  });

  it('node_modules: the files patches/ changes come from the build stage, whose npm ci applied them; the script copies the same', () => {
    const patched = readdirSync(join(repoRoot, 'patches')).flatMap((name) =>
      [...readFileSync(join(repoRoot, 'patches', name), 'utf8').matchAll(/^diff --git a\/(\S+) /gm)].map(
        (match) => match[1] ?? '',
      ),
    );
    expect(patched).toEqual(expect.arrayContaining(['node_modules/ssh2/lib/protocol/kex.js']));
    const build = stage('build');
    const fromBuild = stage('prod-deps').copies.slice(1);
    expect(fromBuild.every((copy) => copy.from === 'build')).toBe(true);
    // Every patched file, copied to the same path under /app (the prod-deps WORKDIR).
    const copied = fromBuild.flatMap((copy) =>
      copy.sources.map((source) => ({
        source,
        destination: posix.join(copy.destination, posix.basename(source)),
      })),
    );
    expect(copied.map((c) => c.source).sort()).toEqual(
      patched.map((p) => posix.join(build.workdir ?? '', p)).sort(),
    );
    for (const { source, destination } of copied) {
      expect(posix.relative(build.workdir ?? '', source)).toBe(posix.relative('/app', destination));
    }
    // The build stage has patches/ before its npm ci (whose postinstall is patch-package).
    expect(build.copies.flatMap((copy) => copy.sources)).toContain('patches');
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(packageJson.scripts.postinstall).toBe('patch-package');
    const loop =
      /for patched in ([^;]+); do\n\s+cp "\$repo\/node_modules\/ssh2\/\$patched" "\$work\/node_modules\/ssh2\/\$patched"/.exec(
        script,
      );
    expect(
      loop?.[1]
        ?.trim()
        .split(/\s+/)
        .map((file) => `node_modules/ssh2/${file}`)
        .sort(),
    ).toEqual([...patched].sort());
  });

  it('dist: the build stage compiles src/ with the same tsconfig, whose outDir is what both copy', () => {
    const build = stage('build');
    const entry = tree.find((t) => t.entry === 'dist');
    const image = runWords('build', 'npx tsc');
    const project = image[image.indexOf('-p') + 1];
    expect(project).toBe('tsconfig.build.json');
    const tsconfig = JSON.parse(readFileSync(join(repoRoot, project ?? ''), 'utf8')) as {
      compilerOptions: { outDir: string; rootDir: string };
      include: string[];
    };
    expect(entry?.source).toBe(posix.join(build.workdir ?? '', tsconfig.compilerOptions.outDir));
    // The build stage has what the project compiles: both tsconfigs and the rootDir.
    const copied = build.copies.flatMap((copy) => copy.sources);
    expect(copied).toEqual(
      expect.arrayContaining(['tsconfig.json', project, tsconfig.compilerOptions.rootDir]),
    );
    expect(tsconfig.include).toEqual([tsconfig.compilerOptions.rootDir]);
    const assembled = scriptWords('npx tsc');
    expect(assembled.slice(0, 4)).toEqual(['npx', 'tsc', '-p', project]);
    expect(assembled.slice(4)).toEqual(['--outDir', '"$dest/dist"']);
  });

  it('package.json: copied from the repository (the build context)', () => {
    expect(script).toMatch(/cp "\$repo\/package\.json" "\$dest\/package\.json"/);
  });

  it('kustomize-engine.wasm: both build it with hack/kustomize/build.sh engine, pinned to the same digest', () => {
    const kustomize = stage('kustomize');
    // hack/lib/engine-build.sh is the build steps both engines' build.sh share.
    expect(kustomize.copies.flatMap((copy) => copy.sources)).toEqual(['hack/lib', 'hack/kustomize']);
    const [build] = kustomize.runs;
    expect(build).toBe('SIGNET_CACHE=/out hack/kustomize/build.sh engine');
    expect(script).toContain('"$repo/hack/kustomize/build.sh" engine');
    expect(script).toMatch(/cp "\$engine_dir\/kustomize-engine\.wasm" "\$dest\/kustomize-engine\.wasm"/);
    const buildScript = readFileSync(join(repoRoot, 'hack', 'kustomize', 'build.sh'), 'utf8');
    const version = /^KUSTOMIZE_VERSION=(.*)$/m.exec(buildScript)?.[1];
    const api = /^API_VERSION=(.*)$/m.exec(buildScript)?.[1];
    const abi = /^ENGINE_ABI=(.*)$/m.exec(buildScript)?.[1];
    expect(abi).toBe(String(ENGINE_ABI));
    expect(tree.find((t) => t.entry === 'kustomize-engine.wasm')?.source).toBe(
      `/out/kustomize/v${version}-api${api}-abi${abi}/kustomize-engine.wasm`,
    );
    const pin = readFileSync(join(repoRoot, 'hack', 'kustomize', 'engine.sha256'), 'utf8')
      .split('\n')
      .find((line) => line !== '' && !line.startsWith('#'))
      ?.split(' ');
    expect(runtime.env.SIGNET_KUSTOMIZE_ENGINE_SHA256).toBe(pin?.[1]);
    expect(kustomize.image).toBe(`golang:${pin?.[0]?.replace(/^go/, '')}-bookworm`);
  });

  it('kustomize-engine (native, Landlock): the same stage and script build it, pinned to the same digest', () => {
    expect(script).toMatch(/cp "\$engine_dir\/kustomize-engine" "\$dest\/kustomize-engine"/);
    const source = tree.find((t) => t.entry === 'kustomize-engine')?.source;
    expect(source).toBe(tree.find((t) => t.entry === 'kustomize-engine.wasm')?.source.replace(/\.wasm$/, ''));
    const pin = readFileSync(join(repoRoot, 'hack', 'kustomize', 'engine-native-amd64.sha256'), 'utf8')
      .split('\n')
      .find((line) => line !== '' && !line.startsWith('#'))
      ?.split(' ');
    expect(runtime.env.SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256).toBe(pin?.[1]);
    expect(stage('kustomize').image).toBe(`golang:${pin?.[0]?.replace(/^go/, '')}-bookworm`);
  });

  it('helm-engine.wasm: both build it with hack/helm/build.sh engine, pinned to the same digest', () => {
    const helm = stage('helm');
    expect(helm.copies.flatMap((copy) => copy.sources)).toEqual(['hack/lib', 'hack/helm']);
    expect(helm.runs).toEqual(['SIGNET_CACHE=/out hack/helm/build.sh engine']);
    expect(script).toContain('"$repo/hack/helm/build.sh" engine');
    expect(script).toMatch(/cp "\$helm_dir\/helm-engine\.wasm" "\$dest\/helm-engine\.wasm"/);
    const buildScript = readFileSync(join(repoRoot, 'hack', 'helm', 'build.sh'), 'utf8');
    const version = /^HELM_VERSION=(.*)$/m.exec(buildScript)?.[1];
    const abi = /^ENGINE_ABI=(.*)$/m.exec(buildScript)?.[1];
    expect(abi).toBe(String(ENGINE_ABI));
    expect(tree.find((t) => t.entry === 'helm-engine.wasm')?.source).toBe(
      `/out/helm/v${version}-abi${abi}/helm-engine.wasm`,
    );
    const pin = readFileSync(join(repoRoot, 'hack', 'helm', 'engine.sha256'), 'utf8')
      .split('\n')
      .find((line) => line !== '' && !line.startsWith('#'))
      ?.split(' ');
    expect(runtime.env.SIGNET_HELM_ENGINE_SHA256).toBe(pin?.[1]);
    expect(helm.image).toBe(`golang:${pin?.[0]?.replace(/^go/, '')}-bookworm`);
  });

  it('the ENTRYPOINT runs a file of the tree with `run`, compiled from src/cli/main.ts', () => {
    const [interpreter, ...afterInterpreter] = runtime.entrypoint ?? [];
    const nodeFlags = entrypointNodeFlags(runtime.entrypoint ?? []);
    const [entryScript, verb, ...rest] = afterInterpreter.slice(nodeFlags.length);
    expect(interpreter).toBe('/nodejs/bin/node');
    expect(verb).toBe('run');
    expect(rest).toEqual([]);
    const relative = posix.relative(runtime.workdir ?? '', entryScript ?? '');
    expect(relative).toBe('dist/cli/main.js');
    expect(tree.map((t) => t.entry)).toContain(relative.split('/')[0]);
    expect(existsSync(join(repoRoot, 'src', 'cli', 'main.ts'))).toBe(true);
    // The e2e test runs the same file of the assembled tree with `run`.
    const e2e = readFileSync(join(repoRoot, 'e2e', 'runtime-tree.test.ts'), 'utf8');
    expect(e2e).toContain(
      `join(app, ${relative
        .split('/')
        .map((part) => `'${part}'`)
        .join(', ')}),\n        'run',`,
    );
  });

  it('the ENTRYPOINT passes node the same V8 flags as bin/signet, and e2e/runtime-tree takes them from the image', () => {
    const nodeFlags = entrypointNodeFlags(runtime.entrypoint ?? []);
    expect(nodeFlags).toContain('--max-semi-space-size=8');
    expect(nodeFlags).toContain('--optimize-for-size');
    const launcher = readFileSync(join(repoRoot, 'bin', 'signet'), 'utf8');
    const declared = /^node_flags=\((.*)\)$/m.exec(launcher)?.[1]?.split(/\s+/) ?? [];
    expect(declared).toEqual(nodeFlags);
    const e2e = readFileSync(join(repoRoot, 'e2e', 'runtime-tree.test.ts'), 'utf8');
    expect(e2e).toContain('...entrypointNodeFlags(');
  });

  it('USER, ENV and EXPOSE agree with the Deployment (non-root numeric user, writable mounts, ports)', () => {
    expect(runtime.user).toMatch(/^\d+:\d+$/);
    const [uid, gid] = (runtime.user ?? '').split(':').map(Number);
    for (const context of [deployment.spec?.template.spec?.securityContext, container?.securityContext]) {
      expect(context).toMatchObject({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid });
    }
    expect(Object.keys(runtime.env).sort()).toEqual([
      'HOME',
      'NODE_ENV',
      'SIGNET_CACHE_DIR',
      'SIGNET_HELM_ENGINE_SHA256',
      'SIGNET_KUSTOMIZE_ENGINE_SHA256',
      'SIGNET_KUSTOMIZE_NATIVE_ENGINE_SHA256',
    ]);
    expect(runtime.env.NODE_ENV).toBe('production');
    // With readOnlyRootFilesystem, HOME and the cache must be the emptyDir mounts.
    const mounts = (container?.volumeMounts ?? []).map((mount) => mount.mountPath).sort();
    expect([runtime.env.HOME, runtime.env.SIGNET_CACHE_DIR].sort()).toEqual(mounts);
    expect(container?.args).toContain(`--cache-dir=${runtime.env.SIGNET_CACHE_DIR}`);
    expect(container?.env).toEqual(expect.arrayContaining([{ name: 'HOME', value: runtime.env.HOME }]));
    expect(runtime.expose.map(Number).sort()).toEqual(
      (container?.ports ?? []).map((port) => port.containerPort).sort(),
    );
  });
});
