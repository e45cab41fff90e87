import { readFile, realpath, stat } from 'node:fs/promises';
import { normalize } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { EventEmitter } from 'eventemitter3';
import { silentLogger, systemClock, type Clock, type Logger } from '@flotilla/core';
import {
  checkReadOptions,
  DEFAULT_LOG_MAX_LINE_BYTES,
  describeExit,
  DriverJobTable,
  HostError,
  HostErrorCodes,
  LogBuffer,
  validateJobSpec,
  type Driver,
  type DriverJobEntry,
  type ExitReason,
  type ExitStatus,
  type JobInfo,
  type JobSpec,
  type LogBufferOptions,
  type LogLine,
  type LogReadOptions,
  type StopOptions,
} from '@flotilla/host';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';
import { chownTree } from './internal/chown-tree.js';
import { imageExists, statusOf } from './internal/engine.js';
import { decodeExitCode, entrypoint, FORWARDED_SIGNALS } from './internal/entrypoint.js';
import { givesAwayHost } from './internal/host-paths.js';
import { containerName, LABELS } from './internal/labels.js';
import { LogFrames, RECENT_MESSAGES } from './internal/log-frames.js';

/** The slice of dockerode the {@link DockerDriver} uses. */
export type DockerDriverClient = Pick<
  Docker,
  'createContainer' | 'getContainer' | 'listContainers' | 'getImage'
>;

/** How a job's container is networked. */
export type DockerNetworkMode = 'host' | 'bridge';

/** Options of {@link DockerDriver.create}. */
export interface DockerDriverOptions {
  readonly docker: DockerDriverClient;
  /**
   * Names this driver's containers (label `flotilla.driver`): a driver created later with the
   * same id adopts them. One live driver per id. `[a-z0-9][a-z0-9_.-]{0,62}`, e.g. the host id.
   */
  readonly instanceId: string;
  /** The image slugs run in (from `createStackImage`). Must be present: nothing is pulled. */
  readonly stackImage: string;
  /**
   * `'host'` (default): the job shares the host's network and listens on its `PORT` itself.
   * `'bridge'`: the job gets a network of its own, and its `PORT` is published on 127.0.0.1
   * only (it must listen on 0.0.0.0 inside). Nothing ever connects to a container's bridge IP.
   */
  readonly network?: DockerNetworkMode;
  /**
   * The user slug jobs run as, `uid:gid`. Default `'1000:1000'` (the stack image's `flotilla`).
   * The job's slug directory (`spec.cwd`, mounted at `/app`, its `HOME`) is given to this user
   * before the job starts, so that it can write there as on Heroku. Image jobs run as their
   * image's `USER`.
   */
  readonly user?: string;
  /** Where the slug is mounted in the container, and its `HOME`. Default `/app`. */
  readonly appDir?: string;
  /** Labels added to every container (for your own sweeps, e.g. `flotilla.test`). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Between SIGTERM and SIGKILL when neither `stop` nor the spec says, ms. Default 30,000. */
  readonly defaultStopGraceMs?: number;
  /** Each job's log ring buffer. */
  readonly log?: Omit<LogBufferOptions, 'clock'>;
  /** Docker keeps at most this many bytes of a job's output (json-file `max-size`, two files). Default 10 MiB. */
  readonly maxLogFileBytes?: number;
  /**
   * The most processes and threads a job's container may hold at once (its cgroup's
   * `pids.max`): a fork bomb gets `EAGAIN` instead of taking the host's pids. Default 4096.
   */
  readonly pidsLimit?: number;
  /** Stamps log lines and times stop grace periods. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The events of a {@link DockerDriver}. */
export interface DockerDriverEvents {
  /** A job ended (by itself, stopped, killed over its memory limit, or found ended at adoption). */
  exit: (id: string, status: ExitStatus) => void;
  /**
   * A failure that is no call's, `FLOTILLA_DOCKER_ENGINE` (its `path` the job id): the log
   * stream or the watch of a job broke off (dockerd gone; retried until it answers), a signal
   * dockerd did not take.
   */
  error: (err: DockerError) => void;
}

interface Job extends DriverJobEntry {
  readonly containerId: string;
  readonly app: string;
  readonly release: string;
  readonly processType: string;
  readonly index: number;
  readonly port: number | undefined;
  readonly pid: number | undefined;
  readonly startedAt: number;
  readonly stopGraceMs: number | undefined;
  readonly adopted: boolean;
  readonly watch: AbortController;
  logsDone: Promise<void>;
}

interface ContainerState {
  Status?: string;
  Running?: boolean;
  ExitCode?: number;
  OOMKilled?: boolean;
  Pid?: number;
  StartedAt?: string;
  FinishedAt?: string;
}

/**
 * Whether an inspected container is one a driver of `instanceId` made for job `jobId`: the name
 * it gives the job, and its init wrapper as the entrypoint (the init script itself is not
 * compared, so a newer driver still adopts an older one's containers).
 */
function isOwnContainer(
  details: { Name?: string; Config?: { Entrypoint?: string[] | string | null } },
  instanceId: string,
  jobId: string,
): boolean {
  if (details.Name !== `/${containerName(instanceId, jobId)}`) return false;
  const actual = details.Config?.Entrypoint;
  const expected = entrypoint('');
  return (
    Array.isArray(actual) &&
    actual.length === expected.length &&
    expected.slice(0, 4).every((part, i) => actual[i] === part)
  );
}

/** The default {@link DockerDriverOptions.pidsLimit}. */
const DEFAULT_PIDS_LIMIT = 4096;
const INSTANCE_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const USER = /^\d{1,10}:\d{1,10}$/;
/** How long the log stream may take to drain after a container ended, ms. */
const LOG_DRAIN_MS = 5000;

/**
 * A `Driver` that runs each job in a Docker container: a slug in the stack image (the slug dir
 * bind-mounted at `/app`, as the non-root user `flotilla`), or a release's own image. It
 * passes `runDriverContract` on a real dockerd.
 *
 * - The command runs through `bash -c` after `.profile.d/*.sh` and `.profile`, as with
 *   `ProcessDriver`; PID 1 of the container passes stop signals on to every process in it, and
 *   when the job ends nothing of it is left (see the README).
 * - Host networking by default; bridge with the port published on 127.0.0.1 as an option.
 * - `memoryMiB` is a cgroup limit without swap (an OOM kill is reported as reason `memory`),
 *   `cpuMillis` a CPU quota (`NanoCpus`).
 * - Containers carry labels naming the job and the driver's `instanceId`; a driver created
 *   later with the same id adopts the running ones (logs and `wait` work again) and learns how
 *   the others ended. Exited jobs' containers are kept until {@link DockerDriver.remove}.
 * - Output is read from Docker's log stream, demultiplexed into each job's `LogBuffer`.
 *
 * @example
 * ```ts
 * const stack = await createStackImage({ docker });
 * const driver = await DockerDriver.create({ docker, instanceId: 'host-1', stackImage: stack.image });
 * await driver.start({ id: 'demo.web.1', app: 'demo', release: 'v3', processType: 'web', index: 1,
 *   command: 'node server.js', cwd: slugDir, memoryMiB: 512, cpuMillis: 500,
 *   env: jobEnv({ jobId: 'demo.web.1', app: 'demo', release: 'v3', processType: 'web', index: 1, port: 5000 }) });
 * const status = await driver.stop('demo.web.1'); // SIGTERM to all of it, 30 s grace, SIGKILL
 * ```
 */
export class DockerDriver extends EventEmitter<DockerDriverEvents> implements Driver {
  /** Always `'docker'`. */
  readonly name = 'docker';
  /**
   * Always true: `spec.image` runs that image instead of a slug (slugs run on the stack image);
   * a `HostAgent` on this driver tags its host `flotilla.artifact.image: 'true'`.
   */
  readonly runsImages = true;
  /** The id naming this driver's containers. */
  readonly instanceId: string;
  readonly #docker: DockerDriverClient;
  readonly #stackImage: string;
  readonly #network: DockerNetworkMode;
  readonly #uid: number;
  readonly #gid: number;
  readonly #appDir: string;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #defaultGraceMs: number;
  readonly #logOptions: LogBufferOptions;
  readonly #maxLogFileBytes: number;
  readonly #pidsLimit: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #jobs: DriverJobTable<Job>;
  #closed: Promise<void> | undefined;

  private constructor(options: DockerDriverOptions) {
    super();
    this.#docker = options.docker;
    this.instanceId = options.instanceId;
    this.#stackImage = options.stackImage;
    this.#network = options.network ?? 'host';
    const [uid, gid] = (options.user ?? '1000:1000').split(':').map(Number) as [number, number];
    this.#uid = uid;
    this.#gid = gid;
    this.#appDir = options.appDir ?? '/app';
    this.#labels = { ...options.labels };
    this.#defaultGraceMs = options.defaultStopGraceMs ?? 30_000;
    this.#clock = options.clock ?? systemClock;
    this.#logOptions = { ...options.log, clock: this.#clock };
    this.#maxLogFileBytes = options.maxLogFileBytes ?? 10 * 1024 * 1024;
    this.#pidsLimit = options.pidsLimit ?? DEFAULT_PIDS_LIMIT;
    this.#logger = (options.logger ?? silentLogger).child({ driver: 'docker' });
    this.#jobs = new DriverJobTable<Job>({
      driver: 'docker',
      clock: this.#clock,
      checkSignal,
      send: (job, signal) => this.#kill(job, signal),
      stopGraceMs: (job) => job.stopGraceMs ?? this.#defaultGraceMs,
    });
  }

  /**
   * Opens a driver: checks its options and that the stack image is present, then adopts the
   * containers an earlier driver with the same `instanceId` left. Throws
   * `FLOTILLA_DOCKER_INVALID_OPTIONS`, `FLOTILLA_DOCKER_IMAGE_NOT_FOUND`,
   * `FLOTILLA_DOCKER_ENGINE`.
   */
  static async create(options: DockerDriverOptions): Promise<DockerDriver> {
    checkOptions(options);
    if ((await imageExists(options.docker, options.stackImage)) === undefined) {
      throw new DockerError(
        DockerErrorCodes.IMAGE_NOT_FOUND,
        `the stack image ${options.stackImage} is not present in this dockerd, and images are never pulled: build it with createStackImage() or flotilla-stack build`,
        { path: 'stackImage' },
      );
    }
    const driver = new DockerDriver(options);
    // a throwaway buffer checks the log options before any job needs one
    new LogBuffer('options-check', driver.#logOptions);
    await driver.#adoptAll();
    return driver;
  }

  async start(spec: JobSpec): Promise<JobInfo> {
    this.#jobs.assertOpen();
    const s = validateJobSpec(spec);
    return info(await this.#jobs.reserve(s.id, () => this.#create(s)));
  }

  /**
   * Stops a job: the signal to its container's PID 1, which passes it on to every process in
   * it. When dockerd does not take the signal (gone?), the stop fails and a later one tries
   * again.
   */
  stop(id: string, options: StopOptions = {}): Promise<ExitStatus> {
    return this.#jobs.stop(id, options);
  }

  signal(id: string, signal: NodeJS.Signals): Promise<void> {
    return this.#jobs.signal(id, signal);
  }

  async inspect(id: string): Promise<JobInfo> {
    return info(this.#jobs.get(id));
  }

  wait(id: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    return this.#jobs.wait(id, options);
  }

  /**
   * A job's output. With `fromStart`, read from dockerd's log of its container (all it keeps,
   * `maxLogFileBytes`), not from its ring, paced by the consumer: see `LogReadOptions`.
   */
  logs(id: string, options: LogReadOptions = {}): AsyncIterable<LogLine> {
    checkReadOptions(options);
    if (options.fromStart !== true) return this.#jobs.logs(id, options);
    return this.#readFromStart(this.#jobs.get(id), options.follow === true, options.signal);
  }

  /**
   * Reads a container's log from its start, a chunk at a time (the HTTP stream pauses while
   * the consumer does not read), then what a follow that ended with the container missed (as
   * {@link DockerDriver.#follow} does), then the driver's own lines, its exit message last.
   */
  async *#readFromStart(
    job: Job,
    follow: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<LogLine, void> {
    const parse = new LogBuffer(job.id, {
      maxLines: 2 * FROM_START_CHUNK_LINES,
      maxBytes: 64 * 1024 * 1024,
      maxLineBytes: this.#logOptions.maxLineBytes ?? DEFAULT_LOG_MAX_LINE_BYTES,
    });
    let taken = 0;
    const take = function* (): Generator<LogLine> {
      for (const l of parse.lines(parse.nextSeq - taken)) yield l;
      taken = parse.nextSeq;
    };
    const frames = new LogFrames((name, bytes) => parse.write(name, bytes));
    const container = this.#docker.getContainer(job.containerId);
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const base = { stdout: true, stderr: true, timestamps: true, abortSignal: ac.signal };
    try {
      if (!follow && job.exit === undefined) {
        // what the log holds now; a running job's, as one answer (bounded by maxLogFileBytes)
        frames.write(
          (await container.logs({
            ...base,
            follow: false,
          } as Docker.ContainerLogsOptions & { follow: false })) as unknown as Buffer,
        );
        yield* take();
      } else {
        for (let attempt = 0; !ac.signal.aborted; attempt++) {
          const since = frames.resumeAfter();
          try {
            const stream = (await container.logs({
              ...base,
              follow: true,
              ...(since === undefined ? {} : { since }),
            } as Docker.ContainerLogsOptions & { follow: true })) as unknown as Readable;
            for await (const chunk of stream) {
              frames.write(chunk as Buffer);
              yield* take();
            }
            break; // the container stopped (or dockerd went: then its end is waited for below)
          } catch (err) {
            if (ac.signal.aborted || statusOf(err) === 404) break;
            await abortableDelay(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)), ac.signal);
          }
        }
        if (ac.signal.aborted) return;
        // the driver's own follow and its end: the job's log ends when the driver saw it end
        const end = job.logs.read({ follow: true, tail: 0, signal: ac.signal });
        while ((await end.next()).done !== true) {
          // waiting for the end only
        }
        if (ac.signal.aborted) return;
        const after = frames.resumeAfter();
        try {
          if (after !== undefined) await readRest(container, frames, after, ac.signal);
        } catch (err) {
          if (statusOf(err) !== 404 && !ac.signal.aborted) throw err;
        }
        yield* take();
      }
      if (ac.signal.aborted) return;
      parse.flush();
      for (const l of job.logs.lines()) if (l.stream === 'system') parse.append('system', l.line);
      parse.end();
      yield* take();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }

  async list(): Promise<JobInfo[]> {
    return this.#jobs.running().map(info);
  }

  /** Forgets an exited job and removes its container. `FLOTILLA_HOST_JOB_RUNNING` if it runs. */
  async remove(id: string): Promise<void> {
    await this.#jobs.remove(id, async (job) => {
      try {
        await this.#docker.getContainer(job.containerId).remove({ force: true, v: true });
      } catch (err) {
        if (statusOf(err) !== 404) {
          throw engineError(`cannot remove the container of job ${id}`, err);
        }
      }
    });
  }

  /**
   * Stops following the jobs. Containers keep running: a driver created later with the same
   * `instanceId` adopts them; stop them first to end them. Stops in flight finish first;
   * pending `wait` calls reject with `FLOTILLA_HOST_CLOSED`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    await this.#jobs.close();
    for (const job of this.#jobs.values()) {
      job.watch.abort();
      if (job.exit === undefined) job.logs.end();
    }
  }

  async #create(s: JobSpec): Promise<Job> {
    const image = s.image ?? this.#stackImage;
    if (s.image === undefined) {
      const isDir = await stat(s.cwd).then(
        (st) => st.isDirectory(),
        () => false,
      );
      if (!isDir) throw startFailed(s.id, `its cwd ${s.cwd} is not a directory`);
      // the slug dir is given to the job's user: never the host's own files
      const real = await realpath(s.cwd);
      const givenAway = givesAwayHost(normalize(s.cwd)) ?? givesAwayHost(real);
      if (givenAway !== undefined) {
        throw new HostError(
          HostErrorCodes.INVALID_SPEC,
          `job ${s.id}: its cwd ${s.cwd} would give the job's user ${givenAway}: run it in its own slug directory`,
          { jobId: s.id, path: 'spec.cwd' },
        );
      }
    } else if ((await imageExists(this.#docker, s.image).catch(rethrowStart(s.id))) === undefined) {
      throw startFailed(
        s.id,
        `its image ${s.image} is not present in this dockerd, and images are never pulled: build it first`,
      );
    }
    if (s.image === undefined) {
      await chownTree(s.cwd, this.#uid, this.#gid).catch((err: unknown) => {
        throw startFailed(s.id, `cannot give its cwd ${s.cwd} to uid ${this.#uid}`, err);
      });
    }
    const port = s.env.PORT === undefined ? undefined : Number(s.env.PORT);
    const validPort = port !== undefined && Number.isInteger(port) && port > 0 && port < 65536;
    const labels: Record<string, string> = {
      ...this.#labels,
      [LABELS.JOB]: s.id,
      [LABELS.APP]: s.app,
      [LABELS.RELEASE]: s.release,
      [LABELS.TYPE]: s.processType,
      [LABELS.INDEX]: String(s.index),
      [LABELS.DRIVER]: this.instanceId,
    };
    if (validPort) labels[LABELS.PORT] = String(port);
    if (s.stopGraceMs !== undefined) labels[LABELS.STOP_GRACE] = String(s.stopGraceMs);
    const env = Object.entries(s.env).map(([k, v]) => `${k}=${v}`);
    const hostConfig: Record<string, unknown> = {
      NetworkMode: this.#network,
      PidsLimit: this.#pidsLimit,
      LogConfig: {
        Type: 'json-file',
        Config: { 'max-size': String(Math.ceil(this.#maxLogFileBytes / 2)), 'max-file': '2' },
      },
    };
    if (s.memoryMiB !== undefined) {
      hostConfig.Memory = s.memoryMiB * 1024 * 1024;
      hostConfig.MemorySwap = s.memoryMiB * 1024 * 1024; // no swap: over the limit is an OOM kill
    }
    if (s.cpuMillis !== undefined) hostConfig.NanoCpus = s.cpuMillis * 1_000_000;
    const create: Docker.ContainerCreateOptions = {
      name: containerName(this.instanceId, s.id),
      Image: image,
      Entrypoint: entrypoint(s.command),
      Cmd: [],
      Env: env,
      Labels: labels,
      AttachStdin: false,
      OpenStdin: false,
      Tty: false,
      HostConfig: hostConfig,
    };
    if (s.image === undefined) {
      create.User = `${this.#uid}:${this.#gid}`;
      create.WorkingDir = this.#appDir;
      create.Env = [`HOME=${this.#appDir}`, ...env];
      // A mount, not a `src:dst` bind string: a path holding `:` (a job id with a colon) would
      // be split into another source, target or mode.
      hostConfig.Mounts = [{ Type: 'bind', Source: s.cwd, Target: this.#appDir }];
    }
    if (this.#network === 'bridge' && validPort) {
      create.ExposedPorts = { [`${port}/tcp`]: {} };
      hostConfig.PortBindings = {
        [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }],
      };
    }
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer(create);
    } catch (err) {
      if (statusOf(err) === 409) {
        throw new HostError(
          HostErrorCodes.JOB_EXISTS,
          `job ${s.id} already has a container (${create.name}): another driver with instance id ${this.instanceId} started it, or an exited one awaits removal`,
          { jobId: s.id, cause: err },
        );
      }
      throw startFailed(s.id, 'dockerd refused to create its container', err);
    }
    try {
      await container.start();
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw startFailed(s.id, 'its container would not start', err);
    }
    let state: ContainerState = {};
    try {
      state = ((await container.inspect()) as { State: ContainerState }).State;
    } catch (err) {
      this.#logger.warn({ jobId: s.id, err }, 'cannot inspect a started container');
    }
    // A PID 1 gets only the signals it has a handler for: a stop before its traps are set would
    // be lost (and the job killed after the grace). Started means ready to be stopped.
    if (state.Pid !== undefined && state.Pid > 0) await untilTrapsSet(state.Pid);
    const job = this.#newJob(
      {
        id: s.id,
        containerId: container.id,
        app: s.app,
        release: s.release,
        processType: s.processType,
        index: s.index,
        port: validPort ? port : undefined,
        pid: state.Pid !== undefined && state.Pid > 0 ? state.Pid : undefined,
        startedAt: this.#clock.now(),
        stopGraceMs: s.stopGraceMs,
      },
      false,
    );
    this.#jobs.set(job);
    this.#logger.info({ jobId: s.id, container: container.id }, 'job started');
    if (this.#jobs.closed) {
      // closed while it started: the container runs on, for the next driver to adopt
      job.logs.end();
      throw new HostError(
        HostErrorCodes.CLOSED,
        `the docker driver was closed while job ${s.id} started: its container runs on, and a driver with instance id ${this.instanceId} adopts it`,
        { jobId: s.id },
      );
    }
    this.#follow(job, undefined);
    return job;
  }

  #newJob(
    fields: Omit<Job, keyof DriverJobEntry | 'adopted' | 'watch' | 'logsDone'> & { id: string },
    adopted: boolean,
  ): Job {
    return {
      ...DriverJobTable.entry(fields.id, new LogBuffer(fields.id, this.#logOptions)),
      ...fields,
      adopted,
      watch: new AbortController(),
      logsDone: Promise.resolve(),
    };
  }

  /**
   * Follows a job's output into its buffer, and its end. `tail`: for adopted jobs. When dockerd
   * goes away (restarted, killed), both are taken up again once it answers: the log from just
   * after the last message read, the end by waiting again; the job is not reported ended.
   */
  #follow(job: Job, tail: number | undefined, frames = this.#framesOf(job)): void {
    const container = this.#docker.getContainer(job.containerId);
    const { signal } = job.watch;
    let warned = false;
    const retry = async (attempt: number, what: string, err: unknown): Promise<void> => {
      if (!warned) {
        warned = true;
        const e = engineError(`${what} of job ${job.id} broke off (dockerd gone?); retrying`, err);
        this.#emitError(
          new DockerError(e.code, e.message, { path: job.id, cause: err, retryable: true }),
        );
      }
      await abortableDelay(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)), signal);
    };
    // a request to a dockerd that died may never settle (docker-modem does not see the socket
    // close on a buffered response): when the log stream breaks, the wait is asked again
    let waitAttempt = new AbortController();
    const onWatchAbort = (): void => waitAttempt.abort();
    signal.addEventListener('abort', onWatchAbort, { once: true });
    job.logsDone = (async () => {
      for (let attempt = 0; !signal.aborted; attempt++) {
        // Resumed after dockerd went away: after the latest message read.
        const since = frames.resumeAfter();
        try {
          const stream = (await container.logs({
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            ...(since !== undefined ? { since } : tail === undefined ? {} : { tail }),
            abortSignal: signal,
          } as Docker.ContainerLogsOptions & { follow: true })) as unknown as Readable;
          for await (const chunk of stream) frames.write(chunk as Buffer);
          // the stream ends when the container stops, or when dockerd goes: which one?
          const state = ((await container.inspect()) as { State: ContainerState }).State;
          if (state.Running !== true) {
            // The follow can end without the last lines: one that fell behind the log file
            // rotation, and a partial last line, which dockerd writes when the job's output
            // closes, stamped when its first bytes were read: after the other stream's later
            // lines, possibly after the follow ended (CI lost a crash's 'last words' so). So
            // the output is read once more, without following: after the latest line read,
            // then its tail, where a late line is: what comes after the last line read.
            const after = frames.resumeAfter();
            if (after === undefined)
              await readOnce(container, frames, tail === undefined ? {} : { tail }, signal);
            else await readRest(container, frames, after, signal);
            return;
          }
        } catch (err) {
          if (signal.aborted || statusOf(err) === 404) return;
          waitAttempt.abort();
          await retry(attempt, 'the output', err);
        }
      }
    })().catch(() => undefined);
    void (async () => {
      let state: ContainerState | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          if (waitAttempt.signal.aborted) waitAttempt = new AbortController();
          await container.wait({
            condition: 'not-running',
            abortSignal: waitAttempt.signal,
          } as object);
          state = ((await container.inspect()) as { State: ContainerState }).State;
          this.#logger.debug({ jobId: job.id, state }, 'the container is not running');
          if (state.Running === true) continue; // restarted under us: wait again
          break;
        } catch (err) {
          if (signal.aborted) return;
          this.#logger.debug({ jobId: job.id, err }, 'waiting for the container failed');
          if (statusOf(err) === 404) break; // the container is gone: lost
          await retry(attempt, 'the watch', err).catch(() => undefined);
          if (signal.aborted) return;
        }
      }
      signal.removeEventListener('abort', onWatchAbort);
      await this.#finish(job, state);
    })();
  }

  /** Parses a container's log stream into the job's buffer. */
  #framesOf(job: Job): LogFrames {
    return new LogFrames((name, bytes) => {
      if (!job.logs.ended) job.logs.write(name, bytes);
    });
  }

  /** Reports a job's end once its output is read: how its container ended, or `lost`. */
  async #finish(job: Job, state: ContainerState | undefined): Promise<void> {
    if (job.exit !== undefined || job.finishing) return;
    job.finishing = true;
    let timer: unknown;
    await Promise.race([
      job.logsDone,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, LOG_DRAIN_MS))),
    ]);
    clearTimeout(timer as NodeJS.Timeout);
    job.watch.abort();
    let reason: ExitReason;
    let code: number | null = null;
    let signal: NodeJS.Signals | null = null;
    if (state === undefined || state.ExitCode === undefined) {
      reason = 'lost';
    } else if (state.OOMKilled === true) {
      reason = 'memory';
      signal = 'SIGKILL';
    } else {
      ({ code, signal } = decodeExitCode(state.ExitCode));
      reason = job.stopReason ?? 'exited';
    }
    const finished = state?.FinishedAt === undefined ? NaN : Date.parse(state.FinishedAt);
    const status: ExitStatus = {
      code,
      signal,
      reason,
      finishedAt: job.adopted && finished > 0 ? finished : this.#clock.now(),
      message: exitMessage(job, reason, code, signal),
    };
    await this.#jobs.ended(job, status);
    this.#logger.info({ jobId: job.id, ...status }, 'job ended');
    this.emit('exit', job.id, status);
  }

  /** Signals a job's container (its PID 1 passes it on); false if it no longer runs. */
  async #kill(job: Job, signal: NodeJS.Signals): Promise<boolean> {
    try {
      await this.#docker.getContainer(job.containerId).kill({ signal });
      return true;
    } catch (err) {
      const status = statusOf(err);
      if (status === 409 || status === 404) return false;
      // FLOTILLA_DOCKER_ENGINE, retryable unless dockerd answered 4xx: a later call may pass
      const e = engineError(`cannot send ${signal} to job ${job.id}`, err);
      this.#emitError(e);
      throw e;
    }
  }

  async #adoptAll(): Promise<void> {
    let containers: Docker.ContainerInfo[];
    try {
      containers = await this.#docker.listContainers({
        all: true,
        filters: JSON.stringify({ label: [`${LABELS.DRIVER}=${this.instanceId}`] }),
      });
    } catch (err) {
      throw engineError(`cannot list the containers of driver ${this.instanceId}`, err);
    }
    const adopted: Job[] = [];
    for (const c of containers) {
      const l = c.Labels;
      const id = l[LABELS.JOB];
      if (id === undefined || this.#jobs.has(id)) continue;
      let state: ContainerState;
      let details: { Name?: string; Config?: { Entrypoint?: string[] | string | null } };
      try {
        details = (await this.#docker.getContainer(c.Id).inspect()) as typeof details & {
          State: ContainerState;
        };
        state = (details as { State: ContainerState }).State;
      } catch (err) {
        if (statusOf(err) === 404) continue; // removed meanwhile
        throw engineError(`cannot inspect container ${c.Id}`, err);
      }
      // Labels anyone can put on a container: only one this driver made (its name for the job,
      // its init as entrypoint) is adopted, to be stopped and removed later.
      if (!isOwnContainer(details, this.instanceId, id)) {
        this.#logger.warn(
          { jobId: id, container: c.Id, name: details.Name },
          "a container carries this driver's labels but was not made by it: left alone",
        );
        continue;
      }
      const port = Number(l[LABELS.PORT]);
      const grace = Number(l[LABELS.STOP_GRACE]);
      const job = this.#newJob(
        {
          id,
          containerId: c.Id,
          app: l[LABELS.APP] ?? '',
          release: l[LABELS.RELEASE] ?? '',
          processType: l[LABELS.TYPE] ?? '',
          index: Number(l[LABELS.INDEX] ?? 0),
          port: Number.isInteger(port) && port > 0 ? port : undefined,
          pid: state.Pid !== undefined && state.Pid > 0 ? state.Pid : undefined,
          startedAt: state.StartedAt === undefined ? c.Created * 1000 : Date.parse(state.StartedAt),
          stopGraceMs: Number.isInteger(grace) && grace >= 0 ? grace : undefined,
        },
        true,
      );
      this.#jobs.set(job);
      adopted.push(job);
      if (state.Running === true)
        this.#logger.info({ jobId: id, container: c.Id }, 'adopted a running job');
    }
    // The output an adopted job wrote so far is in its buffer when open() returns: a read
    // right after sees it. Then the follow takes up after it.
    const tail = this.#logOptions.maxLines ?? 1500;
    await Promise.all(
      adopted.map(async (job) => {
        const frames = this.#framesOf(job);
        try {
          await readOnce(
            this.#docker.getContainer(job.containerId),
            frames,
            { tail },
            job.watch.signal,
          );
        } catch (err) {
          // the follow reads it, retrying while dockerd is away
          this.#logger.debug({ jobId: job.id, err }, 'reading the output of an adopted job failed');
        }
        this.#follow(job, tail, frames);
      }),
    );
  }

  #emitError(err: DockerError): void {
    this.#logger.error({ err, code: err.code }, err.message);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/**
 * Waits (up to 2 s) until the process `pid` of this host handles SIGTERM (bit 15 of `SigCgt`
 * in /proc): the container's init script has set its traps. Returns at once when /proc does
 * not show it (the driver in another PID namespace, or the job already gone).
 */
async function untilTrapsSet(pid: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    let status: string;
    try {
      status = await readFile(`/proc/${pid}/status`, 'utf8');
    } catch {
      return;
    }
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
    if (m === null || ((BigInt(`0x${m[1] as string}`) >> 14n) & 1n) === 1n) return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lines a chunk of dockerd's log stream can hold at most, and then some. */
const FROM_START_CHUNK_LINES = 64 * 1024;

/** Reads a container's log once, without following, into `frames` (a partial last line dropped). */
async function readOnce(
  container: Docker.Container,
  frames: LogFrames,
  range: { since?: string; tail?: number },
  signal: AbortSignal,
): Promise<void> {
  frames.write(
    (await container.logs({
      follow: false,
      stdout: true,
      stderr: true,
      timestamps: true,
      ...range,
      abortSignal: signal,
    } as Docker.ContainerLogsOptions & { follow: false })) as unknown as Buffer,
  );
  frames.dropPartial();
}

/**
 * Reads what a follow of a stopped container missed, once more without following: after the
 * latest line read (`after`), then the log's tail, where a late partial line is.
 */
async function readRest(
  container: Docker.Container,
  frames: LogFrames,
  after: string,
  signal: AbortSignal,
): Promise<void> {
  await readOnce(container, frames, { since: after }, signal);
  frames.beginReplay();
  await readOnce(container, frames, { tail: RECENT_MESSAGES }, signal);
  frames.endReplay();
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function checkOptions(o: DockerDriverOptions): void {
  const bad = (path: string, why: string): never => {
    throw new DockerError(DockerErrorCodes.INVALID_OPTIONS, `${path}: ${why}`, { path });
  };
  if (typeof o !== 'object' || o === null) bad('options', 'pass an object');
  if (typeof o.docker !== 'object' || o.docker === null) bad('docker', 'pass a dockerode client');
  if (typeof o.instanceId !== 'string' || !INSTANCE_ID.test(o.instanceId)) {
    bad(
      'instanceId',
      `${JSON.stringify(o.instanceId)} is not 1 to 63 of a-z 0-9 _ . - starting with a letter or digit`,
    );
  }
  if (
    typeof o.stackImage !== 'string' ||
    !/^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,511}$/.test(o.stackImage)
  ) {
    bad('stackImage', `${JSON.stringify(o.stackImage)} is not an image reference`);
  }
  if (o.network !== undefined && o.network !== 'host' && o.network !== 'bridge') {
    bad('network', `${JSON.stringify(o.network)} is neither 'host' nor 'bridge'`);
  }
  if (o.user !== undefined && (typeof o.user !== 'string' || !USER.test(o.user))) {
    bad('user', `${JSON.stringify(o.user)} is not uid:gid in numbers, such as '1000:1000'`);
  }
  if (
    o.appDir !== undefined &&
    (typeof o.appDir !== 'string' ||
      !/^\/[A-Za-z0-9_./-]*$/.test(o.appDir) ||
      o.appDir.includes('..'))
  ) {
    bad('appDir', `${JSON.stringify(o.appDir)} is not an absolute path`);
  }
  const g = o.defaultStopGraceMs;
  if (g !== undefined && (!Number.isInteger(g) || g < 0 || g > 3_600_000)) {
    bad('defaultStopGraceMs', `${String(g)} is not a whole number of ms from 0 to an hour`);
  }
  const m = o.maxLogFileBytes;
  if (m !== undefined && (!Number.isInteger(m) || m < 4096)) {
    bad('maxLogFileBytes', `${String(m)} is not a whole number of bytes from 4096`);
  }
  const p = o.pidsLimit;
  if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > 4_194_304)) {
    bad('pidsLimit', `${String(p)} is not a whole number of processes from 1 to 4194304`);
  }
  for (const [k, v] of Object.entries(o.labels ?? {})) {
    if (k.startsWith('flotilla.') && k !== 'flotilla.test')
      bad(`labels.${k}`, "flotilla.* labels are the driver's own");
    if (typeof v !== 'string') bad(`labels.${k}`, 'label values are strings');
  }
}

function checkSignal(signal: NodeJS.Signals): void {
  if (signal === 'SIGKILL' || FORWARDED_SIGNALS.includes(signal as NodeJS.Signals)) return;
  throw new HostError(
    HostErrorCodes.INVALID_OPTIONS,
    `${String(signal)} is not a signal the docker driver sends: use SIGKILL or one of ${FORWARDED_SIGNALS.join(', ')}`,
    { path: 'signal' },
  );
}

function info(job: Job): JobInfo {
  return {
    id: job.id,
    app: job.app,
    release: job.release,
    processType: job.processType,
    index: job.index,
    state: job.exit === undefined ? 'running' : 'exited',
    pid: job.pid,
    port: job.port,
    startedAt: job.startedAt,
    exit: job.exit,
    adopted: job.adopted,
  };
}

function exitMessage(
  job: Job,
  reason: ExitReason,
  code: number | null,
  signal: NodeJS.Signals | null,
): string {
  switch (reason) {
    case 'lost':
      return `${job.id}: its container is gone (removed outside the driver); how it ended is unknown`;
    case 'memory':
      return `${job.id} was killed by SIGKILL over its memory limit (the kernel's OOM killer in its container)`;
    default:
      return describeExit(job, reason, code, signal);
  }
}

function startFailed(id: string, why: string, cause?: unknown): HostError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  const status = statusOf(cause);
  return new HostError(HostErrorCodes.START_FAILED, `cannot start job ${id}: ${why}${detail}`, {
    jobId: id,
    cause,
    // dockerd down or failing may pass later; a 4xx (bad mount, bad image) will not
    retryable:
      cause !== undefined &&
      (status === undefined || status >= 500) &&
      !(cause instanceof HostError),
  });
}

function rethrowStart(id: string): (err: unknown) => never {
  return (err) => {
    throw startFailed(id, 'dockerd cannot be asked about its image', err);
  };
}
