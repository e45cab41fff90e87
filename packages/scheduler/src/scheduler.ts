import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import {
  type Clock,
  type Logger,
  isFlotillaError,
  sleep,
  silentLogger,
  systemClock,
} from '@flotilla/core';
import type { KeyValue, Store, TxnOp, Compare, WatchEvent } from '@flotilla/store';
import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { ClusterKeys } from './keys.js';
import { Planner, type PlannerOptions } from './planner.js';
import {
  parseFormation,
  parseHostRecord,
  parseJobRecord,
  type HostAlloc,
  type HostRecord,
  type JobRecord,
} from './records.js';
import type { Plan, PlannedStart, PlannedStop, Unplaced } from './types.js';

/** Options of {@link Scheduler}. */
export interface SchedulerOptions extends PlannerOptions {
  /** The store holding the cluster state (shared with host agents and other schedulers). */
  readonly store: Store;
  /** Key prefix of the cluster state (default `'cluster/'`); see {@link ClusterKeys}. */
  readonly prefix?: string;
  /** This scheduler's id, written into the allocations it commits (default: random). */
  readonly id?: string;
  /** Drives restart backoff and host grace periods (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
  /** How long an up host may go without a heartbeat, when the scheduler starts, before it is marked down (default 10,000 ms). */
  readonly hostGraceMs?: number;
  /** Delays before restarting a crashed job, by consecutive crash (default 0, 10 s, 30 s, 1 min, 2 min, 5 min). */
  readonly restartBackoffMs?: readonly number[];
  /** A process type's crash count resets after this long without a crash (default 5 minutes). */
  readonly crashResetMs?: number;
  /** Consecutive crashes after which a `crashloop` is reported (default 5). */
  readonly crashLoopAfter?: number;
  /** Transactions in flight at once while committing a plan (default 16). */
  readonly commitConcurrency?: number;
}

/** What one planning cycle did. */
export interface PlanReport {
  /** Jobs started (committed). */
  readonly started: number;
  /** Jobs asked to stop (committed). */
  readonly stopped: number;
  /** Jobs that could not be placed. */
  readonly unplaced: readonly Unplaced[];
  /** Placements or stops refused because another writer changed the host or job first; they are planned again. */
  readonly conflicts: number;
  /** Transactions committed. */
  readonly transactions: number;
  /** Time spent planning, in ms. */
  readonly planMs: number;
  /** Time from the start of planning to the last commit, in ms. */
  readonly durationMs: number;
}

/** A process type that keeps crashing. */
export interface CrashLoop {
  readonly app: string;
  readonly release: string;
  readonly type: string;
  /** Consecutive crashes. */
  readonly crashes: number;
  /** Delay before the next restart, in ms. */
  readonly nextRestartInMs: number;
}

/** Events of a {@link Scheduler}. */
export interface SchedulerEvents {
  /** A planning cycle committed its plan. */
  plan: (report: PlanReport) => void;
  /** A host's heartbeat lapsed and it was marked down; its jobs are replaced. */
  'host-down': (hostId: string) => void;
  /** A process type keeps crashing; it is restarted at the longest backoff. */
  crashloop: (info: CrashLoop) => void;
  /** A record in the store could not be read; it is ignored. */
  'invalid-record': (key: string, error: unknown) => void;
  /** A store call failed; the cycle is retried. */
  error: (error: unknown) => void;
}

/** The lifecycle of a {@link Scheduler}. */
export type SchedulerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

interface KnownJob {
  record: JobRecord;
  key: string;
  rev: number;
}

interface CrashState {
  count: number;
  lastAt: number;
}

/** A unit of commit: one transaction's worth of work on one host or one job. */
interface Unit {
  readonly compare: Compare[];
  readonly ops: TxnOp[];
  readonly bytes: number;
  /** Applies the unit's effect locally after a successful commit. */
  readonly apply: (revision: number) => void;
  /** Marks what it planned for planning again after a conflict. */
  readonly retry: () => void;
  readonly starts: number;
  readonly stops: number;
}

const DEFAULT_BACKOFF = [0, 10_000, 30_000, 60_000, 120_000, 300_000];

/**
 * The scheduler service: watches hosts, formations and jobs in a store, keeps a {@link Planner}
 * current with every change, plans only what changed, and commits each plan as store
 * transactions that check the revision of every host they place on (Omega's optimistic,
 * fine-grained commits). Several schedulers may run at once on one store: a commit whose host
 * changed under it fails for that host alone, which is planned again. None over-commits a host.
 *
 * It also marks hosts down when their heartbeat lease lapses (their jobs are replaced
 * elsewhere), restarts crashed jobs with backoff, and garbage-collects jobs that ended.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler({ store, strategy: 'spread' });
 * scheduler.on('plan', (r) => log.info(r, 'plan committed'));
 * await scheduler.start();
 * await putJson(store, new ClusterKeys().formation('demo', 'v3'), formation);
 * ```
 */
export class Scheduler extends EventEmitter<SchedulerEvents> implements AsyncDisposable {
  readonly id: string;
  readonly keys: ClusterKeys;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #planner: Planner;
  readonly #options: SchedulerOptions;
  #state: SchedulerState = 'idle';
  readonly #hosts = new Map<string, { record: HostRecord; rev: number }>();
  readonly #heartbeats = new Set<string>();
  readonly #formationKeys = new Set<string>();
  readonly #jobs = new Map<string, KnownJob>();
  readonly #allocRev = new Map<string, number>();
  readonly #usage = new Map<string, { jobs: number; cpu: number; memory: number }>();
  readonly #crashes = new Map<string, CrashState>();
  readonly #held = new Map<string, unknown>();
  readonly #graceTimers = new Map<string, unknown>();
  readonly #abort = new AbortController();
  #watching: Promise<void> | undefined;
  #cycle: Promise<void> | undefined;
  #again = false;
  #kicked = false;
  #idleWaiters: (() => void)[] = [];
  #seq = 0;
  readonly #tag = randomBytes(3).toString('hex');

  constructor(options: SchedulerOptions) {
    super();
    this.#options = options;
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.id = options.id ?? `scheduler-${randomBytes(4).toString('hex')}`;
    this.keys = new ClusterKeys(options.prefix);
    this.#planner = new Planner(options);
  }

  /** The lifecycle state. */
  get state(): SchedulerState {
    return this.#state;
  }

  /** What the scheduler knows of the cluster. */
  get stats(): { hosts: number; jobs: number; groups: number; heldForBackoff: number } {
    const s = this.#planner.stats;
    return {
      hosts: s.hosts,
      jobs: this.#jobs.size,
      groups: s.groups,
      heldForBackoff: this.#held.size,
    };
  }

  /** Loads the cluster state, starts watching it and plans. Idempotent. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state !== 'idle') {
      if (this.#state === 'stopped' || this.#state === 'stopping') throw this.#closedError();
      return;
    }
    this.#state = 'starting';
    try {
      const revision = await this.#resync(options.signal);
      for (const [id, host] of this.#hosts) {
        if (host.record.state === 'up' && !this.#heartbeats.has(id)) this.#startGrace(id);
      }
      this.#watching = this.#watch(revision + 1);
      this.#state = 'running';
      this.#kick();
    } catch (err) {
      this.#state = 'failed';
      throw err;
    }
  }

  /** Resolves once nothing is left to plan and no commit is in flight. */
  idle(): Promise<void> {
    if (this.#quiet()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops watching and planning. Idempotent. Jobs keep running; another scheduler takes over. */
  async close(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    this.#abort.abort();
    for (const t of this.#held.values()) this.#clock.clearTimeout(t);
    for (const t of this.#graceTimers.values()) this.#clock.clearTimeout(t);
    this.#held.clear();
    this.#graceTimers.clear();
    await this.#watching?.catch(() => undefined);
    await this.#cycle?.catch(() => undefined);
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

  async #watch(fromRevision: number): Promise<void> {
    const signal = this.#abort.signal;
    let from = fromRevision;
    let delay = 100;
    for (;;) {
      try {
        for await (const ev of this.#store.watch(this.keys.prefix, {
          fromRevision: from,
          signal,
        })) {
          this.#apply(ev);
          from = ev.revision + 1;
          delay = 100;
          this.#kick();
        }
        return;
      } catch (watchError) {
        if (signal.aborted) return;
        let err = watchError;
        if (isFlotillaError(err, 'FLOTILLA_STORE_COMPACTED')) {
          // We fell behind the store's history (a long disconnect): read everything again.
          this.#logger.warn({ err }, 'scheduler watch compacted: resynchronising');
          try {
            from = (await this.#resync()) + 1;
            this.#kick();
            continue;
          } catch (resyncError) {
            if (signal.aborted) return;
            err = resyncError;
          }
        }
        if (isFlotillaError(err) && err.retryable) {
          this.emit('error', err);
          await sleep(this.#clock, delay, this.#abort.signal);
          delay = Math.min(delay * 2, 5000);
          continue;
        }
        this.#logger.error({ err }, 'scheduler watch failed');
        this.#state = 'failed';
        this.emit('error', err);
        this.#settle();
        return;
      }
    }
  }

  /** Lists the whole cluster state again and applies the difference; returns the list's revision. */
  async #resync(signal: AbortSignal = this.#abort.signal): Promise<number> {
    const listed = await this.#store.list(this.keys.prefix, { signal });
    const present = new Set(listed.kvs.map((kv) => kv.key));
    const gone: string[] = [];
    for (const id of this.#hosts.keys())
      if (!present.has(this.keys.host(id))) gone.push(this.keys.host(id));
    for (const id of this.#heartbeats)
      if (!present.has(this.keys.heartbeat(id))) gone.push(this.keys.heartbeat(id));
    for (const key of this.#formationKeys) if (!present.has(key)) gone.push(key);
    for (const job of this.#jobs.values()) if (!present.has(job.key)) gone.push(job.key);
    for (const key of gone) this.#applyDelete(key, listed.revision);
    // Jobs last, so that they find their hosts: two passes, no sort of a million keys.
    const jobs = this.keys.jobs;
    for (const kv of listed.kvs) if (!kv.key.startsWith(jobs)) this.#applyPut(kv);
    for (const kv of listed.kvs) if (kv.key.startsWith(jobs)) this.#applyPut(kv);
    return listed.revision;
  }

  #apply(ev: WatchEvent): void {
    if (ev.type === 'put') this.#applyPut(ev.kv);
    else this.#applyDelete(ev.kv.key, ev.revision);
  }

  #applyPut(kv: KeyValue): void {
    const where = this.keys.parse(kv.key);
    if (where === undefined) return;
    try {
      switch (where.kind) {
        case 'host': {
          // An echo of what we already hold (our own commit, seen again by the watch): skip
          // the parse.
          const known = this.#hosts.get(where.hostId);
          if (known !== undefined && known.rev >= kv.modRevision) return;
          const record = parseHostRecord(kv.value);
          if (record.id !== where.hostId)
            throw new Error(`host record id ${record.id} does not match its key`);
          this.#hosts.set(record.id, { record, rev: kv.modRevision });
          this.#planner.setHost(record);
          if (record.state !== 'up') this.#stopGrace(record.id);
          else if (
            !this.#heartbeats.has(record.id) &&
            known?.record.state !== 'up' &&
            this.#state === 'running'
          ) {
            this.#startGrace(record.id);
          }
          return;
        }
        case 'heartbeat':
          this.#heartbeats.add(where.hostId);
          this.#stopGrace(where.hostId);
          return;
        case 'alloc':
          if ((this.#allocRev.get(where.hostId) ?? 0) < kv.modRevision)
            this.#allocRev.set(where.hostId, kv.modRevision);
          return;
        case 'formation': {
          const formation = parseFormation(kv.value);
          if (formation.app !== where.app || formation.release !== where.release) {
            throw new Error('formation app and release do not match its key');
          }
          this.#planner.setFormation(formation);
          this.#formationKeys.add(kv.key);
          return;
        }
        case 'job': {
          const known = this.#jobs.get(where.jobId);
          if (known !== undefined && known.rev >= kv.modRevision) return; // an echo
          const record = parseJobRecord(kv.value);
          if (record.id !== where.jobId || record.hostId !== where.hostId)
            throw new Error('job record does not match its key');
          this.#applyJob(record, kv.key, kv.modRevision);
          return;
        }
      }
    } catch (err) {
      const error = isFlotillaError(err)
        ? err
        : new SchedulerError(
            SchedulerErrorCodes.INVALID_RECORD,
            `record at ${kv.key} is invalid: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
      this.#logger.warn({ key: kv.key, err: error }, 'ignoring an invalid record');
      this.emit('invalid-record', kv.key, error);
    }
  }

  #applyDelete(key: string, revision: number): void {
    const where = this.keys.parse(key);
    if (where === undefined) return;
    switch (where.kind) {
      case 'host':
        this.#hosts.delete(where.hostId);
        this.#planner.removeHost(where.hostId);
        this.#stopGrace(where.hostId);
        return;
      case 'heartbeat':
        this.#heartbeats.delete(where.hostId);
        if (this.#hosts.get(where.hostId)?.record.state === 'up') void this.#markDown(where.hostId);
        return;
      case 'alloc':
        if ((this.#allocRev.get(where.hostId) ?? 0) < revision) this.#allocRev.set(where.hostId, 0);
        return;
      case 'formation':
        this.#planner.removeFormation(where.app, where.release);
        this.#formationKeys.delete(key);
        return;
      case 'job':
        this.#forgetJob(where.jobId);
        return;
    }
  }

  #applyJob(record: JobRecord, key: string, rev: number): void {
    const known = this.#jobs.get(record.id);
    if (known !== undefined && known.rev >= rev) return;
    this.#track(known?.record, record);
    this.#jobs.set(record.id, { record, key, rev });
    if (record.state === 'down') {
      // Ended: nothing to keep. Collect it.
      this.#planner.removeJob(record.id);
      void this.#collect(key, rev);
      return;
    }
    if (record.state === 'crashed') {
      this.#crashed(record, key, rev);
      return;
    }
    if (this.#held.has(record.id)) return; // still in backoff: the planner sees it as pending
    this.#planner.setJob(record);
  }

  #forgetJob(id: string): void {
    const known = this.#jobs.get(id);
    if (known === undefined) return;
    this.#track(known.record, undefined);
    this.#jobs.delete(id);
    const timer = this.#held.get(id);
    if (timer !== undefined) {
      this.#clock.clearTimeout(timer);
      this.#held.delete(id);
    }
    this.#planner.removeJob(id);
  }

  /** Keeps the per-host allocation summary current. */
  #track(before: JobRecord | undefined, after: JobRecord | undefined): void {
    const holds = (j: JobRecord | undefined): j is JobRecord =>
      j !== undefined && j.state !== 'down' && j.state !== 'crashed';
    if (holds(before)) this.#addUsage(before.hostId, before, -1);
    if (holds(after)) this.#addUsage(after.hostId, after, 1);
  }

  #addUsage(hostId: string, job: JobRecord, sign: 1 | -1): void {
    const u = this.#usage.get(hostId) ?? { jobs: 0, cpu: 0, memory: 0 };
    u.jobs += sign;
    u.cpu += sign * job.resources.cpu;
    u.memory += sign * job.resources.memory;
    if (u.jobs === 0) this.#usage.delete(hostId);
    else this.#usage.set(hostId, u);
  }

  #crashed(record: JobRecord, key: string, rev: number): void {
    const groupKey = `${record.app}\u0000${record.release}\u0000${record.type}`;
    const now = this.#clock.now();
    const backoff = this.#options.restartBackoffMs ?? DEFAULT_BACKOFF;
    const resetMs = this.#options.crashResetMs ?? 300_000;
    let state = this.#crashes.get(groupKey);
    if (state === undefined || now - state.lastAt >= resetMs) state = { count: 0, lastAt: now };
    const delay = backoff[Math.min(state.count, backoff.length - 1)] ?? 0;
    state.count++;
    state.lastAt = now;
    this.#crashes.set(groupKey, state);
    if (state.count >= (this.#options.crashLoopAfter ?? 5)) {
      this.#logger.warn(
        { app: record.app, type: record.type, crashes: state.count, delay },
        'process type keeps crashing',
      );
      this.emit('crashloop', {
        app: record.app,
        release: record.release,
        type: record.type,
        crashes: state.count,
        nextRestartInMs: delay,
      });
    }
    const release = (): void => {
      this.#held.delete(record.id);
      // Not counted any more: the planner replaces it; the record is collected.
      this.#planner.setJob(record);
      void this.#collect(key, rev);
      this.#kick();
    };
    if (delay <= 0) {
      release();
      return;
    }
    // During the backoff the slot stays taken: the planner sees the job as pending.
    this.#planner.setJob({ ...record, state: 'pending' });
    this.#held.set(record.id, this.#clock.setTimeout(release, delay));
  }

  /** Deletes an ended job's record, unless it changed since. */
  async #collect(key: string, rev: number): Promise<void> {
    try {
      await this.#store.txn({
        compare: [{ key, target: 'modRevision', op: '==', value: rev }],
        success: [{ op: 'delete', key }],
      });
    } catch (err) {
      if (!this.#abort.signal.aborted) this.emit('error', err);
    }
  }

  #startGrace(hostId: string): void {
    if (this.#graceTimers.has(hostId)) return;
    this.#graceTimers.set(
      hostId,
      this.#clock.setTimeout(() => {
        this.#graceTimers.delete(hostId);
        if (!this.#heartbeats.has(hostId) && this.#hosts.get(hostId)?.record.state === 'up')
          void this.#markDown(hostId);
      }, this.#options.hostGraceMs ?? 10_000),
    );
  }

  #stopGrace(hostId: string): void {
    const t = this.#graceTimers.get(hostId);
    if (t !== undefined) this.#clock.clearTimeout(t);
    this.#graceTimers.delete(hostId);
  }

  /** Marks a host whose heartbeat lapsed as down, unless its record changed meanwhile. */
  async #markDown(hostId: string): Promise<void> {
    const known = this.#hosts.get(hostId);
    if (known === undefined || known.record.state !== 'up') return;
    const record: HostRecord = { ...known.record, state: 'down' };
    const key = this.keys.host(hostId);
    try {
      const res = await this.#store.txn({
        compare: [
          { key, target: 'modRevision', op: '==', value: known.rev },
          { key: this.keys.heartbeat(hostId), target: 'version', op: '==', value: 0 },
        ],
        success: [{ op: 'put', key, value: JSON.stringify(record) }],
      });
      if (!res.succeeded) return; // someone else marked it, or it came back
      this.#logger.warn({ hostId }, 'host heartbeat lapsed: marked down');
      this.#applyPut({
        key,
        value: JSON.stringify(record),
        createRevision: 0,
        modRevision: res.revision,
        version: 0,
      });
      this.emit('host-down', hostId);
      this.#kick();
    } catch (err) {
      if (!this.#abort.signal.aborted) this.emit('error', err);
    }
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
      const plan = this.#planner.plan();
      const planMs = performance.now() - t0;
      try {
        const committed = await this.#commit(plan);
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
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        this.#logger.warn({ err }, 'commit failed; planning again');
        this.emit('error', err);
        this.#requeue(plan);
        await sleep(this.#clock, delay, this.#abort.signal);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  #requeue(plan: Plan): void {
    for (const s of plan.start) this.#planner.invalidate(s.app, s.release, s.type);
    for (const s of plan.stop) {
      const j = this.#jobs.get(s.jobId)?.record;
      if (j !== undefined) this.#planner.invalidate(j.app, j.release, j.type);
    }
  }

  async #commit(
    plan: Plan,
  ): Promise<{ started: number; stopped: number; conflicts: number; transactions: number }> {
    const units = [...this.#stopUnits(plan.stop), ...this.#startUnits(plan.start)];
    const limits = this.#store.limits;
    const maxOps = limits.maxTxnOps;
    const maxBytes = Math.floor(limits.maxRequestBytes * 0.9);
    // Pack units into transactions within the store's limits.
    const batches: Unit[][] = [];
    let batch: Unit[] = [];
    let ops = 0;
    let bytes = 0;
    for (const u of units) {
      const n = u.ops.length + u.compare.length;
      if (batch.length > 0 && (ops + n > maxOps || bytes + u.bytes > maxBytes)) {
        batches.push(batch);
        batch = [];
        ops = 0;
        bytes = 0;
      }
      batch.push(u);
      ops += n;
      bytes += u.bytes;
    }
    if (batch.length > 0) batches.push(batch);

    const result = { started: 0, stopped: 0, conflicts: 0, transactions: 0 };
    const run = async (b: Unit[]): Promise<void> => {
      const res = await this.#store.txn({
        compare: b.flatMap((u) => u.compare),
        success: b.flatMap((u) => u.ops),
      });
      result.transactions++;
      if (res.succeeded) {
        for (const u of b) {
          u.apply(res.revision);
          result.started += u.starts;
          result.stopped += u.stops;
        }
        return;
      }
      if (b.length === 1) {
        // This host or job changed under us: plan it again once the watch has caught up.
        result.conflicts += (b[0] as Unit).starts + (b[0] as Unit).stops;
        (b[0] as Unit).retry();
        this.#again = true;
        return;
      }
      // Find the units that conflict: commit each on its own.
      for (const u of b) await run([u]);
    };
    let next = 0;
    const width = Math.max(1, this.#options.commitConcurrency ?? 16);
    await Promise.all(
      Array.from({ length: Math.min(width, batches.length) }, async () => {
        while (next < batches.length) await run(batches[next++] as Unit[]);
      }),
    );
    return result;
  }

  #stopUnits(stops: readonly PlannedStop[]): Unit[] {
    const units: Unit[] = [];
    for (const stop of stops) {
      const known = this.#jobs.get(stop.jobId);
      if (known === undefined) continue;
      const { record, key, rev } = known;
      const gone = stop.reason === 'host-down' || stop.reason === 'host-unknown';
      const next: JobRecord = {
        ...record,
        state: 'stopping',
        desired: 'stop',
        stopReason: stop.reason,
      };
      const value = JSON.stringify(next);
      units.push({
        compare: [{ key, target: 'modRevision', op: '==', value: rev }],
        // Nobody is left to stop a job on a down host: drop its record.
        ops: gone ? [{ op: 'delete', key }] : [{ op: 'put', key, value }],
        bytes: key.length * 2 + (gone ? 0 : value.length),
        starts: 0,
        stops: 1,
        apply: (revision) => {
          if (gone) this.#forgetJob(record.id);
          else this.#applyJob(next, key, revision);
        },
        retry: () => this.#planner.invalidate(record.app, record.release, record.type),
      });
    }
    return units;
  }

  #startUnits(starts: readonly PlannedStart[]): Unit[] {
    const byHost = new Map<string, PlannedStart[]>();
    for (const s of starts) {
      let list = byHost.get(s.hostId);
      if (list === undefined) byHost.set(s.hostId, (list = []));
      list.push(s);
    }
    const units: Unit[] = [];
    // Each unit: compare the host's allocation and record revisions, put the jobs, put the
    // allocation.
    const perUnit = Math.max(1, this.#store.limits.maxTxnOps - 3);
    const now = this.#clock.now();
    for (const [hostId, list] of byHost) {
      const allocKey = this.keys.alloc(hostId);
      // One unit per host: more jobs than fit one transaction are left for the next cycle.
      const chunk = list.slice(0, perUnit);
      if (chunk.length < list.length) {
        for (const s of list.slice(perUnit)) this.#planner.invalidate(s.app, s.release, s.type);
        this.#again = true;
      }
      const records: JobRecord[] = chunk.map((s) => ({
        id: this.#jobId(s.type),
        app: s.app,
        release: s.release,
        type: s.type,
        hostId,
        resources: s.resources,
        state: 'pending',
        desired: 'run',
        createdAt: now,
      }));
      const usage = this.#usage.get(hostId) ?? { jobs: 0, cpu: 0, memory: 0 };
      const alloc: HostAlloc = {
        jobs: usage.jobs + records.length,
        cpu: usage.cpu + records.reduce((a, r) => a + r.resources.cpu, 0),
        memory: usage.memory + records.reduce((a, r) => a + r.resources.memory, 0),
        by: this.id,
      };
      const ops: TxnOp[] = records.map((r) => ({
        op: 'put',
        key: this.keys.job(hostId, r.id),
        value: JSON.stringify(r),
      }));
      ops.push({ op: 'put', key: allocKey, value: JSON.stringify(alloc) });
      const rev = this.#allocRev.get(hostId) ?? 0;
      const hostRev = this.#hosts.get(hostId)?.rev ?? 0;
      units.push({
        // The host's allocations and its record (state, capacity) are as this plan saw them.
        compare: [
          { key: allocKey, target: 'modRevision', op: '==', value: rev },
          { key: this.keys.host(hostId), target: 'modRevision', op: '==', value: hostRev },
        ],
        ops,
        bytes:
          ops.reduce((a, o) => a + (o.op === 'put' ? o.key.length + o.value.length : 0), 0) * 2,
        starts: records.length,
        stops: 0,
        apply: (revision) => {
          if ((this.#allocRev.get(hostId) ?? 0) < revision) this.#allocRev.set(hostId, revision);
          for (const r of records) this.#applyJob(r, this.keys.job(hostId, r.id), revision);
        },
        retry: () => {
          for (const r of records) this.#planner.invalidate(r.app, r.release, r.type);
        },
      });
    }
    return units;
  }

  /** A job id unique across schedulers: type, time, a per-scheduler random tag, a sequence. */
  #jobId(type: string): string {
    this.#seq = (this.#seq + 1) % 0x1000000;
    return `${type}.${this.#clock.now().toString(36)}.${this.#tag}${this.#seq.toString(36)}`;
  }
}
