import { type Clock, isFlotillaError, sleep, systemClock } from '@flotilla/core';
import type { KeyValue, Store, WatchEvent } from './store.js';

/**
 * What {@link listAndWatch} yields: a full `snapshot` first, then every change as a `change`.
 * After the watch fell behind the store's compaction, a new `snapshot` with `reset: true`
 * replaces everything known so far: keys absent from it were deleted meanwhile.
 */
export type ListWatchItem =
  | {
      readonly type: 'snapshot';
      /** Every key under the prefix, sorted, read at `revision`. */
      readonly kvs: readonly KeyValue[];
      readonly revision: number;
      /** False for the first snapshot; true when it replaces a view the watch lost track of. */
      readonly reset: boolean;
    }
  | {
      readonly type: 'change';
      /** One change, in revision order, with nothing missed since the last snapshot. */
      readonly event: WatchEvent;
    };

/** Options of {@link listAndWatch}. */
export interface ListAndWatchOptions {
  /** Ends the iteration (it returns, without throwing). */
  readonly signal?: AbortSignal;
  /** Drives the retry backoff (default: the system clock). */
  readonly clock?: Clock;
  /** First delay after a retryable error, in ms (default 100); doubles up to `maxBackoffMs`. */
  readonly initialBackoffMs?: number;
  /** Longest delay between retries, in ms (default 5000). */
  readonly maxBackoffMs?: number;
  /**
   * Called for every retryable error before backing off `delayMs` (the store unreachable,
   * say). Non-retryable errors end the iteration by throwing instead.
   */
  readonly onRetry?: (error: unknown, delayMs: number) => void;
  /**
   * Passed to every watch it makes (`skipRevision` of {@link Store.watch}): changes of the revisions
   * it returns true for are not yielded. The snapshots are whole.
   */
  readonly skipRevision?: (revision: number) => boolean;
  /**
   * Passed to every watch as its `before` option: the changes of keys from
   * this one on are not yielded, though the snapshots still list them. For a caller that alone
   * writes those keys and applies its own writes (the Scheduler and job records, while it is
   * the only scheduler): it reads them once, then is not sent its own writes back.
   */
  readonly watchBefore?: string;
}

/**
 * The one loop every watcher of the cluster state needs: list a prefix, then watch it from
 * the list's revision + 1 so that nothing is missed or seen twice; when the store compacted
 * past the watch (a long disconnect), list again and yield the new snapshot as a reset; when
 * the store fails with a retryable error, back off on the clock and resume from the last
 * revision seen. A non-retryable error is thrown; an aborted `signal` ends it quietly.
 *
 * @example
 * ```ts
 * for await (const item of listAndWatch(store, 'cluster/hosts/', { signal })) {
 *   if (item.type === 'snapshot') hosts = new Map(item.kvs.map((kv) => [kv.key, kv]));
 *   else if (item.event.type === 'put') hosts.set(item.event.kv.key, item.event.kv);
 *   else hosts.delete(item.event.kv.key);
 * }
 * ```
 */
export async function* listAndWatch(
  store: Store,
  prefix: string,
  options: ListAndWatchOptions = {},
): AsyncGenerator<ListWatchItem> {
  const { signal } = options;
  const clock = options.clock ?? systemClock;
  const initial = options.initialBackoffMs ?? 100;
  const max = options.maxBackoffMs ?? 5000;
  let delay = initial;
  /** The revision of the last snapshot or change seen; undefined until the first list. */
  let revision: number | undefined;
  let reset = false;
  const aborted = (): boolean => signal?.aborted === true;

  const backoff = async (err: unknown): Promise<void> => {
    options.onRetry?.(err, delay);
    await sleep(clock, delay, signal);
    delay = Math.min(delay * 2, max);
  };

  while (!aborted()) {
    try {
      if (revision === undefined) {
        const listed = await store.list(prefix, signal === undefined ? {} : { signal });
        revision = listed.revision;
        delay = initial;
        yield { type: 'snapshot', kvs: listed.kvs, revision: listed.revision, reset };
        continue;
      }
      for await (const event of store.watch(prefix, {
        fromRevision: revision + 1,
        ...(signal === undefined ? {} : { signal }),
        ...(options.skipRevision === undefined ? {} : { skipRevision: options.skipRevision }),
        ...(options.watchBefore === undefined ? {} : { before: options.watchBefore }),
      })) {
        revision = event.revision;
        delay = initial;
        yield { type: 'change', event };
      }
      return; // the watch ended: the signal aborted
    } catch (err) {
      if (aborted()) return;
      if (isFlotillaError(err, 'FLOTILLA_STORE_COMPACTED')) {
        // We fell behind the store's history: only a fresh list tells what changed.
        revision = undefined;
        reset = true;
        continue;
      }
      if (isFlotillaError(err) && err.retryable) {
        await backoff(err);
        continue;
      }
      throw err;
    }
  }
}
