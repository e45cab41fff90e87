import { type Clock, sleep, systemClock } from './clock.js';
import { isFlotillaError } from './errors.js';

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Drives the delays (default: the system clock). */
  readonly clock?: Clock;
  /** Stops retrying: the pending delay ends and `retry` rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** First delay after a failure, ms (default 100); doubles up to `maxMs`. */
  readonly initialMs?: number;
  /** Longest delay, ms (default 5000). */
  readonly maxMs?: number;
  /**
   * Whether an error is worth another attempt (default: a Flotilla error marked `retryable`).
   * Any other error is thrown at once.
   */
  readonly retryable?: (error: unknown) => boolean;
  /** Called before each delay with the error and the delay, to log it. */
  readonly onRetry?: (error: unknown, delayMs: number) => void;
  /**
   * The longest time to keep trying, ms from the first attempt (on the clock; default: no
   * limit). The last delay is cut to end at it; an attempt that fails after it throws its
   * error, as a not-retryable one does.
   */
  readonly budgetMs?: number;
}

/** The default of {@link RetryOptions.retryable}: a Flotilla error marked retryable. */
export function isRetryable(error: unknown): boolean {
  return isFlotillaError(error) && error.retryable;
}

/**
 * Calls `attempt` until it succeeds, waiting on the clock between failures (100 ms doubling to
 * 5 s by default): the one retry loop every package uses. Throws an error that is not
 * retryable at once. Once the signal aborts, a pending delay ends and `retry` rejects with the
 * signal's reason; an attempt in flight is awaited first (pass it the signal to cut it short),
 * and its result is still returned if it succeeds.
 *
 * @example
 * ```ts
 * const kv = await retry(() => store.get(key, { signal }), { clock, signal,
 *   onRetry: (err, ms) => log.warn({ err, ms }, 'store unreachable: retrying') });
 * ```
 */
export async function retry<T>(attempt: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { signal } = options;
  const clock = options.clock ?? systemClock;
  const retryable = options.retryable ?? isRetryable;
  const max = options.maxMs ?? 5000;
  const deadline = options.budgetMs === undefined ? Infinity : clock.now() + options.budgetMs;
  let delay = options.initialMs ?? 100;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await attempt();
    } catch (err) {
      signal?.throwIfAborted();
      const left = deadline - clock.now();
      if (!retryable(err) || left <= 0) throw err;
      const wait = Math.min(delay, left);
      options.onRetry?.(err, wait);
      await sleep(clock, wait, signal);
      delay = Math.min(delay * 2, max);
    }
  }
}
