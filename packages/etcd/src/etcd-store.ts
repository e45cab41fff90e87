import type { Clock, Logger, TimerHandle } from '@flotilla/core';
import {
  type CallOptions,
  closedError,
  DEFAULT_LIMITS,
  type DeleteResult,
  EventQueue,
  watchQueue,
  type KeyValue,
  type Lease,
  LeaseKeeper,
  leaseNotFoundError,
  type ListOptions,
  type ListResult,
  type PutOptions,
  type PutResult,
  revisionSkipper,
  showKey,
  type Store,
  StoreError,
  StoreErrorCodes,
  type StoreLimits,
  throwIfAborted,
  type Txn,
  type TxnResult,
  validateKey,
  validateList,
  validatePrefix,
  validateWatch,
  validatePut,
  validateRevision,
  validateTtl,
  validateTxn,
  type WatchEvent,
  type WatchOptions,
} from '@flotilla/store';
import { type Etcd3, GRPCDeadlineExceededError, isRecoverableError } from 'etcd3';
import type { EtcdStoreOptions } from './options.js';
import { createClient, rawKvCall, rawWatchStream } from './internal/client.js';
import { type CallContext, isLeaseNotFound, toStoreError } from './internal/error-map.js';
import { KeySpace, leaseForPut } from './internal/keyspace.js';
import { resolveOptions, type ResolvedOptions } from './internal/resolve-options.js';
import { ResumingWatch } from './internal/resuming-watch.js';
import { barrierFor, type StartBarrier } from './internal/start-barrier.js';
import { fromEtcdTxn, toEtcdTxn, type TxnShape, txnShape } from './internal/txn.js';
import { decodeTxnResponse } from './internal/txn-codec.js';
import { decodeWatchResponse } from './internal/watch-codec.js';

/** The grpc call options the store sets: an absolute deadline in ms since the epoch. */
interface GrpcCallOptions {
  readonly deadline: number;
}

/** A lease this store granted and still tracks. */
interface TrackedLease {
  readonly keeper: LeaseKeeper;
  /** Checks with etcd whether the lease expired, when nobody renewed it in time. */
  timer: TimerHandle | undefined;
}

/** etcd revokes expired leases on a 500 ms tick; check a little after that. */
const EXPIRY_SLACK_MS = 750;
/** How soon to check a lease again when etcd could not be asked. */
const EXPIRY_RETRY_MS = 1000;
/** The longest delay a Node timer keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The Flotilla `Store` on a real etcd v3 cluster, through the `etcd3` client: versioned keys,
 * compare-and-set transactions, leases and prefix watches are etcd's own. It passes the same
 * contract suite as `MemoryStore` and `SqliteStore`.
 *
 * - Keys live under `prefix` (default `/flotilla/`), which users never see.
 * - Lease TTLs are whole seconds in etcd: `grant(ttlMs)` rounds up (and etcd raises TTLs under
 *   its minimum, about 2 s); `lease.ttlMs` is what etcd granted.
 * - Watches survive etcd restarts: they resume after the last revision they delivered.
 * - While etcd is unreachable, calls fail within `requestTimeoutMs` with
 *   `FLOTILLA_STORE_UNAVAILABLE` (`retryable: true`); kept-alive leases keep retrying, and end
 *   with `'expired'` if etcd no longer knows them when it is back.
 *
 * @example
 * ```ts
 * import { EtcdStore } from '@flotilla/etcd';
 *
 * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'], prefix: '/my-paas/' });
 * const { revision } = await store.put('apps/demo', JSON.stringify({ name: 'demo' }));
 * const res = await store.txn({
 *   compare: [{ key: 'apps/demo', target: 'modRevision', op: '==', value: revision }],
 *   success: [{ op: 'put', key: 'apps/demo', value: '{"name":"demo","v":2}' }],
 * });
 * res.succeeded; // true: nobody wrote in between
 * const lease = await store.grant(10_000);
 * await store.put('hosts/a', '{}', { lease: lease.id });
 * await lease.keepAlive();
 * await store.close();
 * ```
 */
export class EtcdStore implements Store {
  /** etcd's default limits, which every Flotilla backend enforces alike. */
  readonly limits: StoreLimits = DEFAULT_LIMITS;
  /** The etcd key prefix this store's keys live under. */
  readonly prefix: string;
  readonly #options: ResolvedOptions;
  readonly #client: Etcd3;
  /** Transactions go around etcd3's protobuf objects: encoded and decoded by hand. */
  readonly #rawTxn: ReturnType<typeof rawKvCall>;
  /** Watch streams, likewise decoded by hand. */
  readonly #openWatch: ReturnType<typeof rawWatchStream<ReturnType<typeof decodeWatchResponse>>>;
  readonly #keys: KeySpace;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #barrier: StartBarrier;
  readonly #watches = new Set<ResumingWatch>();
  readonly #leases = new Map<string, TrackedLease>();
  #closed = false;

  /**
   * Makes a store; it connects on the first call, so a down etcd is reported by calls, not
   * here.
   *
   * @throws `EtcdError` `FLOTILLA_ETCD_CONFIG` when an option is malformed.
   */
  constructor(options: EtcdStoreOptions) {
    this.#options = resolveOptions(options);
    this.prefix = this.#options.prefix;
    this.#clock = this.#options.clock;
    this.#logger = this.#options.logger.child({ component: 'etcd-store' });
    this.#keys = new KeySpace(this.prefix);
    this.#barrier = barrierFor(this.#options.endpoints);
    this.#client = createClient(this.#options);
    this.#rawTxn = rawKvCall(this.#client, 'Txn');
    this.#openWatch = rawWatchStream(this.#client, decodeWatchResponse);
  }

  get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    return this.#call(
      options,
      'read',
      () => {
        validateKey(key, 'key', this.limits);
        return { what: `get of ${showKey(key)}`, key };
      },
      async (grpcOptions) => {
        const res = await this.#client.kv.range({ key: this.#keys.key(key) }, grpcOptions);
        const kv = res.kvs[0];
        return kv === undefined ? undefined : this.#keys.keyValue(kv);
      },
    );
  }

  list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    return this.#call(
      options,
      'read',
      () => {
        validateList(prefix, options, this.limits);
        return { what: `list of ${showKey(prefix)}` };
      },
      async (grpcOptions) => {
        const res = await this.#client.kv.range(
          { ...this.#keys.rangeAfter(prefix, options.after), limit: options.limit ?? 0 },
          grpcOptions,
        );
        return {
          kvs: res.kvs.map((kv) => this.#keys.keyValue(kv)),
          revision: Number(res.header.revision),
          more: res.more,
        };
      },
    );
  }

  put(key: string, value: string, options: PutOptions = {}): Promise<PutResult> {
    return this.#call(
      options,
      'write',
      () => {
        validatePut(key, value, options, this.limits);
        return {
          what: `put of ${showKey(key)}`,
          key,
          ...(options.lease === undefined ? {} : { lease: options.lease }),
        };
      },
      async (grpcOptions) => {
        const res = await this.#client.kv.put(
          {
            key: this.#keys.key(key),
            value: Buffer.from(value, 'utf8'),
            lease: leaseForPut(options.lease),
          },
          grpcOptions,
        );
        return { revision: Number(res.header.revision) };
      },
    );
  }

  delete(key: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#call(
      options,
      'write',
      () => {
        validateKey(key, 'key', this.limits);
        return { what: `delete of ${showKey(key)}`, key };
      },
      async (grpcOptions) => {
        const res = await this.#client.kv.deleteRange({ key: this.#keys.key(key) }, grpcOptions);
        return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
      },
    );
  }

  deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#call(
      options,
      'write',
      () => {
        validatePrefix(prefix, this.limits);
        return { what: `delete of prefix ${showKey(prefix)}` };
      },
      async (grpcOptions) => {
        const res = await this.#client.kv.deleteRange(this.#keys.range(prefix), grpcOptions);
        return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
      },
    );
  }

  txn(txn: Txn, options?: CallOptions): Promise<TxnResult> {
    // Encoded as soon as it is checked, and then let go: only the kinds of its ops are kept
    // for reading the answer, so its keys and values need not outlive the encoding (see
    // `TxnShape`). Nothing the call keeps for its round trip refers to it.
    let pending: Txn | undefined = txn;
    let request: Buffer | undefined;
    let shape: TxnShape | undefined;
    return this.#call(
      options,
      'write',
      () => {
        const t = pending as Txn;
        pending = undefined;
        validateTxn(t, this.limits);
        request = toEtcdTxn(t, this.#keys);
        shape = txnShape(t);
        return { what: 'txn' };
      },
      async (grpcOptions) => {
        const res = await this.#rawTxn(request as Buffer, decodeTxnResponse, grpcOptions);
        return fromEtcdTxn(shape as TxnShape, res, this.#keys);
      },
    );
  }

  grant(ttlMs: number, options?: CallOptions): Promise<Lease> {
    return this.#call(
      options,
      'write',
      () => {
        validateTtl(ttlMs);
        return { what: `grant of a ${ttlMs} ms lease` };
      },
      async (grpcOptions) => {
        const seconds = Math.ceil(ttlMs / 1000);
        const sentAt = this.#clock.now();
        const res = await this.#client.leaseClient.leaseGrant({ TTL: seconds, ID: 0 }, grpcOptions);
        if (res.error !== '') throw new Error(`etcdserver: ${res.error}`);
        const id = String(res.ID);
        if (this.#closed) throw closedError();
        return this.#track(id, Number(res.TTL) * 1000, sentAt);
      },
    );
  }

  /**
   * Streams the changes under `prefix` in revision order, resuming by itself after etcd
   * restarts or the connection drops.
   *
   * Without `fromRevision`, the watch starts at the revision etcd reports when its stream is
   * created; calls made through any `EtcdStore` of this process on the same etcd after
   * `watch()` returns wait for that (one round trip), so their changes are delivered. Writes
   * from other processes racing with `watch()` may fall on either side: to miss nothing,
   * `list()` and watch from its `revision + 1`.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    if (this.#closed) throw closedError();
    validateWatch(prefix, options, this.limits);
    if (options.signal?.aborted === true) return new EventQueue<WatchEvent>(options.signal);
    // The queue calls back when the consumer stops (break, abort, close): stop the stream.
    const queue: EventQueue<WatchEvent> = watchQueue(this.limits, options.signal, () => {
      watch.stop();
      this.#watches.delete(watch);
    });
    const skip = revisionSkipper(options.skipRevision, queue);
    const watch = new ResumingWatch({
      open: this.#openWatch,
      skip,
      currentRevision: () => this.#readRevision(this.#deadline()),
      range: this.#keys.range(prefix, options.before),
      deletesOnly: options.deletesOnly === true,
      keys: this.#keys,
      queue,
      fromRevision: options.fromRevision,
      startTimeoutMs: this.#options.requestTimeoutMs,
      clock: this.#clock,
      logger: this.#logger,
    });
    this.#watches.add(watch);
    if (options.fromRevision === undefined) this.#barrier.hold(watch.started);
    watch.start();
    return queue;
  }

  revision(options?: CallOptions): Promise<number> {
    return this.#call(
      options,
      'read',
      () => ({ what: 'revision' }),
      (grpcOptions) => this.#readRevision(grpcOptions),
    );
  }

  compact(revision: number, options?: CallOptions): Promise<void> {
    return this.#call(
      options,
      'write',
      () => {
        validateRevision(revision, 'compact revision');
        return { what: `compact to revision ${revision}` };
      },
      async (grpcOptions) => {
        try {
          await this.#client.kv.compact({ revision, physical: false }, grpcOptions);
        } catch (err) {
          const mapped = toStoreError(err, { what: `compact to revision ${revision}` });
          // Already compacted at or past it: nothing to do, as in MemoryStore.
          if (mapped.code === StoreErrorCodes.COMPACTED) return;
          if (mapped.code === StoreErrorCodes.INVALID_ARGUMENT) {
            throw new StoreError(
              StoreErrorCodes.INVALID_ARGUMENT,
              `cannot compact to revision ${revision}: the store is not there yet`,
              { cause: err },
            );
          }
          throw mapped;
        }
      },
    );
  }

  /**
   * Closes the store: open watches fail with `FLOTILLA_STORE_CLOSED`, leases stop renewing and
   * end with `'closed'` (etcd expires them after their TTL), the connection is closed.
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const watch of [...this.#watches]) watch.fail(closedError());
    this.#watches.clear();
    for (const lease of [...this.#leases.values()]) {
      if (lease.timer !== undefined) this.#clock.clearTimeout(lease.timer);
      lease.keeper.end('closed');
    }
    this.#leases.clear();
    this.#client.close();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ---

  #deadline(): GrpcCallOptions {
    return { deadline: Date.now() + this.#options.requestTimeoutMs };
  }

  async #readRevision(grpcOptions: GrpcCallOptions): Promise<number> {
    const res = await this.#client.kv.range(
      { key: this.#keys.anyKey(), count_only: true },
      grpcOptions,
    );
    return Number(res.header.revision);
  }

  /**
   * Runs one call: closed and abort checks, validation (`check`, which names the call for
   * errors), the start barrier, one deadline for all of it, error mapping. Reads are retried
   * on another endpoint when one is unreachable; writes are not, since etcd may have applied
   * them.
   */
  async #call<T>(
    options: CallOptions | undefined,
    kind: 'read' | 'write',
    check: () => CallContext,
    run: (grpcOptions: GrpcCallOptions) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw closedError();
    throwIfAborted(options);
    const context = check();
    // One deadline for the whole call, including the wait for starting watches.
    const grpcOptions = this.#deadline();
    await this.#barrier.wait();
    if (this.#closed) throw closedError();
    throwIfAborted(options);
    const attempts = kind === 'read' ? this.#options.endpoints.length : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await withSignal(run(grpcOptions), options?.signal);
      } catch (err) {
        if (this.#closed) throw closedError();
        if (options?.signal?.aborted === true) throw options.signal.reason;
        if (
          attempt < attempts &&
          err instanceof Error &&
          isRecoverableError(err) &&
          !(err instanceof GRPCDeadlineExceededError)
        ) {
          continue;
        }
        throw toStoreError(err, context);
      }
    }
  }

  #track(id: string, ttlMs: number, grantedAt?: number): LeaseKeeper {
    const keeper = new LeaseKeeper(
      id,
      ttlMs,
      {
        renew: (leaseId, o) => this.#renew(leaseId, o),
        revoke: (leaseId, o) => this.#revoke(leaseId, o),
      },
      grantedAt === undefined ? { clock: this.#clock } : { clock: this.#clock, grantedAt },
    );
    const tracked: TrackedLease = { keeper, timer: undefined };
    this.#leases.set(id, tracked);
    void keeper.ended.then((reason) => {
      if (tracked.timer !== undefined) this.#clock.clearTimeout(tracked.timer);
      tracked.timer = undefined;
      if (this.#leases.get(id) === tracked) this.#leases.delete(id);
      if (reason === 'expired') this.#logger.info({ lease: id }, 'etcd lease expired');
    });
    this.#checkExpiryIn(tracked, ttlMs + EXPIRY_SLACK_MS);
    return keeper;
  }

  /**
   * Arms the expiry check of a lease: if nobody renews it within its TTL, ask etcd whether it
   * is gone, so that `lease.ended` resolves as it does on every backend.
   */
  #checkExpiryIn(tracked: TrackedLease, ms: number): void {
    if (tracked.timer !== undefined) this.#clock.clearTimeout(tracked.timer);
    // A check that comes early only asks etcd again; one past a timer's range would fire at once.
    tracked.timer = this.#clock.setTimeout(
      () => {
        tracked.timer = undefined;
        void this.#checkExpiry(tracked);
      },
      Math.min(ms, MAX_TIMER_MS),
    );
  }

  async #checkExpiry(tracked: TrackedLease): Promise<void> {
    const { keeper } = tracked;
    // Settled elsewhere meanwhile: closed, ended, or renewed (which re-arms the timer).
    const moot = (): boolean =>
      this.#closed || keeper.state === 'ended' || tracked.timer !== undefined;
    if (moot()) return;
    try {
      const res = await this.#client.leaseClient.leaseTimeToLive(
        { ID: keeper.id },
        this.#deadline(),
      );
      if (moot()) return;
      const ttl = Number(res.TTL);
      if (ttl <= 0) keeper.end('expired');
      else this.#checkExpiryIn(tracked, ttl * 1000 + EXPIRY_SLACK_MS);
    } catch (err) {
      if (moot()) return;
      if (isLeaseNotFound(err)) keeper.end('expired');
      else this.#checkExpiryIn(tracked, EXPIRY_RETRY_MS);
    }
  }

  /** Renews a lease once, over etcd's keep-alive stream. */
  async #renew(id: string, options?: CallOptions): Promise<void> {
    if (this.#closed) throw closedError();
    throwIfAborted(options);
    const context = { what: `renewal of lease ${id}`, lease: id };
    try {
      const stream = await this.#client.leaseClient.leaseKeepAlive(this.#deadline());
      const ttl = await withSignal(
        new Promise<number>((resolve, reject) => {
          stream.on('data', (res) => {
            if (String(res.ID) === id) resolve(Number(res.TTL));
          });
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('etcd ended the keep-alive stream')));
          stream.write({ ID: id });
        }).finally(() => {
          // Half-close: etcd ends the stream; a cancel would count as a host failure.
          try {
            stream.end();
          } catch {
            // Already closed.
          }
        }),
        options?.signal,
      );
      if (ttl <= 0) throw leaseNotFoundError(id, { what: context.what });
      const tracked = this.#leases.get(id);
      if (tracked !== undefined) this.#checkExpiryIn(tracked, ttl * 1000 + EXPIRY_SLACK_MS);
    } catch (err) {
      if (this.#closed) throw closedError();
      if (options?.signal?.aborted === true) throw options.signal.reason;
      throw toStoreError(err, context);
    }
  }

  /** Revokes a lease; a lease etcd does not know is already gone. */
  async #revoke(id: string, options?: CallOptions): Promise<void> {
    await this.#call(
      options,
      'write',
      () => ({ what: `revoke of lease ${id}`, lease: id }),
      async (o) => {
        try {
          await this.#client.leaseClient.leaseRevoke({ ID: id }, o);
        } catch (err) {
          if (!isLeaseNotFound(err)) throw err;
        }
      },
    );
  }
}

/** Rejects with the signal's reason as soon as it aborts (the etcd call itself goes on). */
function withSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}
