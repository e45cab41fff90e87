import { type Clock, type Logger, retry } from '@flotilla/core';
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
  Txn,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from '@flotilla/store';

/**
 * A `Store` that retries calls failing with a retryable error (etcd unreachable, frozen,
 * restarting) with backoff, for up to `budgetMs`, so that a deploy or a build rides out a short
 * outage of the store instead of stopping half-way. What the controller writes tolerates a
 * repeat whose first answer was lost: compare-and-set loops read again, puts of the same value
 * and deletes are idempotent, and a lock taken by a lost answer is recognised as its own.
 * Watches are `listAndWatch`'s to resume; they pass through.
 */
export class RetryingStore implements Store {
  constructor(
    readonly inner: Store,
    readonly clock: Clock,
    readonly logger: Logger,
    readonly budgetMs = 30_000,
  ) {}

  get limits(): Store['limits'] {
    return this.inner.limits;
  }

  #retry<T>(what: string, call: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return retry(call, {
      clock: this.clock,
      ...(signal === undefined ? {} : { signal }),
      maxMs: 2000,
      budgetMs: this.budgetMs,
      onRetry: (err, delayMs) =>
        this.logger.warn({ err, what, delayMs }, 'store unreachable: retrying'),
    });
  }

  get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    return this.#retry('get', () => this.inner.get(key, options), options?.signal);
  }
  list(prefix: string, options?: ListOptions): Promise<ListResult> {
    return this.#retry('list', () => this.inner.list(prefix, options), options?.signal);
  }
  put(key: string, value: string, options?: PutOptions): Promise<PutResult> {
    return this.#retry('put', () => this.inner.put(key, value, options), options?.signal);
  }
  delete(key: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#retry('delete', () => this.inner.delete(key, options), options?.signal);
  }
  deletePrefix(prefix: string, options?: CallOptions): Promise<DeleteResult> {
    return this.#retry(
      'deletePrefix',
      () => this.inner.deletePrefix(prefix, options),
      options?.signal,
    );
  }
  txn(txn: Txn, options?: CallOptions): Promise<TxnResult> {
    return this.#retry('txn', () => this.inner.txn(txn, options), options?.signal);
  }
  grant(ttlMs: number, options?: CallOptions): Promise<Lease> {
    return this.#retry('grant', () => this.inner.grant(ttlMs, options), options?.signal);
  }
  watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
    return this.inner.watch(prefix, options);
  }
  revision(options?: CallOptions): Promise<number> {
    return this.#retry('revision', () => this.inner.revision(options), options?.signal);
  }
  compact(revision: number, options?: CallOptions): Promise<void> {
    return this.inner.compact(revision, options);
  }
  /** Does not close the inner store (the controller does not own it). */
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
