import { type Clock, type Logger, sleep } from '@flotilla/core';
import type { DrainTarget, DrainWait } from '../drain-wait.js';

/**
 * Waits for an instance to drain: `wait` bounded by `maxMs`, or without `wait` a fixed sleep of
 * `maxMs`. Never throws: a hook that fails or overruns is logged and the stop goes on, so a
 * missing router cannot hang a stop. Ends early when `signal` aborts (the agent closes).
 */
export async function drain(options: {
  readonly target: DrainTarget;
  readonly wait: DrainWait | undefined;
  readonly maxMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}): Promise<void> {
  const { target, wait, maxMs, clock, logger, signal } = options;
  if (wait === undefined) {
    await sleep(clock, maxMs, signal);
    return;
  }
  if (signal.aborted) return;
  const bound = new AbortController();
  const onAbort = (): void => bound.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let overran = false;
  const timer = clock.setTimeout(() => {
    overran = true;
    bound.abort(new Error(`drain of ${target.id} took longer than drainMs (${maxMs} ms)`));
  }, maxMs);
  const aborted = new Promise<void>((resolve) =>
    bound.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  try {
    // A hook that ignores its signal is not waited for past the bound.
    await Promise.race([Promise.resolve().then(() => wait(target, bound.signal)), aborted]);
  } catch (err) {
    if (!bound.signal.aborted)
      logger.warn({ err, jobId: target.id }, 'drain hook failed: stopping the job now');
  } finally {
    clock.clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    if (overran)
      logger.warn(
        { jobId: target.id, maxMs },
        'drain took longer than drainMs: stopping the job now',
      );
    if (!bound.signal.aborted) bound.abort(new Error('drained'));
  }
}
