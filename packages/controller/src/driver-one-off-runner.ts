import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Logger, silentLogger } from '@flotilla/core';
import { type ArtifactCache, type Driver, extractCachedSlug, jobEnv } from '@flotilla/host';
import { ControllerError, ControllerErrorCodes } from './errors.js';
import { PacedQueue } from './internal/paced-queue.js';
import type { OneOffHandle, OneOffRunner, OneOffSpec, RunExit, RunOutputLine } from './one-off.js';

/** Options of {@link DriverOneOffRunner}. */
export interface DriverOneOffRunnerOptions {
  /** The driver that runs the jobs (the embedded PaaS's `ProcessDriver`). */
  readonly driver: Driver;
  /** Where slugs are fetched and verified (share the host agent's to fetch each once). */
  readonly artifacts: ArtifactCache;
  /** Where each job's slug is extracted (`<workDir>/<job id>`), removed when the job ends. */
  readonly workDir: string;
  /** Between SIGTERM and SIGKILL when a run is stopped, ms (default 10,000). */
  readonly stopGraceMs?: number;
  /**
   * Lines of output held for a consumer that reads slower than the job writes (default
   * 10,000). Past it the job's output is read no further until the consumer reads: it waits in
   * the driver (its output files, dockerd's log), nothing is dropped. Once the job has ended it
   * waits no more: after an end by itself, the rest of its output (as much as the driver kept)
   * is held for the consumer; after a stop (`stop()`, its timeout or its signal), the newest
   * this many lines of it, after a `system` line saying how many were not shown.
   */
  readonly maxBufferedLines?: number;
  /** Where the runner logs what goes wrong around a run (a job it could not remove); silent by default. */
  readonly logger?: Logger;
}

/**
 * A {@link OneOffRunner} on a host `Driver`: fetches and verifies the release's slug
 * (`ArtifactCache`), extracts it, starts the command with the release's environment
 * (`DYNO=<type>.1`, the `FLOTILLA_*` variables, no `PORT`), streams its output, waits for its
 * exit, then removes the job and its directory. One-off jobs are in no formation, so the
 * scheduler never restarts them; they run where the runner is (the embedded PaaS: its host).
 *
 * @example
 * ```ts
 * const runner = new DriverOneOffRunner({ driver, artifacts: cache, workDir: './.flotilla/run' });
 * const controller = new Controller({ ...options, runner });
 * const run = await controller.run('demo', { command: 'echo $DATABASE_URL' });
 * for await (const l of run.output) console.log(l.line);
 * console.log((await run.exit).code);
 * ```
 */
export class DriverOneOffRunner implements OneOffRunner {
  readonly #driver: Driver;
  readonly #artifacts: ArtifactCache;
  readonly #workDir: string;
  readonly #grace: number;
  readonly #max: number;
  readonly #logger: Logger;

  constructor(options: DriverOneOffRunnerOptions) {
    if (typeof options?.workDir !== 'string' || options.workDir === '')
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        'DriverOneOffRunner needs a workDir',
        {
          path: 'workDir',
        },
      );
    this.#driver = options.driver;
    this.#artifacts = options.artifacts;
    this.#workDir = resolve(options.workDir);
    this.#grace = options.stopGraceMs ?? 10_000;
    this.#max = options.maxBufferedLines ?? 10_000;
    if (!Number.isSafeInteger(this.#max) || this.#max < 1)
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `maxBufferedLines must be a whole number of lines, at least 1 (got ${String(options.maxBufferedLines)})`,
        { path: 'maxBufferedLines' },
      );
    this.#logger = options.logger ?? silentLogger;
  }

  async start(
    spec: OneOffSpec,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<OneOffHandle> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (spec.artifact.type !== 'slug' && this.#driver.runsImages !== true)
      throw new ControllerError(
        ControllerErrorCodes.NOT_CONFIGURED,
        `release ${spec.release} of ${spec.app} runs an image, and the ${this.#driver.name} driver runs slugs only: give the runner a driver that runs images`,
        { app: spec.app },
      );
    const dir = join(this.#workDir, spec.id);
    await mkdir(this.#workDir, { recursive: true });
    try {
      if (spec.artifact.type === 'slug') {
        // Pinned until extracted: the cache may evict an unpinned slug at any time.
        const pin = this.#artifacts.pin(spec.artifact.sha256);
        try {
          // A cached copy damaged on disk is fetched again (see extractCachedSlug).
          await extractCachedSlug(
            this.#artifacts,
            spec.artifact,
            dir,
            signal === undefined ? {} : { signal },
          );
        } finally {
          pin.unpin();
        }
      } else await mkdir(dir, { recursive: true });
      await this.#driver.start({
        id: spec.id,
        app: spec.app,
        release: spec.release,
        processType: spec.type,
        index: 1,
        command: spec.command,
        cwd: dir,
        ...(spec.artifact.type === 'image' ? { image: spec.artifact.image } : {}),
        env: jobEnv({
          jobId: spec.id,
          app: spec.app,
          release: spec.release,
          processType: spec.type,
          index: 1,
          config: spec.env,
        }),
        ...(spec.memoryMiB === undefined ? {} : { memoryMiB: spec.memoryMiB }),
        stopGraceMs: this.#grace,
      });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const output = new PacedQueue<RunOutputLine>(this.#max);
    let timedOut = false;
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      // A stopped run ends though its output is not read: the newest of what is left of it
      // (maxBufferedLines) is held for a consumer instead of waiting for one, the rest said
      // dropped. A reader may never come (the client left, the controller closes): all of a
      // chatty run's output held as lines took hundreds of MB and a minute to gather.
      output.unpace({
        max: this.#max,
        gap: (n) => ({
          stream: 'system',
          line: `${n} line(s) of output not shown: the run was stopped before they were read`,
          time: Date.now(),
        }),
      });
      return (stopping ??= this.#driver.stop(spec.id, { graceMs: this.#grace }).then(
        () => undefined,
        () => undefined,
      ));
    };
    const timer =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            void stop();
          }, spec.timeoutMs);
    const onAbort = (): void => {
      timedOut = true;
      void stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Once the job has ended, so has the growth of its output: what is left of it (bounded by
    // what the driver kept) is held for the consumer, and the exit no longer waits for one.
    const release = (): void => output.unpace();
    this.#driver.wait(spec.id).then(release, release);
    const exit = (async (): Promise<RunExit> => {
      try {
        // From the job's first line, paced by the consumer: a command that writes faster than
        // its output is read waits in the driver, not in the driver's ring (1500 lines), where
        // it would be lost. What the driver could not keep comes as a `system` line.
        for await (const l of this.#driver.logs(spec.id, { follow: true, fromStart: true })) {
          const pushed = await output.push({
            stream: l.stream === 'stderr' ? 'stderr' : l.stream === 'stdout' ? 'stdout' : 'system',
            line: l.line,
            time: l.time,
          });
          if (!pushed) break; // the consumer left: the job still runs to its end
        }
        const status = await this.#driver.wait(spec.id);
        return { code: status.code, signal: status.signal, message: status.message, timedOut };
      } finally {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        output.end();
        await this.#driver
          .remove(spec.id)
          .catch((err: unknown) =>
            this.#logger.warn({ err, jobId: spec.id }, 'one-off job could not be removed'),
          );
        await rm(dir, { recursive: true, force: true });
      }
    })();
    return { id: spec.id, output, exit, stop };
  }
}
