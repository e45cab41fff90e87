/**
 * `SqliteStore`: the durable embedded single-node Flotilla `Store`, on SQLite
 * (better-sqlite3). It passes the same contract suite as `MemoryStore` and `EtcdStore`.
 *
 * @packageDocumentation
 */
export { SqliteStore } from './sqlite-store.js';
export type { SqliteStoreOptions } from './sqlite-store.js';
export { SqliteError, SqliteErrorCodes } from './errors.js';
export type { SqliteErrorCode, SqliteErrorDetails } from './errors.js';
