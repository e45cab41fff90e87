import { compactedError, StoreError, StoreErrorCodes } from './errors.js';
import type { StoreLimits, WatchEvent } from './store.js';

/** Options of an {@link EventQueue}. */
export interface EventQueueOptions<T> {
  /** Ends the iteration when aborted. */
  readonly signal?: AbortSignal;
  /** Called once when the consumer stops (break, return, abort, end, fail). */
  readonly onClose?: () => void;
  /** Most events held unpulled; one more fails the queue at once (default: no limit). */
  readonly limit?: number;
  /** The error an overflow fails the queue with, given the event that did not fit. */
  readonly overflow?: (item: T, limit: number) => unknown;
}

/**
 * A queue turned into an `AsyncIterable`: a backend pushes events as they happen, the consumer
 * pulls them in order. Ends on `end()`, fails on `fail(err)`, and ends quietly when the signal
 * aborts. With a `limit`, a consumer that falls that far behind is failed at once (its queued
 * events dropped) instead of letting memory grow without bound: backends fail it as compacted,
 * so that `listAndWatch` lists again.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<T>) => void) | undefined;
  #rejecter: ((e: unknown) => void) | undefined;
  #done = false;
  #error: unknown = undefined;
  #onClose: (() => void) | undefined;
  /** The signal listened to, and the listener: removed when the queue ends. */
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  #iterating = false;
  readonly #limit: number;
  readonly #overflow: ((item: T, limit: number) => unknown) | undefined;

  /**
   * @param signal - ends the iteration when aborted (or the options, see {@link EventQueueOptions}).
   * @param onClose - called once when the consumer stops (break, return, abort, end, fail).
   */
  constructor(signal?: AbortSignal | EventQueueOptions<T>, onClose?: () => void) {
    const options: EventQueueOptions<T> =
      signal instanceof AbortSignal || signal === undefined
        ? {
            ...(signal === undefined ? {} : { signal }),
            ...(onClose === undefined ? {} : { onClose }),
          }
        : signal;
    this.#limit = options.limit ?? Number.POSITIVE_INFINITY;
    this.#overflow = options.overflow;
    this.#init(options.signal, options.onClose);
  }

  #init(signal: AbortSignal | undefined, onClose: (() => void) | undefined): void {
    if (signal?.aborted === true) {
      // Ended before anyone could register it: nothing to release.
      this.#done = true;
      return;
    }
    this.#onClose = onClose;
    if (signal === undefined) return;
    this.#signal = signal;
    this.#onAbort = () => this.end();
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Whether the queue still accepts events. */
  get open(): boolean {
    return !this.#done;
  }

  /** Number of events waiting to be pulled. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    if (this.#done) return;
    if (this.#waiter !== undefined) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      w({ value: item, done: false });
      return;
    }
    if (this.size >= this.#limit) {
      // The consumer fell too far behind: drop what it has not read and fail it now.
      this.#items = [];
      this.#head = 0;
      this.fail(
        this.#overflow?.(item, this.#limit) ??
          new StoreError(
            StoreErrorCodes.COMPACTED,
            `the watch fell ${this.#limit} events behind: list again`,
          ),
      );
      return;
    }
    this.#items.push(item);
  }

  /** Ends the iteration after the queued events are pulled. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
    if (this.#waiter !== undefined) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      w({ value: undefined, done: true });
    }
  }

  /** Fails the iteration with `error` after the queued events are pulled. */
  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    this.#release();
    if (this.#rejecter !== undefined) {
      const r = this.#rejecter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      r(error);
    }
  }

  #release(): void {
    // A long-lived signal (a service's close signal) passed to one watch after another kept a
    // listener, and through it the ended queue, for each.
    if (this.#signal !== undefined && this.#onAbort !== undefined)
      this.#signal.removeEventListener('abort', this.#onAbort);
    this.#signal = undefined;
    this.#onAbort = undefined;
    const cb = this.#onClose;
    this.#onClose = undefined;
    cb?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        'a watch can be iterated only once: call watch() again',
      );
    }
    this.#iterating = true;
    return {
      next: () => {
        if (this.#head < this.#items.length) {
          const value = this.#items[this.#head++] as T;
          if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
            this.#items = this.#items.slice(this.#head);
            this.#head = 0;
          }
          return Promise.resolve({ value, done: false });
        }
        if (this.#done) {
          if (this.#error !== undefined) {
            const e = this.#error;
            this.#error = undefined;
            return Promise.reject(e);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiter = resolve;
          this.#rejecter = reject;
        });
      },
      return: () => {
        this.#error = undefined;
        this.end();
        this.#items = [];
        this.#head = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * The `skipRevision` option of a watch as a backend calls it where changes arrive: undefined
 * when there is none; otherwise a predicate that, when the caller's throws, fails `queue` with
 * that error and skips everything from then on (the watch is over).
 *
 * @throws StoreError `FLOTILLA_STORE_INVALID_ARGUMENT` when the option is not a function.
 */
export function revisionSkipper(
  skip: unknown,
  queue: EventQueue<WatchEvent>,
): ((revision: number) => boolean) | undefined {
  if (skip === undefined) return undefined;
  if (typeof skip !== 'function') {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `skipRevision must be a function of a revision, got ${skip === null ? 'null' : typeof skip}`,
    );
  }
  const predicate = skip as (revision: number) => unknown;
  let failed = false;
  return (revision) => {
    if (failed) return true;
    try {
      return predicate(revision) === true;
    } catch (err) {
      failed = true;
      queue.fail(err);
      return true;
    }
  };
}

/**
 * The queue of one watch, as every backend makes it: bounded by `limits.maxWatchBacklog`, and
 * failed as `FLOTILLA_STORE_COMPACTED` when its consumer falls that far behind, so that a
 * consumer that stopped reading cannot grow the store's memory without bound.
 */
export function watchQueue(
  limits: StoreLimits,
  signal?: AbortSignal,
  onClose?: () => void,
): EventQueue<WatchEvent> {
  return new EventQueue<WatchEvent>({
    ...(signal === undefined ? {} : { signal }),
    ...(onClose === undefined ? {} : { onClose }),
    limit: limits.maxWatchBacklog,
    overflow: (event, limit) =>
      compactedError(
        undefined,
        event.revision,
        `the watch fell ${limit} events behind its consumer at revision ${event.revision}`,
      ),
  });
}
