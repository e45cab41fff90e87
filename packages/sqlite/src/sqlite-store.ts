import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import {
  closedError,
  compactedError,
  evaluateCompare,
  EventQueue,
  PrefixWatch,
  LeaseKeeper,
  leaseNotFoundError,
  resolveLimits,
  StoreError,
  StoreErrorCodes,
  throwIfAborted,
  validateKey,
  validateList,
  validatePrefix,
  validateWatch,
  validatePut,
  validateRevision,
  validateTtl,
  validateTxn,
} from '@flotilla/store';
import type {
  CallOptions,
  DeleteResult,
  KeyValue,
  Lease,
  LeaseId,
  ListOptions,
  ListResult,
  PutOptions,
  PutResult,
  Store,
  StoreLimits,
  Txn,
  TxnOp,
  TxnOpResult,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from '@flotilla/store';
import Database from 'better-sqlite3';
import { SqliteError, SqliteErrorCodes } from './errors.js';
import { isDamage, openDatabase } from './internal/database.js';
import { FileGuard, type FileProblem } from './internal/file-guard.js';
import { keyBytes, keyString, prefixRange } from './internal/keys.js';
import { PathLock } from './internal/path-lock.js';
import {
  type HistoryRow,
  type KvRow,
  type MetaName,
  prepareStatements,
  type Statements,
} from './internal/statements.js';

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * The database file, created if absent (its directory must exist). Beside it the store keeps
   * `<path>.lock` (always; it holds the lock on the path) and SQLite a `-wal` file while the
   * store is open. `':memory:'` makes a store that is not durable, for tests.
   */
  readonly path: string;
  /** Drives lease TTLs; pass a `ManualClock` in tests to expire leases without sleeping. */
  readonly clock?: Clock;
  /**
   * How many change events to keep for watches that resume from a revision (default
   * 100,000). Older ones are compacted away, as etcd's auto-compaction does.
   */
  readonly historyLimit?: number;
  /**
   * `'full'` (default): a write is on disk, synced, when its promise resolves, and survives
   * a power loss. `'normal'`: faster; a write survives the process being killed, but the last
   * ones before a power loss or OS crash may be lost (never half of a transaction).
   */
  readonly synchronous?: 'full' | 'normal';
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
  /**
   * Override the limits (default: etcd's, `DEFAULT_LIMITS` of `@flotilla/store`); each a
   * positive integer, or the constructor throws `FLOTILLA_STORE_INVALID_ARGUMENT`.
   */
  readonly limits?: Partial<StoreLimits>;
}

interface SqliteLease {
  readonly ttlMs: number;
  timer: unknown;
  /** The handle given by `grant`; none for a lease left by a previous owner of the file. */
  readonly keeper: LeaseKeeper | undefined;
}

/** The writes of one SQLite transaction, applied to the store's state once it commits. */
interface Pending {
  readonly revision: number;
  readonly events: WatchEvent[];
}

/** How long to wait before retrying a lease expiry that failed (a full disk, say). */
const EXPIRY_RETRY_MS = 1000;
/** How often an idle store checks that its path still names its file (writes check first). */
const FILE_CHECK_MS = 1000;

/**
 * A durable `Store` in one SQLite file, for a single node: the embedded default of Flotilla.
 * Same semantics as `MemoryStore` (it passes the same contract suite), and every write is
 * on disk when its promise resolves.
 *
 * One store owns the path at a time: opening it elsewhere fails with
 * `FLOTILLA_SQLITE_LOCKED`. The lock is on the path (in the file `<path>.lock`), not only on
 * the database file, so it still holds when another file is renamed over the path. Watches and leases live in the owning process. Leases left in the
 * file by a previous owner get their full TTL again on open, as etcd does after a restart;
 * nobody can renew them, so their keys then vanish.
 *
 * If the file is deleted or another file is renamed over its path while the store is open,
 * the store notices before its next write (and within a second when idle) and stops: every
 * call fails with {@link SqliteErrorCodes.REPLACED}, watches fail with it, leases end with
 * `'closed'`, and the store gives up its `-wal` file and then the path's lock, so that whoever
 * opens the path next sees the file that is there. Until then, opening the path fails with
 * `FLOTILLA_SQLITE_LOCKED`.
 *
 * The constructor opens the file synchronously and throws a {@link SqliteError} when it
 * cannot.
 *
 * @example
 * ```ts
 * import { SqliteStore } from '@flotilla/sqlite';
 *
 * await using store = new SqliteStore({ path: '.flotilla/state.db' });
 * const { revision } = await store.put('apps/demo', JSON.stringify({ name: 'demo' }));
 * const res = await store.txn({
 *   compare: [{ key: 'apps/demo', target: 'modRevision', op: '==', value: revision }],
 *   success: [{ op: 'put', key: 'apps/demo', value: '{"name":"demo","v":2}' }],
 * });
 * res.succeeded; // true: nobody wrote in between
 * for await (const ev of store.watch('apps/', { fromRevision: revision })) console.log(ev);
 * ```
 */
export class SqliteStore implements Store {
  /** The limits this store enforces (etcd's unless overridden). */
  readonly limits: StoreLimits;
  /** The database file. */
  readonly path: string;
  #db: Database.Database;
  #s: Statements;
  #tx: <T>(fn: () => T) => T;
  #clock: Clock;
  #logger: Logger;
  #historyLimit: number;
  #revision: number;
  #compactRevision: number;
  #historyCount: number;
  #nextLease: number;
  #watchers = new Set<PrefixWatch>();
  #leases = new Map<LeaseId, SqliteLease>();
  #closed = false;
  /** The lock on the path, held until the database is closed; none for `':memory:'`. */
  #pathLock: PathLock | undefined;
  /** Checks that the path still names the open file; none for `':memory:'`. */
  #guard: FileGuard | undefined;
  #guardTimer: unknown;
  /** Set once the file was found deleted or replaced: every call fails with it. */
  #failure: SqliteError | undefined;

  /**
   * Opens (or creates) the store in `options.path`.
   *
   * @throws {@link SqliteError} `FLOTILLA_SQLITE_LOCKED` when another store holds the file,
   *   `FLOTILLA_SQLITE_OPEN` when the path cannot be opened, holds something else, or holds a
   *   damaged (cut short, overwritten) database,
   *   `FLOTILLA_SQLITE_SCHEMA` when a newer version wrote it.
   */
  constructor(options: SqliteStoreOptions) {
    const historyLimit = options.historyLimit ?? 100_000;
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        `historyLimit must be a positive integer, got ${String(historyLimit)}`,
      );
    }
    if (typeof options.path !== 'string' || options.path === '') {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        "path must be the database file's path (or ':memory:')",
      );
    }
    const synchronous = options.synchronous ?? 'full';
    if (synchronous !== 'full' && synchronous !== 'normal') {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        `synchronous must be 'full' or 'normal', got ${String(synchronous)}`,
      );
    }
    this.path = options.path;
    this.limits = resolveLimits(options.limits);
    this.#historyLimit = historyLimit;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    // The path's lock first: the database's own lock stays with its inode when another file
    // is renamed over the path, and SQLite would replay the holder's -wal onto that file.
    if (options.path !== ':memory:') this.#pathLock = PathLock.acquire(options.path);
    try {
      this.#db = openDatabase({ path: options.path, synchronous });
    } catch (err) {
      this.#pathLock?.release();
      throw err;
    }
    if (options.path !== ':memory:') {
      let guard: FileGuard | undefined;
      let cause: unknown;
      try {
        guard = FileGuard.open(options.path);
      } catch (err) {
        cause = err; // a stat the just-opened file refuses (EACCES on a directory, say)
      }
      if (guard === undefined) {
        this.#db.close();
        this.#pathLock?.release();
        throw new SqliteError(
          SqliteErrorCodes.OPEN,
          cause === undefined
            ? `${options.path} vanished while it was being opened: check what else deletes or moves it`
            : `${options.path} cannot be checked after opening (${(cause as Error).message}): check the permissions of its directory`,
          { path: options.path, ...(cause === undefined ? {} : { cause }) },
        );
      }
      this.#guard = guard;
    }
    try {
      this.#s = prepareStatements(this.#db);
      const tx = this.#db.transaction((fn: () => unknown) => fn());
      this.#tx = tx as <T>(fn: () => T) => T;
      const meta = new Map(this.#s.getMeta.all().map((m) => [m.name, m.value]));
      const read = (name: MetaName): number => {
        const value = meta.get(name);
        if (value === undefined) throw new Error(`its meta table has no ${name}`);
        return value;
      };
      this.#revision = read('revision');
      this.#compactRevision = read('compact_revision');
      this.#nextLease = read('next_lease');
      this.#historyCount = this.#s.historyCount.get() ?? 0;
      const leftover = this.#s.allLeases.all();
      for (const row of leftover) {
        const lease: SqliteLease = { ttlMs: row.ttl_ms, timer: undefined, keeper: undefined };
        this.#leases.set(String(row.id), lease);
        this.#arm(String(row.id), lease);
      }
      this.#logger.debug(
        { path: this.path, revision: this.#revision, leases: leftover.length },
        'sqlite store opened',
      );
      if (leftover.length > 0) {
        this.#logger.info(
          { path: this.path, leases: leftover.map((l) => String(l.id)) },
          'leases of the previous owner restart their TTL',
        );
      }
      this.#armGuard();
    } catch (err) {
      for (const lease of this.#leases.values()) this.#clock.clearTimeout(lease.timer);
      this.#clock.clearTimeout(this.#guardTimer);
      this.#db.close();
      this.#pathLock?.release();
      throw new SqliteError(
        SqliteErrorCodes.OPEN,
        `${this.path} is a damaged Flotilla store (${err instanceof Error ? err.message : String(err)}): restore it from a backup or choose another path`,
        { path: this.path, cause: err },
      );
    }
  }

  /** Reads one key; `undefined` when absent. */
  get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    return this.#run(options, () => {
      validateKey(key, 'key', this.limits);
      return this.#get(key);
    });
  }

  /** Reads the keys that start with `prefix` in UTF-8 byte order, one index range scan. */
  list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    return this.#run(options, () => {
      validateList(prefix, options, this.limits);
      const limit = options.limit ?? Infinity;
      const { after } = options;
      const [low, high] = prefixRange(prefix);
      const sqlLimit = limit === Infinity ? -1 : limit + 1;
      const afterBytes = after === undefined ? undefined : keyBytes(after);
      const rows =
        afterBytes !== undefined && Buffer.compare(afterBytes, low) >= 0
          ? this.#s.listAfter.all(afterBytes, high, sqlLimit)
          : this.#s.listFrom.all(low, high, sqlLimit);
      const more = rows.length > limit;
      if (more) rows.length = limit;
      return {
        kvs: rows.map((row) => toKv(keyString(row.key), row)),
        revision: this.#revision,
        more,
      };
    });
  }

  /** Writes a key; it is on disk when the promise resolves. */
  put(key: string, value: string, options: PutOptions = {}): Promise<PutResult> {
    return this.#run(options, () => {
      validatePut(key, value, options, this.limits);
      if (options.lease !== undefined) this.#requireLease(options.lease);
      this.#write((p) => this.#applyPut(key, value, options.lease, p));
      return { revision: this.#revision };
    });
  }

  /** Deletes a key; deleting an absent key writes nothing and keeps the revision. */
  delete(key: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#run(options, () => {
      validateKey(key, 'key', this.limits);
      const deleted = this.#write((p) => (this.#applyDelete(key, p) ? 1 : 0));
      return { revision: this.#revision, deleted };
    });
  }

  /** Deletes every key under `prefix` in one revision and one SQLite transaction. */
  deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#run(options, () => {
      validatePrefix(prefix, this.limits);
      const deleted = this.#write((p) => this.#applyDeletePrefix(prefix, p));
      return { revision: this.#revision, deleted };
    });
  }

  /** Runs a compare-and-set transaction as one SQLite transaction: all of it or nothing. */
  txn(txn: Txn, options?: CallOptions): Promise<TxnResult> {
    return this.#run(options, () => {
      validateTxn(txn, this.limits);
      const { succeeded, results } = this.#write((p) => {
        const ok = txn.compare.every((c) => evaluateCompare(this.#get(c.key), c));
        const ops: readonly TxnOp[] = ok ? txn.success : (txn.failure ?? []);
        for (const op of ops) {
          if (op.op === 'put' && op.lease !== undefined) this.#requireLease(op.lease);
        }
        const out: TxnOpResult[] = [];
        for (const op of ops) {
          switch (op.op) {
            case 'put':
              this.#applyPut(op.key, op.value, op.lease, p);
              out.push({ op: 'put' });
              break;
            case 'get':
              out.push({ op: 'get', kv: this.#get(op.key) });
              break;
            case 'delete':
              out.push({ op: 'delete', deleted: this.#applyDelete(op.key, p) ? 1 : 0 });
              break;
            case 'deletePrefix':
              out.push({ op: 'deletePrefix', deleted: this.#applyDeletePrefix(op.prefix, p) });
              break;
          }
        }
        return { succeeded: ok, results: out };
      });
      return { succeeded, revision: this.#revision, results };
    });
  }

  /**
   * Grants a lease, saved with its TTL. If this store closes or its process dies, the next
   * store to open the file gives the lease its full TTL again, then expires it.
   */
  grant(ttlMs: number, options?: CallOptions): Promise<Lease> {
    return this.#run(options, () => {
      validateTtl(ttlMs);
      const id = this.#nextLease;
      this.#writeTx(() => {
        this.#s.insertLease.run(id, ttlMs);
        this.#s.setMeta.run(id + 1, 'next_lease');
      });
      this.#nextLease = id + 1;
      const leaseId = String(id);
      const keeper = new LeaseKeeper(
        leaseId,
        ttlMs,
        {
          renew: (l, o) => this.#renew(l, o),
          revoke: (l, o) => this.#run(o, () => this.#revoke(l, 'revoked')),
        },
        { clock: this.#clock },
      );
      const lease: SqliteLease = { ttlMs, timer: undefined, keeper };
      this.#leases.set(leaseId, lease);
      this.#arm(leaseId, lease);
      return keeper;
    });
  }

  /**
   * Streams changes under `prefix`: from `fromRevision` out of the history table (also
   * across restarts), then live ones as they commit in this process.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    if (this.#closed) throw closedError();
    if (this.#failure !== undefined) throw this.#failure;
    validateWatch(prefix, options, this.limits);
    if (options.signal?.aborted === true) {
      // Not through the watcher below: its queue would end, and call back, before the
      // watcher exists.
      const ended = new EventQueue<WatchEvent>();
      ended.end();
      return ended;
    }
    const watcher: PrefixWatch = new PrefixWatch(
      prefix,
      options.fromRevision ?? this.#revision + 1,
      this.limits,
      options,
      () => this.#watchers.delete(watcher),
    );
    if (options.fromRevision !== undefined) {
      if (options.fromRevision < this.#compactRevision) {
        watcher.queue.fail(compactedError(options.fromRevision, this.#compactRevision));
        return watcher.queue;
      }
      try {
        const rows =
          prefix === ''
            ? this.#s.historyFrom.iterate(options.fromRevision)
            : this.#s.historyFromInRange.iterate(options.fromRevision, ...prefixRange(prefix));
        for (const row of rows) if (!watcher.skips(row.revision)) watcher.offer(toEvent(row));
      } catch (err) {
        watcher.queue.fail(this.#engineError(err));
        return watcher.queue;
      }
    }
    this.#watchers.add(watcher);
    return watcher.queue;
  }

  /** The current store revision (1 for a new store). */
  revision(options?: CallOptions): Promise<number> {
    return this.#run(options, () => this.#revision);
  }

  /** Drops history before `revision`, durably; older watches fail with `FLOTILLA_STORE_COMPACTED`. */
  compact(revision: number, options?: CallOptions): Promise<void> {
    return this.#run(options, () => {
      validateRevision(revision, 'compact revision');
      if (revision > this.#revision) {
        throw new StoreError(
          StoreErrorCodes.INVALID_ARGUMENT,
          `cannot compact to revision ${revision}: the store is at ${this.#revision}`,
        );
      }
      if (revision <= this.#compactRevision) return;
      const dropped = this.#writeTx(() => this.#compactTo(revision));
      this.#compactRevision = revision;
      this.#historyCount -= dropped;
    });
  }

  /**
   * Ends watches and lease handles and releases the file. Leases stay in the file (they are
   * not revoked) and restart their TTL when the file is opened again. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#clock.clearTimeout(this.#guardTimer);
    for (const w of [...this.#watchers]) w.queue.fail(closedError());
    this.#watchers.clear();
    for (const lease of this.#leases.values()) {
      this.#clock.clearTimeout(lease.timer);
      lease.keeper?.end('closed');
    }
    this.#leases.clear();
    try {
      this.#db.close();
    } catch (err) {
      this.#logger.error({ err, path: this.path }, 'closing the sqlite store failed');
    }
    // Only now: until the database is closed, its -wal may still be at `<path>-wal`.
    this.#pathLock?.release();
    this.#logger.debug({ path: this.path, revision: this.#revision }, 'sqlite store closed');
    return Promise.resolve();
  }

  /** Same as {@link SqliteStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ---

  #run<T>(options: CallOptions | undefined, fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw closedError();
      if (this.#failure !== undefined) throw this.#failure;
      throwIfAborted(options);
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(this.#engineError(err));
    }
  }

  /**
   * Wraps a failure of SQLite itself as `FLOTILLA_STORE_UNAVAILABLE`: retryable (disk full,
   * I/O error), except when the file is damaged, which no retry mends.
   */
  #engineError(err: unknown): unknown {
    if (!(err instanceof Database.SqliteError)) return err;
    this.#logger.error({ err, path: this.path }, 'sqlite failed');
    if (isDamage(err.code)) {
      return new StoreError(
        StoreErrorCodes.UNAVAILABLE,
        `${this.path} is damaged (${err.message}, ${err.code}): retrying will not help; stop the store and restore it from a backup`,
        { cause: err, retryable: false },
      );
    }
    return new StoreError(
      StoreErrorCodes.UNAVAILABLE,
      `SQLite failed on ${this.path}: ${err.message} (${err.code})`,
      { cause: err },
    );
  }

  /**
   * Runs `fn` as one SQLite write transaction, once the path is known to still name the open
   * file: a write into a deleted or replaced file would be acknowledged and then lost.
   */
  #writeTx<T>(fn: () => T): T {
    this.#checkFile();
    return this.#tx(fn);
  }

  /** Throws `FLOTILLA_SQLITE_REPLACED` (and stops the store) if the file is gone. */
  #checkFile(): void {
    if (this.#failure !== undefined) throw this.#failure;
    const problem = this.#guard?.check();
    if (problem !== undefined) throw this.#stopReplaced(problem);
  }

  /** Checks the file every {@link FILE_CHECK_MS}, so that an idle store and its watchers learn. */
  #armGuard(): void {
    if (this.#guard === undefined) return;
    this.#guardTimer = this.#clock.setTimeout(() => {
      this.#guardTimer = undefined;
      if (this.#closed || this.#failure !== undefined) return;
      try {
        this.#checkFile();
        this.#armGuard();
      } catch {
        // Stopped: #stopReplaced logged it and told watchers and lease owners.
      }
    }, FILE_CHECK_MS);
  }

  /**
   * The file was deleted or replaced: fail every call from now on, fail watches, end leases,
   * and give up the -wal file while its name is still this connection's, so that SQLite
   * neither replays it onto the new file nor deletes the next owner's by name on close.
   */
  #stopReplaced(problem: FileProblem): SqliteError {
    const how =
      problem === 'deleted'
        ? 'was deleted'
        : 'was replaced by another file (renamed or copied over its path)';
    const err = new SqliteError(
      SqliteErrorCodes.REPLACED,
      `${this.path} ${how} while this store had it open: the store stopped so that no write goes to a file nobody will open again; close it and open the path again (check first that the file there holds the data you want)`,
      { path: this.path },
    );
    this.#failure = err;
    this.#logger.error({ err, path: this.path, problem }, 'sqlite store file is gone; stopped');
    this.#clock.clearTimeout(this.#guardTimer);
    let walErr: unknown;
    if (this.#guard?.ownsWal() === true) {
      try {
        // Leaving WAL mode deletes path-wal, which is still ours. SQLite then reports
        // SQLITE_READONLY_DBMOVED for the moved file, so whether it went is checked below.
        this.#db.pragma('journal_mode = DELETE');
      } catch (err) {
        walErr = err;
      }
    }
    if (this.#guard?.ownsWal() === true) {
      // The path stays locked until close(), which deletes path-wal as it closes the database.
      this.#logger.warn(
        { err: walErr, path: this.path },
        'could not give up the -wal file; the path stays locked until the store is closed',
      );
    } else {
      // Nothing of this store is left at the path: let the next owner open it now.
      this.#pathLock?.release();
    }
    for (const w of [...this.#watchers]) w.queue.fail(err);
    this.#watchers.clear();
    for (const lease of this.#leases.values()) {
      this.#clock.clearTimeout(lease.timer);
      lease.keeper?.end('closed');
    }
    this.#leases.clear();
    return err;
  }

  /**
   * Runs `body` in one SQLite transaction at the next revision. If it wrote anything, the
   * revision and history are saved with it; watchers hear of it once it has committed.
   */
  #write<T>(body: (p: Pending) => T): T {
    const p: Pending = { revision: this.#revision + 1, events: [] };
    let historyCount = this.#historyCount;
    let compactRevision = this.#compactRevision;
    const result = this.#writeTx(() => {
      const r = body(p);
      if (p.events.length === 0) return r;
      this.#s.setMeta.run(p.revision, 'revision');
      historyCount += p.events.length;
      if (historyCount > this.#historyLimit) {
        const cut = this.#s.historyRevisionAt.get(historyCount - this.#historyLimit);
        if (cut !== undefined && cut > compactRevision) {
          historyCount -= this.#compactTo(cut);
          compactRevision = cut;
        }
      }
      return r;
    });
    if (p.events.length === 0) return result;
    this.#revision = p.revision;
    this.#historyCount = historyCount;
    this.#compactRevision = compactRevision;
    for (const w of this.#watchers) for (const ev of p.events) w.offer(ev);
    return result;
  }

  /** Drops history before `revision`, inside a transaction; returns how many events went. */
  #compactTo(revision: number): number {
    const { changes } = this.#s.deleteHistoryBefore.run(revision);
    this.#s.setMeta.run(revision, 'compact_revision');
    return changes;
  }

  #get(key: string): KeyValue | undefined {
    const row = this.#s.getKv.get(keyBytes(key));
    return row === undefined ? undefined : toKv(key, row);
  }

  #applyPut(key: string, value: string, lease: LeaseId | undefined, p: Pending): void {
    const bytes = keyBytes(key);
    const leaseNo = lease === undefined ? null : Number(lease);
    const row = this.#s.upsert.get(bytes, value, p.revision, p.revision, leaseNo);
    if (row === undefined) throw new Error('upsert returned no row');
    this.#s.insertHistory.run(
      p.revision,
      0,
      bytes,
      value,
      row.create_revision,
      row.version,
      leaseNo,
    );
    const kv: KeyValue = {
      key,
      value,
      createRevision: row.create_revision,
      modRevision: p.revision,
      version: row.version,
      ...(lease === undefined ? {} : { lease }),
    };
    p.events.push({ type: 'put', kv, revision: p.revision });
  }

  #applyDelete(key: string, p: Pending): boolean {
    const bytes = keyBytes(key);
    if (this.#s.deleteKey.run(bytes).changes === 0) return false;
    this.#deleted(key, bytes, p);
    return true;
  }

  #applyDeletePrefix(prefix: string, p: Pending): number {
    const [low, high] = prefixRange(prefix);
    const keys = this.#s.keysInRange.all(low, high);
    if (keys.length === 0) return 0;
    this.#s.deleteRange.run(low, high);
    for (const bytes of keys) this.#deleted(keyString(bytes), bytes, p);
    return keys.length;
  }

  #deleted(key: string, bytes: Buffer, p: Pending): void {
    this.#s.insertHistory.run(p.revision, 1, bytes, '', 0, 0, null);
    p.events.push({
      type: 'delete',
      kv: { key, value: '', createRevision: 0, modRevision: p.revision, version: 0 },
      revision: p.revision,
    });
  }

  #requireLease(id: LeaseId): void {
    if (!this.#leases.has(id)) throw leaseNotFoundError(id);
  }

  #arm(id: LeaseId, lease: SqliteLease, ms = lease.ttlMs): void {
    this.#clock.clearTimeout(lease.timer);
    lease.timer = this.#clock.setTimeout(() => {
      lease.timer = undefined;
      this.#expire(id, lease);
    }, ms);
  }

  #expire(id: LeaseId, lease: SqliteLease): void {
    if (this.#closed || this.#failure !== undefined) return;
    try {
      this.#revoke(id, 'expired');
    } catch (err) {
      if (this.#failure !== undefined) return; // the file is gone: stopped, and said so
      this.#logger.warn(
        { err: this.#engineError(err), lease: id, path: this.path },
        'lease expiry failed; retrying',
      );
      if (!this.#closed && this.#leases.get(id) === lease) this.#arm(id, lease, EXPIRY_RETRY_MS);
    }
  }

  #renew(id: LeaseId, options?: CallOptions): Promise<void> {
    return this.#run(options, () => {
      const lease = this.#leases.get(id);
      if (lease === undefined) throw leaseNotFoundError(id);
      this.#arm(id, lease);
    });
  }

  /** Ends a lease and deletes its keys in one revision. Nothing happens if it is gone. */
  #revoke(id: LeaseId, reason: 'revoked' | 'expired'): void {
    const lease = this.#leases.get(id);
    if (lease === undefined) return;
    const leaseNo = Number(id);
    this.#write((p) => {
      const keys = this.#s.keysOfLease.all(leaseNo);
      if (keys.length > 0) this.#s.deleteByLease.run(leaseNo);
      this.#s.deleteLease.run(leaseNo);
      for (const bytes of keys) this.#deleted(keyString(bytes), bytes, p);
    });
    this.#leases.delete(id);
    this.#clock.clearTimeout(lease.timer);
    lease.keeper?.end(reason);
  }
}

function toKv(key: string, row: KvRow): KeyValue {
  return {
    key,
    value: row.value,
    createRevision: row.create_revision,
    modRevision: row.mod_revision,
    version: row.version,
    ...(row.lease === null ? {} : { lease: String(row.lease) }),
  };
}

function toEvent(row: HistoryRow): WatchEvent {
  const key = keyString(row.key);
  if (row.type === 1) {
    return {
      type: 'delete',
      kv: { key, value: '', createRevision: 0, modRevision: row.revision, version: 0 },
      revision: row.revision,
    };
  }
  return {
    type: 'put',
    kv: {
      key,
      value: row.value,
      createRevision: row.create_revision,
      modRevision: row.revision,
      version: row.version,
      ...(row.lease === null ? {} : { lease: String(row.lease) }),
    },
    revision: row.revision,
  };
}
