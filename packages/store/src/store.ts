/**
 * The `Store` interface: etcd v3 semantics that every backend (memory, SQLite, etcd) provides,
 * so that the etcd backend is a thin adapter and the others behave the same.
 */

/** A lease id: etcd's int64 lease id, as a decimal string. */
export type LeaseId = string;

/** One key and its value with its version metadata (etcd's `mvccpb.KeyValue`). */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the write that created the key (since it last did not exist). */
  readonly createRevision: number;
  /** Revision of the last write to the key. */
  readonly modRevision: number;
  /** Number of writes since the key was created: 1 after creation; 0 means absent. */
  readonly version: number;
  /** The lease the key is attached to, if any: the key is deleted when the lease ends. */
  readonly lease?: LeaseId;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Abort the call: it rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Options of {@link Store.put}. */
export interface PutOptions extends CallOptions {
  /** Attach the key to this lease; it is deleted when the lease expires or is revoked. */
  readonly lease?: LeaseId;
}

/** Options of {@link Store.list}. */
export interface ListOptions extends CallOptions {
  /** Return at most this many entries (the first ones by key order). */
  readonly limit?: number;
  /** Start after this key (exclusive), to page through a large prefix. */
  readonly after?: string;
}

/** The result of {@link Store.list}. */
export interface ListResult {
  /** Entries whose key starts with the prefix, sorted by key (UTF-8 byte order). */
  readonly kvs: readonly KeyValue[];
  /** The store revision the list was read at: watch from `revision + 1` to miss nothing. */
  readonly revision: number;
  /** True when `limit` cut the result short. */
  readonly more: boolean;
}

/** The result of a put. */
export interface PutResult {
  /** The store revision of this write. */
  readonly revision: number;
}

/** The result of a delete. */
export interface DeleteResult {
  /** The store revision after the delete (unchanged when nothing was deleted). */
  readonly revision: number;
  /** How many keys were deleted. */
  readonly deleted: number;
}

/** What a {@link Compare} looks at. */
export type CompareTarget = 'version' | 'createRevision' | 'modRevision' | 'value' | 'lease';

/** How a {@link Compare} compares: the key's target `op` the given value. */
export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * One condition of a transaction. An absent key has version, createRevision and modRevision 0,
 * no value (every value comparison fails) and lease `'0'`.
 *
 * @example
 * ```ts
 * { key: 'hosts/a', target: 'version', op: '==', value: 0 }        // key is absent
 * { key: 'hosts/a', target: 'modRevision', op: '==', value: 41 }   // unchanged since read
 * { key: 'leader', target: 'value', op: '==', value: 'host-a' }
 * ```
 */
export type Compare =
  | {
      readonly key: string;
      readonly target: 'version' | 'createRevision' | 'modRevision';
      readonly op: CompareOp;
      readonly value: number;
    }
  | {
      readonly key: string;
      readonly target: 'value';
      readonly op: CompareOp;
      readonly value: string;
    }
  | {
      readonly key: string;
      readonly target: 'lease';
      readonly op: '==' | '!=';
      readonly value: LeaseId;
    };

/** One operation of a transaction. */
export type TxnOp =
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly lease?: LeaseId }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'deletePrefix'; readonly prefix: string }
  | { readonly op: 'get'; readonly key: string };

/** The result of one {@link TxnOp}, in the order of the ops that ran. */
export type TxnOpResult =
  | { readonly op: 'put' }
  | { readonly op: 'delete' | 'deletePrefix'; readonly deleted: number }
  | { readonly op: 'get'; readonly kv: KeyValue | undefined };

/** A compare-and-set transaction: if every compare holds, run `success`, else `failure`. */
export interface Txn {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

/** The result of {@link Store.txn}. */
export interface TxnResult {
  /** Whether every compare held (and so `success` ran). */
  readonly succeeded: boolean;
  /** The store revision after the transaction (one new revision for all its writes). */
  readonly revision: number;
  /** One result per op of the branch that ran. */
  readonly results: readonly TxnOpResult[];
}

/** A change seen by {@link Store.watch}. */
export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /**
   * The key after the change. For a delete: `value` is `''`, `version` and `createRevision` are
   * 0, and `modRevision` is the revision of the delete.
   */
  readonly kv: KeyValue;
  /** The revision of the change (`kv.modRevision`). All changes of one txn share it. */
  readonly revision: number;
}

/** Options of {@link Store.watch}. */
export interface WatchOptions extends CallOptions {
  /**
   * Deliver every change from this revision on (inclusive), before live ones, with no gap and
   * no duplicate. Without it, only changes after the watch starts are delivered. A revision
   * older than the store's compaction point fails with `FLOTILLA_STORE_COMPACTED`.
   */
  readonly fromRevision?: number;
  /**
   * Leaves out every change of the revisions it returns true for. It is asked once per change,
   * in revision order, as changes arrive and before they are decoded or queued: a writer that
   * applied its own transaction already (it has the revision from `txn()`'s answer) skips the
   * watch's echo of it without paying for every key. A predicate that throws fails the watch
   * with its error. Changes it leaves out are gone: a watch resumed later from an older revision
   * asks again.
   */
  readonly skipRevision?: (revision: number) => boolean;
  /**
   * Only changes of keys that sort before this one (in key order, as `list` sorts): the part
   * of the prefix up to `before`, as one watch with its revision order. For a writer that
   * applies its own writes and owns the keys from `before` on while nobody else writes there:
   * the Scheduler, which alone writes job records, watches the cluster state but for them.
   * Must be a key that sorts after `prefix`, else the call throws
   * `FLOTILLA_STORE_INVALID_ARGUMENT`.
   */
  readonly before?: string;
  /**
   * Only deletes: puts are left out by the store itself (etcd's `NOPUT` filter drops them
   * before they are queued or sent). For a writer that applies its own puts but must learn
   * of a key deleted by someone else.
   */
  readonly deletesOnly?: boolean;
}

/** Why a lease ended. */
export type LeaseEndReason =
  /** Not renewed within its TTL (the owner stopped, or could not reach the store). */
  | 'expired'
  /**
   * Revoked by its owner through this handle. (A revoke by another client holding the id is,
   * for remote backends such as etcd, indistinguishable from an expiry and reported as such.)
   */
  | 'revoked'
  /** The store was closed. */
  | 'closed';

/**
 * A lease: keys attached to it are deleted when it ends. Renew it with {@link keepAlive}, end
 * it with {@link revoke}. Watchers see the deletes of its keys like any other delete.
 */
export interface Lease extends AsyncDisposable {
  readonly id: LeaseId;
  /** The TTL granted, in ms (a backend may round up: etcd has whole seconds, 2 s minimum). */
  readonly ttlMs: number;
  /** `'active'` until the lease ends. */
  readonly state: 'active' | 'ended';
  /**
   * The owner's conservative view of when the lease ends unless renewed: the clock time of the
   * last acknowledged grant or renewal plus the TTL. Past it, the store may already have
   * deleted the lease's keys (a leader must step down then, whatever it has heard).
   */
  readonly deadline: number;
  /**
   * Resolves once, when the lease ends, with the reason. Owners of leased keys wait on it to
   * re-grant and re-put (after an etcd restart, say). Never rejects.
   */
  readonly ended: Promise<LeaseEndReason>;
  /**
   * Renews the lease automatically (at a third of its TTL) until it is revoked or the store
   * closes. Idempotent. Resolves once the first renewal is acknowledged; rejects with
   * `FLOTILLA_STORE_LEASE_NOT_FOUND` if the lease already expired or was revoked, and with
   * `FLOTILLA_STORE_CLOSED` once its store is closed.
   */
  keepAlive(options?: CallOptions): Promise<void>;
  /**
   * Stops renewing without revoking: the lease and its keys live on until the TTL runs out,
   * unless a successor takes them over first (a restarting agent). Idempotent; a no-op once
   * the lease ended.
   */
  release(): void;
  /**
   * Renews the lease once, now. Rejects as {@link keepAlive} does when the lease ended or its
   * store closed.
   */
  renew(options?: CallOptions): Promise<void>;
  /**
   * Ends the lease now and deletes its keys. Idempotent: resolves at once when the lease
   * already expired or was revoked. Rejects with `FLOTILLA_STORE_CLOSED` once its store is
   * closed, since it can no longer delete the keys (they go when the TTL runs out; a
   * `SqliteStore` file gives them a full TTL when it is opened again). `await using` disposal
   * ignores that error.
   */
  revoke(options?: CallOptions): Promise<void>;
}

/** Limits every backend enforces alike, so code tested on one runs on the others. */
export interface StoreLimits {
  /** Most compares plus operations in one branch of a transaction (etcd's `--max-txn-ops`: 128). */
  readonly maxTxnOps: number;
  /** Most bytes (UTF-8) of one value. */
  readonly maxValueBytes: number;
  /**
   * Most bytes (UTF-8, never UTF-16 units) of keys plus values in one request (etcd's default
   * is 1.5 MiB): a put's key and value; a txn's compares and both branches; a list's prefix
   * and `after`; any single key or prefix.
   */
  readonly maxRequestBytes: number;
  /**
   * Most events a watch holds that its consumer has not read (default 1,000,000); one more
   * fails the watch with `FLOTILLA_STORE_COMPACTED`, as a watch that fell behind the history
   * does, so that memory stays bounded and `listAndWatch` lists again.
   */
  readonly maxWatchBacklog: number;
}

/**
 * A versioned key-value store with compare-and-set transactions, leases and prefix watches:
 * etcd v3 semantics. One store-wide revision increases with every write.
 *
 * Implementations: `MemoryStore` (here), `SqliteStore` (`@flotilla/sqlite`), `EtcdStore`
 * (`@flotilla/etcd`); each passes `runStoreContract` from `@flotilla/store/testing`.
 *
 * Every method rejects with `FLOTILLA_STORE_CLOSED` after {@link close}.
 */
export interface Store extends AsyncDisposable {
  /** The limits this store enforces. */
  readonly limits: StoreLimits;
  /** Reads one key; `undefined` when absent. */
  get(key: string, options?: CallOptions): Promise<KeyValue | undefined>;
  /** Reads the keys that start with `prefix`, sorted by key (`''` lists everything). */
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  /** Writes a key. */
  put(key: string, value: string, options?: PutOptions): Promise<PutResult>;
  /** Deletes a key; `deleted` is 0 when it was absent. */
  delete(key: string, options?: CallOptions): Promise<DeleteResult>;
  /** Deletes every key that starts with `prefix`, in one revision. */
  deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult>;
  /** Runs a compare-and-set transaction atomically. */
  txn(txn: Txn, options?: CallOptions): Promise<TxnResult>;
  /**
   * Grants a lease of `ttlMs` (at most `MAX_LEASE_TTL_MS`, about 24.8 days); keys put with it
   * vanish when it ends.
   */
  grant(ttlMs: number, options?: CallOptions): Promise<Lease>;
  /**
   * Streams the changes to keys under `prefix` in revision order. The iterable ends when
   * `signal` aborts; it throws `FLOTILLA_STORE_COMPACTED` when `fromRevision` is no longer
   * available, and `FLOTILLA_STORE_CLOSED` when the store closes.
   */
  watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent>;
  /** The current store revision. */
  revision(options?: CallOptions): Promise<number>;
  /**
   * Forgets history before `revision`: watching from an older revision then fails with
   * `FLOTILLA_STORE_COMPACTED`. Backends also compact on their own to bound history.
   */
  compact(revision: number, options?: CallOptions): Promise<void>;
  /** Closes the store: leases stop renewing (they end on their own), watches end. Idempotent. */
  close(): Promise<void>;
}
