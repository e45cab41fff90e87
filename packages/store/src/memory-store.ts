import { type Clock, systemClock } from '@flotilla/core';
import { evaluateCompare } from './compare.js';
import { PrefixWatch } from './prefix-watch.js';
import { compareKeys } from './keys.js';
import { LeaseKeeper } from './lease-keeper.js';
import {
  resolveLimits,
  throwIfAborted,
  validateKey,
  validateList,
  validatePrefix,
  validateWatch,
  validatePut,
  validateRevision,
  validateTtl,
  validateTxn,
} from './validate.js';
import {
  closedError,
  compactedError,
  leaseNotFoundError,
  StoreError,
  StoreErrorCodes,
} from './errors.js';
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
} from './store.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Drives lease TTLs; pass a `ManualClock` in tests to expire leases without sleeping. */
  readonly clock?: Clock;
  /**
   * How many change events to keep for watches that resume from a revision (default 100,000).
   * Older ones are compacted away, as etcd's auto-compaction does.
   */
  readonly historyLimit?: number;
  /**
   * Override the limits (default: etcd's, {@link DEFAULT_LIMITS}); each a positive integer, or
   * the constructor throws `FLOTILLA_STORE_INVALID_ARGUMENT`.
   */
  readonly limits?: Partial<StoreLimits>;
}

interface MemoryLease {
  readonly ttlMs: number;
  readonly keys: Set<string>;
  timer: unknown;
  readonly keeper: LeaseKeeper;
}

/** Insert new keys into the sorted index while it is this small; above, append or rebuild lazily. */
const INCREMENTAL_INDEX_LIMIT = 4096;

/**
 * A `Store` in memory: the reference implementation of the contract, for tests, simulators and
 * single-process tools. Everything is lost when the process ends; use `SqliteStore` for a
 * durable embedded store.
 *
 * @example
 * ```ts
 * const store = new MemoryStore();
 * const { revision } = await store.put('apps/demo', JSON.stringify({ name: 'demo' }));
 * const res = await store.txn({
 *   compare: [{ key: 'apps/demo', target: 'modRevision', op: '==', value: revision }],
 *   success: [{ op: 'put', key: 'apps/demo', value: '{"name":"demo","v":2}' }],
 * });
 * res.succeeded; // true: nobody wrote in between
 * ```
 */
export class MemoryStore implements Store {
  readonly limits: StoreLimits;
  #clock: Clock;
  #historyLimit: number;
  #kvs = new Map<string, KeyValue>();
  #sorted: string[] | null = [];
  #revision = 1;
  #compactRevision = 1;
  #history: WatchEvent[] = [];
  #watchers = new Set<PrefixWatch>();
  #leases = new Map<LeaseId, MemoryLease>();
  #nextLease = 1;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#historyLimit = options.historyLimit ?? 100_000;
    this.limits = resolveLimits(options.limits);
  }

  get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    return this.#run(options, () => {
      validateKey(key, 'key', this.limits);
      return this.#kvs.get(key);
    });
  }

  list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    return this.#run(options, () => {
      validateList(prefix, options, this.limits);
      const limit = options.limit ?? Infinity;
      const sorted = this.#index();
      const start =
        options.after !== undefined && compareKeys(options.after, prefix) >= 0
          ? options.after
          : prefix;
      let i = lowerBound(sorted, start);
      if (options.after !== undefined && sorted[i] === options.after) i++;
      const kvs: KeyValue[] = [];
      let more = false;
      for (; i < sorted.length; i++) {
        const key = sorted[i] as string;
        if (!key.startsWith(prefix)) break;
        if (kvs.length >= limit) {
          more = true;
          break;
        }
        kvs.push(this.#kvs.get(key) as KeyValue);
      }
      return { kvs, revision: this.#revision, more };
    });
  }

  put(key: string, value: string, options: PutOptions = {}): Promise<PutResult> {
    return this.#run(options, () => {
      validatePut(key, value, options, this.limits);
      if (options.lease !== undefined) this.#requireLease(options.lease);
      const events: WatchEvent[] = [];
      const revision = this.#revision + 1;
      this.#applyPut(key, value, options.lease, revision, events);
      this.#commit(revision, events);
      return { revision };
    });
  }

  delete(key: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#run(options, () => {
      validateKey(key, 'key', this.limits);
      return this.#deleteKeys(this.#kvs.has(key) ? [key] : []);
    });
  }

  deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#run(options, () => {
      validatePrefix(prefix, this.limits);
      return this.#deleteKeys(this.#keysWithPrefix(prefix));
    });
  }

  txn(txn: Txn, options?: CallOptions): Promise<TxnResult> {
    return this.#run(options, () => {
      validateTxn(txn, this.limits);
      const succeeded = txn.compare.every((c) => evaluateCompare(this.#kvs.get(c.key), c));
      const ops: readonly TxnOp[] = succeeded ? txn.success : (txn.failure ?? []);
      for (const op of ops) {
        if (op.op === 'put' && op.lease !== undefined) this.#requireLease(op.lease);
      }
      const revision = this.#revision + 1;
      const events: WatchEvent[] = [];
      const results: TxnOpResult[] = [];
      for (const op of ops) {
        switch (op.op) {
          case 'put':
            this.#applyPut(op.key, op.value, op.lease, revision, events);
            results.push({ op: 'put' });
            break;
          case 'get':
            results.push({ op: 'get', kv: this.#kvs.get(op.key) });
            break;
          case 'delete':
          case 'deletePrefix': {
            const keys =
              op.op === 'delete'
                ? this.#kvs.has(op.key)
                  ? [op.key]
                  : []
                : this.#keysWithPrefix(op.prefix);
            for (const key of keys) this.#applyDelete(key, revision, events);
            results.push({ op: op.op, deleted: keys.length });
            break;
          }
        }
      }
      this.#commit(revision, events);
      return { succeeded, revision: this.#revision, results };
    });
  }

  grant(ttlMs: number, options?: CallOptions): Promise<Lease> {
    return this.#run(options, () => {
      validateTtl(ttlMs);
      const id = String(this.#nextLease++);
      const keeper = new LeaseKeeper(
        id,
        ttlMs,
        {
          renew: (leaseId, o) => this.#renew(leaseId, o),
          revoke: (leaseId, o) => this.#revoke(leaseId, 'revoked', o),
        },
        { clock: this.#clock },
      );
      const lease: MemoryLease = { ttlMs, keys: new Set(), timer: undefined, keeper };
      this.#leases.set(id, lease);
      this.#arm(id, lease);
      return keeper;
    });
  }

  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    if (this.#closed) throw closedError();
    validateWatch(prefix, options, this.limits);
    const watcher: PrefixWatch = new PrefixWatch(
      prefix,
      options.fromRevision ?? this.#revision + 1,
      this.limits,
      options,
      () => this.#watchers.delete(watcher),
    );
    if (options.signal?.aborted === true) return watcher.queue;
    if (options.fromRevision !== undefined) {
      if (options.fromRevision < this.#compactRevision) {
        watcher.queue.fail(compactedError(options.fromRevision, this.#compactRevision));
        return watcher.queue;
      }
      let i = lowerBoundRevision(this.#history, options.fromRevision);
      for (; i < this.#history.length; i++) watcher.offer(this.#history[i] as WatchEvent);
    }
    this.#watchers.add(watcher);
    return watcher.queue;
  }

  revision(options?: CallOptions): Promise<number> {
    return this.#run(options, () => this.#revision);
  }

  compact(revision: number, options?: CallOptions): Promise<void> {
    return this.#run(options, () => {
      validateRevision(revision, 'compact revision');
      if (revision > this.#revision) {
        throw new StoreError(
          StoreErrorCodes.INVALID_ARGUMENT,
          `cannot compact to revision ${revision}: the store is at ${this.#revision}`,
        );
      }
      this.#compactTo(revision);
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const w of [...this.#watchers]) w.queue.fail(closedError());
    this.#watchers.clear();
    for (const lease of this.#leases.values()) {
      this.#clock.clearTimeout(lease.timer);
      lease.keeper.end('closed');
    }
    this.#leases.clear();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ---

  #run<T>(options: CallOptions | undefined, fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw closedError();
      throwIfAborted(options);
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  #requireLease(id: LeaseId): void {
    if (!this.#leases.has(id)) throw leaseNotFoundError(id);
  }

  #applyPut(
    key: string,
    value: string,
    lease: LeaseId | undefined,
    revision: number,
    events: WatchEvent[],
  ): void {
    const prev = this.#kvs.get(key);
    if (prev?.lease !== undefined && prev.lease !== lease)
      this.#leases.get(prev.lease)?.keys.delete(key);
    if (lease !== undefined) this.#leases.get(lease)?.keys.add(key);
    const kv: KeyValue = {
      key,
      value,
      createRevision: prev?.createRevision ?? revision,
      modRevision: revision,
      version: (prev?.version ?? 0) + 1,
      ...(lease === undefined ? {} : { lease }),
    };
    this.#kvs.set(key, kv);
    if (prev === undefined) this.#indexAdd(key);
    events.push({ type: 'put', kv, revision });
  }

  #applyDelete(key: string, revision: number, events: WatchEvent[]): void {
    const prev = this.#kvs.get(key);
    if (prev === undefined) return;
    if (prev.lease !== undefined) this.#leases.get(prev.lease)?.keys.delete(key);
    this.#kvs.delete(key);
    this.#indexRemove(key);
    events.push({
      type: 'delete',
      kv: { key, value: '', createRevision: 0, modRevision: revision, version: 0 },
      revision,
    });
  }

  #deleteKeys(keys: readonly string[]): DeleteResult {
    if (keys.length === 0) return { revision: this.#revision, deleted: 0 };
    const revision = this.#revision + 1;
    const events: WatchEvent[] = [];
    for (const key of keys) this.#applyDelete(key, revision, events);
    this.#commit(revision, events);
    return { revision, deleted: keys.length };
  }

  #keysWithPrefix(prefix: string): string[] {
    const sorted = this.#index();
    const keys: string[] = [];
    for (let i = lowerBound(sorted, prefix); i < sorted.length; i++) {
      const key = sorted[i] as string;
      if (!key.startsWith(prefix)) break;
      keys.push(key);
    }
    return keys;
  }

  #commit(revision: number, events: WatchEvent[]): void {
    if (events.length === 0) return;
    this.#revision = revision;
    for (const ev of events) this.#history.push(ev);
    // Compact in steps of a quarter of the limit, so that each commit costs O(1) amortised.
    if (this.#history.length > this.#historyLimit + Math.max(16, this.#historyLimit >> 2)) {
      const cut = this.#history[this.#history.length - this.#historyLimit] as WatchEvent;
      this.#compactTo(cut.revision);
    }
    for (const w of this.#watchers) for (const ev of events) w.offer(ev);
  }

  #compactTo(revision: number): void {
    if (revision <= this.#compactRevision) return;
    this.#compactRevision = revision;
    const i = lowerBoundRevision(this.#history, revision);
    this.#history = this.#history.slice(i);
  }

  #arm(id: LeaseId, lease: MemoryLease): void {
    this.#clock.clearTimeout(lease.timer);
    lease.timer = this.#clock.setTimeout(() => {
      lease.timer = undefined;
      void this.#revoke(id, 'expired');
    }, lease.ttlMs);
  }

  #renew(id: LeaseId, options?: CallOptions): Promise<void> {
    return this.#run(options, () => {
      const lease = this.#leases.get(id);
      if (lease === undefined) throw leaseNotFoundError(id);
      this.#arm(id, lease);
    });
  }

  #revoke(id: LeaseId, reason: 'revoked' | 'expired', options?: CallOptions): Promise<void> {
    return this.#run(options, () => {
      const lease = this.#leases.get(id);
      if (lease === undefined) return;
      this.#leases.delete(id);
      this.#clock.clearTimeout(lease.timer);
      this.#deleteKeys([...lease.keys].sort(compareKeys));
      lease.keeper.end(reason);
    });
  }

  #index(): string[] {
    if (this.#sorted === null) this.#sorted = [...this.#kvs.keys()].sort(compareKeys);
    return this.#sorted;
  }

  #indexAdd(key: string): void {
    const sorted = this.#sorted;
    if (sorted === null) return;
    const last = sorted[sorted.length - 1];
    // Keys written in order (ids that grow) append; others insert while the index is small.
    if (last === undefined || compareKeys(last, key) < 0) sorted.push(key);
    else if (sorted.length < INCREMENTAL_INDEX_LIMIT)
      sorted.splice(lowerBound(sorted, key), 0, key);
    else this.#sorted = null;
  }

  #indexRemove(key: string): void {
    if (this.#sorted === null) return;
    if (this.#sorted.length >= INCREMENTAL_INDEX_LIMIT) {
      this.#sorted = null;
      return;
    }
    const i = lowerBound(this.#sorted, key);
    if (this.#sorted[i] === key) this.#sorted.splice(i, 1);
  }
}

function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(sorted[mid] as string, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBoundRevision(history: readonly WatchEvent[], revision: number): number {
  let lo = 0;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((history[mid] as WatchEvent).revision < revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
