import {
  ClusterError,
  decodeRecord,
  hostState,
  jobState,
  type ClusterKeys,
  type Formation,
  type HostControl,
  type HostRecord,
  type JobRecord,
  type JobStatus,
  type SchedulerEpoch,
} from '@flotilla/cluster';
import type { KeyValue, WatchEvent } from '@flotilla/store';
import type { Planner } from '../planner.js';
import type { JobSnapshot, JobState, Resources } from '../types.js';
import type { DrainDeadlines } from './drain-deadlines.js';
import type { HostMonitor } from './host-monitor.js';

/** `setJob`'s options for a job this scheduler's own plan placed (one object, not one per job). */
const PLANNED = Object.freeze({ planned: true });

/**
 * A job as the scheduler holds it: the planner's snapshot, plus both records and revisions.
 * The snapshot's fields are read from the record, not copied: at a million jobs the copies
 * (and a boxed `createdAt` each) were 80 of the ~445 bytes a job took in the heap, and the
 * young-generation collections that moved them a sixth of the scheduler's time. Its key is not
 * kept either: `keys.job(hostId, id)`.
 */
export class KnownJob implements JobSnapshot {
  constructor(
    readonly record: JobRecord,
    /** modRevision of the job record. */
    readonly rev: number,
    readonly state: JobState,
    readonly status: JobStatus | undefined,
    /** modRevision of the status key (0: none). */
    readonly statusRev: number,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get app(): string {
    return this.record.app;
  }
  get release(): string {
    return this.record.release;
  }
  get type(): string {
    return this.record.type;
  }
  get hostId(): string {
    return this.record.hostId;
  }
  get resources(): Resources {
    return this.record.resources;
  }
  get createdAt(): number {
    return this.record.createdAt;
  }

  /**
   * Its snapshot and revisions as a plain object: what `JSON.stringify` and a logger write
   * (the snapshot's fields are getters, which neither would otherwise see).
   */
  toJSON(): JobSnapshot & { rev: number; status: JobStatus | undefined; statusRev: number } {
    return {
      id: this.id,
      app: this.app,
      release: this.release,
      type: this.type,
      hostId: this.hostId,
      resources: this.resources,
      createdAt: this.createdAt,
      state: this.state,
      rev: this.rev,
      status: this.status,
      statusRev: this.statusRev,
    };
  }

  /** The same job in another state (a crashed one held in backoff is `pending` to the planner). */
  withState(state: JobState): KnownJob {
    return new KnownJob(this.record, this.rev, state, this.status, this.statusRev);
  }
}

/** What the mirror tells the orchestrator. */
export interface MirrorHooks {
  /** A job reached `down`: collect it. */
  ended(job: KnownJob): void;
  /** A job status whose job record does not exist (at revision `rev`): delete it. */
  orphan(hostId: string, jobId: string, rev: number): void;
  /** A job reached `crashed`: back off, then replace it. */
  crashed(job: KnownJob): void;
  /** Whether a crashed job is held in backoff (the planner then counts it as pending). */
  held(jobId: string): boolean;
  /** A job's record vanished. */
  removed(jobId: string): void;
  /**
   * The scheduler epoch changed, at store revision `revision`. `epoch` is undefined when the
   * record is absent or unreadable; `modRevision` is the record's (0: absent), which commits compare.
   */
  epoch(epoch: SchedulerEpoch | undefined, revision: number, modRevision: number): void;
  /** A scheduler's member key appeared (at `modRevision`) or vanished. */
  member(schedulerId: string, present: boolean, modRevision?: number): void;
  /** A record could not be read: reported, never skipped silently. */
  invalid(key: string, error: ClusterError): void;
}

interface Orphan {
  status: JobStatus;
  rev: number;
}

const holds = (state: string): boolean => state !== 'down' && state !== 'crashed';

/**
 * The scheduler's copy of the cluster state, fed by the watch, and kept in the planner: hosts
 * with their derived state, jobs with their derived state, formations, and the revisions every
 * commit compares. It decides nothing; it tells the orchestrator through {@link MirrorHooks}.
 */
export class ClusterMirror {
  readonly hosts = new Map<string, { record: HostRecord; rev: number }>();
  readonly controls = new Map<string, { record: HostControl; rev: number }>();
  readonly jobs = new Map<string, KnownJob>();
  readonly formations = new Map<string, Formation>();
  readonly allocRev = new Map<string, number>();
  /**
   * Whether the watch leaves out job records (a sole scheduler's, which applies its own
   * writes): the delete of a job's status then stands for its record's too, deleted in the
   * same transaction (statuses are only ever deleted with their record, or as orphans).
   */
  ownJobs = false;
  readonly usage = new Map<string, { jobs: number; cpu: number; memory: number }>();
  readonly #orphans = new Map<string, Orphan>();
  /** Revisions of this scheduler's own commits whose watch echo has not been passed yet. */
  readonly #own = new Set<number>();
  /** The revision of the latest event or listing applied. */
  #seen = 0;
  /** The own commit whose echo the watch is leaving out ({@link skips}); 0: none. */
  #skipping = 0;
  readonly #members = new Set<string>();
  readonly #keys: ClusterKeys;
  /** `keys.jobs`, built once. */
  readonly #jobsPrefix: string;
  readonly #planner: Planner;
  readonly #monitor: HostMonitor;
  readonly #deadlines: DrainDeadlines;
  readonly #hooks: MirrorHooks;

  constructor(
    keys: ClusterKeys,
    planner: Planner,
    monitor: HostMonitor,
    deadlines: DrainDeadlines,
    hooks: MirrorHooks,
  ) {
    this.#keys = keys;
    this.#jobsPrefix = keys.jobs;
    this.#planner = planner;
    this.#monitor = monitor;
    this.#deadlines = deadlines;
    this.#hooks = hooks;
  }

  /** Applies a full listing; with `reset`, whatever it lacks was deleted meanwhile. */
  applySnapshot(kvs: readonly KeyValue[], revision: number, reset: boolean): void {
    for (const r of this.#own) if (r <= revision) this.#own.delete(r);
    if (revision > this.#seen) this.#seen = revision;
    if (reset) {
      const present = new Set(kvs.map((kv) => kv.key));
      const gone: string[] = [];
      const k = this.#keys;
      for (const id of this.hosts.keys()) gone.push(k.host(id));
      for (const id of this.#monitor.beating) gone.push(k.heartbeat(id));
      for (const id of this.controls.keys()) gone.push(k.hostControl(id));
      for (const id of this.allocRev.keys()) gone.push(k.alloc(id));
      for (const f of this.formations.keys()) gone.push(f);
      for (const j of this.jobs.values()) {
        // Committed after the listing (its answer applied before the listing was): not gone.
        // A watch that leaves job records out would never bring it back.
        if (j.rev <= revision) gone.push(k.job(j.hostId, j.id));
        if (j.statusRev > 0 && j.statusRev <= revision) gone.push(k.jobStatus(j.hostId, j.id));
      }
      for (const id of this.#members) gone.push(k.scheduler(id));
      gone.push(k.schedulerEpoch);
      for (const key of gone) if (!present.has(key)) this.#delete(key, revision);
    }
    // Hosts and formations first, then jobs (so that they find their hosts), statuses last:
    // three passes, no sort of a million keys.
    const { jobs, jobStatuses } = this.#keys;
    for (const kv of kvs)
      if (!kv.key.startsWith(jobs) && !kv.key.startsWith(jobStatuses)) this.#put(kv);
    for (const kv of kvs) if (kv.key.startsWith(jobs)) this.#put(kv);
    for (const kv of kvs) if (kv.key.startsWith(jobStatuses)) this.#put(kv);
  }

  /** Applies one watched change. */
  apply(ev: WatchEvent): void {
    const revision = ev.revision;
    if (revision !== this.#seen) {
      // The watch has passed the previous revisions: no more of their events will come (those
      // of an own commit may have been left out whole, see skips()).
      if (this.#own.size !== 0) for (const r of this.#own) if (r < revision) this.#own.delete(r);
      this.#seen = revision;
    }
    if (ev.type === 'put') {
      // The echo of a transaction of ours: its effect is applied already.
      if (this.#own.size !== 0 && this.#own.has(revision)) return;
      this.#put(ev.kv);
    } else this.#delete(ev.kv.key, revision);
  }

  /**
   * Whether the watch may leave out the changes of `revision`, asked as they arrive and before
   * they are decoded: they are the echo of this scheduler's own commit, applied already. On
   * etcd this spares decoding and queueing a million job records the scheduler wrote itself.
   */
  skips(revision: number): boolean {
    if (revision === this.#skipping) return true;
    // Forgotten as its echo starts: the rest of its changes match `#skipping`.
    if (this.#own.size === 0 || !this.#own.delete(revision)) return false;
    this.#skipping = revision;
    return true;
  }

  /**
   * Records that a transaction of this scheduler committed at `revision` (and its effect is
   * applied): the watch's puts at that revision are its echo, skipped without reading their
   * keys. A revision the watch has reached already is not recorded (its echo came first).
   */
  ownCommit(revision: number): void {
    if (revision > this.#seen) this.#own.add(revision);
  }

  /** Applies a job record this scheduler just committed (its watch echo is then skipped). */
  committed(record: JobRecord, revision: number): void {
    this.#setJob(record, revision);
  }

  /**
   * Applies the job records of one committed unit of starts, all committed at `revision`: the
   * batch form of {@link committed}. New jobs (the usual case) share their derived state; the
   * host's usage is summed once per run of one host.
   */
  committedStarts(records: readonly JobRecord[], revision: number): void {
    let usageHost: string | undefined;
    let jobs = 0;
    let cpu = 0;
    let memory = 0;
    const flush = (): void => {
      if (usageHost === undefined || jobs === 0) return;
      const u = this.usage.get(usageHost);
      if (u === undefined) this.usage.set(usageHost, { jobs, cpu, memory });
      else {
        u.jobs += jobs;
        u.cpu += cpu;
        u.memory += memory;
        if (u.jobs === 0) this.usage.delete(usageHost);
      }
      jobs = 0;
      cpu = 0;
      memory = 0;
    };
    for (const record of records) {
      // Its watch echo may have come first, or a status before it (an orphan): the general path.
      // While the watch has not reached `revision`, a new id cannot be known yet (a lookup in a
      // million-entry map was a tenth of the apply's time).
      if (
        record.desired !== 'run' ||
        this.#orphans.size > 0 ||
        (revision <= this.#seen && this.jobs.get(record.id) !== undefined)
      ) {
        this.#setJob(record, revision);
        continue;
      }
      // 'pending': jobState() of a record to run without a status.
      const job = new KnownJob(record, revision, 'pending', undefined, 0);
      if (record.hostId !== usageHost) {
        flush();
        usageHost = record.hostId;
      }
      jobs++;
      cpu += record.resources.cpu;
      memory += record.resources.memory;
      this.jobs.set(job.id, job);
      // A new id was never held in crash backoff; the plan that placed it counted it already.
      this.#planner.setJob(job, PLANNED);
    }
    flush();
  }

  /**
   * A job record deleted at `revision`, as the deletes-only watch of a sole scheduler sees it:
   * forgets the job unless it is newer.
   */
  jobDeleted(key: string, revision: number): void {
    const where = this.#keys.parse(key);
    if (where?.kind !== 'job') return;
    const known = this.jobs.get(where.jobId);
    if (known !== undefined && known.hostId === where.hostId && known.rev < revision)
      this.#forgetJob(where.jobId);
  }

  /** Forgets a job this scheduler just deleted. */
  deleted(jobId: string): void {
    this.#forgetJob(jobId);
  }

  /** Feeds the planner a host's derived state (after its liveness changed or its drain deadline passed, say). */
  refreshHost(hostId: string): void {
    const host = this.hosts.get(hostId);
    if (host === undefined) return;
    const { record } = host;
    const control = this.controls.get(hostId)?.record;
    const state = hostState(this.#monitor.live(hostId), control);
    this.#planner.setHost({
      id: record.id,
      capacity: record.capacity,
      state,
      ...(record.tags === undefined ? {} : { tags: record.tags }),
      ...(state === 'draining' && this.#deadlines.forced(control) ? { drainForced: true } : {}),
    });
  }

  #put(kv: KeyValue): void {
    const key = kv.key;
    if (key.startsWith(this.#jobsPrefix)) {
      // The watch echoes every job this scheduler commits: recognise those by key and revision
      // before parsing the key or the record. The key ends with `/<id>`; it is the job's if
      // its host comes right after the prefix and fills what is left.
      const known = this.jobs.get(key.slice(key.lastIndexOf('/') + 1));
      if (
        known !== undefined &&
        known.rev >= kv.modRevision &&
        key.length === this.#jobsPrefix.length + known.hostId.length + 1 + known.id.length &&
        key.startsWith(known.hostId, this.#jobsPrefix.length)
      )
        return;
    }
    const where = this.#keys.parse(key);
    if (where === undefined || where.kind === 'release') return; // not ours to read
    if (where.kind === 'job') {
      const known = this.jobs.get(where.jobId);
      if (known !== undefined && known.rev >= kv.modRevision) return; // an echo of our commit
    }
    let decoded;
    try {
      decoded = decodeRecord(this.#keys, kv, where);
    } catch (err) {
      if (!(err instanceof ClusterError)) throw err;
      this.#hooks.invalid(kv.key, err);
      // A corrupt epoch still has a revision: the schedulers must see it to rewrite it.
      if (where.kind === 'scheduler-epoch')
        this.#hooks.epoch(undefined, kv.modRevision, kv.modRevision);
      return;
    }
    if (decoded === undefined) return;
    switch (decoded.kind) {
      case 'host': {
        const known = this.hosts.get(decoded.hostId);
        if (known !== undefined && known.rev >= kv.modRevision) return;
        this.hosts.set(decoded.hostId, { record: decoded.record, rev: kv.modRevision });
        this.refreshHost(decoded.hostId);
        return;
      }
      case 'heartbeat':
        this.#monitor.beat(decoded.hostId);
        return;
      case 'host-control':
        this.controls.set(decoded.hostId, { record: decoded.record, rev: kv.modRevision });
        this.#deadlines.track(decoded.hostId, decoded.record);
        this.refreshHost(decoded.hostId);
        return;
      case 'alloc':
        if ((this.allocRev.get(decoded.hostId) ?? 0) < kv.modRevision)
          this.allocRev.set(decoded.hostId, kv.modRevision);
        return;
      case 'formation':
        this.formations.set(kv.key, decoded.record);
        this.#planner.setFormation(decoded.record);
        return;
      case 'job':
        this.#setJob(decoded.record, kv.modRevision);
        return;
      case 'job-status': {
        const job = this.jobs.get(decoded.jobId);
        if (job === undefined || job.hostId !== decoded.hostId) {
          this.#orphans.set(decoded.jobId, { status: decoded.record, rev: kv.modRevision });
          this.#hooks.orphan(decoded.hostId, decoded.jobId, kv.modRevision);
          return;
        }
        if (job.statusRev >= kv.modRevision) return;
        this.#update(job, job.record, job.rev, decoded.record, kv.modRevision);
        return;
      }
      case 'scheduler':
        this.#members.add(decoded.schedulerId);
        this.#hooks.member(decoded.schedulerId, true, kv.modRevision);
        return;
      case 'scheduler-epoch':
        this.#hooks.epoch(decoded.record, kv.modRevision, kv.modRevision);
        return;
    }
  }

  #delete(key: string, revision: number): void {
    const where = this.#keys.parse(key);
    if (where === undefined) return;
    switch (where.kind) {
      case 'host':
        this.hosts.delete(where.hostId);
        this.#monitor.forget(where.hostId);
        this.#deadlines.forget(where.hostId);
        this.#planner.removeHost(where.hostId);
        return;
      case 'heartbeat':
        this.#monitor.lost(where.hostId);
        return;
      case 'host-control':
        this.controls.delete(where.hostId);
        this.#deadlines.forget(where.hostId);
        this.refreshHost(where.hostId);
        return;
      case 'alloc':
        if ((this.allocRev.get(where.hostId) ?? 0) < revision) this.allocRev.delete(where.hostId);
        return;
      case 'formation': {
        const f = this.formations.get(key);
        if (f === undefined) return;
        this.formations.delete(key);
        this.#planner.removeFormation(f.app, f.release);
        return;
      }
      case 'job':
        this.#forgetJob(where.jobId);
        return;
      case 'job-status': {
        this.#orphans.delete(where.jobId);
        const job = this.jobs.get(where.jobId);
        if (
          this.ownJobs &&
          job !== undefined &&
          job.hostId === where.hostId &&
          job.rev < revision
        ) {
          this.#forgetJob(where.jobId);
          return;
        }
        if (job !== undefined && job.statusRev > 0 && job.statusRev < revision)
          this.#update(job, job.record, job.rev, undefined, 0);
        return;
      }
      case 'scheduler':
        this.#members.delete(where.schedulerId);
        this.#hooks.member(where.schedulerId, false);
        return;
      case 'scheduler-epoch':
        this.#hooks.epoch(undefined, revision, 0);
        return;
      default:
        return;
    }
  }

  #setJob(record: JobRecord, rev: number): void {
    const known = this.jobs.get(record.id);
    if (known !== undefined && known.rev >= rev) return;
    let status = known?.status;
    let statusRev = known?.statusRev ?? 0;
    const orphan = this.#orphans.size === 0 ? undefined : this.#orphans.get(record.id);
    if (orphan !== undefined) {
      this.#orphans.delete(record.id);
      status = orphan.status;
      statusRev = orphan.rev;
    }
    this.#update(known, record, rev, status, statusRev);
  }

  /** Replaces a job's entry with a new one (the planner detects changes by identity). */
  #update(
    before: KnownJob | undefined,
    record: JobRecord,
    rev: number,
    status: JobStatus | undefined,
    statusRev: number,
  ): void {
    const state = jobState(record, status);
    const job = new KnownJob(record, rev, state, status, statusRev);
    this.#track(before, job);
    this.jobs.set(job.id, job);
    if (state === 'down') {
      this.#planner.removeJob(job.id);
      this.#hooks.ended(job);
      return;
    }
    if (state === 'crashed') {
      this.#hooks.crashed(job);
      return;
    }
    if (this.#hooks.held(job.id)) return; // in backoff: the planner sees it as pending
    this.#planner.setJob(job);
  }

  #forgetJob(id: string): void {
    const known = this.jobs.get(id);
    this.#orphans.delete(id);
    if (known === undefined) return;
    this.#track(known, undefined);
    this.jobs.delete(id);
    this.#hooks.removed(id);
    this.#planner.removeJob(id);
  }

  /** Keeps the per-host allocation summary current. */
  #track(before: KnownJob | undefined, after: KnownJob | undefined): void {
    if (before !== undefined && holds(before.state)) this.#addUsage(before, -1);
    if (after !== undefined && holds(after.state)) this.#addUsage(after, 1);
  }

  #addUsage(job: KnownJob, sign: 1 | -1): void {
    const u = this.usage.get(job.hostId) ?? { jobs: 0, cpu: 0, memory: 0 };
    u.jobs += sign;
    u.cpu += sign * job.resources.cpu;
    u.memory += sign * job.resources.memory;
    if (u.jobs === 0) this.usage.delete(job.hostId);
    else this.usage.set(job.hostId, u);
  }
}
