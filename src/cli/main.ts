#!/usr/bin/env node
import { readVersionInfo } from './version.ts';

const usage = `signet: zero-trust GitOps operator

Usage:
  signet version              print the version
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'version': {
      const info = readVersionInfo();
      process.stdout.write(`signet ${info.version} (node ${info.node})\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return 0;
    default:
      process.stderr.write(`signet: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
