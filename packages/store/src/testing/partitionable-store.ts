import { type Clock, systemClock } from '@flotilla/core';
import { LeaseKeeper } from '../lease-keeper.js';
import { closedError, StoreError, StoreErrorCodes } from '../errors.js';
import type {
  CallOptions,
  DeleteResult,
  KeyValue,
  Lease,
  ListOptions,
  ListResult,
  PutOptions,
  PutResult,
  Store,
  StoreLimits,
  Txn,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from '../store.js';

/**
 * A view of a store that can be cut off, as a process behind a network partition is: while
 * {@link partitioned}, every call (lease renewals included) fails with the retryable
 * `FLOTILLA_STORE_UNAVAILABLE`, and the real store goes on expiring this view's leases.
 * For testing what heartbeats, registrations and elections do when a participant goes silent.
 * Several views of one store act as several processes.
 *
 * @example
 * ```ts
 * const shared = new MemoryStore({ clock });
 * const a = new PartitionableStore(shared, { clock });
 * a.partitioned = true;       // a's leases stop renewing; after their TTL, a's keys vanish
 * await clock.advance(2000);
 * a.partitioned = false;      // a's next renewal finds its lease gone
 * ```
 */
export class PartitionableStore implements Store {
  readonly #inner: Store;
  #partitioned = false;
  /** Aborted when the view is cut off: ends the watches open through it. */
  #cut = new AbortController();
  readonly #clock: Clock;
  #closed = false;

  constructor(inner: Store, options: { clock?: Clock } = {}) {
    this.#inner = inner;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Whether calls fail as if the store were unreachable. Setting it also breaks the watches
   * open through this view, as a lost connection does: they throw `FLOTILLA_STORE_UNAVAILABLE`.
   */
  get partitioned(): boolean {
    return this.#partitioned;
  }

  set partitioned(value: boolean) {
    this.#partitioned = value;
    if (value) {
      this.#cut.abort();
      this.#cut = new AbortController();
    }
  }

  get limits(): StoreLimits {
    return this.#inner.limits;
  }

  #check(): void {
    if (this.#closed) throw closedError();
    if (this.#partitioned) throw this.#unavailable();
  }

  #unavailable(): StoreError {
    return new StoreError(
      StoreErrorCodes.UNAVAILABLE,
      'store unreachable (partitioned for a test)',
    );
  }

  async get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    this.#check();
    return this.#inner.get(key, options);
  }

  async list(prefix: string, options?: ListOptions): Promise<ListResult> {
    this.#check();
    return this.#inner.list(prefix, options);
  }

  async put(key: string, value: string, options?: PutOptions): Promise<PutResult> {
    this.#check();
    return this.#inner.put(key, value, options);
  }

  async delete(key: string, options?: CallOptions): Promise<DeleteResult> {
    this.#check();
    return this.#inner.delete(key, options);
  }

  async deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult> {
    this.#check();
    return this.#inner.deletePrefix(prefix, options);
  }

  async txn(txn: Txn, options?: CallOptions): Promise<TxnResult> {
    this.#check();
    return this.#inner.txn(txn, options);
  }

  async grant(ttlMs: number, options?: CallOptions): Promise<Lease> {
    this.#check();
    const inner = await this.#inner.grant(ttlMs, options);
    return new LeaseKeeper(
      inner.id,
      inner.ttlMs,
      {
        renew: async (_id, o) => {
          this.#check();
          await inner.renew(o);
        },
        revoke: async (_id, o) => {
          this.#check();
          await inner.revoke(o);
        },
      },
      { clock: this.#clock },
    );
  }

  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    this.#check();
    const inner = this.#inner;
    const cut = this.#cut.signal;
    const unavailable = (): StoreError => this.#unavailable();
    return (async function* () {
      const stop = new AbortController();
      const onAbort = (): void => stop.abort();
      cut.addEventListener('abort', onAbort, { once: true });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted === true) stop.abort();
      try {
        yield* inner.watch(prefix, { ...options, signal: stop.signal });
        if (cut.aborted && options.signal?.aborted !== true) throw unavailable();
      } finally {
        cut.removeEventListener('abort', onAbort);
        options.signal?.removeEventListener('abort', onAbort);
      }
    })();
  }

  async revision(options?: CallOptions): Promise<number> {
    this.#check();
    return this.#inner.revision(options);
  }

  async compact(revision: number, options?: CallOptions): Promise<void> {
    this.#check();
    await this.#inner.compact(revision, options);
  }

  /** Closes this view only; the inner store stays open. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
