import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import {
  type CallOptions,
  type KeyValue,
  type Store,
  compareKeys,
  listAndWatch,
} from '@flotilla/store';
import { Election } from './election.js';
import { DiscoveryError, DiscoveryErrorCodes } from './errors.js';
import type { DiscoveryEvent, ServiceInstance } from './instance.js';
import {
  validateAddr,
  validateId,
  validateMeta,
  validateReady,
  validateService,
  validateTtl,
} from './internal/validate.js';
import { GuardedEmitter } from './internal/guarded-emitter.js';
import { claimInstance } from './internal/claim.js';
import { keyParts, parseInstance } from './internal/records.js';
import { Registration } from './registration.js';

/** Options of {@link Discovery}. */
export interface DiscoveryOptions {
  /** The store every participant shares (MemoryStore, SqliteStore, EtcdStore). */
  readonly store: Store;
  /** Key prefix of discovery data in the store (default `'discovery/'`). */
  readonly prefix?: string;
  /** Drives retry backoff and leadership deadlines (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
}

/** Options of {@link Discovery.register}. */
export interface RegisterOptions {
  /** The service name: lower-case DNS-style labels (`demo-web`). */
  readonly service: string;
  /** `host:port` where the instance serves. */
  readonly addr: string;
  /** Instance id, unique within the service (default: a random UUID). */
  readonly id?: string;
  /** String labels (release, zone...). */
  readonly meta?: Readonly<Record<string, string>>;
  /** Heartbeat TTL: the instance disappears this long after its process dies (default 10,000). */
  readonly ttlMs?: number;
  /** Whether it takes traffic at once (default false: call `setReady(true)` when it does). */
  readonly ready?: boolean;
  /** Aborts the registration; whatever it granted or wrote is revoked. */
  readonly signal?: AbortSignal;
}

/** Options of {@link Discovery.watch}. */
export interface DiscoveryWatchOptions {
  /** Ends the watch (the iteration finishes without an error). */
  readonly signal?: AbortSignal;
  /**
   * See only ready instances: becoming ready is `up`, becoming unready is `down`. What a router
   * wants. Default false: every instance, readiness changes are `update`s.
   */
  readonly readyOnly?: boolean;
}

/** Options of {@link Discovery.elect}. */
export interface ElectOptions {
  /** This candidate's id, unique among the candidates (a host id, say). */
  readonly id: string;
  /** Labels the leader publishes (an address, say). */
  readonly meta?: Readonly<Record<string, string>>;
  /** Lease TTL: how long a dead leader holds the seat (default 10,000). */
  readonly ttlMs?: number;
}

/** Events of a {@link Discovery}. */
export interface DiscoveryEvents {
  /**
   * A read (`instances()`, `services()`, `watch()`) met an entry under `services/` that is not
   * a valid instance, and skipped it. `error` has code `FLOTILLA_DISCOVERY_INVALID_RECORD`
   * and says what is wrong; `watch()` also yields it as an `invalid` event.
   */
  'invalid-record': (key: string, error: DiscoveryError) => void;
  /** A listener of this Discovery threw or rejected (`FLOTILLA_DISCOVERY_LISTENER_FAILED`). */
  error: (err: unknown) => void;
}

/**
 * Service discovery on any `Store`: instances with TTL heartbeats and a readiness flag, a
 * watch that starts with a snapshot, and leader election.
 *
 * Keys (under `prefix`): `services/<service>/<id>` holds an instance as JSON, attached to its
 * registrant's lease; `elections/<name>` holds the leader.
 *
 * @example
 * ```ts
 * const discovery = new Discovery({ store });
 * const reg = await discovery.register({ service: 'demo-web', addr: '127.0.0.1:5001', ttlMs: 2000 });
 * await reg.setReady(true);
 * for await (const ev of discovery.watch('demo-web', { signal })) {
 *   if (ev.kind === 'current') console.log(ev.instances);
 *   else if (ev.kind === 'invalid') console.warn(ev.error.message); // a bad entry, skipped
 *   else console.log(ev.kind, ev.instance.addr);
 * }
 * await reg.close(); // watchers see `down` at once
 * ```
 */
export class Discovery extends GuardedEmitter<DiscoveryEvents> implements AsyncDisposable {
  readonly #store: Store;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #owned = new Set<Registration | Election>();
  /** register() calls in flight: close() waits for them, and they refuse to finish after it. */
  readonly #registering = new Set<Promise<Registration>>();
  #closed = false;
  /** The close in progress or done, shared by every close() call. */
  #closeDone: Promise<void> | undefined;
  /** Aborted by close(): ends the watches opened here. */
  readonly #closing = new AbortController();

  /** Makes no store call: registrations, watches and elections start when asked for. */
  constructor(options: DiscoveryOptions) {
    const logger = options.logger ?? silentLogger;
    super(logger);
    // One listener per open watch (removed when it ends): any number may be open.
    setMaxListeners(0, this.#closing.signal);
    this.#store = options.store;
    this.#prefix = options.prefix ?? 'discovery/';
    this.#clock = options.clock ?? systemClock;
    this.#logger = logger;
  }

  /**
   * Registers an instance and keeps it alive with lease heartbeats until `close()`.
   *
   * @throws {@link DiscoveryError} for invalid input, or `FLOTILLA_DISCOVERY_DUPLICATE_ID` when
   * a live registrant already holds the id, or `FLOTILLA_DISCOVERY_CLOSED` when this Discovery
   * is (or gets) closed before it completes. Store errors (unavailable...) pass through.
   */
  async register(options: RegisterOptions): Promise<Registration> {
    this.#throwIfClosed();
    validateService(options.service);
    validateAddr(options.addr);
    const id = options.id ?? randomUUID();
    validateId(id);
    const meta = options.meta ?? {};
    validateMeta(meta);
    const ttlMs = options.ttlMs ?? 10_000;
    validateTtl(ttlMs);
    const ready = options.ready ?? false;
    validateReady(ready);
    const instance: ServiceInstance = {
      id,
      service: options.service,
      addr: options.addr,
      meta: { ...meta },
      ready,
      registeredAt: new Date(this.#clock.now()).toISOString(),
    };
    const pending = this.#register(instance, ttlMs, options.signal);
    this.#registering.add(pending);
    try {
      return await pending;
    } finally {
      this.#registering.delete(pending);
    }
  }

  async #register(
    instance: ServiceInstance,
    ttlMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Registration> {
    const { service, id } = instance;
    const key = this.#instanceKey(service, id);
    const call: CallOptions = signal === undefined ? {} : { signal };
    const lease = await this.#store.grant(ttlMs, call);
    try {
      await claimInstance(this.#store, key, instance, lease.id, call);
      await lease.keepAlive(call);
      // close() landed meanwhile: it waits for this call, which must not leave the key behind.
      this.#throwIfClosed();
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    const reg = new Registration(
      {
        store: this.#store,
        key,
        ttlMs,
        clock: this.#clock,
        logger: this.#logger.child({ service, instance: id }),
        onClose: () => this.#owned.delete(reg),
      },
      lease,
      instance,
    );
    this.#owned.add(reg);
    return reg;
  }

  /**
   * The instances of a service now, sorted by id. An entry that is not a valid instance is
   * skipped and reported as an `invalid-record` event.
   */
  async instances(
    service: string,
    options: CallOptions & { readyOnly?: boolean } = {},
  ): Promise<ServiceInstance[]> {
    this.#throwIfClosed();
    validateService(service);
    const res = await this.#store.list(this.#servicePrefix(service), options);
    const all = this.#parseAll(res.kvs);
    return options.readyOnly === true ? all.filter((i) => i.ready) : all;
  }

  /**
   * The names of services that have at least one instance, sorted. A key that names no valid
   * service and id is skipped and reported as an `invalid-record` event.
   */
  async services(options: CallOptions = {}): Promise<string[]> {
    this.#throwIfClosed();
    const res = await this.#store.list(this.#servicesPrefix(), options);
    const names = new Set<string>();
    for (const kv of res.kvs) {
      try {
        names.add(keyParts(kv.key, this.#servicesPrefix()).service);
      } catch (err) {
        this.#reportInvalid(kv.key, err as DiscoveryError);
      }
    }
    return [...names].sort();
  }

  /**
   * Watches a service: first a `current` snapshot, then `up`, `update` and `down` events, with
   * nothing missed in between. If the store compacts past this watch (a consumer that lags, a
   * long disconnect), it lists again and emits the difference as events, in key order, so the
   * consumer's view stays exact. While the store fails with a retryable error (unreachable), it
   * backs off on the Discovery's clock and resumes where it was; other errors are thrown.
   * Ends when `signal` aborts, or when this Discovery is closed (after its own instances are
   * seen going down).
   *
   * Built on `listAndWatch` from `@flotilla/store`, the one list / watch / relist loop.
   */
  async *watch(
    service: string,
    options: DiscoveryWatchOptions = {},
  ): AsyncGenerator<DiscoveryEvent> {
    this.#throwIfClosed();
    validateService(service);
    // Ends with the caller's signal or this Discovery's close(); every listener a watch puts
    // on it is taken off when the watch ends (the store's watch queue and listAndWatch do).
    const signal =
      options.signal === undefined
        ? this.#closing.signal
        : AbortSignal.any([options.signal, this.#closing.signal]);
    const readyOnly = options.readyOnly === true;
    const visible = (i: ServiceInstance | undefined): i is ServiceInstance =>
      i !== undefined && (!readyOnly || i.ready);
    const prefix = this.#servicePrefix(service);
    /** Instances by key, as of the last snapshot and the changes since. */
    let known = new Map<string, ServiceInstance>();
    const items = listAndWatch(this.#store, prefix, {
      signal,
      clock: this.#clock,
      onRetry: (err, delayMs) =>
        this.#logger.warn({ err, service, delayMs }, 'watch failed, retrying'),
    });
    for await (const item of items) {
      if (item.type === 'snapshot') {
        const listed = new Map<string, ServiceInstance>();
        const invalid: DiscoveryEvent[] = [];
        for (const kv of item.kvs) {
          const i = this.#parse(kv);
          if (i instanceof DiscoveryError) invalid.push({ kind: 'invalid', key: kv.key, error: i });
          else listed.set(kv.key, i);
        }
        const before = known;
        known = listed;
        if (!item.reset) {
          yield { kind: 'current', instances: [...listed.values()].filter(visible) };
        } else {
          // We fell behind compaction and listed again: emit what changed meanwhile.
          this.#logger.warn({ service }, 'watch compacted, resynchronised from a new list');
          const keys = [...new Set([...before.keys(), ...listed.keys()])].sort(compareKeys);
          for (const key of keys) {
            const out = transition(before.get(key), listed.get(key), visible);
            if (out !== undefined) yield out;
          }
        }
        yield* invalid;
        continue;
      }
      const { event } = item;
      const key = event.kv.key;
      const before = known.get(key);
      const after = event.type === 'put' ? this.#parse(event.kv) : undefined;
      if (after === undefined || after instanceof DiscoveryError) known.delete(key);
      else known.set(key, after);
      const valid = after instanceof DiscoveryError ? undefined : after;
      const out = transition(before, valid, visible);
      if (out !== undefined) yield out;
      if (after instanceof DiscoveryError) yield { kind: 'invalid', key, error: after };
    }
  }

  /** Campaigns for leadership of `name` at once; see {@link Election}. */
  elect(name: string, options: ElectOptions): Election {
    this.#throwIfClosed();
    validateService(name);
    validateId(options.id, 'candidate id');
    const meta = options.meta ?? {};
    validateMeta(meta);
    const ttlMs = options.ttlMs ?? 10_000;
    validateTtl(ttlMs);
    const election: Election = new Election({
      store: this.#store,
      key: `${this.#prefix}elections/${name}`,
      name,
      id: options.id,
      meta: { ...meta },
      ttlMs,
      clock: this.#clock,
      logger: this.#logger.child({ election: name, candidate: options.id }),
      onClose: () => this.#owned.delete(election),
    });
    this.#owned.add(election);
    election.campaign();
    return election;
  }

  /**
   * Closes every registration (deregistering) and election (resigning) made here, including
   * registrations that are re-registering after a lost lease; a `register()` still in flight
   * is refused with `FLOTILLA_DISCOVERY_CLOSED` and leaves nothing behind. Once this resolves,
   * no instance registered here is listed (unless the store could not be reached: then they
   * end with their TTL). Ends the watches opened here, also when a registration or election
   * fails to close (then rejects with the first such error). Idempotent: every call settles
   * when the first has finished.
   */
  close(): Promise<void> {
    this.#closeDone ??= this.#close();
    return this.#closeDone;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    try {
      await Promise.allSettled([...this.#registering]);
      const closed = await Promise.allSettled([...this.#owned].map((o) => o.close()));
      const failed = closed.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } finally {
      // After the registrations: a watcher sees its own instances go down before its watch
      // ends; and whatever they did, no watch is left open.
      this.#closing.abort();
    }
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #throwIfClosed(): void {
    if (this.#closed) {
      throw new DiscoveryError(
        DiscoveryErrorCodes.CLOSED,
        'this Discovery is closed: create a new one',
      );
    }
  }

  #servicePrefix(service: string): string {
    return `${this.#servicesPrefix()}${service}/`;
  }

  #instanceKey(service: string, id: string): string {
    return `${this.#servicePrefix(service)}${id}`;
  }

  #servicesPrefix(): string {
    return `${this.#prefix}services/`;
  }

  #parseAll(kvs: readonly KeyValue[]): ServiceInstance[] {
    const out: ServiceInstance[] = [];
    for (const kv of kvs) {
      const i = this.#parse(kv);
      if (!(i instanceof DiscoveryError)) out.push(i);
    }
    return out;
  }

  /** The instance at `kv`, or the error that says why it is none (reported already). */
  #parse(kv: KeyValue): ServiceInstance | DiscoveryError {
    try {
      return parseInstance(kv, this.#servicesPrefix());
    } catch (err) {
      if (!(err instanceof DiscoveryError)) throw err;
      this.#reportInvalid(kv.key, err);
      return err;
    }
  }

  #reportInvalid(key: string, error: DiscoveryError): void {
    this.#logger.warn({ key, err: error }, 'skipping an invalid instance entry');
    this.emit('invalid-record', key, error);
  }
}

/** The event that takes a watcher from `before` to `after` at one key, if any. */
function transition(
  before: ServiceInstance | undefined,
  after: ServiceInstance | undefined,
  visible: (i: ServiceInstance | undefined) => i is ServiceInstance,
): DiscoveryEvent | undefined {
  const was = visible(before) ? before : undefined;
  const is = visible(after) ? after : undefined;
  if (was === undefined) return is === undefined ? undefined : { kind: 'up', instance: is };
  // Gone, or (readyOnly) no longer ready: the down carries what it became, if anything.
  if (is === undefined) return { kind: 'down', instance: after ?? was };
  return sameInstance(was, is) ? undefined : { kind: 'update', instance: is };
}

/** Whether two instances have the same fields, compared field by field (no serialising). */
function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  if (
    a.id !== b.id ||
    a.service !== b.service ||
    a.addr !== b.addr ||
    a.ready !== b.ready ||
    a.registeredAt !== b.registeredAt
  ) {
    return false;
  }
  const keys = Object.keys(a.meta);
  if (keys.length !== Object.keys(b.meta).length) return false;
  return keys.every((k) => Object.hasOwn(b.meta, k) && a.meta[k] === b.meta[k]);
}
