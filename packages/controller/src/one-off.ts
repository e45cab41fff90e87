import type { Artifact } from '@flotilla/cluster';

/** A one-off job: a command in a release's environment, run once, never restarted. */
export interface OneOffSpec {
  /** Job id (`demo.run.1a2b3c4d`), unique. */
  readonly id: string;
  readonly app: string;
  /** The cluster release id whose artifact and config it runs with. */
  readonly release: string;
  /** `run` for `run`, `release` for the release phase. */
  readonly type: string;
  /** Run through `bash -c`. */
  readonly command: string;
  readonly artifact: Artifact;
  /** The release's config vars plus the call's extra env. */
  readonly env: Readonly<Record<string, string>>;
  readonly memoryMiB?: number;
  /** Stop the job once it ran this long, ms (then its exit is reported as a timeout). */
  readonly timeoutMs?: number;
}

/** One line of a one-off job's output. */
export interface RunOutputLine {
  readonly stream: 'stdout' | 'stderr' | 'system';
  readonly line: string;
  readonly time: number;
}

/** How a one-off job ended. */
export interface RunExit {
  /** Its exit code; null when a signal ended it. */
  readonly code: number | null;
  readonly signal: string | null;
  /** A sentence for humans (`exited with code 1`). */
  readonly message: string;
  /** Whether `timeoutMs` or an abort ended it. */
  readonly timedOut: boolean;
}

/** A one-off job running: its output as it comes, and its end. */
export interface OneOffHandle {
  readonly id: string;
  /** Every line, from the start, until it ends. One consumer. */
  readonly output: AsyncIterable<RunOutputLine>;
  /** Resolves when it ended and was cleaned up. Never rejects for the command's failure. */
  readonly exit: Promise<RunExit>;
  /** Stops it (SIGTERM, then SIGKILL after a grace). */
  stop(): Promise<void>;
}

/**
 * Runs jobs that run once: `run` and the release phase. Not through the scheduler, whose
 * formations restart what ends. {@link DriverOneOffRunner} runs them on a host `Driver`.
 */
export interface OneOffRunner {
  /** Starts the job; rejects when it cannot start (the artifact cannot be fetched, a bad spec). */
  start(spec: OneOffSpec, options?: { readonly signal?: AbortSignal }): Promise<OneOffHandle>;
}

/**
 * A one-off job a controller runs ({@link Controller.listRuns}): a `run`, or the release phase
 * of a deploy while its release command runs.
 */
export interface RunInfo {
  /** The job id (`demo.run.1a2b3c4d`, `demo.release.5e6f7a8b`). */
  readonly id: string;
  /** `run` for {@link Controller.run}, `release` for a deploy's release phase. */
  readonly type: 'run' | 'release';
  /** The command, as given (run through `bash -c`). */
  readonly command: string;
  /** The controller release it runs with (`v4`). */
  readonly release: string;
  /** The cluster release id it runs with (`v4`, or `v4-r2` after restarts). */
  readonly deployment: string;
  /** The size name it runs at (the default size for the release phase). */
  readonly size: string;
  /** When it started (its runner's start resolved), ms since the epoch, by the controller's clock. */
  readonly startedAt: number;
}

/** Options of {@link Controller.run}. */
export interface RunOptions {
  /** The command (`bin/rake db:migrate`, `bash -c 'echo $FOO'`). */
  readonly command: string;
  /** The release to run with (`v4`); default the live release, else the newest built. */
  readonly release?: string;
  /** More env vars for this run only (names `[A-Za-z_][A-Za-z0-9_]*`). */
  readonly env?: Readonly<Record<string, string>>;
  /** A size name (default the controller's default size). */
  readonly size?: string;
  /** Stops the job after this long, ms (default: none). */
  readonly timeoutMs?: number;
  /** Stops the job. */
  readonly signal?: AbortSignal;
}
