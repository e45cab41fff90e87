import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { silentLogger, type Logger } from '@flotilla/core';
import { BuildpackError, BuildpackErrorCodes } from './errors.js';
import type { BuildExecutor, ExecRequest, ExecResult } from './executor.js';
import { cgroupParent, StepCgroup } from './internal/cgroup.js';
import { isTimeoutMs, TIMEOUT_MS_RULE } from './internal/options.js';
import { killSessionTree } from './internal/proc-tree.js';
import { resolveProgram } from './internal/resolve-program.js';
import { defaultStepsDir, recordStep, sweepStepRecords } from './internal/step-records.js';

/** How long a step's output pipes may stay open after its processes were killed, ms. */
const PIPE_GRACE_MS = 1000;

/**
 * Enters the cgroup whose `cgroup.procs` is $0, gives PWD back the value asked for ($1 = 1:
 * $2; else none: the shell sets one of its own), then becomes the step's program.
 */
const ENTER_CGROUP = [
  'echo $$ >"$0" || { echo "flotilla: cannot enter the step cgroup $0" >&2; exit 126; }',
  'if [ "$1" = 1 ]; then export PWD="$2"; else unset PWD; fi',
  'shift 2',
  'exec "$@"',
].join('\n');

/** Options of {@link LocalExecutor}. */
export interface LocalExecutorOptions {
  /**
   * Whether each step runs in a cgroup of its own when this process may make one (root, or a
   * delegated cgroup; v2 with `cgroup.kill`, else v1 `freezer`). In a cgroup nothing a step
   * starts can escape the kill, whatever it does. Without one, the step's session, process
   * group and their descendants are killed, which misses a process that left the session
   * (`setsid`) and whose parent then exited before the kill. Default true.
   */
  readonly cgroups?: boolean;
  /**
   * Where a step that runs without a cgroup records its process group while it runs, so that
   * when its builder was SIGKILLed the next step run here without a cgroup (another executor's,
   * after a restart) kills what it left: the process groups and sessions of steps whose builder,
   * on this host, is gone. Default: `flotilla-build-steps-<uid>` in the OS temp directory,
   * shared by every executor of the user. Its parent directory must exist; it must be this
   * user's alone (mode 0700), else nothing is recorded or swept there (logged).
   */
  readonly stepsDir?: string;
  /** A pino-compatible logger. Default: silent. */
  readonly logger?: Logger;
}

/**
 * Runs build steps as local child processes: the embedded default. Each step leads a session
 * and process group of its own and, where this process may make one, runs in a cgroup of its
 * own; when the step ends, is aborted or times out, everything it started is killed (SIGKILL)
 * before `exec` settles, also processes that left for a session of their own (`setsid`, a
 * daemonizing npm script).
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
  readonly #running = new Set<() => Promise<void>>();
  readonly #cgroups: boolean;
  readonly #stepsDir: string;
  readonly #logger: Logger;
  #closed = false;

  /** Makes an executor; it holds nothing until a step runs. */
  constructor(options: LocalExecutorOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_OPTIONS,
        'LocalExecutor: options must be an object',
        { path: 'options' },
      );
    }
    if (options.cgroups !== undefined && typeof options.cgroups !== 'boolean') {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_OPTIONS,
        'LocalExecutor: cgroups must be a boolean',
        { path: 'cgroups' },
      );
    }
    if (
      options.stepsDir !== undefined &&
      (typeof options.stepsDir !== 'string' ||
        options.stepsDir === '' ||
        options.stepsDir.includes('\0'))
    ) {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_OPTIONS,
        'LocalExecutor: stepsDir must be a directory path (a non-empty string without NUL)',
        { path: 'stepsDir' },
      );
    }
    this.#cgroups = options.cgroups ?? true;
    this.#stepsDir = options.stepsDir ?? defaultStepsDir();
    this.#logger = (options.logger ?? silentLogger).child({ component: 'buildpack-executor' });
  }

  /**
   * Runs one step to its end. Rejects with the signal's `reason` when aborted (once everything
   * the step started is gone), with `FLOTILLA_BUILDPACK_EXEC_FAILED` when the program cannot
   * be started or the executor is closed, with `FLOTILLA_BUILDPACK_INVALID_OPTIONS` for a
   * `timeoutMs` no timer keeps (not a positive number of ms up to 2³¹−1), and with what
   * `onOutput` threw (the step is killed).
   */
  async exec(req: ExecRequest): Promise<ExecResult> {
    if (this.#closed) {
      throw new BuildpackError(BuildpackErrorCodes.EXEC_FAILED, 'LocalExecutor is closed');
    }
    req.signal?.throwIfAborted();
    if (req.timeoutMs !== undefined && !isTimeoutMs(req.timeoutMs)) {
      // A timer would fire at once (NaN, past 2³¹−1) and kill the step as it starts.
      throw new BuildpackError(BuildpackErrorCodes.INVALID_OPTIONS, `exec: ${TIMEOUT_MS_RULE}`, {
        path: 'timeoutMs',
      });
    }
    const [program, ...args] = req.argv;
    if (program === undefined) {
      throw new BuildpackError(BuildpackErrorCodes.EXEC_FAILED, 'exec: argv is empty');
    }
    const cannotRun = (reason: string, cause?: unknown): BuildpackError =>
      new BuildpackError(
        BuildpackErrorCodes.EXEC_FAILED,
        `cannot run ${JSON.stringify(program)} in ${req.cwd}: ${reason}`,
        cause === undefined ? {} : { cause },
      );

    const parent = this.#cgroups ? await cgroupParent() : undefined;
    let cgroup: StepCgroup | undefined;
    let argv: readonly string[] = req.argv;
    let resolved: string | undefined;
    if (parent !== undefined) {
      resolved = await resolveProgram(program, req.env['PATH'], req.cwd);
      if (resolved === undefined) throw cannotRun('no such executable file (ENOENT)');
      // A cgroup that cannot be made now (cgroupfs gone, out of cgroups): the step still runs,
      // its session and descendants killed at the end.
      cgroup = await StepCgroup.create(parent).catch((err: unknown) => {
        this.#logger.warn({ err }, 'cannot make a cgroup for a build step; running it without');
        return undefined;
      });
    }
    // No cgroup: steps of dead builders are found through their records instead.
    if (cgroup === undefined) await sweepStepRecords(this.#stepsDir, this.#logger);
    if (cgroup !== undefined && resolved !== undefined) {
      const pwd = req.env['PWD'];
      argv = [
        '/bin/sh',
        '-c',
        ENTER_CGROUP,
        cgroup.procsFile,
        pwd === undefined ? '0' : '1',
        pwd ?? '',
        resolved,
        ...args,
      ];
    }
    try {
      if (this.#closed) {
        throw new BuildpackError(BuildpackErrorCodes.EXEC_FAILED, 'LocalExecutor is closed');
      }
      req.signal?.throwIfAborted();
      return await this.#run(req, argv, cgroup, cannotRun);
    } finally {
      await cgroup?.remove();
    }
  }

  async #run(
    req: ExecRequest,
    argv: readonly string[],
    cgroup: StepCgroup | undefined,
    cannotRun: (reason: string, cause?: unknown) => BuildpackError,
  ): Promise<ExecResult> {
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = spawn(argv[0] as string, argv.slice(1), {
        cwd: req.cwd,
        env: { ...req.env },
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      // A NUL byte in an argument, the environment or cwd: nothing was started.
      throw cannotRun((err as Error).message, err);
    }
    // Without a cgroup, the step's group is recorded until it is gone: if this process is
    // SIGKILLed meanwhile, the next executor's sweep finds it.
    const forget =
      cgroup === undefined && child.pid !== undefined
        ? recordStep(this.#stepsDir, child.pid, this.#logger)
        : undefined;
    // Everything the step started: its cgroup, else its session and their descendants.
    let killed: Promise<void> | undefined;
    const killAll = (): Promise<void> => {
      const pid = child.pid;
      if (pid === undefined) return Promise.resolve();
      killed ??= (async () => {
        // Not the process group first: its death would orphan a setsid child before the scan.
        if (cgroup !== undefined) await cgroup.kill();
        else await killSessionTree(pid);
      })().catch((err: unknown) => {
        this.#logger.warn({ err, pid }, 'cannot kill everything a build step started');
      });
      return killed;
    };
    this.#running.add(killAll);
    // A listener that throws ends the step, and exec rejects with what it threw.
    let listenerError: { error: unknown } | undefined;
    const deliver = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
      if (listenerError !== undefined) return;
      try {
        req.onOutput(stream, chunk);
      } catch (error) {
        listenerError = { error };
        void killAll();
      }
    };
    child.stdout.on('data', (chunk: Buffer) => deliver('stdout', chunk));
    child.stderr.on('data', (chunk: Buffer) => deliver('stderr', chunk));

    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => void killAll();
    try {
      return await new Promise<ExecResult>((resolve, reject) => {
        child.once('error', (err) => reject(cannotRun(err.message, err)));
        child.once('exit', (code, signal) => {
          // Whatever the step left running goes with it, before exec settles.
          const pipesClosed = new Promise<void>((done) => {
            if (child.stdout.closed && child.stderr.closed) done();
            else child.once('close', () => done());
          });
          void killAll()
            .then(() => forget?.())
            .then(() =>
              Promise.race([
                pipesClosed,
                new Promise<void>((done) => setTimeout(done, PIPE_GRACE_MS).unref()),
              ]),
            )
            .then(() => {
              child.stdout.destroy();
              child.stderr.destroy();
              if (req.signal?.aborted === true) reject(req.signal.reason as Error);
              else if (listenerError !== undefined) reject(listenerError.error as Error);
              else resolve({ code, signal });
            });
        });
        req.signal?.addEventListener('abort', onAbort, { once: true });
        if (req.timeoutMs !== undefined) timer = setTimeout(onAbort, req.timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      this.#running.delete(killAll);
    }
  }

  /**
   * Kills everything every running step started, and resolves once it is gone. Idempotent;
   * later `exec` calls fail.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#running].map((kill) => kill()));
  }

  /** Same as {@link LocalExecutor.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
