import { type Clock, type Logger, isFlotillaError, isRetryable, retry } from '@flotilla/core';
import type { Discovery, RegisterOptions, Registration } from '@flotilla/discovery';

/** What a {@link Publication} registers, less its signal and readiness. */
export type PublicationInput = Omit<RegisterOptions, 'signal' | 'ready'>;

/**
 * One job's instance in discovery: registered on its first ready, its readiness set after that,
 * withdrawn when the job stops or ends. Changes are made one at a time, in order. A
 * registration that fails for a reason that passes (the store unreachable, or the id still held
 * by the instance of an agent that died and whose lease has not yet expired) is retried with
 * backoff until it succeeds or the publication is withdrawn; one refused for its input
 * (`FLOTILLA_DISCOVERY_INVALID_*`) is handed to `onError` and not retried.
 */
export class Publication {
  readonly #discovery: Discovery;
  readonly #input: PublicationInput;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #onError: (error: unknown) => void;
  /** Aborted by withdraw() or the agent's signal: ends every retry. */
  readonly #halt = new AbortController();
  readonly #signal: AbortSignal;
  readonly #unlink: () => void;
  #instance: Registration | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #withdrawn = false;

  constructor(options: {
    readonly discovery: Discovery;
    readonly input: PublicationInput;
    readonly clock: Clock;
    readonly logger: Logger;
    /** Ends every retry (the agent closing). */
    readonly signal: AbortSignal;
    /** A failure no retry will mend, or one being retried (for the agent's `error` event). */
    readonly onError: (error: unknown) => void;
  }) {
    this.#discovery = options.discovery;
    this.#input = options.input;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#onError = options.onError;
    // Linked by hand (AbortSignal.any needs Node 20.3), and unlinked on withdraw().
    const outer = options.signal;
    const onAbort = (): void => this.#halt.abort(outer.reason);
    if (outer.aborted) onAbort();
    else outer.addEventListener('abort', onAbort, { once: true });
    this.#unlink = () => outer.removeEventListener('abort', onAbort);
    this.#signal = this.#halt.signal;
  }

  /**
   * Sets the instance's readiness, registering it on the first `ready`. Resolves with whether
   * it is now published ready; never rejects.
   */
  set(ready: boolean): Promise<boolean> {
    const next = this.#chain.then(() => this.#set(ready));
    this.#chain = next;
    return next;
  }

  /**
   * Deregisters the instance, after whatever change is in flight; with `markUnready` (a stop),
   * marks it not ready first. Later `set` calls do nothing. Resolves with whether there was an
   * instance (routers may have sent it requests: a drain is due). Idempotent; never rejects.
   */
  async withdraw(options: { markUnready?: boolean } = {}): Promise<boolean> {
    this.#withdrawn = true;
    this.#halt.abort();
    this.#unlink();
    await this.#chain;
    const instance = this.#instance;
    this.#instance = undefined;
    if (instance === undefined) return false;
    if (options.markUnready === true) await instance.setReady(false).catch(() => undefined);
    await instance.close().catch(() => undefined);
    return true;
  }

  async #set(ready: boolean): Promise<boolean> {
    if (this.#withdrawn) return false;
    try {
      if (this.#instance === undefined) {
        if (!ready) return false;
        this.#instance = await retry(
          () => this.#discovery.register({ ...this.#input, ready: true, signal: this.#signal }),
          {
            clock: this.#clock,
            signal: this.#signal,
            initialMs: 100,
            maxMs: 2000,
            retryable: (err) =>
              isRetryable(err) || isFlotillaError(err, 'FLOTILLA_DISCOVERY_DUPLICATE_ID'),
            onRetry: (err, ms) => {
              this.#logger.warn(
                { err, instance: this.#input.id, retryInMs: ms },
                'instance cannot be registered yet: retrying',
              );
              this.#onError(err);
            },
          },
        );
        return !this.#withdrawn;
      }
      await this.#instance.setReady(ready);
      return ready;
    } catch (err) {
      if (!this.#signal.aborted) this.#onError(err);
      return false;
    }
  }
}
