/**
 * Heroku buildpacks for Flotilla: `build()` turns an app's source into a slug with detect,
 * compile and release, through a local or container executor; bundled `nodejs`, `static` and
 * `procfile` buildpacks.
 *
 * @packageDocumentation
 */
export { build } from './build.js';
export type { BuildOptions, BuildResult, BuildpackUsed } from './build.js';
export { BUNDLED_BUILDPACKS, bundledBuildpackDir } from './bundled.js';
export type { BuildExecutor, ExecRequest, ExecResult } from './executor.js';
export { LocalExecutor } from './local-executor.js';
export type { LocalExecutorOptions } from './local-executor.js';
export { BuildpackError, BuildpackErrorCodes } from './errors.js';
export type { BuildpackErrorCode, BuildpackErrorDetails } from './errors.js';
