import type { ExitStatus } from './driver.js';
import { HostError, HostErrorCodes } from './errors.js';
import type { LogBuffer, LogLine, LogReadOptions } from './log-buffer.js';

/** What a {@link DriverJobTable} needs to know of a driver's job. */
export interface DriverJobEntry {
  /** The job id (`JobSpec.id`). */
  readonly id: string;
  /** The job's output, what {@link DriverJobTable.logs} reads. */
  readonly logs: LogBuffer;
  /** Resolves with the job's exit status when it ends. */
  readonly exited: Promise<ExitStatus>;
  /** How the job ended; undefined while it runs. */
  readonly exit: ExitStatus | undefined;
  /** True while the driver is reporting the job's end: it takes no more signals. */
  readonly finishing: boolean;
  /** The stop in flight, if any: {@link DriverJobTable.close} lets it finish first. */
  readonly stopping: Promise<ExitStatus> | undefined;
}

/**
 * The job bookkeeping every {@link Driver} keeps the same way, for driver authors: the jobs by
 * id, starts in flight, and the `Driver` calls that only look at that table. It throws the
 * errors the contract suite (`runDriverContract`) expects:
 *
 * - `FLOTILLA_HOST_CLOSED` once {@link DriverJobTable.close} is called, and to pending `wait`s;
 * - `FLOTILLA_HOST_JOB_NOT_FOUND` for an id it does not hold;
 * - `FLOTILLA_HOST_JOB_EXISTS` when a job of that id exists or is starting;
 * - `FLOTILLA_HOST_JOB_EXITED` when an ended job is signalled;
 * - `FLOTILLA_HOST_JOB_RUNNING` when a running job is removed.
 *
 * The driver keeps the rest: starting, stopping and watching its jobs, and setting their
 * `exit`, `finishing` and `stopping`.
 *
 * @example
 * ```ts
 * class MyDriver implements Driver {
 *   readonly #jobs = new DriverJobTable<MyJob>('my');
 *   async start(spec: JobSpec) {
 *     this.#jobs.assertOpen();
 *     const s = validateJobSpec(spec);
 *     return info(await this.#jobs.reserve(s.id, () => this.#launch(s))); // #launch calls #jobs.set
 *   }
 *   wait(id: string, options?: { signal?: AbortSignal }) { return this.#jobs.wait(id, options); }
 *   async close() { await this.#jobs.close(); }
 * }
 * ```
 *
 * @typeParam J - the driver's own job record.
 */
export class DriverJobTable<J extends DriverJobEntry> {
  readonly #driver: string;
  readonly #jobs = new Map<string, J>();
  readonly #starting = new Set<string>();
  #closed = false;
  /** Rejects with `FLOTILLA_HOST_CLOSED` when the table closes: ends pending `wait` calls. */
  readonly #closing: Promise<never>;
  #rejectClosing!: (err: HostError) => void;

  /** @param driver - the driver's name in error messages, e.g. `'process'`. */
  constructor(driver: string) {
    this.#driver = driver;
    this.#closing = new Promise<never>((_, reject) => (this.#rejectClosing = reject));
    this.#closing.catch(() => undefined);
  }

  /** Whether {@link DriverJobTable.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Throws `FLOTILLA_HOST_CLOSED` once the table is closed. */
  assertOpen(): void {
    if (this.#closed) {
      throw new HostError(HostErrorCodes.CLOSED, `the ${this.#driver} driver was closed`);
    }
  }

  /** The job `id`: `FLOTILLA_HOST_JOB_NOT_FOUND` if there is none, `FLOTILLA_HOST_CLOSED` once closed. */
  get(id: string): J {
    this.assertOpen();
    const job = this.#jobs.get(id);
    if (job === undefined) {
      throw new HostError(HostErrorCodes.JOB_NOT_FOUND, `no job ${String(id)} on this driver`, {
        jobId: String(id),
      });
    }
    return job;
  }

  /** Holds `job` under its id (a started or adopted one). */
  set(job: J): void {
    this.#jobs.set(job.id, job);
  }

  /** Whether a job of this id is held. */
  has(id: string): boolean {
    return this.#jobs.has(id);
  }

  /** Every job held, running or ended. */
  values(): IterableIterator<J> {
    return this.#jobs.values();
  }

  /**
   * Runs `start` for a new job `id`, one at a time per id: `FLOTILLA_HOST_JOB_EXISTS` while a
   * job of that id is held or starting. `start` holds the job with {@link DriverJobTable.set}.
   */
  async reserve(id: string, start: () => Promise<J>): Promise<J> {
    if (this.#jobs.has(id) || this.#starting.has(id)) {
      throw new HostError(
        HostErrorCodes.JOB_EXISTS,
        `job ${id} already exists on this driver: remove it first, or use a new job id`,
        { jobId: id },
      );
    }
    this.#starting.add(id);
    try {
      return await start();
    } finally {
      this.#starting.delete(id);
    }
  }

  /**
   * `Driver.signal`: `send` signals a running job and says whether it still ran;
   * `FLOTILLA_HOST_JOB_EXITED` if it had ended. `check` validates the signal first (after the
   * job is found), throwing `FLOTILLA_HOST_INVALID_OPTIONS` for one the driver does not send.
   */
  async signal(
    id: string,
    signal: NodeJS.Signals,
    check: (signal: NodeJS.Signals) => void,
    send: (job: J, signal: NodeJS.Signals) => Promise<boolean>,
  ): Promise<void> {
    const job = this.get(id);
    check(signal);
    if (job.exit !== undefined || job.finishing || !(await send(job, signal))) {
      throw new HostError(HostErrorCodes.JOB_EXITED, `job ${id} has exited: nothing to signal`, {
        jobId: id,
      });
    }
  }

  /**
   * `Driver.wait`: the job's exit status once it ends. Rejects with the signal's reason when
   * `signal` aborts, and with `FLOTILLA_HOST_CLOSED` when the table closes first.
   */
  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const job = this.get(id);
    const { signal } = options;
    if (job.exit !== undefined) return job.exit;
    if (signal === undefined) return Promise.race([job.exited, this.#closing]);
    signal.throwIfAborted();
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([job.exited, aborted, this.#closing]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** `Driver.logs`: reads the job's log buffer. */
  logs(id: string, options: LogReadOptions = {}): AsyncIterable<LogLine> {
    return this.get(id).logs.read(options);
  }

  /** The jobs still running (`Driver.list`). */
  running(): J[] {
    this.assertOpen();
    return [...this.#jobs.values()].filter((j) => j.exit === undefined);
  }

  /**
   * `Driver.remove`, the bookkeeping: `FLOTILLA_HOST_JOB_RUNNING` if the job runs, else
   * `discard` (removing what the driver keeps of it) and then the job is forgotten. When
   * `discard` throws, the job is kept.
   */
  async remove(id: string, discard: (job: J) => Promise<void>): Promise<void> {
    const job = this.get(id);
    if (job.exit === undefined) {
      throw new HostError(
        HostErrorCodes.JOB_RUNNING,
        `job ${id} is still running: stop it before removing it`,
        { jobId: id },
      );
    }
    await discard(job);
    this.#jobs.delete(id);
  }

  /**
   * Closes the table: calls throw `FLOTILLA_HOST_CLOSED` from now on; once the stops in flight
   * have finished, pending `wait` calls reject with it. The driver then lets its jobs go.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#jobs.values()].map((j) => j.stopping));
    this.#rejectClosing(
      new HostError(HostErrorCodes.CLOSED, `the ${this.#driver} driver was closed while waiting`),
    );
  }
}
