import { FlotillaError } from '@flotilla/core';

/**
 * The codes of errors specific to `SqliteStore`: opening the database file, and losing it
 * while open. Errors of the `Store` operations themselves carry the `StoreErrorCodes` of
 * `@flotilla/store`, as on every backend.
 */
export const SqliteErrorCodes = {
  /**
   * The database file is held by another `SqliteStore`, in another process or in this one.
   * Retryable: it opens once the holder closes it or exits.
   */
  LOCKED: 'FLOTILLA_SQLITE_LOCKED',
  /** The path cannot be opened as a database, or the file is not a (sound) Flotilla store. */
  OPEN: 'FLOTILLA_SQLITE_OPEN',
  /** The file was written by a newer `@flotilla/sqlite` whose schema this one cannot read. */
  SCHEMA: 'FLOTILLA_SQLITE_SCHEMA',
  /**
   * The database file was deleted, or another file was renamed over its path, while the store
   * had it open. Every call of that store fails with it from then on, so that no write is
   * acknowledged into a file nobody will open again. Not retryable: close the store and open
   * the path again.
   */
  REPLACED: 'FLOTILLA_SQLITE_REPLACED',
} as const;

/** The union of {@link SqliteErrorCodes} values. */
export type SqliteErrorCode = (typeof SqliteErrorCodes)[keyof typeof SqliteErrorCodes];

/** Typed fields of a {@link SqliteError}. */
export interface SqliteErrorDetails {
  /** The database path concerned. */
  readonly path: string;
  /** For `FLOTILLA_SQLITE_LOCKED`: the process that holds the file, when it can be found. */
  readonly pid?: number;
  /** For `FLOTILLA_SQLITE_SCHEMA`: the schema version found in the file. */
  readonly schemaVersion?: number;
  /** Overrides the default: true for `FLOTILLA_SQLITE_LOCKED`, false otherwise. */
  readonly retryable?: boolean;
  /** The underlying error (better-sqlite3's, usually). */
  readonly cause?: unknown;
}

/**
 * An error opening a `SqliteStore`'s database, or (`FLOTILLA_SQLITE_REPLACED`) of any call
 * once its file was deleted or replaced. Match on {@link SqliteError.code}.
 *
 * @example
 * ```ts
 * try {
 *   store = new SqliteStore({ path: '.flotilla/state.db' });
 * } catch (err) {
 *   if (isFlotillaError(err, SqliteErrorCodes.LOCKED)) console.error(err.message);
 *   else throw err;
 * }
 * ```
 */
export class SqliteError extends FlotillaError<SqliteErrorCode> {
  /** The database path concerned. */
  readonly path: string;
  /** For `FLOTILLA_SQLITE_LOCKED`: the pid of the process holding the file, if known. */
  readonly pid: number | undefined;
  /** For `FLOTILLA_SQLITE_SCHEMA`: the schema version found in the file. */
  readonly schemaVersion: number | undefined;

  constructor(code: SqliteErrorCode, message: string, details: SqliteErrorDetails) {
    super(code, message, {
      cause: details.cause,
      retryable: details.retryable ?? code === SqliteErrorCodes.LOCKED,
    });
    this.path = details.path;
    this.pid = details.pid;
    this.schemaVersion = details.schemaVersion;
  }
}
