/**
 * The Flotilla reference PaaS: the `flotilla` server (API, git push, scheduler, host agent,
 * router) and the `flotilla` CLI, wired from the `@flotilla/*` packages.
 *
 * @packageDocumentation
 */
export { VERSION } from './version.js';
export { PaasError, PaasErrorCodes } from './errors.js';
export type { PaasErrorCode } from './errors.js';
export { FlotillaServer } from './server/server.js';
export type { ServerInfo } from './server/server.js';
export { parseStoreUrl, resolveServerConfig } from './server/config.js';
export type { ServerConfig, ServerFlags, StoreUrl } from './server/config.js';
