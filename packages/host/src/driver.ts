import type { LogLine, LogReadOptions } from './log-buffer.js';
import type { JobSpec } from './job-spec.js';

/**
 * Why a job ended:
 * - `exited`: its command ended by itself (a crash or a clean exit);
 * - `stopped`: {@link Driver.stop} ended it;
 * - `memory`: it went over its memory limit and the driver killed it (Heroku's R15);
 * - `lost`: the driver could not learn how it ended (an adopted process that ended while no
 *   driver watched, or was replaced by `exec` and killed outside the driver).
 */
export type ExitReason = 'exited' | 'stopped' | 'memory' | 'lost';

/** How a job ended. */
export interface ExitStatus {
  /** Its exit code when it exited, null when a signal ended it or the code is unknown. */
  readonly code: number | null;
  /** The signal that ended it (`'SIGKILL'`), null when it exited or it is unknown. */
  readonly signal: NodeJS.Signals | null;
  readonly reason: ExitReason;
  /** When the driver saw it end, ms since the epoch. */
  readonly finishedAt: number;
  /** A sentence for humans: `exited with code 1`, `killed by SIGKILL after 30000 ms grace`. */
  readonly message: string;
}

/** What a driver knows of a job it started. */
export interface JobInfo {
  readonly id: string;
  readonly app: string;
  readonly release: string;
  readonly processType: string;
  readonly index: number;
  readonly state: 'running' | 'exited';
  /** The pid of its main process (for `ProcessDriver`, the leader of its process group). */
  readonly pid: number | undefined;
  /** The `PORT` in its environment, when it has one. */
  readonly port: number | undefined;
  /** When it started, ms since the epoch. */
  readonly startedAt: number;
  /** How it ended, once it has. */
  readonly exit: ExitStatus | undefined;
  /** Whether this driver instance adopted it from an earlier one rather than starting it. */
  readonly adopted: boolean;
}

/** Options of {@link Driver.stop}. */
export interface StopOptions {
  /** Between the first signal and SIGKILL, ms. Default: the spec's `stopGraceMs`, else the driver's. */
  readonly graceMs?: number;
  /** The first signal. Default `'SIGTERM'`. */
  readonly signal?: NodeJS.Signals;
}

/**
 * Runs jobs on one machine, as a Nomad task driver does: the host agent decides what runs, a
 * driver runs it. Implementations: `ProcessDriver` (local processes), `DockerDriver`
 * (`@flotilla/docker`). Every driver passes `runDriverContract` from `@flotilla/host/testing`.
 *
 * Jobs are named by their {@link JobSpec.id}. A driver keeps an exited job (its exit status and
 * logs) until {@link Driver.remove}.
 */
export interface Driver {
  /** A short name for logs and messages (`'process'`, `'docker'`). */
  readonly name: string;
  /**
   * Whether {@link Driver.start} accepts a {@link JobSpec.image} (releases whose artifact is a
   * container image). A driver without it runs slugs only, and the agent reports image jobs it
   * is assigned as failed with a message naming the driver. Every driver runs slugs. A
   * `HostAgent` advertises it: its host record gets the tag `flotilla.artifact.image: 'true'`
   * (`IMAGE_HOST_TAG`), which the controller constrains image releases to.
   */
  readonly runsImages?: boolean;
  /**
   * Starts a job and resolves once its process runs. Throws `FLOTILLA_HOST_INVALID_SPEC`,
   * `FLOTILLA_HOST_JOB_EXISTS` for an id already known, `FLOTILLA_HOST_START_FAILED`.
   */
  start(spec: JobSpec): Promise<JobInfo>;
  /**
   * Stops a job: the signal (SIGTERM) to all of its processes, then SIGKILL to whatever is left
   * after the grace period. Resolves with how it ended; for a job that already exited, at once
   * with its exit status. Concurrent calls share one stop.
   */
  stop(id: string, options?: StopOptions): Promise<ExitStatus>;
  /** Sends a signal to all of a running job's processes. `FLOTILLA_HOST_JOB_EXITED` if it ended. */
  signal(id: string, signal: NodeJS.Signals): Promise<void>;
  /** What the driver knows of a job. `FLOTILLA_HOST_JOB_NOT_FOUND` if nothing. */
  inspect(id: string): Promise<JobInfo>;
  /** Resolves with a job's exit status when it ends (at once if it has); ends early on abort. */
  wait(id: string, options?: { signal?: AbortSignal }): Promise<ExitStatus>;
  /** A job's output, oldest first: the kept lines or a tail, then with `follow` what comes. */
  logs(id: string, options?: LogReadOptions): AsyncIterable<LogLine>;
  /**
   * The jobs this driver runs, including those it adopted from an earlier instance of itself
   * after an agent restart: how an agent learns what is already running.
   */
  list(): Promise<JobInfo[]>;
  /** Forgets an exited job: its exit status, logs and state. `FLOTILLA_HOST_JOB_RUNNING` if not. */
  remove(id: string): Promise<void>;
  /**
   * Releases the driver. Jobs keep running when the driver can adopt them again (see each
   * driver's documentation). Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A job's resource use, from {@link DriverStats.stats}. */
export interface JobStats {
  /** Resident memory of all of the job's processes, bytes. */
  readonly memoryBytes: number;
  /** How many processes the job has. */
  readonly processes: number;
  /** When it was measured, ms since the epoch. */
  readonly time: number;
}

/** An optional capability: drivers that can measure their jobs. */
export interface DriverStats {
  /** Measures a running job now. */
  stats(id: string): Promise<JobStats>;
}

/** Whether a driver has the {@link DriverStats} capability. */
export function hasStats<D extends Driver>(driver: D): driver is D & DriverStats {
  return typeof (driver as Partial<DriverStats>).stats === 'function';
}
