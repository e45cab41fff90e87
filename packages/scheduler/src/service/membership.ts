import { type Clock, type Logger, retry, sleep } from '@flotilla/core';
import { validateSchedulerEpoch, type ClusterKeys, type SchedulerEpoch } from '@flotilla/cluster';
import type { Lease, Store } from '@flotilla/store';
import { SchedulerError, SchedulerErrorCodes } from '../errors.js';

/** FNV-1a, 32 bits: a cheap, stable string hash for rendezvous hashing. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Which apps this scheduler schedules. Schedulers share the hosts (every commit checks the
 * hosts it places on, as in Omega) but shard the apps: each app belongs to exactly one member
 * of the epoch record, by rendezvous hashing, so two schedulers never both place jobs of one
 * formation. The epoch record lists the members; it changes only by compare-and-set, and every
 * commit compares its revision, so a scheduler acting on an old member list (one that was
 * partitioned and dropped, say) has its commits refused rather than double-placing.
 *
 * Each member holds a leased key; when a member's key vanishes (it died), the others remove it
 * from the epoch and take over its apps.
 */
export class Membership {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #id: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #logger: Logger;
  readonly #onChange: () => void;
  readonly #abort = new AbortController();
  #members: readonly string[] = [];
  /** modRevision of the epoch record (0: absent): what commits compare. */
  #revision = 0;
  /** See {@link memberRevision}. */
  #memberRev = 0;
  /** The store revision of the last epoch applied: older news is ignored. */
  #seen = 0;
  /** A join in flight (at start, or again after the lease expired): `leave()` waits for it. */
  #joining: Promise<void> | undefined;
  /** Whether this scheduler's member key is written under a live lease. */
  #joined = false;
  #repairing = false;
  #owners = new Map<string, boolean>();
  #lease: Lease | undefined;
  readonly #present = new Set<string>();

  constructor(options: {
    store: Store;
    keys: ClusterKeys;
    id: string;
    clock: Clock;
    ttlMs: number;
    logger: Logger;
    onChange: () => void;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#id = options.id;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs;
    this.#logger = options.logger;
    this.#onChange = options.onChange;
  }

  /**
   * The modRevision of this scheduler's member key as the watch last delivered it (0: not seen
   * yet). Commits compare it: a commit abandoned without an answer (a timeout) that etcd
   * applies only after the {@link barrier} rewrote the key fails, instead of landing unseen
   * behind it. Planning waits for the watch to pass the barrier, so it is current then.
   */
  get memberRevision(): number {
    return this.#memberRev;
  }

  /** The revision of the epoch record this scheduler acts on (0: none yet). Commits compare it. */
  get revision(): number {
    return this.#revision;
  }

  /** The member schedulers, sorted. */
  get members(): readonly string[] {
    return this.#members;
  }

  /** Whether this scheduler is in the epoch, and so owns some apps. */
  get active(): boolean {
    return this.#members.includes(this.#id);
  }

  /** Whether this scheduler schedules `app` under the current epoch. */
  owns(app: string): boolean {
    let mine = this.#owners.get(app);
    if (mine === undefined) {
      let best = -1;
      let owner = '';
      for (const m of this.#members) {
        const h = hash(`${m}\u0000${app}`);
        if (h > best || (h === best && m < owner)) {
          best = h;
          owner = m;
        }
      }
      mine = owner === this.#id;
      this.#owners.set(app, mine);
    }
    return mine;
  }

  /**
   * Registers this scheduler (a leased member key) and adds it to the epoch. Throws
   * `FLOTILLA_SCHEDULER_CLOSED` when {@link leave} comes first.
   */
  async join(): Promise<void> {
    const p = this.#join();
    this.#joining = p;
    try {
      await p;
    } finally {
      if (this.#joining === p) this.#joining = undefined;
    }
  }

  async #join(): Promise<void> {
    const key = this.#keys.scheduler(this.#id);
    this.#throwIfLeft();
    const lease = await this.#store.grant(this.#ttlMs, { signal: this.#abort.signal });
    if (this.#abort.signal.aborted) {
      await lease.revoke().catch(() => undefined);
      this.#throwIfLeft();
    }
    await lease.keepAlive();
    // Another live scheduler with this id would own the same apps: wait for its key to expire
    // (a restart after a crash), but not for ever (two running with one id).
    const deadline = this.#clock.now() + 2 * this.#ttlMs;
    for (;;) {
      const res = await this.#store.txn({
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [
          { op: 'put', key, value: JSON.stringify({ at: this.#clock.now() }), lease: lease.id },
        ],
      });
      if (res.succeeded) break;
      if (this.#clock.now() >= deadline || this.#abort.signal.aborted) {
        await lease.revoke().catch(() => undefined);
        this.#throwIfLeft();
        throw new SchedulerError(
          SchedulerErrorCodes.ID_IN_USE,
          `another scheduler with id ${this.#id} is running: give each scheduler an id of its own`,
        );
      }
      this.#logger.warn(
        { id: this.#id },
        'a scheduler with this id is registered: waiting for it to expire',
      );
      await sleep(this.#clock, Math.max(100, this.#ttlMs / 4), this.#abort.signal);
    }
    // From here on, leave() (which waits for this join) revokes the lease.
    this.#lease = lease;
    this.#joined = true;
    this.#present.add(this.#id);
    void lease.ended.then((reason) => {
      if (this.#lease === lease) this.#joined = false;
      if (reason === 'expired' && !this.#abort.signal.aborted) void this.#rejoin();
    });
    this.#throwIfLeft();
    await this.#update(
      (m) => (m.includes(this.#id) ? undefined : [...m, this.#id]),
      [{ key: this.#keys.scheduler(this.#id), target: 'version', op: '>', value: 0 }],
    );
  }

  /**
   * The epoch record, as listed or watched at store revision `revision`: `epoch` undefined when
   * it is absent or corrupt, `modRevision` the record's (0: absent). An epoch that lacks this
   * scheduler while it is registered (deleted or rewritten by hand) gets it added again.
   */
  applyEpoch(epoch: SchedulerEpoch | undefined, revision: number, modRevision: number): void {
    if (revision < this.#seen) return;
    this.#seen = revision;
    this.#revision = modRevision;
    this.#set(epoch?.members ?? []);
    this.#repair();
  }

  /**
   * A member key appeared or vanished (`modRevision`: the put's). A vanished member is removed
   * from the epoch. A put of our own key keeps {@link memberRevision} current: the watch is its
   * one source, so a barrier whose answer was lost is learnt too.
   */
  applyMember(id: string, present: boolean, modRevision = 0): void {
    if (present) {
      this.#present.add(id);
      if (id === this.#id && modRevision > this.#memberRev) this.#memberRev = modRevision;
      return;
    }
    this.#present.delete(id);
    if (id === this.#id) return this.#reregister();
    if (!this.#members.includes(id)) return;
    this.#logger.warn({ scheduler: id }, 'a scheduler left: taking over its share of apps');
    // Until it is removed, its apps have no scheduler: retry while its key stays away.
    const remove = (): Promise<void> =>
      this.#update(
        (m) => (m.includes(id) ? m.filter((x) => x !== id) : undefined),
        [{ key: this.#keys.scheduler(id), target: 'version', op: '==', value: 0 }],
      );
    void retry(remove, {
      clock: this.#clock,
      signal: this.#abort.signal,
      initialMs: 1000,
      retryable: () => !this.#present.has(id),
      onRetry: (err) => this.#logger.warn({ err }, 'could not remove a dead scheduler; retrying'),
    }).catch(() => undefined); // left, or the member came back
  }

  /** Members listed in the epoch whose keys are gone: removed now (after a relist). */
  sweep(): void {
    for (const m of this.#members) if (!this.#present.has(m)) this.applyMember(m, false);
  }

  /** Leaves the epoch (its apps go to the others) and revokes the member key. Idempotent. */
  async leave(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    await this.#joining?.catch(() => undefined);
    this.#joined = false;
    try {
      await this.#update(
        (m) => (m.includes(this.#id) ? m.filter((x) => x !== this.#id) : undefined),
        [],
      );
    } catch (err) {
      this.#logger.warn({ err }, 'could not leave the scheduler epoch; others will remove it');
    }
    await this.#lease?.revoke().catch(() => undefined);
  }

  #set(members: readonly string[]): void {
    const same =
      members.length === this.#members.length && members.every((m, i) => m === this.#members[i]);
    if (same) return;
    this.#members = [...members];
    this.#owners = new Map();
    this.#onChange();
  }

  #throwIfLeft(): void {
    if (this.#abort.signal.aborted)
      throw new SchedulerError(SchedulerErrorCodes.CLOSED, 'the scheduler left while joining');
  }

  /** Adds this scheduler back to an epoch that lost it, until it is back or the lease is gone. */
  #repair(): void {
    if (this.#repairing || this.#joining !== undefined) return;
    const missing = (): boolean => this.#joined && !this.#abort.signal.aborted && !this.active;
    if (!missing()) return;
    this.#repairing = true;
    const attempt = async (): Promise<void> => {
      if (!missing()) return;
      this.#logger.warn('this scheduler is missing from the scheduler epoch: adding it again');
      await this.#update(
        (m) => (m.includes(this.#id) ? undefined : [...m, this.#id]),
        [{ key: this.#keys.scheduler(this.#id), target: 'version', op: '>', value: 0 }],
      );
      // A guard that failed (our key is gone) leaves us out: try again while the lease lives.
      if (missing())
        throw new SchedulerError(
          SchedulerErrorCodes.CONFLICT,
          'this scheduler is still missing from the scheduler epoch',
          { retryable: true },
        );
    };
    void retry(attempt, {
      clock: this.#clock,
      signal: this.#abort.signal,
      retryable: () => missing(),
      onRetry: (err) =>
        this.#logger.warn({ err }, 'could not add this scheduler to the epoch; retrying'),
    })
      .catch(() => undefined) // left, or the lease is gone (a rejoin follows)
      .finally(() => (this.#repairing = false));
  }

  /**
   * A write ordered after every earlier request of this scheduler that can still land: rewrites
   * its member key (same lease) and returns the revision. An earlier commit whose answer was
   * lost either landed before it, and the watch delivers it before this revision, or fails when
   * it lands, as every commit compares the member key's revision ({@link memberRevision}): etcd
   * serves requests concurrently, so without that fence an abandoned commit could land after
   * the barrier, unseen by the plan that follows. Throws when the store cannot be reached.
   */
  async barrier(): Promise<number> {
    const lease = this.#lease;
    const key = this.#keys.scheduler(this.#id);
    const res = await this.#store.txn(
      {
        compare: [{ key, target: 'version', op: '>', value: 0 }],
        success: [
          {
            op: 'put',
            key,
            value: JSON.stringify({ at: this.#clock.now() }),
            ...(lease === undefined ? {} : { lease: lease.id }),
          },
        ],
      },
      { signal: this.#abort.signal },
    );
    return res.revision;
  }

  /** Our member key was deleted while our lease lives (by hand): write it again. */
  #reregister(): void {
    const lease = this.#lease;
    if (!this.#joined || lease === undefined || this.#abort.signal.aborted) return;
    const key = this.#keys.scheduler(this.#id);
    this.#logger.warn("this scheduler's member key was deleted: writing it again");
    this.#store
      .txn({
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [
          { op: 'put', key, value: JSON.stringify({ at: this.#clock.now() }), lease: lease.id },
        ],
      })
      .then(
        () => this.#repair(),
        (err: unknown) => this.#logger.warn({ err }, 'could not write the member key again'),
      );
  }

  async #rejoin(): Promise<void> {
    this.#logger.warn('scheduler membership lease expired: joining again');
    await retry(() => this.join(), {
      clock: this.#clock,
      signal: this.#abort.signal,
      retryable: () => true,
      onRetry: (err) => this.#logger.warn({ err }, 'could not join the scheduler epoch; retrying'),
    }).catch(() => undefined); // left while rejoining
  }

  /** Compare-and-set on the epoch record: `change` returns the new members, or undefined for none. */
  async #update(
    change: (members: readonly string[]) => string[] | undefined,
    guard: { key: string; target: 'version'; op: '==' | '>'; value: number }[],
  ): Promise<void> {
    const key = this.#keys.schedulerEpoch;
    for (let attempt = 0; attempt < 32; attempt++) {
      const kv = await this.#store.get(key);
      const current = kv === undefined ? [] : this.#read(kv.value);
      const next = change(current);
      if (next === undefined) {
        if (kv !== undefined) this.applyEpoch({ members: current }, kv.modRevision, kv.modRevision);
        return;
      }
      const value = JSON.stringify({ members: [...new Set(next)].sort() } satisfies SchedulerEpoch);
      const res = await this.#store.txn({
        compare: [{ key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }, ...guard],
        success: [{ op: 'put', key, value }],
      });
      if (res.succeeded) {
        this.applyEpoch(JSON.parse(value) as SchedulerEpoch, res.revision, res.revision);
        return;
      }
      if (guard.length > 0) {
        // The guard may be what failed (the member came back, or our lease is gone): re-read.
        const still = await Promise.all(guard.map((g) => this.#store.get(g.key)));
        if (guard.some((g, i) => (g.op === '==' ? still[i] !== undefined : still[i] === undefined)))
          return;
      }
    }
    throw new SchedulerError(
      SchedulerErrorCodes.CONFLICT,
      'the scheduler epoch kept changing under 32 compare-and-set attempts: retrying later',
      { retryable: true },
    );
  }

  /** Reads the epoch record; a corrupt one is reported and replaced by the next update. */
  #read(value: string): readonly string[] {
    try {
      return validateSchedulerEpoch(JSON.parse(value)).members;
    } catch (err) {
      this.#logger.error({ err }, 'the scheduler epoch record is corrupt: rewriting it');
      return [];
    }
  }
}
