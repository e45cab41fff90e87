import { EventEmitter } from 'eventemitter3';
import type { Logger } from '@flotilla/core';
import { DiscoveryError, DiscoveryErrorCodes } from '../errors.js';

type Listener = (...args: unknown[]) => unknown;

/**
 * An eventemitter3 emitter whose listeners cannot break the state machine that emits: each
 * listener runs on its own, and one that throws neither stops the listeners after it nor
 * propagates into the emitter's code. Its error is logged, and reported as an `error` event
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
        fn.apply(this, args);
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
