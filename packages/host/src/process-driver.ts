import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { EventEmitter } from 'eventemitter3';
import { silentLogger, systemClock, type Clock, type Logger } from '@flotilla/core';
import type {
  Driver,
  DriverStats,
  ExitReason,
  ExitStatus,
  JobInfo,
  JobStats,
  StopOptions,
} from './driver.js';
import { HostError, HostErrorCodes } from './errors.js';
import { describeExit, DriverJobTable, type DriverJobEntry } from './driver-job-table.js';
import { validateJobSpec, type JobSpec } from './job-spec.js';
import {
  checkReadOptions,
  DEFAULT_LOG_MAX_BYTES,
  LogBuffer,
  type LogBufferOptions,
  type LogLine,
  type LogReadOptions,
} from './log-buffer.js';
import {
  decodeShellStatus,
  isSignal,
  JOB_SCRIPT,
  JOB_SCRIPT_ENDS_ON,
} from './internal/job-script.js';
import { LogTailer } from './internal/log-tailer.js';
import { readFromStart } from './internal/file-log-reader.js';
import { MemoryWatch } from './internal/memory-watch.js';
import {
  isSameProcess,
  killGroup,
  processGroups,
  signalShellGroup,
  processesWriting,
  readStat,
  residentBytes,
} from './internal/proc.js';
import {
  jobPaths,
  lockStateDir,
  parseJobRecord,
  readExit,
  writeJson,
  type JobPaths,
  type JobRecord,
} from './internal/state-dir.js';
import { intOption } from './internal/validate.js';

/** Options of {@link ProcessDriver.create}. */
export interface ProcessDriverOptions {
  /**
   * Where the driver keeps its jobs' state and output files, one directory per job: what a
   * later driver on the same directory adopts. One live driver per directory.
   */
  readonly stateDir: string;
  /** The clock of memory samples, adopted jobs' liveness checks and stop grace periods. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** The shell that runs commands. Default `'bash'` (found on `PATH`). */
  readonly shell?: string;
  /**
   * The environment under every job's own (which wins). Default: `PATH` and `LANG` of this
   * process, nothing else, so the agent's secrets do not leak into jobs. `HOME` is the job's cwd.
   */
  readonly baseEnv?: Readonly<Record<string, string>>;
  /** Between SIGTERM and SIGKILL when neither `stop` nor the spec says, ms. Default 30,000. */
  readonly defaultStopGraceMs?: number;
  /** How often memory is sampled and adopted jobs are checked, ms. Default 1000. */
  readonly sampleIntervalMs?: number;
  /** Consecutive samples over the limit before a job is killed (R15). Default 3. */
  readonly memoryGraceSamples?: number;
  /** Over this multiple of its limit a job is killed at the first sample. Default 2. */
  readonly memoryHardFactor?: number;
  /** Each job's log ring buffer. */
  readonly log?: Omit<LogBufferOptions, 'clock'>;
  /** An output file read to its end and larger than this is truncated, bytes. Default 8 MiB. */
  readonly maxLogFileBytes?: number;
  /** A safety net under inotify: output files are also read this often, ms. Default 1000. */
  readonly logPollMs?: number;
}

/** The events of a {@link ProcessDriver}. */
export interface ProcessDriverEvents {
  /** A job ended (by itself, stopped, killed over its memory limit, or found ended at adoption). */
  exit: (id: string, status: ExitStatus) => void;
  /** A memory sample and liveness check of every job finished. */
  sampled: () => void;
  /** A failure that is not any call's: an unreadable output file, a job group that outlived SIGKILL. */
  error: (err: HostError) => void;
}

interface Job extends DriverJobEntry {
  readonly record: JobRecord;
  readonly paths: JobPaths;
  readonly adopted: boolean;
  readonly memory: MemoryWatch | undefined;
  tailers: LogTailer[];
  child: ChildProcess | undefined;
  memoryMessage: string;
  memoryWarned: boolean;
}

const REAP_TIMEOUT_MS = 5000;
const KERNEL_POLL_MS = 10;

/**
 * The embedded default driver: each job is a local process group, `bash -c` running the
 * Procfile command in the job's slug directory.
 *
 * - A job's processes share a process group (`detached`), so stop signals reach all of them
 *   and none outlives the job: when the job's main process ends, whatever is left of its group
 *   is SIGKILLed before the exit is reported, so no orphan keeps holding its port.
 * - Output goes to files under the state directory and is followed into a {@link LogBuffer}.
 * - Memory limits are enforced by sampling the group's resident memory from /proc (Heroku's
 *   R14 warning, R15 kill), not by cgroups: see the package README.
 * - Jobs outlive the driver. A driver created later on the same `stateDir` adopts those that
 *   still run (the pid and its /proc start time guard against pid reuse) and reports how the
 *   others ended.
 *
 * Linux only (it reads /proc).
 *
 * @example
 * ```ts
 * const driver = await ProcessDriver.create({ stateDir: '/var/lib/flotilla/jobs' });
 * await driver.start({ id: 'demo.web.1', app: 'demo', release: 'v3', processType: 'web',
 *   index: 1, command: 'node server.js', cwd: slugDir,
 *   env: jobEnv({ jobId: 'demo.web.1', app: 'demo', release: 'v3', processType: 'web', index: 1, port: 5000 }) });
 * for await (const l of driver.logs('demo.web.1', { tail: 10 })) console.log(l.line);
 * const status = await driver.stop('demo.web.1'); // SIGTERM, 30 s grace, SIGKILL
 * ```
 */
export class ProcessDriver
  extends EventEmitter<ProcessDriverEvents>
  implements Driver, DriverStats
{
  /** Always `'process'`. */
  readonly name = 'process';
  /** Always false: it runs slugs only, so its host gets no `flotilla.artifact.image` tag. */
  readonly runsImages = false;
  /** Where the driver keeps its jobs' state. */
  readonly stateDir: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #shell: string;
  readonly #baseEnv: Readonly<Record<string, string>>;
  readonly #defaultGraceMs: number;
  readonly #sampleMs: number;
  readonly #memoryGraceSamples: number;
  readonly #memoryHardFactor: number;
  readonly #logOptions: LogBufferOptions;
  readonly #maxLogFileBytes: number;
  readonly #logPollMs: number;
  readonly #releaseLock: () => Promise<void>;
  readonly #jobs: DriverJobTable<Job>;
  readonly #adoptionErrors: HostError[] = [];
  #tick: unknown;
  #closed: Promise<void> | undefined;

  private constructor(
    stateDir: string,
    options: ProcessDriverOptions,
    releaseLock: () => Promise<void>,
  ) {
    super();
    this.stateDir = stateDir;
    this.#clock = options.clock ?? systemClock;
    this.#logger = (options.logger ?? silentLogger).child({ driver: 'process' });
    this.#shell = options.shell ?? 'bash';
    this.#baseEnv = options.baseEnv ?? defaultBaseEnv();
    this.#defaultGraceMs = intOption(
      options.defaultStopGraceMs,
      'defaultStopGraceMs',
      30_000,
      0,
      3_600_000,
    );
    this.#sampleMs = intOption(options.sampleIntervalMs, 'sampleIntervalMs', 1000, 10);
    this.#memoryGraceSamples = intOption(options.memoryGraceSamples, 'memoryGraceSamples', 3, 1);
    this.#memoryHardFactor = intOption(options.memoryHardFactor, 'memoryHardFactor', 2, 1);
    this.#logOptions = { ...options.log, clock: this.#clock };
    new LogBuffer('options-check', this.#logOptions); // throws on bad log options
    this.#maxLogFileBytes = intOption(
      options.maxLogFileBytes,
      'maxLogFileBytes',
      8 * 1024 * 1024,
      4096,
    );
    this.#logPollMs = intOption(options.logPollMs, 'logPollMs', 1000, 10);
    this.#releaseLock = releaseLock;
    this.#jobs = new DriverJobTable<Job>({
      driver: 'process',
      clock: this.#clock,
      checkSignal,
      send: (job, signal) => this.#signalJob(job, signal),
      stopGraceMs: (job) => job.record.stopGraceMs ?? this.#defaultGraceMs,
      onStopping: (job) => {
        if (job.adopted) void this.#watchAdopted(job);
      },
    });
  }

  /**
   * Opens a driver on `stateDir` (created if missing), adopting the jobs an earlier driver on it
   * left running. Throws `FLOTILLA_HOST_STATE_DIR_IN_USE` while another live driver holds it.
   */
  static async create(options: ProcessDriverOptions): Promise<ProcessDriver> {
    if (typeof options.stateDir !== 'string' || options.stateDir === '') {
      throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'stateDir must be a directory path', {
        path: 'stateDir',
      });
    }
    const stateDir = resolvePath(options.stateDir);
    const release = await lockStateDir(stateDir);
    let driver: ProcessDriver;
    try {
      driver = new ProcessDriver(stateDir, options, release);
      await driver.#adoptAll();
    } catch (err) {
      await release();
      throw err;
    }
    driver.#scheduleTick();
    return driver;
  }

  /**
   * Job directories found at {@link ProcessDriver.create} that could not be read back
   * (`FLOTILLA_HOST_STATE_RECORD`): neither adopted nor stopped. Also logged as errors.
   */
  get adoptionErrors(): readonly HostError[] {
    return this.#adoptionErrors;
  }

  async start(spec: JobSpec): Promise<JobInfo> {
    this.#jobs.assertOpen();
    const s = validateJobSpec(spec);
    if (s.image !== undefined) {
      throw new HostError(
        HostErrorCodes.INVALID_SPEC,
        `job ${s.id} runs image ${s.image}: the process driver runs slugs only; use a driver that runs images (DockerDriver)`,
        { jobId: s.id, path: 'spec.image' },
      );
    }
    return info(await this.#jobs.reserve(s.id, () => this.#spawn(s)));
  }

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
   * A job's output. With `fromStart`, read from its output files (from their first byte, as far
   * as they were not cut at `maxLogFileBytes`), not from its ring: see {@link LogReadOptions}.
   */
  logs(id: string, options: LogReadOptions = {}): AsyncIterable<LogLine> {
    checkReadOptions(options);
    if (options.fromStart !== true) return this.#jobs.logs(id, options);
    const job = this.#jobs.get(id);
    return readFromStart({
      jobId: id,
      files: (['stdout', 'stderr'] as const).map((stream, i) => ({
        path: job.paths[stream],
        stream,
        tailer: job.tailers[i],
      })),
      ring: job.logs,
      maxLineBytes: this.#logOptions.maxLineBytes,
      follow: options.follow === true,
      pollMs: this.#logPollMs,
      signal: options.signal,
    });
  }

  async list(): Promise<JobInfo[]> {
    return this.#jobs.running().map(info);
  }

  async remove(id: string): Promise<void> {
    await this.#jobs.remove(id, async (job) => {
      // its log ends before its exit is written: removed meanwhile, exit.json would stay behind
      await job.exited;
      await rm(job.paths.dir, { recursive: true, force: true });
    });
  }

  async stats(id: string): Promise<JobStats> {
    const job = this.#jobs.get(id);
    if (job.exit !== undefined) {
      throw new HostError(HostErrorCodes.JOB_EXITED, `job ${id} has exited: no stats`, {
        jobId: id,
      });
    }
    const members = (await processGroups()).get(job.record.pid) ?? [];
    return { ...(await groupMemory(members)), time: this.#clock.now() };
  }

  /**
   * Stops following the jobs and releases the state directory. Jobs keep running: a driver
   * created later on the same directory adopts them; stop them first to end them. Stops in
   * flight finish first; pending `wait` calls reject with `FLOTILLA_HOST_CLOSED`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    this.#clock.clearTimeout(this.#tick);
    // stops in flight finish (their grace is bounded) before the jobs are let go
    await this.#jobs.close();
    for (const job of this.#jobs.values()) {
      if (job.exit !== undefined) continue;
      job.child?.removeAllListeners('exit');
      job.child?.unref();
      await Promise.all(job.tailers.map((t) => t.stop()));
      job.logs.end();
    }
    await this.#releaseLock();
  }

  async #spawn(s: JobSpec): Promise<Job> {
    const isDir = await stat(s.cwd).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!isDir) throw startFailed(s.id, `its cwd ${s.cwd} is not a directory`);
    const paths = jobPaths(this.stateDir, s.id);
    try {
      await mkdir(paths.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw exists(s.id, paths.dir);
      throw startFailed(s.id, `cannot create ${paths.dir}`, err);
    }
    const out = await open(paths.stdout, 'a', 0o600);
    const errOut = await open(paths.stderr, 'a', 0o600);
    let child: ChildProcess;
    // The exit may come at any await from here on: hold it until the job is set up.
    const exitHold: {
      args?: [number | null, NodeJS.Signals | null];
      handler?: (code: number | null, sig: NodeJS.Signals | null) => void;
    } = {};
    try {
      child = spawn(this.#shell, ['-c', JOB_SCRIPT, 'bash', s.command, paths.shellExit], {
        cwd: s.cwd,
        env: { ...this.#baseEnv, HOME: s.cwd, ...s.env },
        detached: true,
        stdio: ['ignore', out.fd, errOut.fd],
      });
      child.once('exit', (code, sig) => {
        if (exitHold.handler === undefined) exitHold.args = [code, sig];
        else exitHold.handler(code, sig);
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (err) {
      await rm(paths.dir, { recursive: true, force: true });
      throw startFailed(s.id, `${this.#shell} could not be started`, err);
    } finally {
      await out.close();
      await errOut.close();
    }
    const pid = child.pid as number;
    child.on('error', (err) =>
      this.#emitError(
        new HostError(HostErrorCodes.STATE_DIR, `job ${s.id}: ${err.message}`, {
          jobId: s.id,
          cause: err,
        }),
      ),
    );
    const startTime = (await readStat(pid))?.startTime ?? 0;
    const port = s.env.PORT === undefined ? undefined : Number(s.env.PORT);
    const record: JobRecord = {
      id: s.id,
      app: s.app,
      release: s.release,
      processType: s.processType,
      index: s.index,
      port: Number.isInteger(port) ? port : undefined,
      memoryMiB: s.memoryMiB,
      stopGraceMs: s.stopGraceMs,
      pid,
      startTime,
      startedAt: this.#clock.now(),
    };
    const job = this.#newJob(record, paths, false);
    job.child = child;
    this.#jobs.set(job);
    try {
      await writeJson(paths.record, record);
      await this.#follow(job, undefined);
    } catch (err) {
      this.#emitError(startFailed(s.id, `cannot write its state under ${paths.dir}`, err));
    }
    exitHold.handler = (code, sig) => void this.#finish(job, code, sig);
    if (exitHold.args !== undefined) exitHold.handler(...exitHold.args);
    return job;
  }

  #newJob(record: JobRecord, paths: JobPaths, adopted: boolean): Job {
    return {
      ...DriverJobTable.entry(record.id, new LogBuffer(record.id, this.#logOptions)),
      record,
      paths,
      adopted,
      memory:
        record.memoryMiB === undefined
          ? undefined
          : new MemoryWatch(record.memoryMiB, this.#memoryGraceSamples, this.#memoryHardFactor),
      tailers: [],
      child: undefined,
      memoryMessage: '',
      memoryWarned: false,
    };
  }

  async #follow(job: Job, backlogBytes: number | undefined): Promise<void> {
    const common = {
      buffer: job.logs,
      maxFileBytes: this.#maxLogFileBytes,
      pollMs: this.#logPollMs,
      onError: (err: unknown) =>
        this.#emitError(
          new HostError(HostErrorCodes.STATE_DIR, `cannot read the output of job ${job.id}`, {
            jobId: job.id,
            cause: err,
          }),
        ),
      ...(backlogBytes === undefined ? {} : { backlogBytes }),
    };
    job.tailers = await Promise.all([
      LogTailer.start({ ...common, path: job.paths.stdout, stream: 'stdout' }),
      LogTailer.start({ ...common, path: job.paths.stderr, stream: 'stderr' }),
    ]);
  }

  /** Signals the job's group, unless its leader is gone or its pid now names another process. */
  async #signalJob(job: Job, signal: NodeJS.Signals): Promise<boolean> {
    if (job.exit !== undefined || job.finishing) return false;
    if (job.child === undefined && !(await this.#leaderAlive(job))) return false;
    const resent = signalShellGroup(job.record.pid, signal, {
      isJobShell: (cmdline) => cmdline.includes(JOB_SCRIPT),
      endsJob: JOB_SCRIPT_ENDS_ON.has(signal),
      startTime: job.record.startTime,
    });
    if (resent === false) return false;
    void resent.then((pids) => {
      if (pids.length > 0)
        this.#logger.debug(
          { jobId: job.id, pids, signal },
          'sent the signal again to a command that was starting when it came',
        );
    });
    return true;
  }

  #leaderAlive(job: Job): Promise<boolean> {
    return isSameProcess(job.record.pid, job.record.startTime);
  }

  /** Polls an adopted job (not our child: no exit event) until it ends, during a stop. */
  async #watchAdopted(job: Job): Promise<void> {
    while (job.exit === undefined && !job.finishing) {
      if (!(await this.#leaderAlive(job))) {
        await this.#adoptedEnded(job);
        return;
      }
      await delay(KERNEL_POLL_MS);
    }
  }

  async #adoptedEnded(job: Job): Promise<void> {
    let shell: ReturnType<typeof decodeShellStatus>;
    try {
      shell = decodeShellStatus(await readFile(job.paths.shellExit, 'utf8'));
    } catch {
      shell = undefined;
    }
    await this.#finish(job, shell?.code ?? null, shell?.signal ?? null);
  }

  /** Reports a job's end once its whole group is gone and its output is read. */
  async #finish(job: Job, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (job.exit !== undefined || job.finishing) return;
    job.finishing = true;
    await this.#reapGroup(job);
    await Promise.all(job.tailers.map((t) => t.stop()));
    const known = code !== null || signal !== null;
    if (job.killedAfterGrace && !known) signal = 'SIGKILL';
    const reason: ExitReason = job.stopReason ?? (known ? 'exited' : 'lost');
    const status: ExitStatus = {
      code,
      signal,
      reason,
      finishedAt: this.#clock.now(),
      message: exitMessage(job, reason, code, signal),
    };
    await this.#jobs.ended(job, status, () =>
      writeJson(job.paths.exit, status).catch((err: unknown) =>
        this.#emitError(
          new HostError(HostErrorCodes.STATE_DIR, `cannot record the exit of job ${job.id}`, {
            jobId: job.id,
            cause: err,
          }),
        ),
      ),
    );
    this.#logger.info({ jobId: job.id, ...status }, 'job ended');
    this.emit('exit', job.id, status);
  }

  /**
   * SIGKILLs what is left of a job's group once its leader is gone, and waits (on the kernel,
   * so in real time) until no process of it is left. A group id cannot be reused while the
   * group has a member, so if the leader's pid names another process the group is empty.
   */
  async #reapGroup(job: Job): Promise<void> {
    const { pid, startTime } = job.record;
    const deadline = Date.now() + REAP_TIMEOUT_MS;
    for (;;) {
      const leader = await readStat(pid);
      if (leader !== undefined && leader.state !== 'Z' && leader.startTime !== startTime) break;
      const members = (await processGroups()).get(pid) ?? [];
      if (members.length === 0) break;
      killGroup(pid, 'SIGKILL');
      if (Date.now() > deadline) {
        this.#emitError(
          new HostError(
            HostErrorCodes.STATE_DIR,
            `processes ${members.join(', ')} of job ${job.id} outlived SIGKILL for ${REAP_TIMEOUT_MS} ms (uninterruptible I/O?)`,
            { jobId: job.id },
          ),
        );
        return;
      }
      await delay(KERNEL_POLL_MS);
    }
    await this.#reapEscapees(job, deadline);
  }

  /**
   * SIGKILLs the processes that left the job's group (`setsid`, a double fork) but still write
   * its output files, until none is left: a daemonised child would hold the job's port and run
   * on after it. One that also closed or redirected its output is not found (only cgroups
   * would catch it). Readers of the files (`tail -f`) are left alone.
   */
  async #reapEscapees(job: Job, deadline: number): Promise<void> {
    const files = [job.paths.stdout, job.paths.stderr];
    for (;;) {
      const escaped = await processesWriting(files);
      if (escaped.length === 0) return;
      for (const p of escaped) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      this.#logger.warn({ jobId: job.id, pids: escaped }, 'killed processes that left the job');
      if (Date.now() > deadline) {
        this.#emitError(
          new HostError(
            HostErrorCodes.STATE_DIR,
            `processes ${escaped.join(', ')} that left job ${job.id} outlived SIGKILL for ${REAP_TIMEOUT_MS} ms (uninterruptible I/O?)`,
            { jobId: job.id },
          ),
        );
        return;
      }
      await delay(KERNEL_POLL_MS);
    }
  }

  async #adoptAll(): Promise<void> {
    for (const id of await readdir(join(this.stateDir, 'jobs'))) {
      const paths = jobPaths(this.stateDir, id);
      let record: JobRecord;
      try {
        record = parseJobRecord(await readFile(paths.record, 'utf8'), paths.record, id);
      } catch (err) {
        const e =
          err instanceof HostError
            ? err
            : new HostError(HostErrorCodes.STATE_RECORD, `cannot read ${paths.record}`, {
                jobId: id,
                path: paths.record,
                cause: err,
              });
        this.#adoptionErrors.push(e);
        this.#logger.error({ err: e, code: e.code, jobId: id }, e.message);
        continue;
      }
      const job = this.#newJob(record, paths, true);
      this.#jobs.set(job);
      await this.#follow(job, this.#logOptions.maxBytes ?? DEFAULT_LOG_MAX_BYTES);
      const exit = await readExit(paths.exit);
      if (exit !== undefined) {
        job.finishing = true;
        await Promise.all(job.tailers.map((t) => t.stop()));
        job.exit = exit;
        job.logs.end();
        job.resolveExit(exit);
      } else if (!(await this.#leaderAlive(job))) {
        await this.#adoptedEnded(job);
      } else {
        this.#logger.info({ jobId: id, pid: record.pid }, 'adopted a running job');
      }
    }
  }

  #scheduleTick(): void {
    if (this.#closed !== undefined) return;
    this.#tick = this.#clock.setTimeout(() => void this.#sample(), this.#sampleMs);
  }

  /** One round of the watchdog: adopted jobs' liveness, then memory against limits. */
  async #sample(): Promise<void> {
    try {
      const running = [...this.#jobs.values()].filter((j) => j.exit === undefined && !j.finishing);
      for (const job of running) {
        if (job.adopted && !(await this.#leaderAlive(job))) await this.#adoptedEnded(job);
      }
      const limited = running.filter((j) => j.memory !== undefined && j.exit === undefined);
      if (limited.length > 0) {
        const groups = await processGroups();
        for (const job of limited) {
          const { memoryBytes } = await groupMemory(groups.get(job.record.pid) ?? []);
          this.#judgeMemory(job, memoryBytes);
        }
      }
    } catch (err) {
      this.#emitError(
        new HostError(HostErrorCodes.STATE_DIR, 'the job watchdog failed', { cause: err }),
      );
    } finally {
      this.emit('sampled');
      this.#scheduleTick();
    }
  }

  #judgeMemory(job: Job, rss: number): void {
    if (job.memory === undefined || job.exit !== undefined || job.stopReason === 'memory') return;
    const verdict = job.memory.sample(rss);
    if (verdict.action === 'ok') {
      job.memoryWarned = false;
      return;
    }
    this.#logger.warn({ jobId: job.id, rss }, verdict.message);
    if (verdict.action === 'warn') {
      if (!job.memoryWarned) job.logs.append('system', verdict.message);
      job.memoryWarned = true;
      return;
    }
    job.logs.append('system', verdict.message);
    job.stopReason = 'memory';
    job.memoryMessage = verdict.message;
    void this.#signalJob(job, 'SIGKILL');
    if (job.adopted) void this.#watchAdopted(job);
  }

  #emitError(err: HostError): void {
    this.#logger.error({ err, code: err.code, jobId: err.jobId }, err.message);
    this.emit('error', err);
  }
}

function info(job: Job): JobInfo {
  const r = job.record;
  return {
    id: r.id,
    app: r.app,
    release: r.release,
    processType: r.processType,
    index: r.index,
    state: job.exit === undefined ? 'running' : 'exited',
    pid: r.pid,
    port: r.port,
    startedAt: r.startedAt,
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
      return `${job.id} ended while no driver watched it; how is unknown`;
    case 'memory':
      return `${job.id} was killed by SIGKILL over its memory limit (${job.memoryMessage})`;
    default:
      return describeExit(job, reason, code, signal);
  }
}

async function groupMemory(pids: readonly number[]): Promise<Omit<JobStats, 'time'>> {
  const sizes = await Promise.all(pids.map((pid) => residentBytes(pid)));
  return { memoryBytes: sizes.reduce((a, b) => a + b, 0), processes: pids.length };
}

function defaultBaseEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' };
  if (process.env.LANG !== undefined) env.LANG = process.env.LANG;
  return env;
}

function exists(id: string, dir: string): HostError {
  return new HostError(
    HostErrorCodes.JOB_EXISTS,
    `job ${id} already has a state directory ${dir} (an earlier job of that id, or one that could not be read back): remove it first`,
    { jobId: id },
  );
}

function startFailed(id: string, why: string, cause?: unknown): HostError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new HostError(HostErrorCodes.START_FAILED, `cannot start job ${id}: ${why}${detail}`, {
    jobId: id,
    cause,
  });
}

function badSignal(signal: unknown): HostError {
  return new HostError(
    HostErrorCodes.INVALID_OPTIONS,
    `${String(signal)} is not a signal name such as 'SIGTERM'`,
    { path: 'signal' },
  );
}

function checkSignal(signal: NodeJS.Signals): void {
  if (!isSignal(signal)) throw badSignal(signal);
}
