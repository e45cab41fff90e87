import Database from 'better-sqlite3';
import { SqliteError, SqliteErrorCodes } from '../errors.js';
import { lockOwner } from './lock-owner.js';

/**
 * The lock on a store's PATH, held in the file `<path>.lock` beside it.
 *
 * The database's own lock (`locking_mode = EXCLUSIVE`) is an fcntl lock on the file's inode:
 * once another file is renamed over the path, the path names a file nobody holds, and a second
 * opener would succeed while the first one's pages still sit in `<path>-wal`, which SQLite
 * replays onto whatever file the path names. The lock file is not replaced by a restore, so
 * its lock follows the path: every store takes it before it opens the database, and holds it
 * until it has closed the database (or given up its `-wal` after a replacement).
 *
 * It is an empty SQLite database (one 4 KiB page, written once when created) locked with
 * `locking_mode = EXCLUSIVE` and `BEGIN EXCLUSIVE`: an fcntl lock, as the database's, so it is
 * released by the OS when the holder dies, and SQLite keeps two stores of one process apart
 * as it does for the database. Nothing is written to it after it exists.
 */
export class PathLock {
  /** The lock file: `<path>.lock`. */
  readonly file: string;
  #db: Database.Database | undefined;

  /**
   * Takes the lock of `path`, at once or not at all.
   *
   * @throws {@link SqliteError} `FLOTILLA_SQLITE_LOCKED` when another store holds it,
   *   `FLOTILLA_SQLITE_OPEN` when the lock file cannot be created or is not a lock file.
   */
  static acquire(path: string): PathLock {
    const file = `${path}.lock`;
    let db: Database.Database;
    try {
      // No busy wait: the lock is held for the holder's lifetime, waiting would only stall.
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw lockFileError(path, file, err);
    }
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      // No -journal file beside it: there is nothing to roll back.
      db.pragma('journal_mode = MEMORY');
      // In EXCLUSIVE locking mode the lock a write transaction takes is kept until close.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (err) {
      db.close();
      throw lockFileError(path, file, err);
    }
    return new PathLock(file, db);
  }

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.#db = db;
  }

  /** Releases the lock (the file stays, for the next store). Idempotent. */
  release(): void {
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }
}

/**
 * The error for a path another `SqliteStore` holds: `lockFile` is the file whose lock was
 * refused, searched in `/proc/locks` for the holder's pid.
 */
export function lockedError(path: string, lockFile: string, cause: unknown): SqliteError {
  const pid = lockOwner(lockFile);
  const who =
    pid === undefined
      ? 'another process'
      : pid === process.pid
        ? `this process (pid ${pid}), by another SqliteStore`
        : `another process (pid ${pid})`;
  return new SqliteError(
    SqliteErrorCodes.LOCKED,
    `${path} is open in ${who}: a store file has one owner at a time; stop that process or close that store, or use another path`,
    { path, ...(pid === undefined ? {} : { pid }), cause },
  );
}

function lockFileError(path: string, file: string, err: unknown): SqliteError {
  const code =
    typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return lockedError(path, file, err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'))) {
    return new SqliteError(
      SqliteErrorCodes.OPEN,
      `${file}, the lock file of ${path}, is not an SQLite lock file (${message}): something else wrote it; check that no process has ${path} open, then delete ${file}`,
      { path, cause: err },
    );
  }
  return new SqliteError(
    SqliteErrorCodes.OPEN,
    `cannot open ${file}, the lock file of ${path}: ${message}${typeof code === 'string' ? ` (${code})` : ''}: check that the directory exists and is writable`,
    { path, cause: err },
  );
}
