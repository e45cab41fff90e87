import { spawn } from 'node:child_process';
import { BuildpackError, BuildpackErrorCodes } from './errors.js';
import type { BuildExecutor, ExecRequest, ExecResult } from './executor.js';

/** How long a step's output pipes may stay open after its process group was killed, ms. */
const PIPE_GRACE_MS = 1000;

/**
 * Runs build steps as local child processes: the embedded default. Each step gets a process
 * group of its own; when the step ends, is aborted or times out, the whole group is killed
 * (SIGKILL), so nothing a buildpack started in the background outlives its step.
 *
 * Steps run as the calling user with exactly the environment given; `mounts` are the host's
 * own directories and need nothing done.
 *
 * @example
 * ```ts
 * await using executor = new LocalExecutor();
 * const result = await build({ source: '/srv/src/demo', cacheDir: '/var/cache/demo', executor });
 * ```
 */
export class LocalExecutor implements BuildExecutor, AsyncDisposable {
  /** Always `'local'`. */
  readonly name = 'local';
  readonly #running = new Set<() => void>();
  #closed = false;

  /**
   * Runs one step to its end. Rejects with the signal's `reason` when aborted (after its
   * process group is killed), with `FLOTILLA_BUILDPACK_EXEC_FAILED` when the program cannot be
   * started or the executor is closed, and with what `onOutput` threw (the step is killed).
   */
  async exec(req: ExecRequest): Promise<ExecResult> {
    if (this.#closed) {
      throw new BuildpackError(BuildpackErrorCodes.EXEC_FAILED, 'LocalExecutor is closed');
    }
    req.signal?.throwIfAborted();
    const [program, ...args] = req.argv;
    if (program === undefined) {
      throw new BuildpackError(BuildpackErrorCodes.EXEC_FAILED, 'exec: argv is empty');
    }
    const child = spawn(program, args, {
      cwd: req.cwd,
      env: { ...req.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    this.#running.add(killGroup);
    // A listener that throws ends the step, and exec rejects with what it threw.
    let listenerError: { error: unknown } | undefined;
    const deliver = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
      if (listenerError !== undefined) return;
      try {
        req.onOutput(stream, chunk);
      } catch (error) {
        listenerError = { error };
        killGroup();
      }
    };
    child.stdout.on('data', (chunk: Buffer) => deliver('stdout', chunk));
    child.stderr.on('data', (chunk: Buffer) => deliver('stderr', chunk));

    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => killGroup();
    try {
      return await new Promise<ExecResult>((resolve, reject) => {
        child.once('error', (err) => {
          reject(
            new BuildpackError(
              BuildpackErrorCodes.EXEC_FAILED,
              `cannot run ${JSON.stringify(program)} in ${req.cwd}: ${err.message}`,
              { cause: err },
            ),
          );
        });
        child.once('exit', (code, signal) => {
          // Whatever the step left running in its group goes with it.
          killGroup();
          const pipesClosed = new Promise<void>((done) => {
            if (child.stdout.closed && child.stderr.closed) done();
            else child.once('close', () => done());
          });
          const grace = new Promise<void>((done) => setTimeout(done, PIPE_GRACE_MS).unref());
          void Promise.race([pipesClosed, grace]).then(() => {
            child.stdout.destroy();
            child.stderr.destroy();
            if (req.signal?.aborted === true) reject(req.signal.reason as Error);
            else if (listenerError !== undefined) reject(listenerError.error as Error);
            else resolve({ code, signal });
          });
        });
        req.signal?.addEventListener('abort', onAbort, { once: true });
        if (req.timeoutMs !== undefined) timer = setTimeout(killGroup, req.timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      this.#running.delete(killGroup);
    }
  }

  /** Kills every running step's process group. Idempotent; later `exec` calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const kill of this.#running) kill();
  }

  /** Same as {@link LocalExecutor.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
