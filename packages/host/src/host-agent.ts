import { setMaxListeners } from 'node:events';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import {
  ClusterState,
  isValidId,
  isValidTagName,
  isValidTagValue,
  MAX_TAG_VALUE_LENGTH,
  MAX_TAGS,
  type AssignedJob,
  type HostRegistration,
  type JobRecord,
  type JobStatus,
  type ReleaseRecord,
  type Resources,
} from '@flotilla/cluster';
import {
  type Clock,
  type Logger,
  isFlotillaError,
  retry,
  silentLogger,
  systemClock,
} from '@flotilla/core';
import { Discovery } from '@flotilla/discovery';
import type { Store } from '@flotilla/store';
import type { ArtifactCache, ArtifactPin } from './artifact-cache.js';
import type { Driver, ExitStatus, JobInfo } from './driver.js';
import { driverTags, RESERVED_TAG_PREFIX } from './driver-tags.js';
import {
  DEFAULT_RETAIN_ENDED_BYTES,
  DEFAULT_RETAIN_ENDED_JOBS,
  DEFAULT_RETAIN_ENDED_LINES,
  DEFAULT_RETAIN_ENDED_MS,
  type EndedJob,
} from './ended-job.js';
import { HostError, HostErrorCodes } from './errors.js';
import { HealthMonitor, resolveHealthCheck } from './health-check.js';
import { jobEnv } from './job-spec.js';
import type { LogLine, LogReadOptions } from './log-buffer.js';
import { PortAllocator, type PortRange } from './ports.js';
import type { DrainWait } from './drain-wait.js';
import { addressHost } from './internal/address.js';
import { drain } from './internal/drain.js';
import { EndedJobs, replay } from './internal/ended-jobs.js';
import { ephemeralOverlap } from './internal/ephemeral-ports.js';
import { registerHostExclusively } from './internal/host-registration.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES } from '@flotilla/slug';
import { prepareJobFiles } from './internal/job-files.js';
import { Publication } from './internal/publication.js';
import { StatusReporter } from './internal/status-reporter.js';
import { describe, intOption } from './internal/validate.js';

/** Options of {@link HostAgent}. */
export interface HostAgentOptions {
  /** This host's id in the cluster. */
  readonly id: string;
  /** The cluster state (shared with schedulers and the controller). */
  readonly store: Store;
  /** Runs the jobs (`ProcessDriver`, `DockerDriver`). The agent does not close it. */
  readonly driver: Driver;
  /**
   * Where this agent can be reached, `host:port` (`127.0.0.1:7000`, `[::1]:7000`): the host's
   * record for operators, and its host part is the address jobs are published under in
   * discovery (`<host>:<job port>`), so it must be one routers can reach.
   */
  readonly address: string;
  /** What the host offers to jobs. */
  readonly capacity: Resources;
  /**
   * Labels that constraints match and spreading reads (`zone`...): at most 64 with the driver's
   * (see below), names of 1 to 63 of `A-Z a-z 0-9 . _ / -` starting with a letter or digit,
   * values strings of at most 256 characters without NUL. The agent adds what its driver can
   * run ({@link driverTags}: `flotilla.artifact.image: 'true'` for a driver that runs images);
   * names starting with `flotilla.` are the agent's. Tags that break any of these are refused
   * by the constructor (`FLOTILLA_HOST_INVALID_OPTIONS`, `path` naming the tag).
   */
  readonly tags?: Readonly<Record<string, string>>;
  /** Ports handed to jobs as `PORT`. */
  readonly ports: PortRange;
  /**
   * Fetches and verifies slugs, once per host. The agent pins each job's slug from its start
   * until it has ended (adopted jobs too), so the cache never evicts a slug a job runs from, and
   * prunes the cache once it has taken over the jobs after a (re)start.
   */
  readonly artifacts: ArtifactCache;
  /** Where each job's slug is extracted (`<workDir>/<job id>`). */
  readonly workDir: string;
  /**
   * The most bytes a job's slug may extract to (its files added up; a gzip bomb is stopped
   * here, before it fills the disk). Default 2 GiB (`extractSlug`'s). A slug past it is
   * reported `crashed` with `FLOTILLA_SLUG_TOO_LARGE`, and nothing of it is left.
   */
  readonly slugMaxBytes?: number;
  /** The most entries (files, directories, links) a job's slug may hold. Default one million. */
  readonly slugMaxEntries?: number;
  /** Where ready jobs are published (default: a `Discovery` on `store`). */
  readonly discovery?: Discovery;
  /** Key prefix of the cluster state (default `'cluster/'`). */
  readonly prefix?: string;
  /** Heartbeat lease TTL (default 10,000 ms): how soon the scheduler notices a dead agent. */
  readonly heartbeatTtlMs?: number;
  /**
   * Between deregistering a job and SIGTERM, for routers to drain it (default 1000 ms): a fixed
   * wait, or with {@link HostAgentOptions.drainWait} the most that hook is waited for.
   */
  readonly drainMs?: number;
  /**
   * Waits for routers to drain a job being stopped (after it is marked not ready and
   * deregistered, before SIGTERM) instead of the fixed `drainMs` sleep; bounded by `drainMs`.
   * A hook that fails is logged and the stop goes on.
   */
  readonly drainWait?: DrainWait;
  /**
   * How many ended jobs (stopped, crashed, failed to start) the agent remembers, with their
   * exit status ({@link HostAgent.endedJob}) and last log lines ({@link HostAgent.logs}), once
   * the driver has forgotten them: what `logs` of a crashed job and a deploy's failure report
   * read. Oldest forgotten first; 0 keeps none. Default 100.
   */
  readonly retainEndedJobs?: number;
  /** How many last log lines of each ended job are kept (at most 1500). Default 100. */
  readonly retainEndedLines?: number;
  /** The most bytes of log text kept of each ended job (newest lines first). Default 64 KiB. */
  readonly retainEndedBytes?: number;
  /** How long an ended job is remembered, ms. Default 3,600,000 (1 hour). */
  readonly retainEndedMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** Events of a {@link HostAgent}. */
export interface HostAgentEvents {
  /** A job was started, or adopted from an earlier agent. */
  started: (jobId: string, adopted: boolean) => void;
  /** A job's health check passed: it is published as ready. */
  ready: (jobId: string) => void;
  /** A job ended: asked to stop (`down`), or by itself (`crashed`). */
  ended: (jobId: string, state: 'down' | 'crashed', message: string) => void;
  /** Something went wrong that the agent retries or reports; never fatal. */
  error: (error: unknown) => void;
}

/** The options' tags and the driver's (which no option may name), or a typed error. */
function hostTags(
  tags: Readonly<Record<string, string>> | undefined,
  driver: Driver,
): Readonly<Record<string, string>> {
  const own = driverTags(driver);
  if (tags === undefined) return own;
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags))
    throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'tags must be an object of strings', {
      path: 'tags',
    });
  const names = Object.keys(tags);
  // The count first: a million tags are refused without a check of each.
  const total = names.length + Object.keys(own).length;
  if (total > MAX_TAGS)
    throw new HostError(
      HostErrorCodes.INVALID_OPTIONS,
      `a host has at most ${MAX_TAGS} tags, and these ${names.length} with the driver's ${Object.keys(own).length} make ${total}: drop some`,
      { path: 'tags' },
    );
  for (const name of names) {
    const path = `tags.${name.slice(0, 80)}`;
    if (!isValidTagName(name))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `tag name ${describe(name)} is not valid: use 1 to 63 characters from A-Z a-z 0-9 . _ / -, starting with a letter or digit`,
        { path },
      );
    if (name.startsWith(RESERVED_TAG_PREFIX))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `tag ${describe(name)} starts with ${RESERVED_TAG_PREFIX}, which names what the agent's driver can run (the agent sets those itself): rename it`,
        { path },
      );
    const value: unknown = tags[name];
    if (!isValidTagValue(value))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `tag ${describe(name)} has the value ${describe(value)}: give a string of at most ${MAX_TAG_VALUE_LENGTH} characters without NUL`,
        { path },
      );
  }
  return { ...tags, ...own };
}

/** The discovery service a job of an app's process type is published under (`demo-web`). */
export function serviceName(app: string, processType: string): string {
  return `${app}-${processType}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
}

interface Local {
  record: JobRecord;
  release: ReleaseRecord | undefined;
  port: number | undefined;
  dir: string | undefined;
  /** Keeps its slug in the artifact cache until the job has ended. */
  pin: ArtifactPin | undefined;
  health: HealthMonitor | undefined;
  /** Its instance in discovery, for jobs with a health check and a port. */
  publication: Publication | undefined;
  /** Set once a stop was asked for: the exit watcher then leaves the report to the stop. */
  stopping: boolean;
  ended: boolean;
  /** Writes its statuses, newest winning. */
  reporter: StatusReporter;
}

/**
 * The agent on every machine of a cluster (Flynn's flynn-host, Nomad's client): registers the
 * host under a lease, runs the jobs the scheduler assigns to it from their release records
 * (fetching and verifying the slug, extracting it per job, a port each), health-checks them and
 * publishes the ready ones in discovery, reports what it observes, and stops jobs gracefully:
 * not ready, deregistered, a drain, SIGTERM, grace, SIGKILL.
 *
 * After a restart it adopts the jobs its driver still runs instead of starting duplicates, and
 * it never touches the operator's settings (a drain stays).
 *
 * @example
 * ```ts
 * const driver = await ProcessDriver.create({ stateDir: '/var/lib/flotilla/jobs' });
 * const agent = new HostAgent({ id: 'host-1', store, driver, address: '127.0.0.1:7000',
 *   capacity: { cpu: 4000, memory: 8192 }, ports: { from: 20000, to: 20999 },
 *   artifacts: new ArtifactCache({ dir: '/var/lib/flotilla/slugs', token }), workDir: '/var/lib/flotilla/run' });
 * await agent.start();
 * ```
 */
export class HostAgent extends EventEmitter<HostAgentEvents> implements AsyncDisposable {
  readonly id: string;
  readonly cluster: ClusterState;
  readonly #o: HostAgentOptions;
  readonly #heartbeatTtlMs: number;
  readonly #drainMs: number;
  /** The host part of `address`, which jobs are published under. */
  readonly #jobHost: string;
  /** `workDir`, absolute: a job's cwd must be. */
  readonly #workDir: string;
  readonly #slugLimits: { readonly maxBytes: number; readonly maxEntries: number };
  /** The host record's tags: the options' and the driver's. */
  readonly #tags: Readonly<Record<string, string>>;
  readonly #driver: Driver;
  readonly #discovery: Discovery;
  readonly #ownsDiscovery: boolean;
  readonly #ports: PortAllocator;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #jobs = new Map<string, Local>();
  readonly #ended: EndedJobs;
  /** One operation at a time per job: a stop waits for a start in flight. */
  readonly #ops = new Map<string, Promise<void>>();
  readonly #abort = new AbortController();
  /** Cuts drains short: on close(), unless it stops the jobs (a decommission drains them). */
  readonly #drainAbort = new AbortController();
  #registration: HostRegistration | undefined;
  #watching: Promise<void> | undefined;
  #adoptable = new Map<string, JobInfo>();
  #state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  #synced: (() => void) | undefined;
  #starting: Promise<void> | undefined;
  /** The prune start() begins in the background: close() waits for it (it writes in the dir). */
  #pruning: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: HostAgentOptions) {
    super();
    if (!isValidId(options.id))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `id ${describe(options.id)} is not a host id: use 1 to 200 characters from A-Z a-z 0-9 . _ - @ : +, starting with a letter or digit`,
        { path: 'id' },
      );
    if (typeof options.workDir !== 'string' || options.workDir === '')
      throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'workDir must be a directory path', {
        path: 'workDir',
      });
    this.#heartbeatTtlMs = intOption(options.heartbeatTtlMs, 'heartbeatTtlMs', 10_000, 1);
    this.#drainMs = intOption(options.drainMs, 'drainMs', 1000, 0, 3_600_000);
    this.#jobHost = addressHost(options.address);
    if (options.drainWait !== undefined && typeof options.drainWait !== 'function')
      throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'drainWait must be a function', {
        path: 'drainWait',
      });
    this.#workDir = resolve(options.workDir);
    this.#slugLimits = {
      maxBytes: intOption(options.slugMaxBytes, 'slugMaxBytes', DEFAULT_MAX_BYTES, 0),
      maxEntries: intOption(options.slugMaxEntries, 'slugMaxEntries', DEFAULT_MAX_ENTRIES, 0),
    };
    this.#tags = hostTags(options.tags, options.driver);
    this.#o = options;
    this.id = options.id;
    this.#driver = options.driver;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#ports = new PortAllocator(options.ports, { host: this.#jobHost });
    this.#ended = new EndedJobs(
      {
        maxJobs: intOption(
          options.retainEndedJobs,
          'retainEndedJobs',
          DEFAULT_RETAIN_ENDED_JOBS,
          0,
          1_000_000,
        ),
        maxLines: intOption(
          options.retainEndedLines,
          'retainEndedLines',
          DEFAULT_RETAIN_ENDED_LINES,
          0,
          1500,
        ),
        maxBytes: intOption(
          options.retainEndedBytes,
          'retainEndedBytes',
          DEFAULT_RETAIN_ENDED_BYTES,
          0,
          64 * 1024 * 1024,
        ),
        retainMs: intOption(
          options.retainEndedMs,
          'retainEndedMs',
          DEFAULT_RETAIN_ENDED_MS,
          0,
          2 ** 31 - 1,
        ),
      },
      this.#clock,
    );
    this.cluster = new ClusterState({
      store: options.store,
      clock: this.#clock,
      logger: this.#logger,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    });
    // Every job starting at once listens for close() on this signal (fetch, extract, drain).
    setMaxListeners(0, this.#abort.signal, this.#drainAbort.signal);
    this.#ownsDiscovery = options.discovery === undefined;
    this.#discovery =
      options.discovery ?? new Discovery({ store: options.store, clock: this.#clock });
  }

  /** The lifecycle state. */
  get state(): string {
    return this.#state;
  }

  /** The jobs this agent runs now, by id. */
  get jobs(): readonly string[] {
    return [...this.#jobs.keys()];
  }

  /**
   * A job's log lines, as `Driver.logs` gives them: from the driver while it knows the job, and
   * for a job that ended here recently (see {@link HostAgentOptions.retainEndedJobs}) its last
   * lines, kept when it ended (a follow ends after them). A job neither running nor remembered
   * fails with `FLOTILLA_HOST_JOB_NOT_FOUND` on the first read, as the driver's logs do.
   */
  async *logs(
    jobId: string,
    options: LogReadOptions = {},
  ): AsyncGenerator<LogLine, void, undefined> {
    // A job that runs (again: an id assigned anew after it ended) is read from the driver.
    const local = this.#jobs.get(jobId);
    const kept = local !== undefined && !local.ended ? undefined : this.#ended.get(jobId);
    if (kept === undefined) yield* this.#driver.logs(jobId, options);
    else yield* replay(kept.lines, options);
  }

  /**
   * How a job that ended here recently ended: its state, message, exit status and how many log
   * lines are kept. `undefined` for a job still running, never run here, or forgotten.
   */
  endedJob(jobId: string): EndedJob | undefined {
    return this.#ended.get(jobId)?.job;
  }

  /**
   * Registers the host, learns what the driver already runs (adoption), and converges on the
   * assigned jobs. Resolves once the first assignment snapshot has been acted on.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle')
      throw new HostError(HostErrorCodes.CLOSED, 'a HostAgent starts once');
    this.#state = 'starting';
    this.#starting = this.#start();
    await this.#starting;
  }

  async #start(): Promise<void> {
    const closed = (): HostError =>
      new HostError(HostErrorCodes.CLOSED, 'the HostAgent was closed while it started');
    await mkdir(this.#workDir, { recursive: true });
    const overlap = await ephemeralOverlap(this.#ports.range);
    if (overlap !== undefined)
      this.#logger.warn(
        { ports: this.#ports.range, ephemeral: overlap },
        `job ports ${overlap.from}-${overlap.to} lie in the kernel's ephemeral range (net.ipv4.ip_local_port_range): outgoing connections can take them and jobs then fail with EADDRINUSE; use ports below it`,
      );
    for (const info of await this.#driver.list()) this.#adoptable.set(info.id, info);
    if (this.#abort.signal.aborted) throw closed();
    try {
      await this.#register();
    } catch (err) {
      throw this.#abort.signal.aborted ? closed() : err;
    }
    if (this.#abort.signal.aborted) {
      // close() came while registering: it could not see this registration.
      await this.#registration?.close().catch(() => undefined);
      throw closed();
    }
    const synced = new Promise<void>((resolve) => (this.#synced = resolve));
    this.#watching = this.#watch();
    await synced;
    if (this.#abort.signal.aborted) throw closed();
    this.#state = 'running';
    // Every job taken over is pinned by now: what they do not use may go (a restart with a
    // smaller maxBytes, slugs of jobs that ended while no agent ran).
    this.#pruning = this.#o.artifacts.prune().then(
      () => undefined,
      (err: unknown) => {
        this.#logger.warn({ err }, 'artifact cache cannot be pruned');
        this.emit('error', err);
      },
    );
  }

  /** Pins the slug a job runs from; nothing for an image, or a release that cannot be read. */
  #pin(release: ReleaseRecord | undefined): ArtifactPin | undefined {
    if (release?.artifact.type !== 'slug') return undefined;
    try {
      return this.#o.artifacts.pin(release.artifact.sha256);
    } catch {
      return undefined; // a bad digest: prepareJobFiles reports it as the job's failure
    }
  }

  /**
   * Stops watching. Jobs keep running, to be adopted by the next agent; their discovery
   * entries are withdrawn until it has checked them again. The heartbeat lease is not revoked:
   * an agent restarting within its TTL keeps the host up. With `stopJobs`, every job is stopped
   * gracefully and the host is deregistered (for decommissioning). Idempotent.
   */
  close(options: { stopJobs?: boolean } = {}): Promise<void> {
    this.#closed ??= this.#close(options);
    return this.#closed;
  }

  async #close(options: { stopJobs?: boolean }): Promise<void> {
    this.#state = 'stopping';
    this.#abort.abort();
    if (options.stopJobs !== true) this.#drainAbort.abort();
    await this.#starting?.catch(() => undefined);
    await this.#watching?.catch(() => undefined);
    await this.#pruning;
    await Promise.all([...this.#ops.values()].map((p) => p.catch(() => undefined)));
    if (options.stopJobs === true) {
      await Promise.all(
        [...this.#jobs.keys()].map((id) => this.#stop(id, 'the host agent shut down')),
      );
      await this.#registration?.close().catch(() => undefined);
    } else {
      for (const local of this.#jobs.values()) {
        local.health?.stop();
        await local.publication?.withdraw();
        // The next agent pins what it adopts; this one no longer answers for them.
        local.pin?.unpin();
      }
      // Not revoked: a restarted agent takes the heartbeat over; if none comes within the TTL,
      // the host goes down and its jobs are placed elsewhere.
      this.#registration?.release();
    }
    if (this.#ownsDiscovery) await this.#discovery.close();
    this.#state = 'stopped';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- registration --------------------------------------------------------------------------

  /** Registers exclusively (see `registerHostExclusively`); a lost lease is registered again. */
  async #register(): Promise<void> {
    const o = this.#o;
    const registration = await registerHostExclusively({
      cluster: this.cluster,
      record: {
        id: o.id,
        addr: o.address,
        capacity: o.capacity,
        ...(Object.keys(this.#tags).length === 0 ? {} : { tags: this.#tags }),
      },
      ttlMs: this.#heartbeatTtlMs,
      workDir: this.#workDir,
      clock: this.#clock,
      logger: this.#logger,
      signal: this.#abort.signal,
    });
    this.#registration = registration;
    void registration.ended.then((reason) => {
      if (reason === 'expired' && !this.#abort.signal.aborted) void this.#reregister();
    });
  }

  /** The lease was lost (the store unreachable past the TTL): register again, with backoff. */
  async #reregister(): Promise<void> {
    this.#logger.warn({ host: this.id }, 'heartbeat lease lost: registering again');
    await retry(() => this.#register(), {
      clock: this.#clock,
      signal: this.#abort.signal,
      initialMs: 200,
      maxMs: 5000,
      // Whatever failed (the store still unreachable, a refused write), the host must come back.
      retryable: () => true,
      onRetry: (err) => this.emit('error', err),
    }).catch(() => undefined); // aborted by close()
  }

  // --- converging ----------------------------------------------------------------------------

  async #watch(): Promise<void> {
    try {
      for await (const item of this.cluster.watchAssigned(this.id, {
        signal: this.#abort.signal,
      })) {
        if (item.type === 'snapshot') this.#converge(item.jobs);
        else if (item.type === 'assigned') this.#assigned(item.job);
        else if (item.type === 'removed')
          this.#queue(item.jobId, () => this.#stop(item.jobId, 'no longer assigned'));
        else {
          this.#logger.warn(
            { key: item.key, err: item.error },
            'assigned job record cannot be read',
          );
          this.emit('error', item.error);
        }
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) {
        this.#logger.error({ err }, 'watch of assigned jobs failed');
        this.emit('error', err);
      }
    } finally {
      this.#synced?.();
    }
  }

  /** A full snapshot: start what is wanted and not running, stop what runs and is not wanted. */
  #converge(jobs: readonly AssignedJob[]): void {
    const wanted = new Set<string>();
    for (const job of jobs) {
      wanted.add(job.record.id);
      this.#assigned(job);
    }
    for (const id of [...this.#jobs.keys(), ...this.#adoptable.keys()]) {
      if (!wanted.has(id)) this.#queue(id, () => this.#stop(id, 'no longer assigned'));
    }
    const synced = this.#synced;
    this.#synced = undefined;
    if (synced !== undefined) void Promise.all([...this.#ops.values()]).finally(synced);
  }

  #assigned(job: AssignedJob): void {
    const id = job.record.id;
    if (job.record.desired === 'stop') {
      this.#queue(id, () =>
        this.#stop(id, `asked to stop (${job.record.stopReason ?? 'no reason'})`),
      );
      return;
    }
    const known = this.#jobs.get(id);
    if (known !== undefined) {
      known.record = job.record;
      return;
    }
    this.#queue(id, () => this.#launch(job));
  }

  /** Runs `op` after whatever is in flight for the job. */
  #queue(id: string, op: () => Promise<void>): void {
    const prev = this.#ops.get(id) ?? Promise.resolve();
    const next = prev
      .then(op)
      .catch((err: unknown) => {
        this.#logger.error({ err, jobId: id }, 'job operation failed');
        this.emit('error', err);
      })
      .finally(() => {
        if (this.#ops.get(id) === next) this.#ops.delete(id);
      });
    this.#ops.set(id, next);
  }

  // --- running a job -------------------------------------------------------------------------

  async #launch(job: AssignedJob): Promise<void> {
    const { record } = job;
    const id = record.id;
    if (this.#jobs.has(id) || this.#abort.signal.aborted) return;
    const local: Local = {
      record,
      release: job.release,
      port: undefined,
      dir: undefined,
      pin: this.#pin(job.release),
      health: undefined,
      publication: undefined,
      stopping: false,
      ended: false,
      reporter: new StatusReporter({
        cluster: this.cluster,
        hostId: this.id,
        jobId: id,
        clock: this.#clock,
        signal: this.#abort.signal,
        onError: (err) => this.emit('error', err),
      }),
    };
    this.#jobs.set(id, local);
    // Run again under the same id: what is kept of its last run no longer says how it is.
    this.#ended.delete(id);
    const adopted = this.#adoptable.get(id);
    this.#adoptable.delete(id);
    if (adopted !== undefined) return this.#adopt(local, adopted);
    try {
      const { release, def, dir, image } = await prepareJobFiles({
        job,
        driver: this.#driver,
        artifacts: this.#o.artifacts,
        workDir: this.#workDir,
        slugLimits: this.#slugLimits,
        signal: this.#abort.signal,
        onDir: (d) => (local.dir = d),
      });
      local.port = await this.#ports.allocate(id, { signal: this.#abort.signal });
      const info = await this.#driver.start({
        id,
        app: record.app,
        release: record.release,
        processType: record.type,
        index: record.index,
        command: def.command,
        cwd: dir,
        ...(image === undefined ? {} : { image }),
        env: jobEnv({
          jobId: id,
          app: record.app,
          release: record.release,
          processType: record.type,
          index: record.index,
          port: local.port,
          config: release.config,
        }),
        memoryMiB: record.resources.memory,
        cpuMillis: record.resources.cpu,
        ...(def.stopGraceMs === undefined ? {} : { stopGraceMs: def.stopGraceMs }),
      });
      this.emit('started', id, false);
      void local.reporter.report({
        state: 'starting',
        startedAt: info.startedAt,
        port: local.port,
      });
      this.#supervise(local, info.startedAt);
    } catch (err) {
      if (this.#abort.signal.aborted) return;
      const message = `could not start: ${(err as Error).message}`;
      this.#logger.warn({ err, jobId: id }, message);
      await this.#end(local, 'crashed', { message, finishedAt: this.#clock.now() });
    }
  }

  /** Takes over a job an earlier agent started and the driver still knows. */
  async #adopt(local: Local, info: JobInfo): Promise<void> {
    const id = info.id;
    if (info.state === 'exited' && info.exit !== undefined) {
      await this.#exited(local, info.exit);
      return;
    }
    if (info.port !== undefined) {
      this.#ports.claim(id, info.port);
      local.port = info.port;
    }
    local.dir = join(this.#workDir, id);
    this.emit('started', id, true);
    this.#supervise(local, info.startedAt);
  }

  /** Health checks and publication, and the watch for the job's exit. */
  #supervise(local: Local, startedAt: number): void {
    const { record } = local;
    const id = record.id;
    void this.#driver.wait(id).then(
      (exit) => {
        if (!local.stopping) this.#queue(id, () => this.#exited(local, exit));
      },
      () => undefined, // the driver closed
    );
    const def = local.release?.processes[record.type];
    const check = resolveHealthCheck(record.type, def?.healthCheck);
    if (check === undefined || local.port === undefined) {
      void local.reporter.report({
        state: 'up',
        startedAt,
        ...(local.port === undefined ? {} : { port: local.port }),
      });
      this.emit('ready', id);
      return;
    }
    const port = local.port;
    const publication = new Publication({
      discovery: this.#discovery,
      input: {
        service: serviceName(record.app, record.type),
        id,
        addr: `${this.#jobHost}:${port}`,
        // A dead agent's instances go when its host does (within discovery's TTL bounds).
        ttlMs: Math.min(Math.max(this.#heartbeatTtlMs, 1000), 2 ** 31 - 1),
        meta: { app: record.app, release: record.release, type: record.type, host: this.id },
      },
      clock: this.#clock,
      logger: this.#logger.child({ jobId: id }),
      signal: this.#abort.signal,
      onError: (err) => {
        this.emit('error', err);
        // Refused for its input (an app or type that makes no service name, an id discovery
        // cannot hold): no retry mends it, and a job never published must not run unseen.
        if (isFlotillaError(err) && /^FLOTILLA_DISCOVERY_INVALID_/.test(err.code))
          this.#queue(id, () =>
            this.#fail(local, `cannot be published in discovery: ${(err as Error).message}`),
          );
      },
    });
    local.publication = publication;
    local.health = new HealthMonitor({
      check,
      port,
      clock: this.#clock,
      logger: this.#logger.child({ jobId: id }),
      on: {
        ready: () => {
          void local.reporter.report({ state: 'up', startedAt, port });
          void publication.set(true).then((published) => {
            if (published) this.emit('ready', id);
          });
        },
        unready: (result) => {
          this.#logger.warn(
            { jobId: id, check: result.message },
            'health check failing: not ready',
          );
          void publication.set(false);
        },
        bootTimeout: (result) =>
          this.#queue(id, () =>
            this.#fail(
              local,
              `failed its health check within the boot grace (${result.message}): stopped (R10)`,
            ),
          ),
      },
    });
  }

  /** Stops a job that cannot go on, and reports it crashed with `message`. */
  async #fail(local: Local, message: string): Promise<void> {
    if (local.ended || local.stopping) return;
    local.stopping = true;
    local.health?.stop();
    await local.publication?.withdraw();
    const exit = await this.#driver.stop(local.record.id).catch(() => undefined);
    await this.#end(local, 'crashed', {
      message,
      finishedAt: exit?.finishedAt ?? this.#clock.now(),
      ...exitFields(exit),
    });
  }

  /** The job's process ended by itself. Deregistered at once, reported for crash backoff. */
  async #exited(local: Local, exit: ExitStatus): Promise<void> {
    if (local.ended || local.stopping) return;
    await this.#end(local, 'crashed', {
      message: exit.message,
      finishedAt: exit.finishedAt,
      ...exitFields(exit),
    });
  }

  /** Stops a job gracefully: not ready, deregistered, drained, SIGTERM, grace, SIGKILL. */
  async #stop(id: string, why: string): Promise<void> {
    const adoptable = this.#adoptable.get(id);
    if (adoptable !== undefined) {
      // Running since an earlier agent, and no longer wanted.
      this.#adoptable.delete(id);
      await this.#driver.stop(id).catch(() => undefined);
      await this.#driver.remove(id).catch(() => undefined);
      await rm(join(this.#workDir, id), { recursive: true, force: true });
      return;
    }
    const local = this.#jobs.get(id);
    if (local === undefined || local.ended) return;
    local.stopping = true;
    local.health?.stop();
    // Not ready, deregistered (after a publication in flight), then drained if it was published.
    if ((await local.publication?.withdraw({ markUnready: true })) === true) {
      const service = serviceName(local.record.app, local.record.type);
      // close() cuts the drain short (close({ stopJobs }) does not); the stop itself goes on.
      await drain({
        target: { service, id },
        wait: this.#o.drainWait,
        maxMs: this.#drainMs,
        clock: this.#clock,
        logger: this.#logger,
        signal: this.#drainAbort.signal,
      });
    }
    let exit: ExitStatus | undefined;
    try {
      exit = await this.#driver.stop(id);
    } catch (err) {
      if (!(err instanceof HostError && err.code === HostErrorCodes.JOB_NOT_FOUND)) throw err;
    }
    await this.#end(local, 'down', {
      message: exit === undefined ? why : `${why}: ${exit.message}`,
      finishedAt: exit?.finishedAt ?? this.#clock.now(),
      ...exitFields(exit),
    });
  }

  /** Reports the end, withdraws the instance, and frees the job's port, directory and driver state. */
  async #end(
    local: Local,
    state: 'down' | 'crashed',
    status: Omit<JobStatus, 'state' | 'updatedAt'> & { message: string },
  ): Promise<void> {
    if (local.ended) return;
    local.ended = true;
    local.health?.stop();
    await local.publication?.withdraw();
    const id = local.record.id;
    // Kept before the driver forgets them: `logs` of a crashed job, a failed deploy's report.
    this.#ended.add(
      {
        id,
        app: local.record.app,
        release: local.record.release,
        type: local.record.type,
        state,
        message: status.message,
        finishedAt: status.finishedAt ?? this.#clock.now(),
        ...(status.exitStatus === undefined ? {} : { exitStatus: status.exitStatus }),
        ...(status.signal === undefined ? {} : { signal: status.signal }),
      },
      await this.#lastLines(id),
    );
    await local.reporter.report({ state, ...status });
    this.#ports.release(id);
    await this.#driver.remove(id).catch(() => undefined);
    if (local.dir !== undefined) await rm(local.dir, { recursive: true, force: true });
    local.pin?.unpin();
    this.#jobs.delete(id);
    this.emit('ended', id, state, status.message);
  }

  /** The last lines of an exited job the driver still knows; none if it cannot say. */
  async #lastLines(id: string): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    if (this.#ended.maxLines === 0) return lines;
    try {
      for await (const l of this.#driver.logs(id, { tail: this.#ended.maxLines })) lines.push(l);
    } catch {
      // Never started in the driver, or already gone: nothing to keep but the status.
    }
    return lines;
  }
}

function exitFields(exit: ExitStatus | undefined): Pick<JobStatus, 'exitStatus' | 'signal'> {
  if (exit === undefined) return {};
  return {
    ...(exit.code === null ? {} : { exitStatus: exit.code }),
    ...(exit.signal === null ? {} : { signal: exit.signal }),
  };
}
