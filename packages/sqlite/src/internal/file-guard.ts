import { statSync } from 'node:fs';
import { resolve } from 'node:path';

/** Which file a path names: its device and inode. */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** What became of the database file's path. */
export type FileProblem = 'deleted' | 'replaced';

/** The identity of the file at `path`, or undefined when there is none. */
function identityOf(path: string): FileIdentity | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? undefined : { dev: st.dev, ino: st.ino };
  } catch (err) {
    // A directory of the path was replaced by a file, or removed: no file there either.
    if ((err as { code?: unknown }).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

const same = (a: FileIdentity | undefined, b: FileIdentity | undefined): boolean =>
  a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;

/**
 * Tells whether the path of an open database still names the file that was opened. SQLite
 * keeps writing to the file it opened, so after an unlink or a rename over the path, writes
 * would "succeed" into a file nobody will ever open again. One `stat` (about a microsecond).
 */
export class FileGuard {
  /** The absolute path: a relative one would name another file after `process.chdir`. */
  readonly path: string;
  readonly #db: FileIdentity;
  readonly #wal: FileIdentity | undefined;

  /**
   * Records the identity of `path` and of its `-wal` file, right after the database was
   * opened (and locked).
   *
   * @returns undefined when `path` names no file any more.
   */
  static open(path: string): FileGuard | undefined {
    const absolute = resolve(path);
    const db = identityOf(absolute);
    if (db === undefined) return undefined;
    return new FileGuard(absolute, db, identityOf(`${absolute}-wal`));
  }

  private constructor(path: string, db: FileIdentity, wal: FileIdentity | undefined) {
    this.path = path;
    this.#db = db;
    this.#wal = wal;
  }

  /** What became of the file, or undefined while the path still names it. */
  check(): FileProblem | undefined {
    const now = identityOf(this.path);
    if (now === undefined) return 'deleted';
    return same(now, this.#db) ? undefined : 'replaced';
  }

  /**
   * Whether `path-wal` is still the WAL file this connection opened. If it is, the connection
   * should give it up (leave WAL mode) before anyone opens the path: SQLite would replay its
   * pages onto the new file, and deletes `path-wal` by name when the connection closes.
   */
  ownsWal(): boolean {
    return same(identityOf(`${this.path}-wal`), this.#wal);
  }
}
