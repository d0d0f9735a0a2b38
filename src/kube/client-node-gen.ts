/**
 * The two names client-node's `dist/config.js` imports from its generated client's barrel
 * (`dist/gen/index.js`), each from its own file. `registerKubeConfigOnly` (kubeconfig-only.ts)
 * resolves that one import here, so loading KubeConfig does not evaluate the generated API.
 */
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
