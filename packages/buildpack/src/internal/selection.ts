// The app's own choice of buildpacks: BUILDPACK_URL in its config, or a .buildpacks file.
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { readAppFile } from './app-file.js';
import { parseBuildpackSpec } from './fetch.js';
import type { OutputLog } from './output.js';

/** The most buildpacks an app may select. */
const MAX_SELECTED = 32;

/**
 * The app's own choice of buildpacks: `BUILDPACK_URL`, else its `.buildpacks` file (one per
 * line, `#` comments); undefined when it chose none. With `allowLocal` false, buildpacks on the
 * build host (paths, `file://`) are refused.
 */
export async function selectedBuildpacks(
  env: Readonly<Record<string, string>>,
  source: string,
  log: OutputLog,
  allowLocal: boolean,
): Promise<string[] | undefined> {
  const check = (spec: string, where: string): void => {
    const parsed = parseBuildpackSpec(spec);
    const local =
      parsed.kind === 'directory' ||
      parsed.kind === 'archive' ||
      (parsed.kind === 'git' && parsed.url.startsWith('file:'));
    if (local && !allowLocal) {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_OPTIONS,
        `${where} names ${JSON.stringify(spec.slice(0, 300))}, a buildpack on the build host, which this platform does not let apps use; name a bundled one (flotilla/nodejs) or a remote URL`,
        { buildpack: spec, path: where },
      );
    }
  };
  const url = env['BUILDPACK_URL']?.trim();
  if (url !== undefined && url !== '') {
    check(url, 'BUILDPACK_URL');
    return [url];
  }
  const text = await readAppFile(source, '.buildpacks');
  if (text === undefined) return undefined;
  const specs = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (specs.length === 0) return undefined;
  if (specs.length > MAX_SELECTED) {
    throw new BuildpackError(
      BuildpackErrorCodes.INVALID_OPTIONS,
      `.buildpacks names ${specs.length} buildpacks; an app may use at most ${MAX_SELECTED}`,
      { path: '.buildpacks' },
    );
  }
  for (const spec of specs) check(spec, '.buildpacks');
  log.step(
    `Multipack app: ${specs.length} buildpack${specs.length === 1 ? '' : 's'} from .buildpacks`,
  );
  return specs;
}
