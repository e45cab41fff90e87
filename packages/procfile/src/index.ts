/**
 * Foreman-compatible Procfile and `.env` parsing, validation and stringifying.
 *
 * @packageDocumentation
 */
export { parseProcfile, stringifyProcfile } from './procfile.js';
export type {
  ParseProcfileOptions,
  Procfile,
  ProcfileEntry,
  ProcfileWarning,
  ProcfileWarningCode,
} from './procfile.js';
export { parseDotenv, stringifyDotenv } from './dotenv.js';
export type { Dotenv, DotenvEntry, DotenvWarning, ParseDotenvOptions } from './dotenv.js';
export { ProcfileError, ProcfileErrorCodes } from './errors.js';
export type { ProcfileErrorCode, ProcfileErrorDetails } from './errors.js';
