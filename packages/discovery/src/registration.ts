import { type Clock, type Logger, isFlotillaError, retry } from '@flotilla/core';
import type { Lease, Store } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from './errors.js';
import type { ServiceInstance } from './instance.js';
import { claimInstance } from './internal/claim.js';
import { GuardedEmitter } from './internal/guarded-emitter.js';
import { validateAddr, validateMeta, validateReady } from './internal/validate.js';

/** Events of a {@link Registration}. */
export interface RegistrationEvents {
  /** The lease was lost (expired while the store was unreachable, or wiped); re-registering. */
  lost: (reason: string) => void;
  /** Registered again under a new lease after a loss. */
  restored: (instance: ServiceInstance) => void;
  /**
   * A re-registration attempt failed (it will be retried; `FLOTILLA_DISCOVERY_DUPLICATE_ID`
   * when another registrant took the id while it was free), or a listener of this registration
   * threw or rejected (`FLOTILLA_DISCOVERY_LISTENER_FAILED`, the thrown value as `cause`: the
   * registration carries on as if the listener had returned).
   */
  error: (err: unknown) => void;
}

/** What {@link Registration.update} may change. */
export interface RegistrationUpdate {
  /** A new `host:port`. */
  readonly addr?: string;
  /** New labels: they replace the old ones as a whole. */
  readonly meta?: Readonly<Record<string, string>>;
  /** Whether the instance takes traffic. */
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
 * `restored`. A listener that throws is reported as an `error` event and changes nothing else.
 *
 * Created by `Discovery.register()`.
 */
export class Registration extends GuardedEmitter<RegistrationEvents> implements AsyncDisposable {
  #ctx: RegistrationContext;
  #lease: Lease;
  #instance: ServiceInstance;
  #state: 'registered' | 'recovering' | 'closed' = 'registered';
  #writes: Promise<void> = Promise.resolve();
  /** The close in progress or done, shared by every close() call. */
  #closed: Promise<void> | undefined;
  /** The re-registration in progress, if any; it never rejects. */
  #recovery: Promise<void> | undefined;
  /**
   * Aborts a recovery's store calls and backoff on close. Made only when recovering: an
   * AbortController per registration costs more than all the rest.
   */
  #stop: AbortController | undefined;

  /** @internal */
  constructor(ctx: RegistrationContext, lease: Lease, instance: ServiceInstance) {
    super(ctx.logger);
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
    if (change.ready !== undefined) validateReady(change.ready);
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

  /**
   * Deregisters now: watchers see `down` at once. Idempotent. Close always wins over a
   * re-registration in progress: it is stopped, any lease it granted is revoked (so a re-put
   * still on the wire is refused by the store, or deleted if it landed first), and nothing
   * writes the instance again once this resolves. If the store cannot be reached, the key
   * ends with its TTL instead. Every call resolves when the first has finished.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    this.#stop?.abort();
    try {
      await this.#writes.catch(() => undefined);
      await this.#recovery;
      await this.#lease.revoke();
    } catch (err) {
      // The store is gone or unreachable: the key ends with its TTL anyway.
      if (!isFlotillaError(err) || !(err.retryable || err.code === 'FLOTILLA_STORE_CLOSED'))
        throw err;
      this.#ctx.logger.warn({ err, key: this.#ctx.key }, 'deregistration left to the TTL');
    } finally {
      this.#ctx.onClose();
      this.removeAllListeners();
    }
  }

  /** {@link close}, for `await using`. */
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

  /**
   * Re-registers under a new lease until it succeeds or the registration is closed. Never
   * rejects. A lease it grants is adopted only if the registration is still recovering after
   * the put and the first renewal; otherwise it is revoked before this resolves, which fences
   * off the put: the store refuses a put on a revoked lease, and deletes the key if it landed.
   */
  async #recover(): Promise<void> {
    const { ttlMs, clock } = this.#ctx;
    this.#stop ??= new AbortController();
    const { signal } = this.#stop;
    try {
      await retry(() => this.#reregister(signal), {
        clock,
        signal,
        maxMs: Math.max(1000, ttlMs / 2),
        retryable: (err) => !isFlotillaError(err, 'FLOTILLA_STORE_CLOSED'),
        onRetry: (err) => this.emit('error', err),
      });
    } catch {
      // Closed (the signal's reason), or the store was closed under us.
      if (this.#closing()) return;
      this.#state = 'closed';
      this.#ctx.onClose();
    }
  }

  /** One attempt of {@link #recover}: a new lease, the put, the first renewal, adoption. */
  async #reregister(signal: AbortSignal): Promise<void> {
    const { store, key, ttlMs } = this.#ctx;
    let granted: Lease | undefined;
    try {
      granted = await store.grant(ttlMs, { signal });
      if (this.#closing()) return;
      const written = this.#instance;
      // Not a plain put: someone may have registered the id while it was free.
      await claimInstance(store, key, written, granted.id, { signal });
      await granted.keepAlive({ signal });
      if (this.#closing()) return;
      this.#lease = granted;
      granted = undefined; // adopted: close() revokes it from now on
      this.#state = 'registered';
      this.#watchLease(this.#lease);
      // An update made while we were recovering was not written: write it now.
      if (this.#instance !== written) {
        void this.update({}).catch((err: unknown) => this.emit('error', err));
      }
      this.emit('restored', this.#instance);
    } finally {
      // Not adopted: revoke it, whatever happened to the put made with it.
      await granted?.revoke().catch(() => undefined);
    }
  }

  /** Whether close() was called (a method, so that checks after an await are not narrowed away). */
  #closing(): boolean {
    return this.#state === 'closed';
  }
}
