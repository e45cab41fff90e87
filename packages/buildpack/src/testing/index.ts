/**
 * Test support for `BuildExecutor` implementations: the suite of buildpack builds every
 * executor runs (detect, compile, release, multi-buildpack, failures, aborts, the bundled
 * buildpacks).
 *
 * @packageDocumentation
 */
export { runBuildpackSuite } from './suite.js';
export type { BuildpackSuiteOptions } from './suite.js';
