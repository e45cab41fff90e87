/**
 * One step of a build for a {@link BuildExecutor} to run: `bin/detect`, `bin/compile` or
 * `bin/release` of a buildpack, with its arguments.
 */
export interface ExecRequest {
  /** The program and its arguments; the program is an absolute path or found on `env.PATH`. */
  readonly argv: readonly string[];
  /** The working directory, absolute. */
  readonly cwd: string;
  /** The whole environment of the step: nothing is inherited from the executor's own. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Absolute host directories the step reads or writes (build, cache, env and buildpack
   * directories). A container executor bind-mounts each at the same path, so that the same
   * `argv` works in both executors; the local executor needs nothing done.
   */
  readonly mounts: readonly string[];
  /**
   * Stops the step and everything it started. `exec` then rejects with the signal's `reason`
   * once they are gone.
   */
  readonly signal?: AbortSignal;
  /**
   * Kills the step and everything it started after this many milliseconds; `exec` then
   * resolves with the signal that killed it (`code: null`). A positive number, at most 2³¹−1.
   */
  readonly timeoutMs?: number;
  /** Receives the step's output as it comes, chunk by chunk. */
  onOutput(stream: 'stdout' | 'stderr', chunk: Buffer): void;
}

/** How a step ended: its exit status, or the signal that killed it. */
export interface ExecResult {
  /** The exit status, or null when a signal killed it. */
  readonly code: number | null;
  /** The signal's name (`'SIGKILL'`) when one killed it, else null. */
  readonly signal: string | null;
}

/**
 * Runs the steps of a build somewhere: local child processes ({@link LocalExecutor}), or a
 * container of the stack image (`ContainerExecutor` in `@flotilla/docker`, which implements
 * this interface structurally). Every executor passes the suite of
 * `@flotilla/buildpack/testing`.
 */
export interface BuildExecutor {
  /** A short name for logs and output (`'local'`, `'container'`). */
  readonly name: string;
  /**
   * Runs one step to its end. Rejects with the signal's `reason` when `req.signal` aborts,
   * once the step's processes are gone; rejects when the step cannot be started at all.
   */
  exec(req: ExecRequest): Promise<ExecResult>;
  /** Stops every running step and releases the executor's resources. Idempotent. */
  close(): Promise<void>;
}
