#!/usr/bin/env node
/**
 * The CLI's entry: process-wide module settings first, then the commands. Nothing heavy is
 * imported statically here, because static imports are evaluated before this module's body runs.
 *
 * - Source maps map stack traces of Signet's own modules back to src/; those of node_modules are
 *   not loaded (client-node alone ships megabytes of them, held for the process's lifetime).
 * - client-node's KubeConfig is loaded without its generated API client (kube/kubeconfig-only.ts).
 */
import { setSourceMapsSupport } from 'node:module';
import { registerKubeConfigOnly } from '../kube/kubeconfig-only.ts';

setSourceMapsSupport(true, { nodeModules: false, generatedCode: false });
registerKubeConfigOnly();
const { main } = await import('./commands.ts');
process.exitCode = await main(process.argv.slice(2));
