import { FlotillaError } from '@flotilla/core';

/**
 * Every code a {@link ProcfileError} can carry. The README documents each; codes are never
 * reused for another meaning.
 */
export const ProcfileErrorCodes = {
  /** The input is neither a string nor UTF-8 bytes. */
  INPUT: 'FLOTILLA_PROCFILE_INPUT',
  /**
   * An argument other than the input is of the wrong kind: options that are not an options
   * object, or what is given to a stringifier is neither entries nor a plain record.
   */
  INVALID_ARGUMENT: 'FLOTILLA_PROCFILE_INVALID_ARGUMENT',
  /** The input bytes are not valid UTF-8. */
  ENCODING: 'FLOTILLA_PROCFILE_ENCODING',
  /** Strict mode: a line that is not blank, not a comment and does not define a process. */
  SYNTAX: 'FLOTILLA_PROCFILE_SYNTAX',
  /** Strict mode: a process name defined twice. */
  DUPLICATE: 'FLOTILLA_PROCFILE_DUPLICATE',
  /** Strict mode: the Procfile defines no process at all. */
  EMPTY: 'FLOTILLA_PROCFILE_EMPTY',
  /** `stringifyProcfile`: a name that a Procfile cannot hold. */
  INVALID_NAME: 'FLOTILLA_PROCFILE_INVALID_NAME',
  /** `stringifyProcfile`: a command that would not parse back unchanged. */
  INVALID_COMMAND: 'FLOTILLA_PROCFILE_INVALID_COMMAND',
  /** Strict `parseDotenv`: a line that does not assign a variable. */
  DOTENV_SYNTAX: 'FLOTILLA_PROCFILE_DOTENV_SYNTAX',
  /** `stringifyDotenv`: a key that a `.env` file cannot hold. */
  DOTENV_INVALID_KEY: 'FLOTILLA_PROCFILE_DOTENV_INVALID_KEY',
  /** `stringifyDotenv`: a value no quoting style can carry unchanged. */
  DOTENV_INVALID_VALUE: 'FLOTILLA_PROCFILE_DOTENV_INVALID_VALUE',
} as const;

/** The union of {@link ProcfileErrorCodes} values. */
export type ProcfileErrorCode = (typeof ProcfileErrorCodes)[keyof typeof ProcfileErrorCodes];

/** Where in the input an error was found, when it concerns a line. */
export interface ProcfileErrorDetails {
  /** 1-based line number in the input. */
  readonly line?: number;
  /** 1-based column of the offending character. */
  readonly column?: number;
  /** The process name concerned. */
  readonly processName?: string;
  /** The `.env` key concerned. */
  readonly key?: string;
  /** For syntax errors: the warning code that describes the line (`'space-before-colon'`...). */
  readonly reason?: string;
  readonly cause?: unknown;
}

/**
 * The error thrown by `@flotilla/procfile`. Match on {@link ProcfileError.code}.
 *
 * @example
 * ```ts
 * try {
 *   parseProcfile('web : node server.js\n', { strict: true });
 * } catch (err) {
 *   if (err instanceof ProcfileError) console.error(err.code, err.line, err.column);
 * }
 * ```
 */
export class ProcfileError extends FlotillaError<ProcfileErrorCode> {
  /** 1-based line of the problem, when it concerns one line. */
  readonly line: number | undefined;
  /** 1-based column of the problem, when known. */
  readonly column: number | undefined;
  /** The process name concerned, when there is one. */
  readonly processName: string | undefined;
  /** The `.env` key concerned, when there is one. */
  readonly key: string | undefined;
  /** For syntax errors, the warning code that describes the line. */
  readonly reason: string | undefined;

  constructor(code: ProcfileErrorCode, message: string, details: ProcfileErrorDetails = {}) {
    super(code, message, { cause: details.cause });
    this.line = details.line;
    this.column = details.column;
    this.processName = details.processName;
    this.key = details.key;
    this.reason = details.reason;
  }
}
