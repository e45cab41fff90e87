import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { EventEmitter } from 'eventemitter3';
import { type Clock, type Logger, sleep } from '@flotilla/core';
import type { ClusterError, ClusterKeys } from '@flotilla/cluster';
import type { Store } from '@flotilla/store';
import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { Planner, type PlannerOptions } from './planner.js';
import { Collector } from './service/collector.js';
import { ClusterWatch } from './service/cluster-watch.js';
import { Committer } from './service/committer.js';
import { CrashBackoff, type CrashLoop } from './service/crash-backoff.js';
import { DrainDeadlines } from './service/drain-deadlines.js';
import { HostMonitor } from './service/host-monitor.js';
import { Membership } from './service/membership.js';
import { ClusterMirror, type KnownJob } from './service/mirror.js';
import { resolveOptions, type ResolvedOptions } from './service/options.js';
import type { Plan, Unplaced } from './types.js';

export type { CrashLoop } from './service/crash-backoff.js';

/** How long a sole scheduler watches job records after a commit failed without an answer. */
const UNCERTAIN_WATCH_JOBS_MS = 60_000;

/** Options of {@link Scheduler}. */
export interface SchedulerOptions extends PlannerOptions {
  /** The store holding the cluster state (shared with host agents and other schedulers). */
  readonly store: Store;
  /** Key prefix of the cluster state (default `'cluster/'`); see `ClusterKeys` in `@flotilla/cluster`. */
  readonly prefix?: string;
  /** This scheduler's id: its membership key and the `by` of the allocations it commits (default: random). */
  readonly id?: string;
  /** Drives restart backoff, host grace periods and the membership lease (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
  /** How long a host found without a heartbeat when the scheduler starts counts as live (default 10,000 ms). */
  readonly hostGraceMs?: number;
  /** Delays before restarting a crashed job, by consecutive crash (default 0, 10 s, 30 s, 1 min, 2 min, 5 min). */
  readonly restartBackoffMs?: readonly number[];
  /** A process type's crash count resets after this long without a crash (default 5 minutes). */
  readonly crashResetMs?: number;
  /** Consecutive crashes after which a `crashloop` is reported (default 5). */
  readonly crashLoopAfter?: number;
  /**
   * Transactions in flight at once while committing a plan (default 32). etcd answers a batch
   * of them at once; with twice as many in flight as it takes per batch, it has the next batch
   * while the scheduler applies the last (on a million placements, 0.83x etcd's raw put rate
   * on average against 0.78x at 16).
   */
  readonly commitConcurrency?: number;
  /** TTL of this scheduler's membership lease (default 10,000 ms): how soon others take over its apps if it dies. */
  readonly memberTtlMs?: number;
  /**
   * While this is the only scheduler, leave the job records out of its watch (default true).
   * It writes every one of them and applies its own writes as they commit, so the store need
   * not send them back: after a bulk placement on etcd, that echo was a sixth of etcd's CPU
   * per job and a third of the scheduler's. Deletes of job records are still watched (an
   * operator deleting one by hand gets it replaced). A job record put by anything but a
   * scheduler is then read at the next listing (a restart, a second scheduler joining), not
   * at once: set `false` where something else writes job records.
   */
  readonly watchOwnJobs?: boolean;
}

/** What one planning cycle did. */
export interface PlanReport {
  /** Jobs started (committed). */
  readonly started: number;
  /** Jobs asked to stop (committed). */
  readonly stopped: number;
  /** Jobs that could not be placed. */
  readonly unplaced: readonly Unplaced[];
  /** Placements or stops refused because another writer changed the host, job or epoch first; they are planned again. */
  readonly conflicts: number;
  /** Transactions committed. */
  readonly transactions: number;
  /** Time spent planning, in ms. */
  readonly planMs: number;
  /** Time from the start of planning to the last commit, in ms. */
  readonly durationMs: number;
}

/** Events of a {@link Scheduler}. */
export interface SchedulerEvents {
  /** A planning cycle committed its plan. */
  plan: (report: PlanReport) => void;
  /** A host's heartbeat vanished (or never came back after start-up): its jobs are replaced. */
  'host-down': (hostId: string) => void;
  /** A process type keeps crashing; it is restarted at the longest backoff. */
  crashloop: (info: CrashLoop) => void;
  /** A record in the store could not be read (`FLOTILLA_CLUSTER_INVALID_RECORD`); it is left out. */
  'invalid-record': (key: string, error: ClusterError) => void;
  /** The schedulers sharing the cluster changed; `members` is the new list. */
  epoch: (members: readonly string[]) => void;
  /** A store call failed; it is retried. */
  error: (error: unknown) => void;
}

/** The lifecycle of a {@link Scheduler}. */
export type SchedulerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/**
 * The scheduler service: mirrors the cluster state of a store (hosts, formations, jobs and
 * their statuses), plans only what changed, and commits each plan as transactions that check
 * the revision of every host they place on (Omega's optimistic, fine-grained commits). Several
 * schedulers may share one store: they share the hosts and shard the apps (see the README), so
 * none over-commits a host and no formation gets more jobs than it asks for.
 *
 * It replaces the jobs of hosts whose heartbeat vanishes, moves the jobs of draining hosts
 * (forcing them off once a drain's deadline passes), restarts crashed jobs with backoff, and
 * collects jobs that ended. Each concern has its own part under `service/`; this class
 * wires them.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler({ store, strategy: 'spread' });
 * scheduler.on('plan', (r) => log.info(r, 'plan committed'));
 * await scheduler.start();
 * await new ClusterState({ store }).setFormation(formation);
 * ```
 */
export class Scheduler extends EventEmitter<SchedulerEvents> implements AsyncDisposable {
  readonly id: string;
  readonly keys: ClusterKeys;
  readonly #o: ResolvedOptions;
  readonly #planner: Planner;
  readonly #monitor: HostMonitor;
  readonly #deadlines: DrainDeadlines;
  readonly #backoff: CrashBackoff;
  readonly #mirror: ClusterMirror;
  readonly #collector: Collector;
  readonly #committer: Committer;
  readonly #membership: Membership;
  readonly #abort = new AbortController();
  #state: SchedulerState = 'idle';
  #starting: Promise<void> | undefined;
  readonly #watch: ClusterWatch;
  #cycle: Promise<void> | undefined;
  #again = false;
  #kicked = false;
  #idleWaiters: (() => void)[] = [];
  /**
   * Set when a commit failed without an answer: it may have landed. Until a commit succeeds,
   * the per-host allocation checks are made even by a sole scheduler, so that a retry of what
   * did land conflicts instead of placing it twice.
   */
  #uncertain = false;
  /**
   * Until then (clock ms), job records are watched even by a sole scheduler: a commit that
   * failed without an answer may still land (etcd drops a proposal it has not applied within
   * its request timeout, 7 s by default), and only the watch would tell.
   */
  #watchJobsUntil = 0;

  constructor(options: SchedulerOptions) {
    super();
    // Every store call in flight (commitConcurrency transactions, the watch, the collector's
    // deletes) listens on this signal until it settles: past Node's default of 10 listeners it
    // printed a MaxListenersExceeded leak warning on every bulk placement.
    setMaxListeners(0, this.#abort.signal);
    const o = resolveOptions(options);
    this.#o = o;
    this.id = o.id;
    this.keys = o.keys;
    this.#planner = new Planner(options);
    this.#monitor = new HostMonitor(o.clock, o.hostGraceMs, (hostId, live) => {
      this.#mirror.refreshHost(hostId);
      if (!live && this.#mirror.hosts.has(hostId)) {
        o.logger.warn({ hostId }, 'host heartbeat lapsed: its jobs are replaced');
        this.emit('host-down', hostId);
      }
      this.#kick();
    });
    this.#deadlines = new DrainDeadlines(o.clock, (hostId) => {
      o.logger.info({ hostId }, 'drain deadline passed: the jobs left on the host are stopped');
      this.#mirror.refreshHost(hostId);
      this.#kick();
    });
    this.#backoff = new CrashBackoff({
      clock: o.clock,
      delays: o.restartBackoffMs,
      resetMs: o.crashResetMs,
      loopAfter: o.crashLoopAfter,
    });
    const onError = (err: unknown): void => {
      if (!this.#abort.signal.aborted) this.emit('error', err);
    };
    this.#collector = new Collector({
      store: o.store,
      keys: o.keys,
      clock: o.clock,
      signal: this.#abort.signal,
      onError,
      // A sole scheduler's watch does not bring the deletes of job records back.
      collected: (jobId) => this.#mirror.deleted(jobId),
    });
    this.#mirror = new ClusterMirror(o.keys, this.#planner, this.#monitor, this.#deadlines, {
      ended: (job) => this.#collector.collect(job),
      orphan: (hostId, jobId, rev) => this.#collector.collectOrphan(hostId, jobId, rev),
      crashed: (job) => this.#crashed(job),
      held: (id) => this.#backoff.holds(id),
      removed: (id) => this.#backoff.forget(id),
      epoch: (epoch, revision, modRevision) => {
        this.#membership.applyEpoch(epoch, revision, modRevision);
        const m = this.#membership;
        if (!(m.active && m.members.length === 1)) this.#watch.othersMayWrite();
      },
      member: (id, present, modRevision) => this.#membership.applyMember(id, present, modRevision),
      invalid: (key, error) => {
        o.logger.warn({ key, err: error }, 'cluster record cannot be read; left out');
        this.emit('invalid-record', key, error);
      },
    });
    this.#membership = new Membership({
      store: o.store,
      keys: o.keys,
      id: o.id,
      clock: o.clock,
      ttlMs: o.memberTtlMs,
      logger: o.logger,
      onChange: () => this.#ownershipChanged(),
    });
    this.#watch = new ClusterWatch({
      store: o.store,
      keys: o.keys,
      clock: o.clock,
      signal: this.#abort.signal,
      onRetry: (err) => this.emit('error', err),
      skipRevision: (revision) => this.#mirror.skips(revision),
      hooks: {
        snapshot: (kvs, revision, first, why) => {
          if (!first) {
            if (why === 'compacted')
              // We fell behind the store's history (a long disconnect): apply the difference.
              this.#o.logger.warn('scheduler watch compacted: resynchronised from a new list');
            else
              this.#o.logger.debug('scheduler watch mode changed: resynchronised from a new list');
          }
          this.#mirror.applySnapshot(kvs, revision, !first);
          if (first) for (const id of this.#mirror.hosts.keys()) this.#monitor.grace(id);
          this.#membership.sweep();
        },
        change: (event) => this.#mirror.apply(event),
        jobDeleted: (event) => {
          this.#mirror.jobDeleted(event.kv.key, event.revision);
          this.#kick();
        },
        applied: () => this.#kick(),
        view: (ownJobs) => {
          this.#mirror.ownJobs = ownJobs;
        },
        failed: (err) => {
          this.#o.logger.error({ err }, 'scheduler watch failed');
          this.#state = 'failed';
          this.emit('error', err);
          this.#settle();
        },
      },
    });
    this.#committer = new Committer({
      store: o.store,
      keys: o.keys,
      mirror: this.#mirror,
      planner: this.#planner,
      clock: o.clock,
      id: o.id,
      tag: randomBytes(3).toString('hex'),
      concurrency: o.commitConcurrency,
      held: (id) => this.#backoff.holds(id),
      signal: this.#abort.signal,
    });
  }

  /** The lifecycle state. */
  get state(): SchedulerState {
    return this.#state;
  }

  /** What the scheduler knows of the cluster, and the schedulers it shares it with. */
  get stats(): {
    hosts: number;
    jobs: number;
    groups: number;
    heldForBackoff: number;
    members: readonly string[];
  } {
    const s = this.#planner.stats;
    return {
      hosts: s.hosts,
      jobs: this.#mirror.jobs.size,
      groups: s.groups,
      heldForBackoff: this.#backoff.size,
      members: this.#membership.members,
    };
  }

  /**
   * Joins the schedulers, loads the cluster state, starts watching it and plans. Idempotent: a
   * second call resolves with the first. Rejects with `FLOTILLA_SCHEDULER_CLOSED` when `close()`
   * comes first.
   */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') throw this.#closedError();
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: { signal?: AbortSignal }): Promise<void> {
    this.#state = 'starting';
    const closed = (): void => {
      if (this.#abort.signal.aborted) throw this.#closedError();
    };
    try {
      await this.#membership.join();
      closed();
      // The only member (as the join found the epoch): watch all but the job records.
      const m = this.#membership;
      const started = await this.#watch.start(
        this.#o.watchOwnJobs && m.active && m.members.length === 1,
      );
      closed();
      options.signal?.throwIfAborted();
      if (!started) throw this.#closedError();
      this.#state = 'running';
      this.#kick();
    } catch (err) {
      if (this.#abort.signal.aborted) throw this.#closedError(); // close() owns the state
      this.#state = 'failed';
      this.#watch.stop(); // a watch that started (an abort after the listing) ends here
      await this.#membership.leave();
      throw err;
    }
  }

  /**
   * Resolves once nothing is left to plan and no commit is in flight; at once when the
   * scheduler is stopped or failed (nothing will plan any more).
   */
  idle(): Promise<void> {
    if (this.#quiet() || this.#state === 'stopped' || this.#state === 'failed')
      return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Leaves the schedulers and stops watching and planning. Idempotent. Jobs keep running; the other schedulers take over its apps. */
  async close(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    this.#abort.abort();
    this.#backoff.close();
    this.#monitor.close();
    this.#deadlines.close();
    // Leaving first ends a join in flight, so that a start() in flight settles.
    const left = this.#membership.leave();
    await this.#starting?.catch(() => undefined);
    await this.#watch.closed();
    await this.#cycle?.catch(() => undefined);
    await this.#collector.drain();
    await left;
    this.#state = 'stopped';
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #closedError(): SchedulerError {
    return new SchedulerError(
      SchedulerErrorCodes.CLOSED,
      'this Scheduler is closed: create a new one',
    );
  }

  #quiet(): boolean {
    return this.#cycle === undefined && !this.#kicked && !this.#planner.pending;
  }

  /**
   * After a commit failed without an answer: waits until the watch has delivered a write made
   * after it, so that what the commit may have placed is known before planning again. Without
   * it, a sole scheduler (which skips the per-host allocation checks) could place it twice.
   */
  async #catchUp(): Promise<void> {
    const revision = await this.#membership.barrier();
    // Watching job records too: a sole scheduler's watch would not bring what the commit placed.
    await this.#watch.caughtUp(revision);
  }

  #crashed(job: KnownJob): void {
    const { loop } = this.#backoff.crashed(job.record, () => {
      // Not counted any more: the planner replaces it; the records are collected.
      const current = this.#mirror.jobs.get(job.id) ?? job;
      this.#planner.setJob(current);
      this.#collector.collect(current);
      this.#kick();
    });
    if (this.#backoff.holds(job.id)) this.#planner.setJob(job.withState('pending'));
    if (loop !== undefined) {
      this.#o.logger.warn(loop, 'process type keeps crashing');
      this.emit('crashloop', loop);
    }
  }

  #ownershipChanged(): void {
    // Every group may have changed hands: plan them all again.
    this.#planner.invalidateAll();
    this.emit('epoch', this.#membership.members);
    this.#kick();
  }

  /** Runs a planning cycle soon, once the events at hand are applied. */
  #kick(): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    if (this.#cycle !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#kicked) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      if (this.#state !== 'running') return this.#settle();
      this.#cycle = this.#run().finally(() => {
        this.#cycle = undefined;
        if (this.#again) {
          this.#again = false;
          this.#kick();
        }
        this.#settle();
      });
    });
  }

  #settle(): void {
    if (!this.#quiet() && this.#state === 'running') return;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #run(): Promise<void> {
    let delay = 50;
    while (this.#planner.pending && this.#state === 'running') {
      const t0 = performance.now();
      const plan = this.#mine(this.#planner.plan());
      const planMs = performance.now() - t0;
      try {
        const m = this.#membership;
        const sole = m.active && m.members.length === 1 && !this.#uncertain;
        // The only scheduler writes every job record and applies its own writes: its watch can
        // leave them out. Any other scheduler's records must be seen before placing anything
        // (the hosts' usage counts them): until a new listing is applied, wait.
        this.#watch.watchOwnJobs(
          this.#o.watchOwnJobs && sole && this.#o.clock.now() >= this.#watchJobsUntil,
        );
        if (this.#watch.ownJobsView && (!sole || this.#watch.stale)) return; // its snapshot kicks
        const committed = await this.#committer.commit(plan, m.revision, m.memberRevision, sole);
        this.emit('plan', {
          started: committed.started,
          stopped: committed.stopped,
          unplaced: plan.unplaced,
          conflicts: committed.conflicts,
          transactions: committed.transactions,
          planMs,
          durationMs: performance.now() - t0,
        });
        delay = 50;
        if (committed.again) {
          // Conflicts are planned again once the watch has caught up: yield to it, or a
          // conflict that persists (a store answering from memory) starves the event loop.
          this.#again = true;
          return;
        }
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        this.#uncertain = true;
        this.#watchJobsUntil = this.#o.clock.now() + UNCERTAIN_WATCH_JOBS_MS;
        this.#o.logger.warn({ err }, 'commit failed; planning again');
        this.emit('error', err);
        this.#requeue(plan);
        await sleep(this.#o.clock, delay, this.#abort.signal);
        delay = Math.min(delay * 2, 5000);
        try {
          await this.#catchUp();
          this.#uncertain = false;
        } catch (barrierError) {
          // Still unreachable: the next commit fails too, or lands with the allocation checks.
          if (!this.#abort.signal.aborted) this.emit('error', barrierError);
        }
      }
    }
  }

  /** The part of a plan for the apps this scheduler owns under the current epoch. */
  #mine(plan: Plan): Plan {
    const m = this.#membership;
    if (m.members.length === 1 && m.active) return plan;
    const appOf = (jobId: string): string | undefined => this.#mirror.jobs.get(jobId)?.app;
    return {
      start: plan.start.filter((s) => m.owns(s.app)),
      stop: plan.stop.filter((s) => {
        const app = appOf(s.jobId);
        return app !== undefined && m.owns(app);
      }),
      unplaced: plan.unplaced.filter((u) => m.owns(u.app)),
    };
  }

  #requeue(plan: Plan): void {
    for (const s of plan.start) this.#planner.invalidate(s.app, s.release, s.type);
    for (const s of plan.stop) {
      const j = this.#mirror.jobs.get(s.jobId);
      if (j !== undefined) this.#planner.invalidate(j.app, j.release, j.type);
    }
  }
}
