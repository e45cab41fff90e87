// Detect and compile: fetching each buildpack, detection over the candidates (or every
// buildpack the app selected), compile, and the export files handed from one to the next.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { fetchBuildpack, parseBuildpackSpec } from './fetch.js';
import { checkInterrupted, runStep, type StepContext } from './step.js';

/** The most bytes of a detect's stdout read for its name. */
const MAX_DETECT_BYTES = 4096;

/** A buildpack that ran: its spec, where it was fetched to, and the name its detect printed. */
export interface RanBuildpack {
  readonly spec: string;
  readonly root: string;
  readonly name: string;
}

/** The directories a build hands its buildpacks. */
export interface BuildDirs {
  readonly build: string;
  readonly cache: string;
  readonly env: string;
  /** Where buildpacks are fetched to, one directory each. */
  readonly packs: string;
}

/**
 * Runs the buildpacks: every one of `selected` in order, each of which must detect the app;
 * or, when the app selected none, the first of `candidates` that detects it. Returns those that
 * ran and their `export` files, in order.
 */
export async function runBuildpacks(
  ctx: StepContext,
  dirs: BuildDirs,
  selected: readonly string[] | undefined,
  candidates: readonly string[],
): Promise<{ ran: RanBuildpack[]; exports: string[] }> {
  const { log } = ctx;
  let fetched = 0;
  const fetch = async (spec: string): Promise<string> => {
    const parsed = parseBuildpackSpec(spec);
    if (parsed.kind !== 'bundled') log.step(`Fetching buildpack ${spec}`);
    try {
      return await fetchBuildpack(spec, parsed, join(dirs.packs, String(fetched++)), ctx.signal);
    } catch (err) {
      checkInterrupted(ctx, spec);
      if (!(err instanceof BuildpackError)) throw err;
      throw new BuildpackError(err.code, err.message, {
        buildpack: spec,
        output: log.text(),
        cause: err.cause,
        retryable: err.retryable,
      });
    }
  };
  const detect = async (spec: string, root: string): Promise<string | undefined> => {
    const res = await runStep(ctx, join(root, 'bin', 'detect'), [dirs.build], {
      exports,
      captureStdout: MAX_DETECT_BYTES,
      buildpack: spec,
    });
    if (res.code !== 0) return undefined;
    const name = res.stdout.split('\n')[0]?.trim() ?? '';
    return name === '' ? spec : name;
  };
  const compile = async ({ spec, root, name }: RanBuildpack): Promise<void> => {
    log.step(`${name} app detected`);
    const args = [dirs.build, dirs.cache, dirs.env];
    const res = await runStep(ctx, join(root, 'bin', 'compile'), args, {
      exports,
      buildpack: spec,
    });
    if (res.code !== 0) {
      const how = res.code === null ? `was killed by ${res.signal}` : `exited with ${res.code}`;
      log.warn(`Push rejected, failed to compile ${name} app.`);
      throw new BuildpackError(
        BuildpackErrorCodes.COMPILE_FAILED,
        `bin/compile of ${spec} ${how}; its output says why`,
        { buildpack: spec, output: log.text(), exitCode: res.code, signal: res.signal },
      );
    }
    const exportFile = join(root, 'export');
    if ((await stat(exportFile).catch(() => undefined))?.isFile() === true) {
      exports.push(exportFile);
    }
  };

  const ran: RanBuildpack[] = [];
  const exports: string[] = [];
  if (selected === undefined) {
    for (const spec of candidates) {
      const root = await fetch(spec);
      const name = await detect(spec, root);
      if (name === undefined) continue;
      ran.push({ spec, root, name });
      await compile({ spec, root, name });
      return { ran, exports };
    }
    log.warn('No default language could be detected for this app.');
    throw new BuildpackError(
      BuildpackErrorCodes.NOT_DETECTED,
      `no buildpack detected this app (tried ${candidates.join(', ')}); add the file a buildpack looks for (package.json, index.html, Procfile) or choose one with BUILDPACK_URL`,
      { output: log.text() },
    );
  }
  for (const spec of selected) {
    const root = await fetch(spec);
    const name = await detect(spec, root);
    if (name === undefined) {
      log.warn(`App not compatible with buildpack: ${spec}`);
      throw new BuildpackError(
        BuildpackErrorCodes.NOT_DETECTED,
        `bin/detect of ${spec} refused this app; remove it from the app's buildpacks or add what it looks for`,
        { buildpack: spec, output: log.text() },
      );
    }
    ran.push({ spec, root, name });
    await compile({ spec, root, name });
  }
  return { ran, exports };
}
