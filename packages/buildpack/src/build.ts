import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { silentLogger, type Logger } from '@flotilla/core';
import { BuildpackError, BuildpackErrorCodes } from './errors.js';
import type { BuildExecutor } from './executor.js';
import { LocalExecutor } from './local-executor.js';
import { lockCache } from './internal/cache-lock.js';
import { checkOptions } from './internal/options.js';
import { OutputLog } from './internal/output.js';
import { packBuild } from './internal/pack.js';
import { declare } from './internal/release.js';
import { runBuildpacks, type BuildDirs, type RanBuildpack } from './internal/run-buildpacks.js';
import { selectedBuildpacks } from './internal/selection.js';
import { copySource, gitHead } from './internal/source.js';
import type { StepContext } from './internal/step.js';
import { makeWorkDir } from './internal/work-dir.js';

/** Options of {@link build}. */
export interface BuildOptions {
  /** The app's source: a directory (relative paths are resolved). `.git` and what `.slugignore` names are left out. */
  readonly source: string;
  /**
   * The app's cache directory, kept between builds of the same app (created if missing).
   * Buildpacks keep downloads and installed dependencies there, so a second build of an
   * unchanged app is much faster. One build at a time may use it. Default: a fresh directory,
   * removed after the build.
   */
  readonly cacheDir?: string;
  /**
   * Where to write the slug (its directory is created). Default: `slug.tgz` in a new
   * directory under the OS temp directory, which the caller then owns.
   */
  readonly slugPath?: string;
  /** The app's config vars: each becomes a file of ENV_DIR. `BUILDPACK_URL` selects a buildpack. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Buildpacks detection tries, in order, when the app selects none (`BUILDPACK_URL`, a
   * `.buildpacks` file): the first whose `bin/detect` accepts the app builds it. Each is a
   * bundled name (`flotilla/nodejs`), an absolute path, a git URL with an optional `#ref`, or
   * a `.tgz` path or http(s) URL. Default {@link BUNDLED_BUILDPACKS}.
   */
  readonly buildpacks?: readonly string[];
  /**
   * Whether the app's own choice (`BUILDPACK_URL`, `.buildpacks`) may name buildpacks on the
   * build host: an absolute path, a `file://` repository or archive. Default true; set false
   * where apps belong to people who should not reach the builder's files, so that they may
   * name only bundled and remote buildpacks (`FLOTILLA_BUILDPACK_INVALID_OPTIONS` otherwise).
   */
  readonly appLocalBuildpacks?: boolean;
  /** Runs the buildpack scripts. Default: a {@link LocalExecutor}, closed when the build ends. */
  readonly executor?: BuildExecutor;
  /** Receives each line of output as it comes, without its newline. */
  readonly onOutput?: (line: string) => void;
  /** Stops the build and everything it started; the call then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Stops the build after this many milliseconds with `FLOTILLA_BUILDPACK_TIMEOUT`. Default: none; at most 2³¹−1 (about 24 days). */
  readonly timeoutMs?: number;
  /** `STACK` of the build. Default `'heroku-24'`, the stack public buildpacks know. */
  readonly stack?: string;
  /** `SOURCE_VERSION` of the build (a git commit). Default: the source's `git rev-parse HEAD`, when it is a git checkout. */
  readonly sourceVersion?: string;
  /** `REQUEST_ID` of the build. Default: a random UUID. */
  readonly requestId?: string;
  /** `PATH` of the build steps. Default `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`. */
  readonly path?: string;
  /** Where the build's temporary directory is made. Default: the OS temp directory. */
  readonly workDir?: string;
  /** The most output kept with the result or error (its tail), bytes. Default 4 MiB. */
  readonly maxOutputBytes?: number;
  /** A pino-compatible logger. Default: silent. */
  readonly logger?: Logger;
}

/** A buildpack a build ran. */
export interface BuildpackUsed {
  /** The name its `bin/detect` printed (`'Node.js'`). */
  readonly name: string;
  /** Where it came from, as configured (`'flotilla/nodejs'`, a git URL, a path). */
  readonly url: string;
}

/** What {@link build} produced. */
export interface BuildResult {
  /** The slug's absolute path: a gzipped tar of the built app, paths relative to the app's root. */
  readonly slug: string;
  /** The slug's sha256, lowercase hex. */
  readonly sha256: string;
  /** The slug's size in bytes. */
  readonly sizeBytes: number;
  /** Command per process type: the Procfile's, then the last buildpack's defaults for the others. */
  readonly processTypes: Readonly<Record<string, string>>;
  /** The buildpacks that ran, in order. */
  readonly buildpacks: readonly BuildpackUsed[];
  /** Legacy `config_vars` of the last buildpack's release (also written as `.profile.d` defaults). */
  readonly configVars: Readonly<Record<string, string>>;
  /** `addons` of the last buildpack's release. */
  readonly addons: readonly string[];
  /** How long the build took, ms. */
  readonly durationMs: number;
  /** The build's output, one line per `\n` (its tail, past `maxOutputBytes`). */
  readonly output: string;
}

/**
 * Builds an app's source into a slug with Heroku buildpacks: copies the source (without `.git`
 * and what `.slugignore` names), picks the buildpacks (the app's `BUILDPACK_URL` or
 * `.buildpacks`, else the first of `buildpacks` whose `bin/detect` accepts the app), runs each
 * one's `bin/compile BUILD_DIR CACHE_DIR ENV_DIR` through the executor, reads the last one's
 * `bin/release`, and packs the result with `packSlug`. Nothing is left behind but the slug and
 * the cache: the build's temporary directory goes, also on failure or abort.
 *
 * @throws {@link BuildpackError} with the output so far: `FLOTILLA_BUILDPACK_NOT_DETECTED`,
 *   `FLOTILLA_BUILDPACK_COMPILE_FAILED`, `FLOTILLA_BUILDPACK_RELEASE_INVALID`,
 *   `FLOTILLA_BUILDPACK_FETCH_FAILED`, `FLOTILLA_BUILDPACK_TIMEOUT`... (see the README); the
 *   signal's reason when aborted.
 *
 * @example
 * ```ts
 * import { build } from '@flotilla/buildpack';
 *
 * const result = await build({
 *   source: '/srv/src/demo',
 *   cacheDir: '/var/cache/flotilla/demo',
 *   env: { NODE_ENV: 'production' },
 *   onOutput: (line) => console.log(line),
 * });
 * // result: { slug: '/tmp/flotilla-slug-x/slug.tgz', sha256, sizeBytes, processTypes: { web: 'npm start' }, ... }
 * ```
 */
export async function build(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const opts = checkOptions(options);
  const logger = (options.logger ?? silentLogger).child({ component: 'buildpack' });
  options.signal?.throwIfAborted();
  const log = new OutputLog(options.onOutput, opts.maxOutputBytes, logger);

  const sourceStat = await stat(opts.source).catch(() => undefined);
  if (sourceStat?.isDirectory() !== true) {
    throw new BuildpackError(
      BuildpackErrorCodes.INVALID_SOURCE,
      `the source ${opts.source} is not a directory; pass the directory that holds the app`,
      { path: opts.source },
    );
  }

  const timeoutSignal =
    options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, timeoutSignal].filter((s) => s !== undefined));

  const work = await makeWorkDir(opts.workDir);
  const dirs: BuildDirs = {
    build: join(work, 'app'),
    cache: opts.cacheDir ?? join(work, 'cache'),
    env: join(work, 'env'),
    packs: join(work, 'buildpacks'),
  };
  const home = join(work, 'home');
  const ownExecutor = options.executor === undefined ? new LocalExecutor() : undefined;
  const executor = options.executor ?? (ownExecutor as BuildExecutor);
  let unlock: (() => Promise<void>) | undefined;
  try {
    await Promise.all([mkdir(dirs.build), mkdir(dirs.env), mkdir(home), mkdir(dirs.packs)]);
    await mkdir(dirs.cache, { recursive: true }).catch((err: unknown) => {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_OPTIONS,
        `build: cacheDir ${dirs.cache} cannot be made a directory (${(err as Error).message})`,
        { path: 'cacheDir', cause: err },
      );
    });
    unlock = await lockCache(dirs.cache);
    for (const [key, value] of Object.entries(opts.env)) {
      await writeFile(join(dirs.env, key), value, { mode: 0o600 });
    }
    await copySource(opts.source, dirs.build, signal).catch((err: unknown) => {
      if (err instanceof BuildpackError || signal.aborted) throw err;
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_SOURCE,
        `cannot copy the source ${opts.source}: ${(err as Error).message}`,
        { path: opts.source, cause: err },
      );
    });

    const sourceVersion = opts.sourceVersion ?? (await gitHead(opts.source));
    const ctx: StepContext = {
      executor,
      env: {
        PATH: opts.path,
        HOME: home,
        LANG: 'C.UTF-8',
        STACK: opts.stack,
        REQUEST_ID: opts.requestId,
        ...(sourceVersion === undefined ? {} : { SOURCE_VERSION: sourceVersion }),
      },
      mounts: dirs.cache.startsWith(work + sep) ? [work] : [work, dirs.cache],
      cwd: dirs.build,
      log,
      signal,
      userSignal: options.signal,
      timeoutSignal,
      timeoutMs: options.timeoutMs,
    };

    const selected = await selectedBuildpacks(opts.env, opts.source, log, opts.appLocalBuildpacks);
    const { ran, exports } = await runBuildpacks(ctx, dirs, selected, opts.buildpacks);
    const last = ran[ran.length - 1] as RanBuildpack;
    const declared = await declare(ctx, last.spec, last.root, exports);
    const packed = await packBuild(ctx, opts.slugPath);
    logger.debug({ slug: packed.path, sizeBytes: packed.size }, 'built');
    return {
      slug: packed.path,
      sha256: packed.sha256,
      sizeBytes: packed.size,
      processTypes: declared.processTypes,
      buildpacks: ran.map((r) => ({ name: r.name, url: r.spec })),
      configVars: declared.configVars,
      addons: declared.addons,
      durationMs: performance.now() - started,
      output: log.text(),
    };
  } finally {
    await ownExecutor?.close();
    await unlock?.();
    await rm(work, { recursive: true, force: true });
  }
}
