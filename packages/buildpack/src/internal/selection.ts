// The app's own choice of buildpacks: BUILDPACK_URL in its config, or a .buildpacks file.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseBuildpackSpec } from './fetch.js';
import type { OutputLog } from './output.js';

/** The app's own choice of buildpacks: `BUILDPACK_URL`, else its `.buildpacks` file. */
export async function selectedBuildpacks(
  env: Readonly<Record<string, string>>,
  source: string,
  log: OutputLog,
): Promise<string[] | undefined> {
  const url = env['BUILDPACK_URL']?.trim();
  if (url !== undefined && url !== '') {
    parseBuildpackSpec(url);
    return [url];
  }
  const text = await readFile(join(source, '.buildpacks'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const specs = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (specs.length === 0) return undefined;
  for (const spec of specs) parseBuildpackSpec(spec);
  log.step(
    `Multipack app: ${specs.length} buildpack${specs.length === 1 ? '' : 's'} from .buildpacks`,
  );
  return specs;
}
