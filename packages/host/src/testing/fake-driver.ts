import { createServer, type Server } from 'node:net';
import type { Driver, ExitStatus, JobInfo, StopOptions } from '../driver.js';
import { HostError, HostErrorCodes } from '../errors.js';
import { validateJobSpec, type JobSpec } from '../job-spec.js';
import { LogBuffer, type LogLine, type LogReadOptions } from '../log-buffer.js';

/** Options of {@link FakeDriver}. */
export interface FakeDriverOptions {
  /** Whether it accepts image specs, as `DockerDriver` does (default false, as `ProcessDriver`). */
  readonly runsImages?: boolean;
  /**
   * Whether each job with a `PORT` listens on it (127.0.0.1) while it "runs", so that an agent's
   * tcp health check passes (default true).
   */
  readonly listen?: boolean;
}

interface FakeJob {
  spec: JobSpec;
  info: JobInfo;
  server: Server | undefined;
  logs: LogBuffer;
  exited: Promise<ExitStatus>;
  end: (exit: ExitStatus) => void;
}

/**
 * A {@link Driver} that runs nothing: it records every spec it is given (`specs`), keeps jobs
 * "running" until they are stopped or {@link FakeDriver.exit} ends one, and (by default) listens
 * on each job's `PORT` so health checks pass. For tests of code that drives a driver (a
 * `HostAgent`, a scheduler harness) that want to see exactly what a driver was asked to run,
 * image jobs included, without processes or a container engine. It checks specs as real
 * drivers do (`validateJobSpec`, image specs refused unless `runsImages`) but does not pass
 * `runDriverContract`: it runs no command.
 *
 * @example
 * ```ts
 * const driver = new FakeDriver({ runsImages: true });
 * const agent = new HostAgent({ ...options, driver });
 * // ... assign a job whose release is an image
 * expect(driver.specs[0]).toMatchObject({ image: 'demo:v1', cpuMillis: 100 });
 * driver.exit(driver.specs[0].id, 3); // the agent sees a crash
 * ```
 */
export class FakeDriver implements Driver {
  readonly name = 'fake';
  readonly runsImages: boolean;
  /** Every spec `start` accepted, oldest first. */
  readonly specs: JobSpec[] = [];
  readonly #listen: boolean;
  readonly #jobs = new Map<string, FakeJob>();
  #closed = false;

  constructor(options: FakeDriverOptions = {}) {
    this.runsImages = options.runsImages ?? false;
    this.#listen = options.listen ?? true;
  }

  async start(spec: JobSpec): Promise<JobInfo> {
    this.#assertOpen();
    const s = validateJobSpec(spec);
    if (s.image !== undefined && !this.runsImages)
      throw new HostError(
        HostErrorCodes.INVALID_SPEC,
        `job ${s.id} runs image ${s.image}: this fake driver was made without runsImages`,
        { jobId: s.id, path: 'spec.image' },
      );
    if (this.#jobs.has(s.id))
      throw new HostError(HostErrorCodes.JOB_EXISTS, `job ${s.id} exists`, { jobId: s.id });
    const port = s.env.PORT === undefined ? undefined : Number(s.env.PORT);
    let server: Server | undefined;
    if (this.#listen && port !== undefined) {
      const srv = createServer((socket) => socket.end());
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (cause) =>
          reject(
            new HostError(HostErrorCodes.START_FAILED, `job ${s.id} cannot listen on ${port}`, {
              jobId: s.id,
              cause,
            }),
          ),
        );
        srv.listen(port, '127.0.0.1', () => resolve());
      });
      server = srv;
    }
    let end!: (exit: ExitStatus) => void;
    const exited = new Promise<ExitStatus>((resolve) => (end = resolve));
    const job: FakeJob = {
      spec: s,
      info: {
        id: s.id,
        app: s.app,
        release: s.release,
        processType: s.processType,
        index: s.index,
        state: 'running',
        pid: undefined,
        port,
        startedAt: Date.now(),
        exit: undefined,
        adopted: false,
      },
      server,
      logs: new LogBuffer(s.id),
      exited,
      end,
    };
    job.logs.append('system', `fake start: ${s.command}`);
    this.#jobs.set(s.id, job);
    this.specs.push(s);
    return job.info;
  }

  /** Ends a running job as if its command exited with `code` (or was killed by `signal`). */
  exit(id: string, code: number | null = 0, signal: NodeJS.Signals | null = null): void {
    const job = this.#job(id);
    if (job.info.state !== 'running') return;
    this.#finish(job, {
      code,
      signal,
      reason: 'exited',
      finishedAt: Date.now(),
      message: signal === null ? `exited with code ${String(code)}` : `killed by ${signal}`,
    });
  }

  async stop(id: string, options: StopOptions = {}): Promise<ExitStatus> {
    const job = this.#job(id);
    if (job.info.state === 'running')
      this.#finish(job, {
        code: null,
        signal: options.signal ?? 'SIGTERM',
        reason: 'stopped',
        finishedAt: Date.now(),
        message: `stopped by ${options.signal ?? 'SIGTERM'}`,
      });
    return job.exited;
  }

  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const job = this.#job(id);
    if (job.info.state !== 'running')
      throw new HostError(HostErrorCodes.JOB_EXITED, `job ${id} has exited`, { jobId: id });
    job.logs.append('system', `fake signal: ${signal}`);
  }

  async inspect(id: string): Promise<JobInfo> {
    return this.#job(id).info;
  }

  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const job = this.#job(id);
    const { signal } = options;
    if (signal === undefined) return job.exited;
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      void job.exited.then((exit) => {
        signal.removeEventListener('abort', onAbort);
        resolve(exit);
      });
    });
  }

  logs(id: string, options?: LogReadOptions): AsyncIterable<LogLine> {
    return this.#job(id).logs.read(options);
  }

  async list(): Promise<JobInfo[]> {
    this.#assertOpen();
    return [...this.#jobs.values()].filter((j) => j.info.state === 'running').map((j) => j.info);
  }

  async remove(id: string): Promise<void> {
    const job = this.#job(id);
    if (job.info.state === 'running')
      throw new HostError(HostErrorCodes.JOB_RUNNING, `job ${id} is running: stop it first`, {
        jobId: id,
      });
    this.#jobs.delete(id);
  }

  /** Ends every job (a fake has nothing to leave running for adoption). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#jobs.values())
      if (job.info.state === 'running')
        this.#finish(job, {
          code: null,
          signal: 'SIGKILL',
          reason: 'lost',
          finishedAt: Date.now(),
          message: 'the fake driver closed',
        });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #finish(job: FakeJob, exit: ExitStatus): void {
    job.info = { ...job.info, state: 'exited', exit };
    job.server?.close();
    job.server = undefined;
    job.logs.append('system', exit.message);
    job.logs.end();
    job.end(exit);
  }

  #job(id: string): FakeJob {
    this.#assertOpen();
    const job = this.#jobs.get(id);
    if (job === undefined)
      throw new HostError(HostErrorCodes.JOB_NOT_FOUND, `no job ${id}`, { jobId: id });
    return job;
  }

  #assertOpen(): void {
    if (this.#closed) throw new HostError(HostErrorCodes.CLOSED, 'the fake driver is closed');
  }
}
