import { EventEmitter } from 'eventemitter3';
import { type Clock, type Logger, isFlotillaError, sleep } from '@flotilla/core';
import type { Lease, Store } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from './errors.js';
import type { ServiceInstance } from './instance.js';
import { validateAddr, validateMeta } from './internal/validate.js';

/** Events of a {@link Registration}. */
export interface RegistrationEvents {
  /** The lease was lost (expired while the store was unreachable, or wiped); re-registering. */
  lost: (reason: string) => void;
  /** Registered again under a new lease after a loss. */
  restored: (instance: ServiceInstance) => void;
  /** A re-registration attempt failed; it will be retried. */
  error: (err: unknown) => void;
}

/** What {@link Registration.update} may change. */
export interface RegistrationUpdate {
  readonly addr?: string;
  readonly meta?: Readonly<Record<string, string>>;
  readonly ready?: boolean;
}

/** @internal */
export interface RegistrationContext {
  readonly store: Store;
  readonly key: string;
  readonly ttlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly onClose: () => void;
}

/**
 * A live registration of one instance, kept alive by its lease's heartbeats until
 * {@link close}. If the lease is lost (the store was unreachable past the TTL, or etcd lost its
 * data), the registration re-registers itself under a new lease and emits `lost` then
 * `restored`.
 *
 * Created by `Discovery.register()`.
 */
export class Registration extends EventEmitter<RegistrationEvents> implements AsyncDisposable {
  #ctx: RegistrationContext;
  #lease: Lease;
  #instance: ServiceInstance;
  #state: 'registered' | 'recovering' | 'closed' = 'registered';
  #writes: Promise<void> = Promise.resolve();
  #recovery: Promise<void> | undefined;
  /** Made only when recovering: an AbortController per registration costs more than all the rest. */
  #stop: AbortController | undefined;

  /** @internal */
  constructor(ctx: RegistrationContext, lease: Lease, instance: ServiceInstance) {
    super();
    this.#ctx = ctx;
    this.#lease = lease;
    this.#instance = instance;
    this.#watchLease(lease);
  }

  /** The instance id. */
  get id(): string {
    return this.#instance.id;
  }

  /** The instance as last written. */
  get instance(): ServiceInstance {
    return this.#instance;
  }

  /** `registered`, `recovering` (lease lost, re-registering) or `closed`. */
  get state(): 'registered' | 'recovering' | 'closed' {
    return this.#state;
  }

  /** Marks the instance ready (routers send it traffic) or not ready. */
  setReady(ready: boolean): Promise<void> {
    return this.update({ ready });
  }

  /** Changes the address, meta or readiness; watchers see one `update` event. */
  update(change: RegistrationUpdate): Promise<void> {
    this.#throwIfClosed();
    if (change.addr !== undefined) validateAddr(change.addr);
    if (change.meta !== undefined) validateMeta(change.meta);
    if (change.ready !== undefined && typeof change.ready !== 'boolean') {
      throw new DiscoveryError(DiscoveryErrorCodes.INVALID_META, 'ready must be a boolean');
    }
    this.#instance = {
      ...this.#instance,
      ...(change.addr === undefined ? {} : { addr: change.addr }),
      ...(change.meta === undefined ? {} : { meta: { ...change.meta } }),
      ...(change.ready === undefined ? {} : { ready: change.ready }),
    };
    const snapshot = this.#instance;
    return this.#serial(async () => {
      if (this.#state === 'closed') return;
      if (this.#state === 'recovering') return; // recovery writes the latest instance
      try {
        await this.#ctx.store.put(this.#ctx.key, JSON.stringify(snapshot), {
          lease: this.#lease.id,
        });
      } catch (err) {
        if (!isFlotillaError(err, 'FLOTILLA_STORE_LEASE_NOT_FOUND')) throw err;
        this.#lost('lease not found on update');
        await this.#recovery;
      }
    });
  }

  /** Deregisters now: watchers see `down` at once. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stop?.abort();
    this.#ctx.onClose();
    await this.#writes.catch(() => undefined);
    try {
      await this.#lease.revoke();
    } catch (err) {
      // The store is gone or unreachable: the key ends with its TTL anyway.
      if (!isFlotillaError(err) || !(err.retryable || err.code === 'FLOTILLA_STORE_CLOSED'))
        throw err;
      this.#ctx.logger.warn({ err, key: this.#ctx.key }, 'deregistration left to the TTL');
    }
    this.removeAllListeners();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#writes.then(fn, fn);
    this.#writes = next.catch(() => undefined);
    return next;
  }

  #throwIfClosed(): void {
    if (this.#state === 'closed') {
      throw new DiscoveryError(
        DiscoveryErrorCodes.CLOSED,
        `registration ${this.id} is closed: register again`,
        {
          instanceId: this.id,
        },
      );
    }
  }

  #watchLease(lease: Lease): void {
    void lease.ended.then((reason) => {
      if (this.#state === 'closed' || lease !== this.#lease) return;
      if (reason === 'closed') {
        this.#state = 'closed';
        this.#ctx.onClose();
        return;
      }
      this.#lost(`lease ${reason}`);
    });
  }

  #lost(reason: string): void {
    if (this.#state !== 'registered') return;
    this.#state = 'recovering';
    this.#ctx.logger.warn({ key: this.#ctx.key, reason }, 'registration lost, re-registering');
    this.emit('lost', reason);
    this.#recovery = this.#recover();
  }

  async #recover(): Promise<void> {
    let delay = 100;
    while (this.#state === 'recovering') {
      let granted: Lease | undefined;
      try {
        const lease = await this.#ctx.store.grant(this.#ctx.ttlMs);
        granted = lease;
        if (this.#state !== 'recovering') {
          await lease.revoke().catch(() => undefined);
          return;
        }
        const written = this.#instance;
        await this.#ctx.store.put(this.#ctx.key, JSON.stringify(written), { lease: lease.id });
        await lease.keepAlive();
        this.#lease = lease;
        this.#state = 'registered';
        this.#watchLease(lease);
        // An update made while we were recovering was not written: write it now.
        if (this.#instance !== written) {
          void this.update({}).catch((err: unknown) => this.emit('error', err));
        }
        this.emit('restored', this.#instance);
        return;
      } catch (err) {
        if (isFlotillaError(err, 'FLOTILLA_STORE_CLOSED')) {
          this.#state = 'closed';
          return;
        }
        this.emit('error', err);
        await granted?.revoke().catch(() => undefined);
        this.#stop ??= new AbortController();
        await sleep(this.#ctx.clock, delay, this.#stop.signal);
        delay = Math.min(delay * 2, Math.max(1000, this.#ctx.ttlMs / 2));
      }
    }
  }
}
