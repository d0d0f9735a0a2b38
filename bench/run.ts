// `make bench`: runs every benchmark, prints each figure as a ratio against a baseline measured in
// the same run, and rewrites docs/benchmarks.md with the figures and the command that made them.
// `node bench/run.ts verify apply` runs a subset.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type BenchRow, fmt, formatRowLine, formatTableRow, judge } from './rows.ts';

export type { BenchRow } from './rows.ts';

type Runner = () => Promise<BenchRow[]>;
const root = new URL('..', import.meta.url);
/** S6 in /work/shared/reference/performance.md: p50 per sigstore bundle, trusted root warm. */
const keylessP50TargetMs = 5;

const runners: Record<string, Runner> = {
  async verify() {
    const { runVerifyBench } = await import('./verify.bench.ts');
    const r = await runVerifyBench();
    return [r.ssh, r.openpgp].map((c) => ({
      bench: 'verify',
      figure: `${c.commits}-commit Range, ${c.format === 'ssh' ? 'SSH ed25519' : 'OpenPGP ed25519'}`,
      value: `${fmt(c.commitsPerSecond, 0)} commits/s`,
      baseline: `git verify-commit loop ${fmt(c.gitLoopCommitsPerSecond, 1)} commits/s`,
      ratio: `${fmt(c.ratio, 0)}×`,
      target: c.format === 'ssh' ? '≥ 2,000 commits/s and ≥ 10×' : '≥ 10×',
      pass: c.ratio >= 10 && (c.format !== 'ssh' || c.commitsPerSecond >= 2_000),
    }));
  },
  async keyless() {
    const { runKeylessBench } = await import('./keyless.bench.ts');
    const r = await runKeylessBench();
    const rows: [string, { coldMs: number; warmP50Ms: number; ratioToEcdsa: number }][] = [
      ['gitsign commit (CMS, Fulcio chain, Rekor SET + proof)', r.gitsignCommit],
      ['keyless message-signature bundle', r.keylessMessageBundle],
      ['keyless DSSE (SLSA) bundle', r.keylessDsseBundle],
      ['keyed bundle', r.keyedBundle],
    ];
    return rows.map(([figure, t]) => ({
      bench: 'keyless',
      figure,
      value: `p50 ${fmt(t.warmP50Ms)} ms warm, ${fmt(t.coldMs)} ms cold`,
      baseline: `raw ECDSA P-256 verify ${fmt(r.rawEcdsaP256VerifyP50Ms, 3)} ms`,
      ratio: `${fmt(t.ratioToEcdsa, 0)}×`,
      target: `p50 ≤ ${keylessP50TargetMs} ms warm (S6; no published anchor)`,
      pass: t.warmP50Ms <= keylessP50TargetMs,
    }));
  },
  async apply() {
    const { runApplyBench, benchRows } = await import('./apply.bench.ts');
    return benchRows(await runApplyBench());
  },
  async git() {
    const { runGitBench, benchRows } = await import('./git.bench.ts');
    return benchRows(await runGitBench());
  },
  async kustomize() {
    const { runKustomizeBench, benchRows } = await import('./kustomize.bench.ts');
    return benchRows(await runKustomizeBench());
  },
  async helm() {
    const { runHelmBench, benchRows } = await import('./helm.bench.ts');
    return benchRows(await runHelmBench());
  },
  async 'git-ssh'() {
    const { runSshBench, benchRows } = await import('./git-ssh.bench.ts');
    return benchRows(await runSshBench());
  },
  async 'kustomize-apply'() {
    const { runKustomizeApplyBench, benchRows } = await import('./kustomize-apply.bench.ts');
    return benchRows(await runKustomizeApplyBench());
  },
  async drift() {
    const { runDriftBench, benchRows } = await import('./drift.bench.ts');
    return benchRows(await runDriftBench());
  },
  async images() {
    const { runImagesBench, benchRows } = await import('./images.bench.ts');
    return benchRows(await runImagesBench());
  },
  async flux() {
    const { runFluxBench, benchRows } = await import('./flux.bench.ts');
    return benchRows(await runFluxBench());
  },
  async fleet() {
    const { runFleetBench, benchRows } = await import('./fleet.bench.ts');
    return benchRows(await runFleetBench());
  },
};

const files: Record<string, string> = {
  verify: 'verify.bench.ts',
  keyless: 'keyless.bench.ts',
  apply: 'apply.bench.ts',
  git: 'git.bench.ts',
  'git-ssh': 'git-ssh.bench.ts',
  drift: 'drift.bench.ts',
  kustomize: 'kustomize.bench.ts',
  helm: 'helm.bench.ts',
  'kustomize-apply': 'kustomize-apply.bench.ts',
  images: 'images.bench.ts',
  flux: 'flux.bench.ts',
  fleet: 'fleet.bench.ts',
};

/** Marks the line on which a child run of one bench hands its rows back (JSON). */
const rowsMarker = 'SIGNET_BENCH_ROWS ';

/**
 * Runs one bench in a fresh Node process (same runtime and flags): an in-process operator or
 * apply measured after another bench would share that bench's heap (the git bench peaks at
 * ~700 MiB) and its garbage collections. Its output streams through; its rows come back.
 */
function runInChild(name: string): Promise<BenchRow[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--child', name],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let rows: BenchRow[] | undefined;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.startsWith(rowsMarker)) rows = JSON.parse(line.slice(rowsMarker.length)) as BenchRow[];
        else process.stdout.write(`${line}\n`);
        newline = pending.indexOf('\n');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (pending !== '') process.stdout.write(pending);
      if (code === 0 && rows !== undefined) resolve(rows);
      else
        reject(
          new Error(`bench ${name} exited with ${signal ?? code}${rows === undefined ? ', no rows' : ''}`),
        );
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  const name = process.argv[3] ?? '';
  const runner = runners[name];
  if (runner === undefined) throw new Error(`no bench named ${name}`);
  const produced = await runner();
  process.stdout.write(`${rowsMarker}${JSON.stringify(produced)}\n`);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const selected = process.argv.slice(2);
  const names = (selected.length > 0 ? selected : Object.keys(runners)).filter((name) =>
    existsSync(new URL(`./${files[name] ?? ''}`, import.meta.url)),
  );
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  for (const name of names) {
    process.stdout.write(`\n== ${name} ==\n`);
    const started = Date.now();
    try {
      const produced = await runInChild(name);
      for (const row of produced) {
        rows.push(row);
        process.stdout.write(`${formatRowLine(row)}\n`);
      }
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      process.stdout.write(`${name} failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    }
    process.stdout.write(`(${name} took ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  const header = [
    '# Benchmarks',
    '',
    `Produced by \`make bench\` (\`${['node bench/run.ts', ...selected].join(' ')}\`) on ${new Date().toISOString().slice(0, 10)},`,
    `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}.`,
    'Every figure is measured against a baseline run in the same process or run, on the same machine and API server; each bench runs in a fresh Node process of its own.',
    '',
    '| benchmark | figure | Signet | baseline (same run) | ratio | target | met |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(formatTableRow),
    '',
    ...(failures.length > 0
      ? ['## Benchmarks that did not complete', '', ...failures.map((f) => `- ${f}`), '']
      : []),
    // How the figures are taken and what they showed: kept beside the benches, not rewritten.
    (await readFile(new URL('./notes.md', import.meta.url), 'utf8')).trimEnd(),
  ];
  if (selected.length === 0) await writeFile(new URL('docs/benchmarks.md', root), `${header.join('\n')}\n`);
  else process.stdout.write(`\n${header.join('\n')}\n`);
  const verdict = judge(rows, failures);
  process.stdout.write(`\n${verdict.lines.join('\n')}\n`);
  process.exitCode = verdict.exitCode;
}
