import { setMaxListeners } from 'node:events';
import { EventEmitter } from 'eventemitter3';
import {
  type Clock,
  type Logger,
  isFlotillaError,
  retry,
  silentLogger,
  systemClock,
} from '@flotilla/core';
import {
  listAndWatch,
  type CallOptions,
  type Compare,
  type KeyValue,
  type Lease,
  type LeaseEndReason,
  type Store,
  type TxnResult,
} from '@flotilla/store';
import { decodeRecord, type ClusterRecord } from './decode.js';
import { ClusterError, ClusterErrorCodes } from './errors.js';
import { validateId } from './ids.js';
import { ClusterKeys } from './keys.js';
import {
  drainForced,
  hostState,
  jobState,
  validateFormation,
  validateHostControl,
  validateHostRecord,
  validateJobStatus,
  validateReleaseRecord,
  type Formation,
  type HostAlloc,
  type HostControl,
  type HostRecord,
  type HostState,
  type JobRecord,
  type JobState,
  type JobStatus,
  type ReleaseRecord,
} from './records.js';

/** Options of {@link ClusterState}. */
export interface ClusterStateOptions {
  /** The store holding the cluster state. It is not closed by {@link ClusterState.close}. */
  readonly store: Store;
  /** Key prefix (default `'cluster/'`); see {@link ClusterKeys}. */
  readonly prefix?: string;
  /** Timestamps and watch backoff (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
}

/** Events of a {@link ClusterState}. */
export interface ClusterStateEvents {
  /** A record a read came across could not be parsed; it is left out of the result. */
  invalid: (error: ClusterError) => void;
}

/** A host as operators see it: its three records and the state derived from them. */
export interface HostView {
  readonly record: HostRecord;
  /** Whether its agent's heartbeat lease is alive. */
  readonly live: boolean;
  /** The operator's settings, when any were made. */
  readonly control: HostControl | undefined;
  readonly state: HostState;
  /**
   * Draining and past the drain's deadline (`control.drainDeadline`) by this ClusterState's
   * clock: the scheduler stops the jobs left on it whether or not their replacements are up.
   */
  readonly drainForced: boolean;
  /** What schedulers have placed on it. */
  readonly alloc: HostAlloc | undefined;
}

/** The longest drain deadline {@link ClusterState.drainHost} takes: 365 days, in ms. */
export const MAX_DRAIN_DEADLINE_MS = 365 * 24 * 60 * 60 * 1000;

/** Options of {@link ClusterState.drainHost}. */
export interface DrainHostOptions extends CallOptions {
  /** Why, for humans (`flotilla hosts` shows it); replaces the reason of an earlier call. */
  readonly reason?: string;
  /**
   * How long, from now, the drain waits for replacements: once it has passed, the scheduler
   * stops every job left on the host whether or not its replacement is up (a replacement
   * with no room anywhere, or one that keeps crashing, no longer holds the drain forever).
   * A whole number of ms from 1 to {@link MAX_DRAIN_DEADLINE_MS}; stored as the absolute
   * `HostControl.drainDeadline`. Absent (the default): no deadline, as before; a drain of a
   * host that had one drops it, since each drainHost call sets the drain anew.
   */
  readonly deadlineMs?: number;
}

/** A job as the controller sees it: the scheduler's record, the agent's status, the derived state. */
export interface JobView {
  readonly record: JobRecord;
  readonly status: JobStatus | undefined;
  readonly state: JobState;
}

/** A job assigned to a host, with what to run. */
export interface AssignedJob {
  readonly record: JobRecord;
  /** The job's release; undefined when it cannot be read (see `releaseError`). */
  readonly release: ReleaseRecord | undefined;
  /** Why the release could not be read (`FLOTILLA_CLUSTER_UNKNOWN_RELEASE` or `..._INVALID_RECORD`). */
  readonly releaseError?: ClusterError;
}

/** What {@link ClusterState.watchAssigned} yields. */
export type AssignedItem =
  | {
      /** Every job assigned to the host now; with `reset`, it replaces all earlier knowledge. */
      readonly type: 'snapshot';
      readonly jobs: readonly AssignedJob[];
      readonly reset: boolean;
    }
  /** A job newly assigned, or its record changed (asked to stop, say). */
  | { readonly type: 'assigned'; readonly job: AssignedJob }
  /** A job's record was deleted: it is no longer the host's to run. */
  | { readonly type: 'removed'; readonly jobId: string }
  /** A record under the host's jobs that cannot be read: reported, not skipped. */
  | { readonly type: 'invalid'; readonly key: string; readonly error: ClusterError };

/** A live host registration, from {@link ClusterState.registerHost}. */
export interface HostRegistration extends AsyncDisposable {
  readonly hostId: string;
  /** The agent's lease: the heartbeat vanishes when it ends. */
  readonly lease: Lease;
  /**
   * Resolves when the lease ends. On `'expired'` (the agent could not reach the store in time)
   * the scheduler has seen the host down; the agent registers again.
   */
  readonly ended: Promise<LeaseEndReason>;
  /** Revokes the lease: the host goes down at once. Its record and operator settings stay. Idempotent. */
  close(): Promise<void>;
  /**
   * Stops renewing the lease without revoking it: the host stays up for the rest of its TTL,
   * for a successor (a restarted agent) to take over, and goes down after it if none does.
   */
  release(): void;
}

/** Options of {@link ClusterState.registerHost}. */
export interface RegisterHostOptions extends CallOptions {
  /** Heartbeat lease TTL in ms (default 10,000): how soon schedulers notice a dead agent. */
  readonly ttlMs?: number;
  /**
   * Refuse (`FLOTILLA_CLUSTER_HOST_IN_USE`, retryable) while another lease holds the host's
   * heartbeat, instead of taking it over: two agents must never run one host's jobs. Default
   * false (the newest registration wins).
   */
  readonly exclusive?: boolean;
  /**
   * With `exclusive`: the lease of this agent's own previous registration (kept on its disk),
   * which it may take over while it is still alive: a restart within the TTL keeps the host up.
   */
  readonly takeOver?: string;
}

const CAS_ATTEMPTS = 16;

function hostView(
  record: HostRecord,
  live: boolean,
  control: HostControl | undefined,
  alloc: HostAlloc | undefined,
  now: number,
): HostView {
  return {
    record,
    live,
    control,
    state: hostState(live, control),
    drainForced: drainForced(control, now),
    alloc,
  };
}

type RecordOf<K extends ClusterRecord['kind']> =
  Extract<ClusterRecord, { kind: K }> extends {
    record: infer R;
  }
    ? R
    : never;

/**
 * The typed cluster state over a {@link Store}: every write validated and compare-and-set,
 * every read strict, each key written by one owner (see {@link ClusterKeys}). The controller,
 * host agents, operators' tools and the scheduler's simulator use it.
 *
 * @example
 * ```ts
 * const cluster = new ClusterState({ store });
 * await cluster.putRelease({ app: 'demo', release: 'v1', artifact, config: {}, processes: { web: { command: 'node server.js' } }, createdAt: Date.now() });
 * await cluster.setFormation({ app: 'demo', release: 'v1', processes: { web: { count: 2, resources: { cpu: 250, memory: 256 } } } });
 * const reg = await cluster.registerHost({ id: 'host-1', addr: '127.0.0.1:7000', capacity: { cpu: 4000, memory: 8192 } });
 * for await (const item of cluster.watchAssigned('host-1', { signal })) console.log(item);
 * ```
 */
export class ClusterState extends EventEmitter<ClusterStateEvents> implements AsyncDisposable {
  readonly keys: ClusterKeys;
  readonly store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #registrations = new Set<HostRegistration>();
  /** registerHost calls in flight: close() waits for them, and they refuse to finish after it. */
  readonly #registering = new Set<Promise<unknown>>();
  /** Aborted by close(): ends the watches opened here. */
  readonly #closing = new AbortController();
  #closed = false;

  constructor(options: ClusterStateOptions) {
    super();
    // One listener per open watch (each removed when its watch ends): any number may be open.
    setMaxListeners(0, this.#closing.signal);
    this.store = options.store;
    this.keys = new ClusterKeys(options.prefix);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
  }

  // --- releases and formations: the controller's -------------------------------------------

  /**
   * Writes a release record, once. Writing the same record again is a no-op (`created: false`);
   * a different record under an existing key is refused with `FLOTILLA_CLUSTER_RELEASE_EXISTS`:
   * releases are immutable, make a new one.
   */
  async putRelease(
    release: ReleaseRecord,
    options: CallOptions = {},
  ): Promise<{ created: boolean }> {
    this.#open();
    const record = validateReleaseRecord(release);
    const key = this.keys.release(record.app, record.release);
    const value = JSON.stringify(record);
    const res = await this.store.txn(
      {
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [{ op: 'put', key, value }],
        failure: [{ op: 'get', key }],
      },
      options,
    );
    if (res.succeeded) return { created: true };
    const got = res.results[0];
    if (got?.op === 'get' && got.kv?.value === value) return { created: false };
    throw new ClusterError(
      ClusterErrorCodes.RELEASE_EXISTS,
      `release ${record.release} of ${record.app} already exists with other content: releases are immutable, write a new release`,
      { key },
    );
  }

  /** Reads a release record; undefined when absent. */
  async getRelease(
    app: string,
    release: string,
    options: CallOptions = {},
  ): Promise<ReleaseRecord | undefined> {
    this.#open();
    const kv = await this.store.get(this.keys.release(app, release), options);
    if (kv === undefined) return undefined;
    return this.#decode(kv, 'release')?.record;
  }

  /** An app's release records, by release id. */
  async releases(app: string, options: CallOptions = {}): Promise<ReleaseRecord[]> {
    return this.#listOf(this.keys.releasesOf(app), 'release', options);
  }

  /**
   * Declares how many jobs of each process type of a release to run. The release record must
   * exist and define every process type named (`FLOTILLA_CLUSTER_UNKNOWN_RELEASE` otherwise),
   * so that no job is ever placed without a command.
   */
  async setFormation(
    formation: Formation,
    options: CallOptions = {},
  ): Promise<{ revision: number }> {
    this.#open();
    const record = validateFormation(formation);
    const releaseKey = this.keys.release(record.app, record.release);
    const release = await this.getRelease(record.app, record.release, options);
    if (release === undefined) {
      throw new ClusterError(
        ClusterErrorCodes.UNKNOWN_RELEASE,
        `release ${record.release} of ${record.app} does not exist: write it with putRelease first`,
        { key: releaseKey },
      );
    }
    for (const type of Object.keys(record.processes)) {
      // Own keys only: `toString` or `constructor` are not process types of the release.
      if (!Object.hasOwn(release.processes, type)) {
        throw new ClusterError(
          ClusterErrorCodes.UNKNOWN_RELEASE,
          `release ${record.release} of ${record.app} has no process type ${type} (it has ${Object.keys(release.processes).join(', ') || 'none'})`,
          { key: releaseKey, path: `processes.${type}` },
        );
      }
    }
    const key = this.keys.formation(record.app, record.release);
    const res = await this.store.txn(
      {
        // The release cannot vanish between the check and the write.
        compare: [{ key: releaseKey, target: 'version', op: '>', value: 0 }],
        success: [{ op: 'put', key, value: JSON.stringify(record) }],
      },
      options,
    );
    if (!res.succeeded) {
      throw new ClusterError(
        ClusterErrorCodes.UNKNOWN_RELEASE,
        `release ${record.release} of ${record.app} was deleted while the formation was written`,
        { key: releaseKey },
      );
    }
    return { revision: res.revision };
  }

  /** Removes a release's formation: its jobs are stopped. True when there was one. */
  async removeFormation(app: string, release: string, options: CallOptions = {}): Promise<boolean> {
    this.#open();
    const res = await this.store.delete(this.keys.formation(app, release), options);
    return res.deleted > 0;
  }

  /** The formations, of one app or of all. */
  async formations(options: CallOptions & { app?: string } = {}): Promise<Formation[]> {
    const prefix =
      options.app === undefined ? this.keys.formations : this.keys.formationsOf(options.app);
    return this.#listOf(prefix, 'formation', options);
  }

  // --- hosts: the agent's and the operators' -----------------------------------------------

  /**
   * Registers a host: writes its record (address, tags, capacity) and its heartbeat under a
   * new lease kept alive until {@link HostRegistration.close}. Never touches the operator's
   * settings: a restarted agent leaves a drain in place. A {@link close} while it is in flight
   * wins: the lease is revoked and the call rejects with `FLOTILLA_CLUSTER_CLOSED`.
   */
  async registerHost(
    host: Omit<HostRecord, 'registeredAt'> & { registeredAt?: number },
    options: RegisterHostOptions = {},
  ): Promise<HostRegistration> {
    this.#open();
    const registering = this.#register(host, options);
    this.#registering.add(registering);
    try {
      return await registering;
    } finally {
      this.#registering.delete(registering);
    }
  }

  async #register(
    host: Omit<HostRecord, 'registeredAt'> & { registeredAt?: number },
    options: RegisterHostOptions,
  ): Promise<HostRegistration> {
    const now = this.#clock.now();
    const record = validateHostRecord({ ...host, registeredAt: host.registeredAt ?? now });
    const lease = await this.store.grant(options.ttlMs ?? 10_000, options);
    try {
      // Closed while the lease was granted: write nothing.
      this.#open();
      const heartbeat = this.keys.heartbeat(record.id);
      const write = (compare: Compare[]): Promise<TxnResult> =>
        this.store.txn(
          {
            compare,
            success: [
              { op: 'put', key: this.keys.host(record.id), value: JSON.stringify(record) },
              {
                op: 'put',
                key: heartbeat,
                value: JSON.stringify({ at: now, lease: lease.id }),
                lease: lease.id,
              },
            ],
            failure: [{ op: 'get', key: heartbeat }],
          },
          options,
        );
      let res: TxnResult;
      if (options.exclusive !== true) res = await write([]);
      else {
        // Free, or held by our own previous life: ours. Held by any other lease: not ours.
        res =
          options.takeOver === undefined
            ? await write([{ key: heartbeat, target: 'version', op: '==', value: 0 }])
            : await write([{ key: heartbeat, target: 'lease', op: '==', value: options.takeOver }]);
        if (!res.succeeded && options.takeOver !== undefined)
          res = await write([{ key: heartbeat, target: 'version', op: '==', value: 0 }]);
      }
      if (!res.succeeded) {
        const held = res.results[0];
        const other = held?.op === 'get' ? held.kv?.lease : undefined;
        throw new ClusterError(
          ClusterErrorCodes.HOST_IN_USE,
          `host ${record.id} is registered by another live agent (lease ${other ?? 'unknown'}): give each machine its own host id, or wait for that agent's lease to expire`,
          { key: heartbeat, retryable: true },
        );
      }
      await lease.keepAlive(options);
      // Closed while the heartbeat was written: close() did not see this registration.
      this.#open();
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    const registrations = this.#registrations;
    const registration: HostRegistration = {
      hostId: record.id,
      lease,
      ended: lease.ended,
      async close() {
        registrations.delete(registration);
        await lease.revoke().catch((err: unknown) => {
          if (!isFlotillaError(err, 'FLOTILLA_STORE_CLOSED')) throw err;
        });
      },
      release() {
        registrations.delete(registration);
        lease.release();
      },
      async [Symbol.asyncDispose]() {
        await registration.close();
      },
    };
    this.#registrations.add(registration);
    void lease.ended.then(() => this.#registrations.delete(registration));
    return registration;
  }

  /**
   * Drains a host: it gets no new jobs and its jobs are placed elsewhere, each stopped once its
   * replacement is up. With `deadlineMs`, the jobs still there when it passes are stopped
   * anyway. Operators' call; `FLOTILLA_CLUSTER_INVALID_OPTION` for a bad `deadlineMs` and
   * `FLOTILLA_CLUSTER_UNKNOWN_HOST` for a host that never registered, writing nothing.
   *
   * @example
   * ```ts
   * await cluster.drainHost('host-1', { reason: 'kernel upgrade', deadlineMs: 10 * 60_000 });
   * ```
   */
  async drainHost(hostId: string, options: DrainHostOptions = {}): Promise<HostControl> {
    this.#open();
    const { deadlineMs } = options;
    if (
      deadlineMs !== undefined &&
      !(Number.isSafeInteger(deadlineMs) && deadlineMs >= 1 && deadlineMs <= MAX_DRAIN_DEADLINE_MS)
    ) {
      throw new ClusterError(
        ClusterErrorCodes.INVALID_OPTION,
        `deadlineMs must be a whole number of ms from 1 to ${MAX_DRAIN_DEADLINE_MS} (365 days), got ${String(deadlineMs)}: give how long the drain may wait for replacements, or none for no deadline`,
        { path: 'deadlineMs' },
      );
    }
    return this.#control(
      hostId,
      (c, now) => ({
        eligible: c.eligible,
        drain: true,
        ...(deadlineMs === undefined ? {} : { drainDeadline: now + deadlineMs }),
      }),
      options,
    );
  }

  /** Ends a drain (and its deadline). */
  async undrainHost(
    hostId: string,
    options: CallOptions & { reason?: string } = {},
  ): Promise<HostControl> {
    return this.#control(hostId, (c) => ({ eligible: c.eligible, drain: false }), options);
  }

  /** Makes a host eligible for new jobs, or not (its jobs keep running). A drain and its deadline stay. */
  async setEligible(
    hostId: string,
    eligible: boolean,
    options: CallOptions & { reason?: string } = {},
  ): Promise<HostControl> {
    return this.#control(
      hostId,
      (c) => ({
        eligible,
        drain: c.drain,
        ...(c.drainDeadline === undefined ? {} : { drainDeadline: c.drainDeadline }),
      }),
      options,
    );
  }

  async #control(
    hostId: string,
    change: (c: HostControl, now: number) => Omit<HostControl, 'reason' | 'updatedAt'>,
    options: CallOptions & { reason?: string },
  ): Promise<HostControl> {
    this.#open();
    const key = this.keys.hostControl(hostId);
    const hostKey = this.keys.host(hostId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const [host, kv] = await Promise.all([
        this.store.get(hostKey, options),
        this.store.get(key, options),
      ]);
      if (host === undefined) {
        throw new ClusterError(
          ClusterErrorCodes.UNKNOWN_HOST,
          `host ${hostId} has never registered: check the id (flotilla hosts lists them)`,
          { key: hostKey },
        );
      }
      const current: HostControl =
        kv === undefined
          ? { eligible: true, drain: false, updatedAt: 0 }
          : (this.#decode(kv, 'host-control')?.record ?? {
              eligible: true,
              drain: false,
              updatedAt: 0,
            });
      const now = this.#clock.now();
      // The reason is the one of this call: an older reason does not carry over.
      const next = validateHostControl({
        ...change(current, now),
        ...(options.reason === undefined ? {} : { reason: options.reason }),
        updatedAt: now,
      });
      const res = await this.store.txn(
        {
          compare: [{ key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }],
          success: [{ op: 'put', key, value: JSON.stringify(next) }],
        },
        options,
      );
      if (res.succeeded) return next;
    }
    throw this.#conflict(key);
  }

  /** Every host with its derived state, sorted by id. */
  async hosts(options: CallOptions = {}): Promise<HostView[]> {
    this.#open();
    const [records, beats, controls, allocs] = await Promise.all([
      this.#listOf(this.keys.hosts, 'host', options),
      this.#list(this.keys.heartbeats, options),
      this.#list(this.keys.hostControls, options),
      this.#list(this.keys.allocs, options),
    ]);
    const live = new Set<string>();
    const control = new Map<string, HostControl>();
    const alloc = new Map<string, HostAlloc>();
    for (const r of beats) if (r.kind === 'heartbeat') live.add(r.hostId);
    for (const r of controls) if (r.kind === 'host-control') control.set(r.hostId, r.record);
    for (const r of allocs) if (r.kind === 'alloc') alloc.set(r.hostId, r.record);
    const now = this.#clock.now();
    return records.map((record) =>
      hostView(record, live.has(record.id), control.get(record.id), alloc.get(record.id), now),
    );
  }

  /**
   * One host with its derived state, as {@link hosts} gives it; undefined when it never
   * registered. Reads that host's four keys only, whatever the size of the cluster. A record
   * of it that cannot be read is reported through the `invalid` event and left out, as
   * {@link hosts} does (a corrupt host record: undefined).
   */
  async host(hostId: string, options: CallOptions = {}): Promise<HostView | undefined> {
    this.#open();
    const k = this.keys;
    const [recordKv, beatKv, controlKv, allocKv] = await Promise.all([
      this.store.get(k.host(hostId), options),
      this.store.get(k.heartbeat(hostId), options),
      this.store.get(k.hostControl(hostId), options),
      this.store.get(k.alloc(hostId), options),
    ]);
    const record = this.#readOne(recordKv, 'host')?.record;
    if (record === undefined) return undefined;
    const control = this.#readOne(controlKv, 'host-control')?.record;
    const alloc = this.#readOne(allocKv, 'alloc')?.record;
    const live = this.#readOne(beatKv, 'heartbeat') !== undefined;
    return hostView(record, live, control, alloc, this.#clock.now());
  }

  // --- jobs: the scheduler places, the agent reports ---------------------------------------

  /**
   * Reports what the host agent observed of one of its jobs. Writes only the job's status key,
   * never the scheduler's record. Returns false, writing nothing, when the job is no longer
   * assigned to that host (the scheduler removed it): the agent should stop it.
   */
  async reportJob(
    hostId: string,
    jobId: string,
    status: Omit<JobStatus, 'updatedAt'> & { updatedAt?: number },
    options: CallOptions = {},
  ): Promise<boolean> {
    this.#open();
    const record = validateJobStatus({
      ...status,
      updatedAt: status.updatedAt ?? this.#clock.now(),
    });
    const jobKey = this.keys.job(hostId, jobId);
    const res = await this.store.txn(
      {
        compare: [{ key: jobKey, target: 'version', op: '>', value: 0 }],
        success: [
          { op: 'put', key: this.keys.jobStatus(hostId, jobId), value: JSON.stringify(record) },
        ],
      },
      options,
    );
    return res.succeeded;
  }

  /** Jobs with their status and derived state, of one app or one host or all; sorted by key. */
  async jobs(options: CallOptions & { app?: string; hostId?: string } = {}): Promise<JobView[]> {
    this.#open();
    const { app, hostId } = options;
    if (app !== undefined) validateId('app', app);
    const [records, statuses] = await Promise.all([
      this.#listOf(
        hostId === undefined ? this.keys.jobs : this.keys.jobsOf(hostId),
        'job',
        options,
      ),
      this.#list(
        hostId === undefined ? this.keys.jobStatuses : this.keys.jobStatusesOf(hostId),
        options,
      ),
    ]);
    const byId = new Map<string, JobStatus>();
    for (const s of statuses)
      if (s.kind === 'job-status') byId.set(`${s.hostId}/${s.jobId}`, s.record);
    const out: JobView[] = [];
    for (const record of records) {
      if (app !== undefined && record.app !== app) continue;
      const status = byId.get(`${record.hostId}/${record.id}`);
      out.push({ record, status, state: jobState(record, status) });
    }
    return out;
  }

  /**
   * Watches the jobs assigned to one host, each with its release record: a snapshot first,
   * then every assignment, change and removal; after a long disconnect, a new snapshot with
   * `reset`. A job whose release cannot be read comes with `releaseError`, and a record that
   * cannot be read as an `invalid` item: nothing is skipped. Ends when `signal` aborts; throws
   * `FLOTILLA_CLUSTER_CLOSED` when this ClusterState closes.
   */
  async *watchAssigned(hostId: string, options: CallOptions = {}): AsyncGenerator<AssignedItem> {
    this.#open();
    const prefix = this.keys.jobsOf(hostId);
    // Ends on the caller's signal or on close(), whichever comes first.
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.#closing.signal.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true || this.#closing.signal.aborted) stop.abort();
    try {
      yield* this.#watchAssigned(hostId, prefix, stop.signal);
      if (this.#closed && options.signal?.aborted !== true) throw this.#closedError();
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      this.#closing.signal.removeEventListener('abort', onAbort);
    }
  }

  async *#watchAssigned(
    hostId: string,
    prefix: string,
    signal: AbortSignal,
  ): AsyncGenerator<AssignedItem> {
    const releases = new Map<string, ReleaseRecord | ClusterError>();
    /** The job with its release; undefined when the watch ended while the release was read. */
    const assigned = async (record: JobRecord): Promise<AssignedJob | undefined> => {
      const id = `${record.app}/${record.release}`;
      let release = releases.get(id);
      if (release === undefined) {
        try {
          release = await this.#releaseOrError(record, hostId, signal);
        } catch (err) {
          if (signal.aborted) return undefined;
          throw err;
        }
        // One read per release within a snapshot, unless it was missing. Not for longer: an app
        // destroyed and created again numbers its releases anew, and a cache kept for the
        // watch's life handed the new app's v2 jobs the old app's v2 (its slug and config).
        if (!(
          release instanceof ClusterError && release.code === ClusterErrorCodes.UNKNOWN_RELEASE
        ))
          releases.set(id, release);
      }
      return release instanceof ClusterError
        ? { record, release: undefined, releaseError: release }
        : { record, release };
    };
    for await (const item of listAndWatch(this.store, prefix, {
      signal,
      clock: this.#clock,
      onRetry: (err, delayMs) =>
        this.#logger.warn({ err, delayMs, hostId }, 'watch of assigned jobs failed: retrying'),
    })) {
      releases.clear();
      if (item.type === 'snapshot') {
        const jobs: AssignedJob[] = [];
        const invalid: AssignedItem[] = [];
        for (const kv of item.kvs) {
          const decoded = this.#tryDecode(kv);
          if (decoded instanceof ClusterError)
            invalid.push({ type: 'invalid', key: kv.key, error: decoded });
          else if (decoded?.kind === 'job') {
            const job = await assigned(decoded.record);
            if (job === undefined) return;
            jobs.push(job);
          }
        }
        yield { type: 'snapshot', jobs, reset: item.reset };
        for (const i of invalid) yield i;
        continue;
      }
      const { event } = item;
      if (event.type === 'delete') {
        const where = this.keys.parse(event.kv.key);
        if (where?.kind === 'job') yield { type: 'removed', jobId: where.jobId };
        continue;
      }
      const decoded = this.#tryDecode(event.kv);
      if (decoded instanceof ClusterError)
        yield { type: 'invalid', key: event.kv.key, error: decoded };
      else if (decoded?.kind === 'job') {
        const job = await assigned(decoded.record);
        if (job === undefined) return;
        yield { type: 'assigned', job };
      }
    }
  }

  /**
   * The release of an assigned job, or why it cannot be read. A retryable store error (etcd
   * unreachable for a moment) is retried with backoff on the clock, as the watch itself is,
   * rather than ending the agent's watch.
   */
  async #releaseOrError(
    record: JobRecord,
    hostId: string,
    signal: AbortSignal,
  ): Promise<ReleaseRecord | ClusterError> {
    const key = this.keys.release(record.app, record.release);
    const kv = await retry(() => this.store.get(key, { signal }), {
      clock: this.#clock,
      signal,
      onRetry: (err, delayMs) =>
        this.#logger.warn(
          { err, delayMs, hostId, key },
          'release of an assigned job cannot be read: retrying',
        ),
    });
    if (kv === undefined) {
      return new ClusterError(
        ClusterErrorCodes.UNKNOWN_RELEASE,
        `job ${record.id} names release ${record.release} of ${record.app}, which does not exist`,
        { key },
      );
    }
    const decoded = this.#tryDecode(kv);
    if (decoded instanceof ClusterError) return decoded;
    if (decoded?.kind !== 'release') throw new Error(`unreachable: ${key} is not a release key`);
    return decoded.record;
  }

  // --- lifecycle -----------------------------------------------------------------------------

  /**
   * Revokes the host registrations made here (waiting for those in flight) and ends the
   * watches opened here. The store stays open. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    // A registration in flight sees #closed and revokes its own lease.
    await Promise.allSettled([...this.#registering]);
    await Promise.all([...this.#registrations].map((r) => r.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- helpers -------------------------------------------------------------------------------

  #open(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): ClusterError {
    return new ClusterError(
      ClusterErrorCodes.CLOSED,
      'this ClusterState is closed: create a new one',
    );
  }

  #conflict(key: string): ClusterError {
    return new ClusterError(
      ClusterErrorCodes.CONFLICT,
      `${key} kept changing under ${CAS_ATTEMPTS} compare-and-set attempts: try again`,
      { key, retryable: true },
    );
  }

  #tryDecode(kv: KeyValue): ClusterRecord | ClusterError | undefined {
    try {
      return decodeRecord(this.keys, kv);
    } catch (err) {
      if (err instanceof ClusterError) return err;
      throw err;
    }
  }

  /** Decodes one record a call asked for by key: what cannot be read is thrown. */
  #decode<K extends ClusterRecord['kind']>(
    kv: KeyValue,
    kind: K,
  ): Extract<ClusterRecord, { kind: K }> | undefined {
    const decoded = decodeRecord(this.keys, kv);
    return decoded?.kind === kind ? (decoded as Extract<ClusterRecord, { kind: K }>) : undefined;
  }

  /** Decodes a record read by a list or a get: what cannot be read is reported, not thrown. */
  #decodeOrReport(kv: KeyValue): ClusterRecord | undefined {
    const decoded = this.#tryDecode(kv);
    if (!(decoded instanceof ClusterError)) return decoded;
    this.#logger.warn({ key: kv.key, err: decoded }, 'cluster record cannot be read');
    this.emit('invalid', decoded);
    return undefined;
  }

  /** Decodes one record read by key, as a list does: what cannot be read is reported, not thrown. */
  #readOne<K extends ClusterRecord['kind']>(
    kv: KeyValue | undefined,
    kind: K,
  ): Extract<ClusterRecord, { kind: K }> | undefined {
    const decoded = kv === undefined ? undefined : this.#decodeOrReport(kv);
    return decoded?.kind === kind ? (decoded as Extract<ClusterRecord, { kind: K }>) : undefined;
  }

  async #list(prefix: string, options: CallOptions): Promise<ClusterRecord[]> {
    const out: ClusterRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.store.list(prefix, {
        limit: 10_000,
        ...(after === undefined ? {} : { after }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      for (const kv of page.kvs) {
        const decoded = this.#decodeOrReport(kv);
        if (decoded !== undefined) out.push(decoded);
      }
      if (!page.more) return out;
      after = page.kvs[page.kvs.length - 1]?.key;
    }
  }

  async #listOf<K extends 'host' | 'formation' | 'release' | 'job'>(
    prefix: string,
    kind: K,
    options: CallOptions,
  ): Promise<RecordOf<K>[]> {
    this.#open();
    const out: RecordOf<K>[] = [];
    for (const r of await this.#list(prefix, options))
      if (r.kind === kind) out.push((r as unknown as { record: RecordOf<K> }).record);
    return out;
  }
}
