/**
 * Loading client-node's KubeConfig without its generated API client.
 *
 * Signet reads kubeconfigs with client-node (exec, token-file and auth-provider plugins included)
 * but talks to the API server through its own transport (transport.ts), so none of client-node's
 * generated API classes and models are ever called. `dist/config.js` nevertheless imports two
 * names from the generated client's barrel, and evaluating that barrel costs ~30 MiB of RSS
 * (module sources kept as external strings, the classes, their code): a fifth of the operator's
 * idle footprint. The hook below resolves that single import, and only when `dist/config.js` is
 * the importer, to client-node-gen.ts, which exports the same two names from their own files.
 *
 * Registered once per process by the CLI's entry (main.ts) before anything imports client-node;
 * without it (tests, benches importing src directly) KubeConfig loads the whole barrel and
 * behaves the same. test/kube/kubeconfig-only.test.ts keeps the two names in step with the
 * pinned client-node.
 */
import { registerHooks } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const barrelSpecifier = './gen/index.js';
const importerSuffix = '/@kubernetes/client-node/dist/config.js';

/** client-node-gen.ts beside this file, or client-node-gen.js once compiled into dist/. */
export const kubeConfigGenUrl = new URL(
  `./client-node-gen${extname(fileURLToPath(import.meta.url))}`,
  import.meta.url,
).href;

let registered = false;

/** Idempotent; affects only modules loaded after the call. */
export function registerKubeConfigOnly(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === barrelSpecifier && context.parentURL?.endsWith(importerSuffix) === true) {
        return { url: kubeConfigGenUrl, shortCircuit: true };
      }
      return nextResolve(specifier, context);
    },
  });
}
