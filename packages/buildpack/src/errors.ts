import { FlotillaError } from '@flotilla/core';

/**
 * Every code a {@link BuildpackError} can carry. The README documents each; codes are never
 * reused for another meaning. An aborted build does not use a code of its own: it rejects with
 * the signal's `reason`, as every other Flotilla call does.
 */
export const BuildpackErrorCodes = {
  /** Options of the wrong kind: a relative or empty path, a negative timeout, a bad env name or value. */
  INVALID_OPTIONS: 'FLOTILLA_BUILDPACK_INVALID_OPTIONS',
  /** The source is not a readable directory, or holds a device, FIFO or socket. */
  INVALID_SOURCE: 'FLOTILLA_BUILDPACK_INVALID_SOURCE',
  /** No buildpack's `bin/detect` accepted the app (or a selected one refused it). */
  NOT_DETECTED: 'FLOTILLA_BUILDPACK_NOT_DETECTED',
  /** A buildpack could not be fetched: git clone failed, download failed, bad archive, missing path. */
  FETCH_FAILED: 'FLOTILLA_BUILDPACK_FETCH_FAILED',
  /** A fetched buildpack has no executable `bin/detect` or `bin/compile`. */
  INVALID_BUILDPACK: 'FLOTILLA_BUILDPACK_INVALID_BUILDPACK',
  /** `bin/compile` exited with a non-zero status or was killed by a signal. */
  COMPILE_FAILED: 'FLOTILLA_BUILDPACK_COMPILE_FAILED',
  /** `bin/release` failed, or printed something that is not the YAML the buildpack API defines. */
  RELEASE_INVALID: 'FLOTILLA_BUILDPACK_RELEASE_INVALID',
  /** The build ran longer than `timeoutMs`; everything it started was killed. */
  TIMEOUT: 'FLOTILLA_BUILDPACK_TIMEOUT',
  /** The executor could not run a step at all (program missing, executor closed or broken). */
  EXEC_FAILED: 'FLOTILLA_BUILDPACK_EXEC_FAILED',
  /** The built tree cannot be a slug: a symlink leading outside it, a FIFO or device in it. */
  SLUG_REFUSED: 'FLOTILLA_BUILDPACK_SLUG_REFUSED',
  /** Another build is using the same cache directory. */
  CACHE_LOCKED: 'FLOTILLA_BUILDPACK_CACHE_LOCKED',
} as const;

/** The union of {@link BuildpackErrorCodes} values. */
export type BuildpackErrorCode = (typeof BuildpackErrorCodes)[keyof typeof BuildpackErrorCodes];

/** What a {@link BuildpackError} concerns, beyond its code. */
export interface BuildpackErrorDetails {
  /** The buildpack concerned (its URL or bundled name), when there is one. */
  readonly buildpack?: string;
  /** The build's output up to the failure. */
  readonly output?: string;
  /** Exit status of the failed step, when it exited. */
  readonly exitCode?: number | null;
  /** Signal that killed the failed step, when one did. */
  readonly signal?: string | null;
  /** The option, file or path concerned. */
  readonly path?: string;
  readonly cause?: unknown;
  readonly retryable?: boolean;
}

/**
 * The error thrown by `@flotilla/buildpack`. Match on {@link BuildpackError.code}; a failed
 * build's output is in {@link BuildpackError.output}.
 *
 * @example
 * ```ts
 * try {
 *   await build({ source: '/srv/src/demo', cacheDir: '/var/cache/demo' });
 * } catch (err) {
 *   if (err instanceof BuildpackError && err.code === 'FLOTILLA_BUILDPACK_COMPILE_FAILED') {
 *     console.error(err.output, 'exit', err.exitCode);
 *   } else throw err;
 * }
 * ```
 */
export class BuildpackError extends FlotillaError<BuildpackErrorCode> {
  /** The buildpack concerned, when there is one. */
  readonly buildpack: string | undefined;
  /** The build's output up to the failure ('' when none was produced). */
  readonly output: string;
  /** Exit status of the failed step, when it exited with one. */
  readonly exitCode: number | null | undefined;
  /** Signal that killed the failed step, when one did. */
  readonly signal: string | null | undefined;
  /** The option, file or path concerned, when there is one. */
  readonly path: string | undefined;

  constructor(code: BuildpackErrorCode, message: string, details: BuildpackErrorDetails = {}) {
    super(code, message, { cause: details.cause, retryable: details.retryable ?? false });
    this.buildpack = details.buildpack;
    this.output = details.output ?? '';
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.path = details.path;
  }
}
