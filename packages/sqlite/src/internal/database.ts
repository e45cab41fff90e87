import Database from 'better-sqlite3';
import { SqliteError, SqliteErrorCodes } from '../errors.js';
import { lockedError } from './path-lock.js';

/** The schema this version writes, in `PRAGMA user_version`; raise it with each migration. */
export const SCHEMA_VERSION = 1;

/** `PRAGMA application_id` of a Flotilla store: "Flot" in ASCII. */
export const APPLICATION_ID = 0x466c6f74;

/**
 * Schema 1. Keys are BLOBs of their UTF-8 bytes: SQLite compares BLOBs with memcmp, which is
 * etcd's key order, and a prefix becomes the index range `[prefix, prefix with its last byte
 * + 1)`. Every history row is one change event; the events of one revision keep their order
 * by `id`.
 */
const SCHEMA_1 = `
CREATE TABLE meta (
  name TEXT NOT NULL PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 1), ('compact_revision', 1), ('next_lease', 1);
CREATE TABLE kv (
  id INTEGER PRIMARY KEY,
  key BLOB NOT NULL UNIQUE,
  value TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER
);
CREATE INDEX kv_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  revision INTEGER NOT NULL,
  type INTEGER NOT NULL,
  key BLOB NOT NULL,
  value TEXT NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER
);
CREATE INDEX history_revision ON history (revision);
CREATE TABLE leases (
  id INTEGER PRIMARY KEY,
  ttl_ms REAL NOT NULL
);
`;

/** Options of {@link openDatabase}. */
export interface OpenOptions {
  readonly path: string;
  readonly synchronous: 'full' | 'normal';
}

/**
 * Opens the database file, takes its lock for as long as the connection lives, and creates or
 * checks the schema. Throws a {@link SqliteError} with a message that says what to do.
 */
export function openDatabase(options: OpenOptions): Database.Database {
  const { path } = options;
  let db: Database.Database;
  try {
    // No busy wait: the lock is held for the holder's lifetime, waiting would only stall.
    db = new Database(path, { timeout: 0 });
  } catch (err) {
    throw openError(path, err);
  }
  try {
    // EXCLUSIVE before WAL: the WAL index then lives in heap memory (no -shm file) and the
    // first read takes a file lock that is held until close, so no other process can open
    // the file and run its own leases and revisions on it.
    db.pragma('locking_mode = EXCLUSIVE');
    // Check before switching to WAL, which would change a file that is not ours.
    inspect(db, path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.transaction(() => migrate(db, path)).immediate();
    return db;
  } catch (err) {
    db.close();
    if (err instanceof SqliteError) throw err;
    throw openError(path, err);
  }
}

function migrate(db: Database.Database, path: string): void {
  if (inspect(db, path) === 'empty') {
    db.exec(SCHEMA_1);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }
  // Later schema versions migrate here, one step at a time, inside this transaction.
}

/** Tells an empty database from a Flotilla store; throws for anything else. */
function inspect(db: Database.Database, path: string): 'empty' | 'flotilla' {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (appId === 0 && version === 0) {
    const tables = db
      .prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'")
      .get();
    if ((tables?.n ?? 0) > 0) {
      throw new SqliteError(
        SqliteErrorCodes.OPEN,
        `${path} is an SQLite database of another application, not a Flotilla store: choose another path`,
        { path },
      );
    }
    return 'empty';
  }
  if (appId !== APPLICATION_ID) {
    throw new SqliteError(
      SqliteErrorCodes.OPEN,
      `${path} is an SQLite database of another application (application_id ${appId}), not a Flotilla store: choose another path`,
      { path },
    );
  }
  if (version < 1) {
    throw new SqliteError(
      SqliteErrorCodes.OPEN,
      `${path} is a damaged Flotilla store (schema version ${version}): restore it from a backup or choose another path`,
      { path, schemaVersion: version },
    );
  }
  if (version > SCHEMA_VERSION) {
    throw new SqliteError(
      SqliteErrorCodes.SCHEMA,
      `${path} has schema version ${version}, written by a newer @flotilla/sqlite (this one reads up to ${SCHEMA_VERSION}): upgrade @flotilla/sqlite`,
      { path, schemaVersion: version },
    );
  }
  return 'flotilla';
}

function openError(path: string, err: unknown): SqliteError {
  const code =
    typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  // The path lock (`<path>.lock`) was taken first, so the holder is one that does not take
  // it (an older @flotilla/sqlite), or holds a file that was renamed away and back.
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return lockedError(path, path, err);
  if (code === 'SQLITE_NOTADB') {
    return new SqliteError(
      SqliteErrorCodes.OPEN,
      `${path} is not an SQLite database (${message}), or is one damaged beyond recognition (cut short or overwritten): if it held a Flotilla store, restore it from a backup; otherwise choose another path`,
      { path, cause: err },
    );
  }
  if (isDamage(code)) {
    return new SqliteError(
      SqliteErrorCodes.OPEN,
      `${path} is a damaged SQLite database (${message}), cut short or overwritten (by a full disk or an interrupted copy, say): restore it from a backup, or move it and its -wal file aside to start an empty store`,
      { path, cause: err },
    );
  }
  if (
    code === 'SQLITE_CANTOPEN' ||
    (typeof code === 'string' && code.startsWith('SQLITE_READONLY'))
  ) {
    return new SqliteError(
      SqliteErrorCodes.OPEN,
      `cannot open ${path} as a Flotilla store: ${message}: check that its directory exists and is writable`,
      { path, cause: err },
    );
  }
  return new SqliteError(
    SqliteErrorCodes.OPEN,
    `cannot open ${path} as a Flotilla store: ${message}${typeof code === 'string' ? ` (${code})` : ''}`,
    { path, cause: err },
  );
}

/**
 * Whether an SQLite error code says the file's content is damaged (`SQLITE_CORRUPT` and its
 * extended codes, `SQLITE_NOTADB`): retrying cannot help, restoring a backup can.
 */
export function isDamage(code: unknown): boolean {
  return (
    typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')
  );
}
