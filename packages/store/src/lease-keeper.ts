import { type Clock, systemClock } from '@flotilla/core';
import { closedError, leaseNotFoundError, StoreError, StoreErrorCodes } from './errors.js';
import type { CallOptions, Lease, LeaseEndReason, LeaseId } from './store.js';
import { throwIfAborted } from './validate.js';

/** What a backend provides to a {@link LeaseKeeper}. */
export interface LeaseBackend {
  /** Renews the lease once; rejects `FLOTILLA_STORE_LEASE_NOT_FOUND` when it is gone. */
  renew(id: LeaseId, options?: CallOptions): Promise<void>;
  /** Revokes the lease and deletes its keys. Resolves also when it is already gone. */
  revoke(id: LeaseId, options?: CallOptions): Promise<void>;
}

/**
 * The {@link Lease} every backend hands out: keep-alive loop on an injectable clock, idempotent
 * revoke, and the `ended` promise. The backend calls {@link LeaseKeeper.end} when it learns the
 * lease is gone (expired, revoked elsewhere, store closed).
 *
 * Once ended, `renew` and `keepAlive` reject with `FLOTILLA_STORE_CLOSED` if the store closed,
 * else `FLOTILLA_STORE_LEASE_NOT_FOUND`; `revoke` resolves if the lease expired or was revoked
 * (its keys are gone) and rejects with `FLOTILLA_STORE_CLOSED` if the store closed (its keys
 * were not deleted: they go when the TTL runs out).
 */
export class LeaseKeeper implements Lease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  readonly ended: Promise<LeaseEndReason>;
  #state: 'active' | 'ended' = 'active';
  #endReason: LeaseEndReason | undefined;
  #resolveEnded!: (reason: LeaseEndReason) => void;
  #backend: LeaseBackend;
  #clock: Clock;
  #timer: unknown = undefined;
  #keeping = false;
  #retryMs: number;
  #deadline: number;

  constructor(
    id: LeaseId,
    ttlMs: number,
    backend: LeaseBackend,
    options: {
      clock?: Clock;
      retryMs?: number;
      /** Clock time the grant request was sent; the first deadline counts from it. */
      grantedAt?: number;
    } = {},
  ) {
    this.id = id;
    this.ttlMs = ttlMs;
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#retryMs = options.retryMs ?? Math.min(500, Math.max(50, ttlMs / 10));
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    this.#deadline = (options.grantedAt ?? this.#clock.now()) + ttlMs;
  }

  get deadline(): number {
    return this.#deadline;
  }

  async #renewOnce(options?: CallOptions): Promise<void> {
    const sent = this.#clock.now();
    await this.#backend.renew(this.id, options);
    this.#deadline = Math.max(this.#deadline, sent + this.ttlMs);
  }

  get state(): 'active' | 'ended' {
    return this.#state;
  }

  /** Called by the backend: the lease is gone. Idempotent. */
  end(reason: LeaseEndReason): void {
    if (this.#state === 'ended') return;
    this.#state = 'ended';
    this.#endReason = reason;
    this.#keeping = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#resolveEnded(reason);
  }

  async renew(options?: CallOptions): Promise<void> {
    throwIfAborted(options);
    if (this.#state === 'ended') throw this.#endedError();
    try {
      await this.#renewOnce(options);
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCodes.LEASE_NOT_FOUND)
        this.end('expired');
      else if (err instanceof StoreError && err.code === StoreErrorCodes.CLOSED) this.end('closed');
      throw err;
    }
  }

  async keepAlive(options?: CallOptions): Promise<void> {
    if (this.#state === 'ended') throw this.#endedError();
    await this.renew(options);
    if (this.#keeping || this.state === 'ended') return;
    this.#keeping = true;
    this.#schedule(this.ttlMs / 3);
  }

  #schedule(ms: number): void {
    if (!this.#keeping) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#renewOnce().then(
        () => this.#schedule(this.ttlMs / 3),
        (err: unknown) => {
          if (err instanceof StoreError && err.code === StoreErrorCodes.LEASE_NOT_FOUND)
            this.end('expired');
          else if (err instanceof StoreError && err.code === StoreErrorCodes.CLOSED)
            this.end('closed');
          else this.#schedule(this.#retryMs);
        },
      );
    }, ms);
  }

  release(): void {
    this.#keeping = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async revoke(options?: CallOptions): Promise<void> {
    if (this.#state === 'ended') {
      if (this.#endReason === 'closed') throw this.#endedError();
      return;
    }
    this.release();
    await this.#backend.revoke(this.id, options);
    this.end('revoked');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.revoke();
    } catch (err) {
      if (!(err instanceof StoreError && err.code === StoreErrorCodes.CLOSED)) throw err;
    }
  }

  /** Why a call on an ended lease fails: its store closed, or the lease itself is gone. */
  #endedError(): StoreError {
    return this.#endReason === 'closed' ? closedError() : leaseNotFoundError(this.id);
  }
}
