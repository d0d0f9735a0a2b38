import { sharedEngineChoice } from '../render/kustomize-select.ts';
import { buildCommand, buildUsage } from './build.ts';
import { diffCommand, diffUsage } from './diff.ts';
import { digestCommand, digestUsage } from './digest.ts';
import { runCommand, runUsage } from './run.ts';
import { verifyCommand, verifyUsage } from './verify.ts';
import { readVersionInfo } from './version.ts';

const usage = `signet: zero-trust GitOps operator for Kubernetes

Usage:
  signet run [flags]                  run the controller (see signet run --help)
  signet verify -f <GitRepository>    verify a repository exactly as the operator does (exit 0 verified, 1 rejected, 2 bad input)
  signet build -f <GitRepository>     verify and render as the operator would apply (exit 0 built, 1 rejected or refused, 2 error)
  signet diff -f <GitRepository>      verify, render and plan without applying (exit 0 no changes, 1 changes, 2 error)
  signet digest <path>                print the provenance tree digest of a manifest directory
  signet version                      print the version and the Kustomize engine in use
`;

const commands: Record<string, { run: (argv: readonly string[]) => Promise<number>; usage: string }> = {
  run: { run: runCommand, usage: runUsage },
  verify: { run: verifyCommand, usage: verifyUsage },
  build: { run: buildCommand, usage: buildUsage },
  diff: { run: diffCommand, usage: diffUsage },
  digest: { run: digestCommand, usage: digestUsage },
};

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'version') {
    const info = readVersionInfo();
    process.stdout.write(`signet ${info.version} (node ${info.node})\n`);
    const choice = await sharedEngineChoice();
    process.stdout.write(`kustomize engine: ${choice.kind} (${choice.reason})\n`);
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(usage);
    return 0;
  }
  const entry = commands[command];
  if (entry === undefined) {
    process.stderr.write(`signet: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  try {
    return await entry.run(rest);
  } catch (error) {
    process.stderr.write(`signet ${command}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
}
