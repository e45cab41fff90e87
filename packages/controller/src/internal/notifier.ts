import type { Clock } from '@flotilla/core';

/** Wakes waiters when something they watch changed. */
export class Notifier {
  #waiters = new Set<() => void>();

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const w of waiters) w();
  }

  /** Resolves at the next {@link notify}. */
  next(): { promise: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => (wake = resolve));
    this.#waiters.add(wake);
    return { promise, cancel: () => this.#waiters.delete(wake) };
  }
}

/** What {@link waitUntil} resolves with when it gave up. */
export type WaitEnd = { readonly timedOut: true } | { readonly aborted: true };

/**
 * Evaluates `check` now and after every notification, until it returns a value (resolved with
 * it), the timeout passes or `signal` aborts (resolved with a {@link WaitEnd}).
 */
export async function waitUntil<T>(
  notifier: Notifier,
  check: () => T | undefined,
  options: { timeoutMs: number; clock: Clock; signal?: AbortSignal | undefined },
): Promise<{ value: T } | WaitEnd> {
  let timedOut = false;
  const timeout = new Notifier();
  const handle = options.clock.setTimeout(() => {
    timedOut = true;
    timeout.notify();
  }, options.timeoutMs);
  const onAbort = (): void => timeout.notify();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      // Subscribe before checking: a change between the check and the wait is not missed.
      const next = notifier.next();
      const stop = timeout.next();
      const value = check();
      if (value !== undefined) {
        next.cancel();
        stop.cancel();
        return { value };
      }
      if (options.signal?.aborted === true) return { aborted: true };
      if (timedOut) return { timedOut: true };
      await Promise.race([next.promise, stop.promise]);
      next.cancel();
      stop.cancel();
    }
  } finally {
    options.clock.clearTimeout(handle);
    options.signal?.removeEventListener('abort', onAbort);
  }
}
