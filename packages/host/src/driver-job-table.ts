import type { Clock } from '@flotilla/core';
import type { ExitReason, ExitStatus, StopOptions } from './driver.js';
import { HostError, HostErrorCodes } from './errors.js';
import { intOption } from './internal/validate.js';
import type { LogBuffer, LogLine, LogReadOptions } from './log-buffer.js';

/**
 * The state every driver keeps of a job, what a {@link DriverJobTable} reads and updates: a
 * driver's own job record extends it, starting from {@link DriverJobTable.entry}.
 */
export interface DriverJobEntry {
  /** The job id (`JobSpec.id`). */
  readonly id: string;
  /** The job's output, what {@link DriverJobTable.logs} reads. */
  readonly logs: LogBuffer;
  /** Resolves with the job's exit status when it ends ({@link DriverJobTable.ended}). */
  readonly exited: Promise<ExitStatus>;
  /** Resolves {@link DriverJobEntry.exited}. */
  readonly resolveExit: (status: ExitStatus) => void;
  /** How the job ended; undefined while it runs. */
  exit: ExitStatus | undefined;
  /** True while the driver is reporting the job's end: it takes no more signals. */
  finishing: boolean;
  /** The stop in flight, if any: {@link DriverJobTable.close} lets it finish first. */
  stopping: Promise<ExitStatus> | undefined;
  /** Why the driver ends the job (`stop`, or over its memory limit); undefined: it was not. */
  stopReason: 'stopped' | 'memory' | undefined;
  /** The signal `stop` sent first. */
  stopSignal: NodeJS.Signals;
  /** The grace `stop` gave before SIGKILL, ms. */
  graceMs: number;
  /** Whether the grace ran out and SIGKILL was sent. */
  killedAfterGrace: boolean;
}

/** How a {@link DriverJobTable} reaches its driver's jobs. */
export interface DriverJobTableOptions<J extends DriverJobEntry> {
  /** The driver's name in error messages, e.g. `'process'`: "the process driver was closed". */
  readonly driver: string;
  /** Times stop grace periods. */
  readonly clock: Clock;
  /** Throws `FLOTILLA_HOST_INVALID_OPTIONS` for a signal the driver does not send. */
  readonly checkSignal: (signal: NodeJS.Signals) => void;
  /** Sends a signal to all of a running job's processes; false if the job no longer ran. */
  readonly send: (job: J, signal: NodeJS.Signals) => Promise<boolean>;
  /** The grace of a `stop` that does not say, ms: the job spec's `stopGraceMs` or the driver's default. */
  readonly stopGraceMs: (job: J) => number;
  /** Called once a stop has sent its first signal (e.g. to watch an adopted job end). */
  readonly onStopping?: (job: J) => void;
}

/**
 * The job bookkeeping every `Driver` keeps the same way, for driver authors: the jobs by
 * id, starts in flight, and the `Driver` calls that only look at that table. It throws the
 * errors the contract suite (`runDriverContract`) expects:
 *
 * - `FLOTILLA_HOST_CLOSED` once {@link DriverJobTable.close} is called, and to pending `wait`s;
 * - `FLOTILLA_HOST_JOB_NOT_FOUND` for an id it does not hold;
 * - `FLOTILLA_HOST_JOB_EXISTS` when a job of that id exists or is starting;
 * - `FLOTILLA_HOST_JOB_EXITED` when an ended job is signalled;
 * - `FLOTILLA_HOST_JOB_RUNNING` when a running job is removed.
 *
 * The driver keeps the rest: starting its jobs, sending them signals, seeing them end and
 * saying how ({@link DriverJobTable.ended}).
 *
 * @example
 * ```ts
 * class MyDriver implements Driver {
 *   readonly #jobs = new DriverJobTable<MyJob>({ driver: 'my', clock: systemClock,
 *     checkSignal, send: (job, sig) => job.handle.kill(sig), stopGraceMs: () => 30_000 });
 *   async start(spec: JobSpec) {
 *     this.#jobs.assertOpen();
 *     const s = validateJobSpec(spec);
 *     return info(await this.#jobs.reserve(s.id, () => this.#launch(s))); // #launch calls #jobs.set
 *   }
 *   stop(id: string, options?: StopOptions) { return this.#jobs.stop(id, options); }
 *   wait(id: string, options?: { signal?: AbortSignal }) { return this.#jobs.wait(id, options); }
 *   async close() { await this.#jobs.close(); }
 * }
 * ```
 *
 * @typeParam J - the driver's own job record.
 */
export class DriverJobTable<J extends DriverJobEntry> {
  readonly #o: DriverJobTableOptions<J>;
  readonly #jobs = new Map<string, J>();
  readonly #starting = new Set<string>();
  #closed = false;
  /** Rejects with `FLOTILLA_HOST_CLOSED` when the table closes: ends pending `wait` calls. */
  readonly #closing: Promise<never>;
  #rejectClosing!: (err: HostError) => void;

  /**
   * A new job's {@link DriverJobEntry} fields (running, not stopping), to spread into the
   * driver's own record.
   */
  static entry(id: string, logs: LogBuffer): DriverJobEntry {
    let resolveExit!: (status: ExitStatus) => void;
    const exited = new Promise<ExitStatus>((r) => (resolveExit = r));
    return {
      id,
      logs,
      exited,
      resolveExit,
      exit: undefined,
      finishing: false,
      stopping: undefined,
      stopReason: undefined,
      stopSignal: 'SIGTERM',
      graceMs: 0,
      killedAfterGrace: false,
    };
  }

  /** A table of no jobs yet. */
  constructor(options: DriverJobTableOptions<J>) {
    this.#o = options;
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
      throw new HostError(HostErrorCodes.CLOSED, `the ${this.#o.driver} driver was closed`);
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
   * `Driver.signal`: `FLOTILLA_HOST_JOB_EXITED` if the job had ended, `FLOTILLA_HOST_INVALID_OPTIONS`
   * (from `checkSignal`) for a signal the driver does not send.
   */
  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const job = this.get(id);
    this.#o.checkSignal(signal);
    if (job.exit !== undefined || job.finishing || !(await this.#o.send(job, signal))) {
      throw new HostError(HostErrorCodes.JOB_EXITED, `job ${id} has exited: nothing to signal`, {
        jobId: id,
      });
    }
  }

  /**
   * `Driver.stop`: `options.signal` (SIGTERM) to the job, SIGKILL when the grace runs out with
   * the job still running (`killedAfterGrace`); resolves with the exit status the driver
   * reports ({@link DriverJobTable.ended}), at once for an ended job. Stops of a job share one
   * stop; one that failed to send its first signal is forgotten, so a later one tries again.
   */
  async stop(id: string, options: StopOptions = {}): Promise<ExitStatus> {
    const job = this.get(id);
    if (job.exit !== undefined) return job.exit;
    const signal = options.signal ?? 'SIGTERM';
    this.#o.checkSignal(signal);
    const grace = intOption(options.graceMs, 'graceMs', this.#o.stopGraceMs(job), 0, 3_600_000);
    const reason = job.stopReason;
    job.stopping ??= this.#stop(job, signal, grace).catch((err: unknown) => {
      job.stopping = undefined;
      job.stopReason = reason;
      throw err;
    });
    return job.stopping;
  }

  async #stop(job: J, signal: NodeJS.Signals, graceMs: number): Promise<ExitStatus> {
    job.stopReason ??= 'stopped';
    job.stopSignal = signal;
    job.graceMs = graceMs;
    await this.#o.send(job, signal);
    const { clock } = this.#o;
    const timer = clock.setTimeout(() => {
      if (job.exit !== undefined || job.finishing) return;
      job.killedAfterGrace = true;
      void this.#o.send(job, 'SIGKILL').catch(() => undefined);
    }, graceMs);
    this.#o.onStopping?.(job);
    try {
      return await job.exited;
    } finally {
      clock.clearTimeout(timer);
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
   * Records how a job ended: sets its `exit` and ends its log with the status' message as a
   * `system` line (after a last line without newline, the job's last words); then, once
   * `persist` (writing the status where a later driver finds it) has settled, resolves its
   * `wait`s. The driver then emits its `exit` event.
   */
  async ended(job: J, status: ExitStatus, persist?: () => Promise<void>): Promise<void> {
    job.exit = status;
    job.logs.flush();
    job.logs.append('system', status.message);
    job.logs.end();
    await persist?.();
    job.resolveExit(status);
  }

  /**
   * Closes the table: calls throw `FLOTILLA_HOST_CLOSED` from now on; once the stops in flight
   * have finished, pending `wait` calls reject with it. The driver then lets its jobs go.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#jobs.values()].map((j) => j.stopping));
    this.#rejectClosing(
      new HostError(HostErrorCodes.CLOSED, `the ${this.#o.driver} driver was closed while waiting`),
    );
  }
}

/**
 * The exit message of a job that exited by itself or was stopped (`reason` `exited` or
 * `stopped`), the same in every driver: `web.1 exited with code 0`, `web.1 was stopped with
 * SIGTERM and ended by SIGTERM`, `web.1 was stopped: still running 5000 ms after SIGTERM,
 * killed by SIGKILL`. Drivers word `lost` and `memory` themselves.
 */
export function describeExit(
  job: DriverJobEntry,
  reason: Exclude<ExitReason, 'lost' | 'memory'>,
  code: number | null,
  signal: NodeJS.Signals | null,
): string {
  const how =
    code !== null ? `exited with code ${code}` : `ended by ${signal ?? 'an unknown cause'}`;
  if (reason === 'exited') return `${job.id} ${how}`;
  return job.killedAfterGrace
    ? `${job.id} was stopped: still running ${job.graceMs} ms after ${job.stopSignal}, killed by SIGKILL`
    : `${job.id} was stopped with ${job.stopSignal} and ${how}`;
}
