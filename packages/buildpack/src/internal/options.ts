// Checking build()'s options: every one of the wrong kind is refused before anything is done.
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { BuildOptions } from '../build.js';
import { BUNDLED_BUILDPACKS } from '../bundled.js';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { parseBuildpackSpec } from './fetch.js';
import { isEnvName } from './shell.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;
/** The longest delay a Node.js timer keeps: a longer one fires at once, or throws RangeError. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Whether `value` is a timeout a timer keeps: a positive number of ms, at most 2³¹−1. */
export function isTimeoutMs(value: unknown): value is number {
  return typeof value === 'number' && value > 0 && value <= MAX_TIMEOUT_MS;
}

/** What to fix in a timeoutMs that {@link isTimeoutMs} refuses. */
export const TIMEOUT_MS_RULE = `timeoutMs must be a positive number of milliseconds, at most ${MAX_TIMEOUT_MS} (about 24 days)`;

/** build()'s options, checked, with their defaults. */
export interface CheckedOptions {
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
  readonly appLocalBuildpacks: boolean;
  readonly sourceVersion: string | undefined;
}

export function checkOptions(options: BuildOptions): CheckedOptions {
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
  if (options.timeoutMs !== undefined && !isTimeoutMs(options.timeoutMs)) {
    throw bad(TIMEOUT_MS_RULE, 'timeoutMs');
  }
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes <= 0) {
    throw bad('maxOutputBytes must be a positive integer', 'maxOutputBytes');
  }
  if (options.executor !== undefined && typeof options.executor?.exec !== 'function') {
    throw bad('executor must have an exec() method', 'executor');
  }
  if (options.appLocalBuildpacks !== undefined && typeof options.appLocalBuildpacks !== 'boolean') {
    throw bad('appLocalBuildpacks must be a boolean', 'appLocalBuildpacks');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw bad('signal must be an AbortSignal', 'signal');
  }
  const workDir = pathOption('workDir', options.workDir) ?? tmpdir();
  if (inside(workDir, source)) {
    // The source is copied into workDir: inside the source, the copy would copy itself.
    throw bad(`workDir ${workDir} is inside source ${source}; keep it outside the app`, 'workDir');
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
    sourceVersion: stringOption('sourceVersion', options.sourceVersion),
    workDir,
    maxOutputBytes,
    appLocalBuildpacks: options.appLocalBuildpacks ?? true,
  };
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  // `..cache` is a child named `..cache`, not a way out: only `..` itself or `../` leaves `dir`.
  return rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
