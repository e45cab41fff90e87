import type Database from 'better-sqlite3';

/** A row of `kv`. */
export interface KvRow {
  readonly key: Buffer;
  readonly value: string;
  readonly create_revision: number;
  readonly mod_revision: number;
  readonly version: number;
  readonly lease: number | null;
}

/** A row of `history`: one change event. `type` is 0 for a put, 1 for a delete. */
export interface HistoryRow {
  readonly revision: number;
  readonly type: 0 | 1;
  readonly key: Buffer;
  readonly value: string;
  readonly create_revision: number;
  readonly version: number;
  readonly lease: number | null;
}

/** A row of `leases`. */
export interface LeaseRow {
  readonly id: number;
  readonly ttl_ms: number;
}

/** The names of the integers kept in `meta`. */
export type MetaName = 'revision' | 'compact_revision' | 'next_lease';

type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

const KV_COLUMNS = 'key, value, create_revision, mod_revision, version, lease';
const HISTORY_COLUMNS = 'revision, type, key, value, create_revision, version, lease';

/** Every statement the store runs, prepared once: no operation scans more than it returns. */
export interface Statements {
  readonly getKv: Stmt<[key: Buffer], KvRow>;
  /** Keys in `[low, high)`, in key order, at most `limit` (-1: no limit). */
  readonly listFrom: Stmt<[low: Buffer, high: Buffer, limit: number], KvRow>;
  /** Keys in `(after, high)`, in key order, at most `limit` (-1: no limit). */
  readonly listAfter: Stmt<[after: Buffer, high: Buffer, limit: number], KvRow>;
  readonly keysInRange: Stmt<[low: Buffer, high: Buffer], Buffer>;
  readonly keysOfLease: Stmt<[lease: number], Buffer>;
  /** Creates or updates a key; returns the key's create revision and new version. */
  readonly upsert: Stmt<
    [key: Buffer, value: string, revision: number, sameRevision: number, lease: number | null],
    { create_revision: number; version: number }
  >;
  readonly deleteKey: Stmt<[key: Buffer]>;
  readonly deleteRange: Stmt<[low: Buffer, high: Buffer]>;
  readonly deleteByLease: Stmt<[lease: number]>;
  readonly insertHistory: Stmt<
    [
      revision: number,
      type: 0 | 1,
      key: Buffer,
      value: string,
      createRevision: number,
      version: number,
      lease: number | null,
    ]
  >;
  readonly historyFrom: Stmt<[revision: number], HistoryRow>;
  readonly historyFromInRange: Stmt<[revision: number, low: Buffer, high: Buffer], HistoryRow>;
  readonly historyCount: Stmt<[], number>;
  /** The revision of the history row at an offset from the oldest one. */
  readonly historyRevisionAt: Stmt<[offset: number], number>;
  readonly deleteHistoryBefore: Stmt<[revision: number]>;
  readonly getMeta: Stmt<[], { name: MetaName; value: number }>;
  readonly setMeta: Stmt<[value: number, name: MetaName]>;
  readonly allLeases: Stmt<[], LeaseRow>;
  readonly insertLease: Stmt<[id: number, ttlMs: number]>;
  readonly deleteLease: Stmt<[id: number]>;
}

/** Prepares {@link Statements} on an open database with the current schema. */
export function prepareStatements(db: Database.Database): Statements {
  const p = <P extends unknown[], R = unknown>(sql: string): Stmt<P, R> =>
    db.prepare<P, R>(sql) as Stmt<P, R>;
  return {
    getKv: p(`SELECT ${KV_COLUMNS} FROM kv WHERE key = ?`),
    listFrom: p(`SELECT ${KV_COLUMNS} FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`),
    listAfter: p(`SELECT ${KV_COLUMNS} FROM kv WHERE key > ? AND key < ? ORDER BY key LIMIT ?`),
    keysInRange: p<[Buffer, Buffer], Buffer>(
      'SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key',
    ).pluck(),
    keysOfLease: p<[number], Buffer>('SELECT key FROM kv WHERE lease = ? ORDER BY key').pluck(),
    upsert: p(
      `INSERT INTO kv (key, value, create_revision, mod_revision, version, lease)
       VALUES (?, ?, ?, ?, 1, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision,
         version = kv.version + 1, lease = excluded.lease
       RETURNING create_revision, version`,
    ),
    deleteKey: p('DELETE FROM kv WHERE key = ?'),
    deleteRange: p('DELETE FROM kv WHERE key >= ? AND key < ?'),
    deleteByLease: p('DELETE FROM kv WHERE lease = ?'),
    insertHistory: p(`INSERT INTO history (${HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`),
    historyFrom: p(
      `SELECT ${HISTORY_COLUMNS} FROM history WHERE revision >= ? ORDER BY revision, id`,
    ),
    historyFromInRange: p(
      `SELECT ${HISTORY_COLUMNS} FROM history WHERE revision >= ? AND key >= ? AND key < ?
       ORDER BY revision, id`,
    ),
    historyCount: p<[], number>('SELECT count(*) FROM history').pluck(),
    historyRevisionAt: p<[number], number>(
      'SELECT revision FROM history ORDER BY id LIMIT 1 OFFSET ?',
    ).pluck(),
    deleteHistoryBefore: p('DELETE FROM history WHERE revision < ?'),
    getMeta: p('SELECT name, value FROM meta'),
    setMeta: p('UPDATE meta SET value = ? WHERE name = ?'),
    allLeases: p('SELECT id, ttl_ms FROM leases ORDER BY id'),
    insertLease: p('INSERT INTO leases (id, ttl_ms) VALUES (?, ?)'),
    deleteLease: p('DELETE FROM leases WHERE id = ?'),
  };
}
