import { type Clock, type Logger, retry } from '@flotilla/core';
import type { Lease, Store } from '@flotilla/store';
import type { ControllerKeys } from './keys.js';

/**
 * This controller's liveness: a lease with its `instances/<id>` key. Builds and deploys record
 * their owner's id; deploy locks hang on the lease. When the process dies the key goes with the
 * lease, and the reaper of any live controller fails what the dead one left running. A lease
 * lost while the process lives (a long partition) is granted again.
 */
export class Liveness {
  #lease: Lease | undefined;
  #closed = false;
  readonly #abort = new AbortController();

  constructor(
    readonly id: string,
    readonly store: Store,
    readonly keys: ControllerKeys,
    readonly ttlMs: number,
    readonly clock: Clock,
    readonly logger: Logger,
  ) {}

  /** The current lease (for locks). */
  get lease(): Lease {
    if (this.#lease === undefined) throw new Error('liveness not started');
    return this.#lease;
  }

  async start(signal?: AbortSignal): Promise<void> {
    await this.#grant(signal);
  }

  async #grant(signal?: AbortSignal): Promise<void> {
    const lease = await this.store.grant(this.ttlMs, signal === undefined ? {} : { signal });
    try {
      await this.store.put(
        this.keys.instance(this.id),
        JSON.stringify({ id: this.id, startedAt: this.clock.now() }),
        { lease: lease.id },
      );
      await lease.keepAlive();
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.#lease = lease;
    void lease.ended.then((reason) => {
      if (reason !== 'expired' || this.#closed) return;
      this.logger.warn({ id: this.id }, 'controller lease expired: registering again');
      void retry(() => this.#grant(), { clock: this.clock, signal: this.#abort.signal }).catch(
        () => undefined,
      );
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    await this.#lease?.revoke().catch(() => undefined);
  }
}
