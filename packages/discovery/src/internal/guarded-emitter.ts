import { EventEmitter } from 'eventemitter3';
import type { Logger } from '@flotilla/core';
import { DiscoveryError, DiscoveryErrorCodes } from '../errors.js';

type Listener = (...args: unknown[]) => unknown;

/**
 * An eventemitter3 emitter whose listeners cannot break the state machine that emits: each
 * listener runs on its own, and one that throws (or an async one that rejects) neither stops the
 * listeners after it nor propagates into the emitter's code. Its error is logged, and reported as an `error` event
 * with code `FLOTILLA_DISCOVERY_LISTENER_FAILED` (the thrown value as `cause`); an `error`
 * listener that throws is only logged. Listeners are called with the emitter as `this`.
 *
 * @internal
 */
export class GuardedEmitter<
  Events extends { error: (err: unknown) => void },
> extends EventEmitter<Events> {
  readonly #logger: Logger;

  /** @param logger - where listener failures are logged. */
  constructor(logger: Logger) {
    super();
    this.#logger = logger;
  }

  override emit<T extends EventEmitter.EventNames<Events>>(
    event: T,
    ...args: EventEmitter.EventArgs<Events, T>
  ): boolean {
    const listeners = this.listeners(event) as Listener[];
    if (listeners.length === 0) return false;
    for (const fn of listeners) {
      // A `once` listener goes before it runs, as eventemitter3's own emit does.
      this.removeListener(event, fn as never, undefined, true);
      try {
        const result = fn.apply(this, args);
        // An async listener: its rejection is the same failure, later (not an unhandled one).
        if (isThenable(result)) {
          result.then(undefined, (err: unknown) => this.#listenerFailed(String(event), err));
        }
      } catch (err) {
        this.#listenerFailed(String(event), err);
      }
    }
    return true;
  }

  #listenerFailed(event: string, err: unknown): void {
    this.#logger.error({ err, event }, `a ${event} listener threw`);
    if (event === 'error') return;
    const error = new DiscoveryError(
      DiscoveryErrorCodes.LISTENER_FAILED,
      `a listener of the ${event} event threw: fix the listener (the error is the cause)`,
      { cause: err },
    );
    (this as GuardedEmitter<{ error: (err: unknown) => void }>).emit('error', error);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
