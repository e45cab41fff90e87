/**
 * The brand every Flotilla error carries. `Symbol.for` makes it shared across copies of this
 * package, so {@link isFlotillaError} recognises an error thrown by another installed copy
 * (where `instanceof` would fail).
 */
const BRAND = Symbol.for('flotilla.error');

/** Options accepted by {@link FlotillaError}. */
export interface FlotillaErrorOptions {
  /** The underlying error, if this one wraps another (an engine failure, a parse error). */
  readonly cause?: unknown;
  /**
   * Whether the same call may succeed if tried again unchanged: true for engine failures
   * (etcd unreachable, Docker busy), false for bad input. Defaults to false.
   */
  readonly retryable?: boolean;
}

/**
 * The base of every error a Flotilla package throws.
 *
 * Match on {@link FlotillaError.code}, never on the message: codes are stable, documented in
 * each package's README, and never reused for another meaning. Codes have the form
 * `FLOTILLA_<PACKAGE>_<WHAT>`, for example `FLOTILLA_PROCFILE_SYNTAX`.
 *
 * Packages subclass it to add typed fields (a line number, a key, an app name).
 *
 * @example
 * ```ts
 * import { isFlotillaError } from '@flotilla/core';
 * try {
 *   parseProcfile(text, { strict: true });
 * } catch (err) {
 *   if (isFlotillaError(err, 'FLOTILLA_PROCFILE_SYNTAX')) console.error(err.message);
 *   else throw err;
 * }
 * ```
 */
export class FlotillaError<Code extends string = string> extends Error {
  /** Stable, documented identifier of what went wrong: `FLOTILLA_<PACKAGE>_<WHAT>`. */
  readonly code: Code;
  /** Whether retrying the same call unchanged may succeed. */
  readonly retryable: boolean;

  constructor(code: Code, message: string, options: FlotillaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    Object.defineProperty(this, BRAND, { value: true });
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** A plain object for logs and API responses: name, code, message, retryable. */
  toJSON(): { name: string; code: Code; message: string; retryable: boolean } {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable };
  }
}

/**
 * Tells whether `err` is a Flotilla error, optionally with the given code. Works across
 * duplicate installs of `@flotilla/core`, unlike `instanceof`.
 *
 * @example
 * ```ts
 * if (isFlotillaError(err) && err.retryable) await retryLater();
 * ```
 */
export function isFlotillaError<Code extends string = string>(
  err: unknown,
  code?: Code,
): err is FlotillaError<Code> {
  if (typeof err !== 'object' || err === null) return false;
  if (!(BRAND in err)) return false;
  return code === undefined || (err as { code?: unknown }).code === code;
}
