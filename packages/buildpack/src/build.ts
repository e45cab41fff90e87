import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { silentLogger, type Logger } from '@flotilla/core';
import { parseProcfile } from '@flotilla/procfile';
import { packSlug, SlugError } from '@flotilla/slug';
import { BUNDLED_BUILDPACKS } from './bundled.js';
import { BuildpackError, BuildpackErrorCodes } from './errors.js';
import type { BuildExecutor } from './executor.js';
import { LocalExecutor } from './local-executor.js';
import { lockCache } from './internal/cache-lock.js';
import { fetchBuildpack, parseBuildpackSpec } from './internal/fetch.js';
import { OutputLog } from './internal/output.js';
import { parseRelease, type ReleaseInfo } from './internal/release-yaml.js';
import { configVarsScript, isEnvName } from './internal/shell.js';
import { copySource } from './internal/source.js';
import { checkInterrupted, runStep, type StepContext } from './internal/step.js';

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
  /** Runs the buildpack scripts. Default: a {@link LocalExecutor}, closed when the build ends. */
  readonly executor?: BuildExecutor;
  /** Receives each line of output as it comes, without its newline. */
  readonly onOutput?: (line: string) => void;
  /** Stops the build and everything it started; the call then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Stops the build after this many milliseconds with `FLOTILLA_BUILDPACK_TIMEOUT`. Default: none. */
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

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;
/** Longest detect name kept, and the most bytes of release YAML read. */
const MAX_DETECT_BYTES = 4096;
const MAX_RELEASE_BYTES = 1024 * 1024;

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
  const log = new OutputLog(options.onOutput, opts.maxOutputBytes);

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
  const signals = [options.signal, timeoutSignal].filter((s) => s !== undefined);
  const signal = AbortSignal.any(signals);

  const work = await mkdtemp(join(opts.workDir, 'flotilla-build-'));
  const buildDir = join(work, 'app');
  const envDir = join(work, 'env');
  const home = join(work, 'home');
  const packsDir = join(work, 'buildpacks');
  const cacheDir = opts.cacheDir ?? join(work, 'cache');
  const ownExecutor = options.executor === undefined ? new LocalExecutor() : undefined;
  const executor = options.executor ?? (ownExecutor as BuildExecutor);
  let unlock: (() => Promise<void>) | undefined;
  try {
    await Promise.all([mkdir(buildDir), mkdir(envDir), mkdir(home), mkdir(packsDir)]);
    await mkdir(cacheDir, { recursive: true });
    unlock = await lockCache(cacheDir);
    for (const [key, value] of Object.entries(opts.env)) {
      await writeFile(join(envDir, key), value, { mode: 0o600 });
    }
    await copySource(opts.source, buildDir, signal).catch((err: unknown) => {
      if (err instanceof BuildpackError || signal.aborted) throw err;
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_SOURCE,
        `cannot copy the source ${opts.source}: ${(err as Error).message}`,
        { path: opts.source, cause: err },
      );
    });

    const sourceVersion = options.sourceVersion ?? (await gitHead(opts.source));
    const env: Record<string, string> = {
      PATH: opts.path,
      HOME: home,
      LANG: 'C.UTF-8',
      STACK: opts.stack,
      REQUEST_ID: opts.requestId,
      ...(sourceVersion === undefined ? {} : { SOURCE_VERSION: sourceVersion }),
    };
    const mounts = cacheDir.startsWith(work + sep) ? [work] : [work, cacheDir];
    const ctx: StepContext = {
      executor,
      env,
      mounts,
      cwd: buildDir,
      log,
      signal,
      userSignal: options.signal,
      timeoutSignal,
      timeoutMs: options.timeoutMs,
    };

    // Which buildpacks: the app's choice runs them all; otherwise detection picks one.
    const selected = await selectedBuildpacks(opts.env, opts.source, log);
    const specs = selected ?? opts.buildpacks;
    let fetched = 0;
    const fetch = async (spec: string): Promise<string> => {
      const parsed = parseBuildpackSpec(spec);
      if (parsed.kind !== 'bundled') log.step(`Fetching buildpack ${spec}`);
      const dir = join(packsDir, String(fetched++));
      try {
        return await fetchBuildpack(spec, parsed, dir, signal);
      } catch (err) {
        checkInterrupted(ctx, spec);
        if (err instanceof BuildpackError) {
          throw new BuildpackError(err.code, err.message, {
            buildpack: spec,
            output: log.text(),
            cause: err.cause,
            retryable: err.retryable,
          });
        }
        throw err;
      }
    };
    const detect = async (
      spec: string,
      root: string,
      exports: string[],
    ): Promise<string | undefined> => {
      const res = await runStep(ctx, join(root, 'bin', 'detect'), [buildDir], {
        exports,
        captureStdout: MAX_DETECT_BYTES,
        buildpack: spec,
      });
      if (res.code !== 0) return undefined;
      const name = res.stdout.split('\n')[0]?.trim() ?? '';
      return name === '' ? spec : name;
    };

    const used: { spec: string; root: string; name: string }[] = [];
    const exports: string[] = [];
    if (selected === undefined) {
      for (const spec of specs) {
        const root = await fetch(spec);
        const name = await detect(spec, root, []);
        logger.debug({ buildpack: spec, detected: name !== undefined }, 'detect');
        if (name !== undefined) {
          used.push({ spec, root, name });
          break;
        }
      }
      if (used.length === 0) {
        log.warn('No default language could be detected for this app.');
        throw new BuildpackError(
          BuildpackErrorCodes.NOT_DETECTED,
          `no buildpack detected this app (tried ${specs.join(', ')}); add the file a buildpack looks for (package.json, index.html, Procfile) or choose one with BUILDPACK_URL`,
          { output: log.text() },
        );
      }
    }

    const runOne = async (spec: string, root: string, name: string): Promise<void> => {
      log.step(`${name} app detected`);
      const res = await runStep(ctx, join(root, 'bin', 'compile'), [buildDir, cacheDir, envDir], {
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

    if (selected === undefined) {
      const only = used[0] as { spec: string; root: string; name: string };
      await runOne(only.spec, only.root, only.name);
    } else {
      for (const spec of selected) {
        const root = await fetch(spec);
        const name = await detect(spec, root, exports);
        if (name === undefined) {
          log.warn(`App not compatible with buildpack: ${spec}`);
          throw new BuildpackError(
            BuildpackErrorCodes.NOT_DETECTED,
            `bin/detect of ${spec} refused this app; remove it from the app's buildpacks or add what it looks for`,
            { buildpack: spec, output: log.text() },
          );
        }
        used.push({ spec, root, name });
        await runOne(spec, root, name);
      }
    }

    // The last buildpack's release, then the Procfile.
    const last = used[used.length - 1] as { spec: string; root: string; name: string };
    const release = await runRelease(ctx, last.spec, last.root, buildDir, exports);
    const processTypes = await processTypesOf(buildDir, release, log);
    if (Object.keys(release.configVars).length > 0) {
      await mkdir(join(buildDir, '.profile.d'), { recursive: true });
      await writeFile(
        join(buildDir, '.profile.d', '000_config_vars.sh'),
        configVarsScript(release.configVars),
      );
    }

    log.step('Compressing...');
    const slugPath =
      opts.slugPath ?? join(await mkdtemp(join(tmpdir(), 'flotilla-slug-')), 'slug.tgz');
    await mkdir(dirname(slugPath), { recursive: true });
    let packed;
    try {
      packed = await packSlug(buildDir, slugPath, {
        exclude: (path) => path === '.git' || path.endsWith('/.git'),
        signal,
      });
    } catch (err) {
      checkInterrupted(ctx);
      if (opts.slugPath === undefined)
        await rm(dirname(slugPath), { recursive: true, force: true });
      if (err instanceof SlugError) {
        throw new BuildpackError(
          BuildpackErrorCodes.SLUG_REFUSED,
          `the built app cannot be packed as a slug: ${err.message}`,
          {
            output: log.text(),
            cause: err,
            ...(err.entry === undefined ? {} : { path: err.entry }),
          },
        );
      }
      throw err;
    }
    log.detail(`Done: ${formatSize(packed.size)}`);
    return {
      slug: packed.path,
      sha256: packed.sha256,
      sizeBytes: packed.size,
      processTypes,
      buildpacks: used.map((u) => ({ name: u.name, url: u.spec })),
      configVars: release.configVars,
      addons: release.addons,
      durationMs: performance.now() - started,
      output: log.text(),
    };
  } finally {
    await ownExecutor?.close();
    await unlock?.();
    await rm(work, { recursive: true, force: true });
  }
}

interface CheckedOptions {
  readonly source: string;
  readonly cacheDir: string | undefined;
  readonly slugPath: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly buildpacks: readonly string[];
  readonly stack: string;
  readonly requestId: string;
  readonly path: string;
  readonly workDir: string;
  readonly maxOutputBytes: number;
}

function checkOptions(options: BuildOptions): CheckedOptions {
  const bad = (what: string, path: string): BuildpackError =>
    new BuildpackError(BuildpackErrorCodes.INVALID_OPTIONS, `build: ${what}`, { path });
  if (typeof options !== 'object' || options === null)
    throw bad('options must be an object', 'options');
  const pathOption = (name: keyof BuildOptions, value: unknown): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '' || value.includes('\0')) {
      throw bad(`${name} must be a non-empty path without NUL bytes`, name);
    }
    return resolve(value);
  };
  const stringOption = (name: keyof BuildOptions, value: unknown): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '' || /[\0\n\r]/.test(value)) {
      throw bad(`${name} must be a non-empty string on one line`, name);
    }
    return value;
  };
  const source = pathOption('source', options.source);
  if (source === undefined)
    throw bad('source is required: the directory that holds the app', 'source');
  const cacheDir = pathOption('cacheDir', options.cacheDir);
  if (cacheDir !== undefined && (inside(cacheDir, source) || inside(source, cacheDir))) {
    throw bad(
      `cacheDir ${cacheDir} and source ${source} overlap; keep the cache outside the app`,
      'cacheDir',
    );
  }
  const env: Record<string, string> = {};
  if (options.env !== undefined) {
    if (typeof options.env !== 'object' || options.env === null)
      throw bad('env must be an object', 'env');
    for (const [key, value] of Object.entries(options.env)) {
      if (!isEnvName(key)) {
        throw bad(
          `env key ${JSON.stringify(key.slice(0, 100))} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)`,
          `env.${key}`,
        );
      }
      if (typeof value !== 'string' || value.includes('\0')) {
        throw bad(`env.${key} must be a string without NUL bytes`, `env.${key}`);
      }
      env[key] = value;
    }
  }
  const buildpacks = options.buildpacks ?? BUNDLED_BUILDPACKS;
  if (!Array.isArray(buildpacks) || buildpacks.length === 0) {
    throw bad('buildpacks must be a non-empty list', 'buildpacks');
  }
  for (const spec of buildpacks) parseBuildpackSpec(spec as string);
  if (
    options.timeoutMs !== undefined &&
    (typeof options.timeoutMs !== 'number' ||
      !Number.isFinite(options.timeoutMs) ||
      options.timeoutMs <= 0)
  ) {
    throw bad('timeoutMs must be a positive number of milliseconds', 'timeoutMs');
  }
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes <= 0) {
    throw bad('maxOutputBytes must be a positive integer', 'maxOutputBytes');
  }
  if (options.executor !== undefined && typeof options.executor?.exec !== 'function') {
    throw bad('executor must have an exec() method', 'executor');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw bad('signal must be an AbortSignal', 'signal');
  }
  return {
    source,
    cacheDir,
    slugPath: pathOption('slugPath', options.slugPath),
    env,
    buildpacks,
    stack: stringOption('stack', options.stack) ?? 'heroku-24',
    requestId: stringOption('requestId', options.requestId) ?? randomUUID(),
    path: stringOption('path', options.path) ?? DEFAULT_PATH,
    workDir: pathOption('workDir', options.workDir) ?? tmpdir(),
    maxOutputBytes,
  };
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}

/** The app's own choice of buildpacks: `BUILDPACK_URL`, else its `.buildpacks` file. */
async function selectedBuildpacks(
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

async function runRelease(
  ctx: StepContext,
  spec: string,
  root: string,
  buildDir: string,
  exports: readonly string[],
): Promise<ReleaseInfo> {
  const script = join(root, 'bin', 'release');
  if ((await stat(script).catch(() => undefined))?.isFile() !== true) {
    return { defaultProcessTypes: {}, addons: [], configVars: {} };
  }
  const res = await runStep(ctx, script, [buildDir], {
    exports,
    captureStdout: MAX_RELEASE_BYTES + 1,
    buildpack: spec,
  });
  if (res.code !== 0) {
    const how = res.code === null ? `was killed by ${res.signal}` : `exited with ${res.code}`;
    throw new BuildpackError(BuildpackErrorCodes.RELEASE_INVALID, `bin/release of ${spec} ${how}`, {
      buildpack: spec,
      output: ctx.log.text(),
      exitCode: res.code,
      signal: res.signal,
    });
  }
  if (Buffer.byteLength(res.stdout) > MAX_RELEASE_BYTES) {
    throw new BuildpackError(
      BuildpackErrorCodes.RELEASE_INVALID,
      `bin/release of ${spec} printed more than ${MAX_RELEASE_BYTES} bytes`,
      { buildpack: spec, output: ctx.log.text() },
    );
  }
  return parseRelease(res.stdout, spec, () => ctx.log.text());
}

async function processTypesOf(
  buildDir: string,
  release: ReleaseInfo,
  log: OutputLog,
): Promise<Record<string, string>> {
  log.step('Discovering process types');
  const types: Record<string, string> = { ...release.defaultProcessTypes };
  const text = await readFile(join(buildDir, 'Procfile'), 'utf8').catch(() => undefined);
  if (text !== undefined) {
    const procfile = parseProcfile(text);
    for (const w of procfile.warnings) log.warn(`Procfile line ${w.line}: ${w.message}`);
    const declared: string[] = [];
    for (const entry of procfile.entries) {
      types[entry.name] = entry.command;
      declared.push(entry.name);
    }
    log.detail(
      `Procfile declares types -> ${declared.length === 0 ? '(none)' : declared.join(', ')}`,
    );
  }
  const defaults = Object.keys(release.defaultProcessTypes);
  if (defaults.length > 0) log.detail(`Default types for buildpack -> ${defaults.join(', ')}`);
  if (Object.keys(types).length === 0) {
    log.warn('No process types: add a Procfile naming the command of each (web: node server.js)');
  }
  return types;
}

/** The commit checked out in `source`, when it is a git work tree. */
async function gitHead(source: string): Promise<string | undefined> {
  if ((await stat(join(source, '.git')).catch(() => undefined)) === undefined) return undefined;
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-C', source, 'rev-parse', '--verify', '--quiet', 'HEAD'],
      { timeout: 10_000 },
      (err, stdout) => resolve(err ? undefined : stdout.trim() || undefined),
    );
  });
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)}K`;
  return `${(bytes / 1024 ** 2).toFixed(1)}M`;
}
