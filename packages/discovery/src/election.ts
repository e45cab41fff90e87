import { type Clock, type Logger, isFlotillaError, retry } from '@flotilla/core';
import type { Lease, Store } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from './errors.js';
import { GuardedEmitter } from './internal/guarded-emitter.js';
import { parseLeader } from './internal/records.js';

/** The value stored under an election's key while someone leads. */
export interface LeaderInfo {
  /** The leader's candidate id. */
  readonly id: string;
  /** Free-form labels the leader published (an address, say). */
  readonly meta: Readonly<Record<string, string>>;
  /** ISO 8601 time the leader won. */
  readonly since: string;
}

/** Events of an {@link Election}. */
export interface ElectionEvents {
  /** This candidate became the leader. */
  elected: () => void;
  /** This candidate lost leadership (its lease ended or could not be renewed in time). */
  lost: (reason: string) => void;
  /**
   * The observed leader changed (`undefined`: nobody leads right now, or the leader entry
   * cannot be read, which is reported as an `error`).
   */
  leader: (leader: LeaderInfo | undefined) => void;
  /**
   * A store call failed (the campaign retries), the leader entry cannot be read
   * (`FLOTILLA_DISCOVERY_INVALID_RECORD`: nobody can win until it is deleted or rewritten),
   * or a listener of this election threw or (async) rejected
   * (`FLOTILLA_DISCOVERY_LISTENER_FAILED`, the thrown value as `cause`). A throwing listener
   * changes nothing else: a candidate whose `elected` listener threw still leads, and
   * `waitForLeadership()` resolves; resign if your leader work could not start.
   */
  error: (err: unknown) => void;
}

/** @internal */
export interface ElectionContext {
  readonly store: Store;
  readonly key: string;
  readonly name: string;
  readonly id: string;
  readonly meta: Readonly<Record<string, string>>;
  readonly ttlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly onClose: () => void;
}

/**
 * Leader election for one name: at most one leader at a time among every candidate that
 * campaigns on the same store. The leader holds a key attached to its lease; it loses
 * leadership when the lease ends, or as soon as its own clock says the lease may have ended
 * without a renewal (so a partitioned leader steps down before anyone else can be elected).
 *
 * Created by `Discovery.elect()`; it campaigns at once.
 *
 * @example
 * ```ts
 * const election = discovery.elect('scheduler', { id: 'host-a' });
 * election.on('elected', () => scheduler.start());
 * election.on('lost', () => scheduler.stop());
 * ```
 */
export class Election extends GuardedEmitter<ElectionEvents> implements AsyncDisposable {
  #ctx: ElectionContext;
  #state: 'campaigning' | 'leader' | 'idle' | 'closed' = 'idle';
  #leader: LeaderInfo | undefined;
  #term: number | undefined;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #lease: Lease | undefined;
  /** Pending waitForLeadership() calls: settled when elected, rejected on close. */
  #waiters = new Set<{ resolve: () => void; reject: (err: unknown) => void }>();
  /** The close in progress or done, shared by every close() call. */
  #closing: Promise<void> | undefined;
  /** The last resign, shared by resign() calls until the next campaign. */
  #resigning: Promise<void> | undefined;

  /** @internal */
  constructor(ctx: ElectionContext) {
    super(ctx.logger);
    this.#ctx = ctx;
  }

  /** This candidate's id. */
  get id(): string {
    return this.#ctx.id;
  }

  /** The election name. */
  get name(): string {
    return this.#ctx.name;
  }

  /** `campaigning`, `leader`, `idle` (resigned) or `closed`. */
  get state(): 'campaigning' | 'leader' | 'idle' | 'closed' {
    return this.#state;
  }

  /** Whether this candidate leads now. */
  get isLeader(): boolean {
    return this.#state === 'leader';
  }

  /** The leader as last observed by this candidate. */
  get leader(): LeaderInfo | undefined {
    return this.#leader;
  }

  /**
   * While this candidate leads: the store revision at which it won, larger than any earlier
   * leader's. Use it as a fencing token (write it with what you do as leader, and have others
   * refuse a smaller one), since a leader cut off from the store may act for up to its TTL
   * before it knows it lost. `undefined` when not leading.
   */
  get term(): number | undefined {
    return this.#state === 'leader' ? this.#term : undefined;
  }

  /** Starts (or restarts, after {@link resign}) campaigning. */
  campaign(): void {
    if (this.#state === 'closed') throw this.#closed();
    if (this.#state !== 'idle') return;
    this.#state = 'campaigning';
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
  }

  /**
   * Resolves when this candidate leads; rejects with the signal's reason when it aborts, and
   * with `FLOTILLA_DISCOVERY_CLOSED` when the election is closed first.
   */
  waitForLeadership(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'leader') return Promise.resolve();
    if (this.#state === 'closed') return Promise.reject(this.#closed());
    return new Promise((resolve, reject) => {
      const settle = (err?: unknown): void => {
        options.signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
        if (err === undefined) resolve();
        else reject(err);
      };
      const waiter = { resolve: () => settle(), reject: settle };
      const onAbort = (): void => settle(options.signal?.reason);
      options.signal?.throwIfAborted();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /**
   * Gives up leadership (deleting the key at once) and stops campaigning. A call while a
   * resign is in progress resolves when it has finished.
   */
  resign(): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'closed') {
      return this.#resigning ?? Promise.resolve();
    }
    this.#state = 'idle';
    this.#resigning = this.#resign();
    return this.#resigning;
  }

  async #resign(): Promise<void> {
    this.#abort.abort();
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.revoke().catch((err: unknown) => {
      if (!isFlotillaError(err) || !(err.retryable || err.code === 'FLOTILLA_STORE_CLOSED'))
        throw err;
    });
    await this.#loop;
  }

  /** Resigns and stops for good. Idempotent: every call resolves when the first has finished. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      await this.resign();
    } finally {
      this.#state = 'closed';
      for (const w of [...this.#waiters]) w.reject(this.#closed());
      this.#ctx.onClose();
      this.removeAllListeners();
    }
  }

  /** {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #closed(): DiscoveryError {
    return new DiscoveryError(
      DiscoveryErrorCodes.CLOSED,
      `election ${this.#ctx.name} is closed: elect again`,
    );
  }

  #setLeader(leader: LeaderInfo | undefined): void {
    const same = leader?.id === this.#leader?.id && leader?.since === this.#leader?.since;
    this.#leader = leader;
    if (!same) this.emit('leader', leader);
  }

  /**
   * The leader stored at the key; `undefined` (unknown) when the record cannot be read, which
   * is reported as an `error` event with code `FLOTILLA_DISCOVERY_INVALID_RECORD`. While it is
   * there nobody can win (the seat is taken): delete or rewrite it.
   */
  #readLeader(key: string, value: string): LeaderInfo | undefined {
    try {
      return parseLeader(key, value);
    } catch (err) {
      this.#ctx.logger.warn({ err, key }, 'the leader entry is invalid');
      this.emit('error', err);
      return undefined;
    }
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        // Each round that ends well (lost the lead, saw the seat free) starts a fresh backoff.
        await retry(() => this.#round(signal), {
          clock: this.#ctx.clock,
          signal,
          maxMs: Math.max(1000, this.#ctx.ttlMs / 2),
          retryable: (err) => !isFlotillaError(err, 'FLOTILLA_STORE_CLOSED'),
          onRetry: (err) => {
            this.#ctx.logger.warn(
              { err, election: this.#ctx.name },
              'election round failed, retrying',
            );
            this.emit('error', err);
          },
        });
      } catch {
        // Resigned or closed (the signal's reason), or the store was closed under us: then
        // close, which settles the waiters and tells the Discovery.
        if (!signal.aborted) {
          this.#state = 'closed';
          void this.close();
        }
        return;
      }
    }
  }

  /** One campaign round: win and lead until the lease is lost, or wait for the seat to free. */
  async #round(signal: AbortSignal): Promise<void> {
    const { store, key } = this.#ctx;
    const lease = await store.grant(this.#ctx.ttlMs, { signal });
    this.#lease = lease;
    try {
      await lease.keepAlive({ signal });
      const info: LeaderInfo = {
        id: this.#ctx.id,
        meta: this.#ctx.meta,
        since: new Date(this.#ctx.clock.now()).toISOString(),
      };
      const res = await store.txn(
        {
          compare: [{ key, target: 'version', op: '==', value: 0 }],
          success: [{ op: 'put', key, value: JSON.stringify(info), lease: lease.id }],
          failure: [{ op: 'get', key }],
        },
        { signal },
      );
      if (res.succeeded) {
        await this.#lead(lease, info, res.revision, signal);
        return;
      }
      // Someone else leads: follow until the seat is free, then campaign again.
      await lease.revoke({ signal });
      this.#lease = undefined;
      const current = res.results[0];
      const kv = current?.op === 'get' ? current.kv : undefined;
      if (kv === undefined) return; // freed in between: try again at once
      this.#setLeader(this.#readLeader(kv.key, kv.value));
      await this.#waitForVacancy(kv.modRevision + 1, signal);
    } finally {
      if (this.#lease === lease && this.#state !== 'leader') {
        this.#lease = undefined;
        await lease.revoke().catch(() => undefined);
      }
    }
  }

  async #lead(lease: Lease, info: LeaderInfo, term: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.#state = 'leader';
    this.#term = term;
    this.#setLeader(info);
    this.#ctx.logger.info({ election: this.#ctx.name, id: this.#ctx.id }, 'elected leader');
    for (const w of [...this.#waiters]) w.resolve();
    this.emit('elected');
    // Lead until the lease ends, or until our own clock passes its deadline unrenewed.
    const reason = await new Promise<string>((resolve) => {
      let timer: unknown;
      let settled = false;
      const finish = (why: string): void => {
        if (settled) return;
        settled = true;
        this.#ctx.clock.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(why);
      };
      const onAbort = (): void => finish('resigned');
      const check = (): void => {
        const now = this.#ctx.clock.now();
        if (now >= lease.deadline) finish('lease deadline passed without a renewal');
        else timer = this.#ctx.clock.setTimeout(check, lease.deadline - now);
      };
      check();
      void lease.ended.then((r) => finish(`lease ${r}`));
      if (signal.aborted) finish('resigned');
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    if (this.#state === 'leader') this.#state = 'campaigning';
    if (this.#lease === lease) this.#lease = undefined;
    this.#setLeader(undefined);
    if (reason !== 'resigned') {
      this.#ctx.logger.warn({ election: this.#ctx.name, reason }, 'lost leadership');
      await lease.revoke().catch(() => undefined);
    }
    this.emit('lost', reason);
  }

  async #waitForVacancy(fromRevision: number, signal: AbortSignal): Promise<void> {
    for await (const ev of this.#ctx.store.watch(this.#ctx.key, { fromRevision, signal })) {
      if (ev.kv.key !== this.#ctx.key) continue;
      if (ev.type === 'delete') {
        this.#setLeader(undefined);
        return;
      }
      this.#setLeader(this.#readLeader(ev.kv.key, ev.kv.value));
    }
  }
}
