import { fileURLToPath } from 'node:url';

/**
 * The buildpacks bundled with this package, in the order detection tries them when no
 * buildpack is configured: `nodejs` (a `package.json`), `static` (an `index.html` or a
 * `static.json`), `procfile` (a `Procfile` naming every process). Each can be named in a
 * buildpack list as `flotilla/<name>`.
 */
export const BUNDLED_BUILDPACKS: readonly string[] = Object.freeze([
  'flotilla/nodejs',
  'flotilla/static',
  'flotilla/procfile',
]);

const NAMES = new Set(['nodejs', 'static', 'procfile']);

/**
 * The directory of the bundled buildpack `name` (`'nodejs'`), or undefined when there is no
 * such bundled buildpack.
 */
export function bundledBuildpackDir(name: string): string | undefined {
  if (!NAMES.has(name)) return undefined;
  return fileURLToPath(new URL(`../buildpacks/${name}`, import.meta.url));
}
