import { listAndWatch, type Store } from '@flotilla/store';
import type { Clock } from '@flotilla/core';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { ControllerKeys } from './keys.js';
import type { Liveness } from './liveness.js';
import { decode, parseLock } from './records.js';

/** A held app lock; release it when done. */
export interface HeldLock {
  release(): Promise<void>;
}

/**
 * One deploy (or scale, restart, destroy) per app at a time: `locks/<app>` created only if
 * absent and attached to the holder's liveness lease, so that a crashed holder frees it when
 * its lease ends. A second caller waits for the key to go, or is refused.
 */
export class AppLocks {
  constructor(
    readonly store: Store,
    readonly keys: ControllerKeys,
    readonly liveness: Liveness,
    readonly clock: Clock,
  ) {}

  async acquire(
    app: string,
    op: string,
    options: { onBusy?: 'wait' | 'refuse'; signal?: AbortSignal } = {},
  ): Promise<HeldLock> {
    const key = this.keys.lock(app);
    const value = JSON.stringify({ owner: this.liveness.id, op, at: this.clock.now() });
    for (;;) {
      options.signal?.throwIfAborted();
      const lease = this.liveness.lease;
      const res = await this.store.txn({
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [{ op: 'put', key, value, lease: lease.id }],
        failure: [{ op: 'get', key }],
      });
      const got = res.results[0];
      const kv = got?.op === 'get' ? got.kv : undefined;
      // Our own value: a first attempt landed and its answer was lost (a retried txn).
      if (res.succeeded || kv?.value === value) {
        return {
          release: async () => {
            // Only ours: compare the value we wrote (a lock re-taken after our lease ended is not).
            await this.store.txn({
              compare: [{ key, target: 'value', op: '==', value }],
              success: [{ op: 'delete', key }],
            });
          },
        };
      }
      if (kv === undefined) continue;
      const holder = decode(kv, parseLock);
      if (options.onBusy === 'refuse')
        throw new ControllerError(
          ControllerErrorCodes.DEPLOY_IN_PROGRESS,
          `app ${app} is busy: a ${holder.op} started at ${new Date(holder.at).toISOString()} by controller ${holder.owner} is running; wait for it to finish`,
          { app, retryable: true },
        );
      await this.#gone(key, kv.modRevision, options.signal);
    }
  }

  /** Resolves when the key changed or went after `revision`. */
  async #gone(key: string, revision: number, signal?: AbortSignal): Promise<void> {
    const inner = new AbortController();
    const onAbort = (): void => inner.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const item of listAndWatch(this.store, key, {
        signal: inner.signal,
        clock: this.clock,
      })) {
        if (item.type === 'snapshot') {
          const kv = item.kvs.find((k) => k.key === key);
          if (kv === undefined || kv.modRevision !== revision) return;
        } else if (item.event.kv.key === key) return;
      }
      signal?.throwIfAborted();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      inner.abort();
    }
  }
}
