import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { Clock } from '@flotilla/core';
import type { OneOffHandle, OneOffRunner, OneOffSpec, RunInfo, RunOptions } from '../one-off.js';
import type { Release } from '../release.js';
import { compact } from './check.js';
import type { FormationService } from './formations.js';
import { appRelease, checkConfigPatch, invalid, newId, releaseNumber, show } from './names.js';
import type { ControllerParts } from './parts.js';
import { notFound } from './repo.js';

/**
 * Starts a one-off job (`Controller.run`): checks the command, env, size and timeout, finds the
 * release (given, else live, else newest built) and its slug, and hands the job to the
 * configured `OneOffRunner`; `run.started` and `run.finished` are emitted.
 */
export async function startRun(
  p: ControllerParts,
  runs: RunTracker,
  formations: FormationService,
  app: string,
  options: RunOptions,
): Promise<OneOffHandle> {
  if (typeof options !== 'object' || options === null)
    throw invalid('options', 'run takes { command, ... }', app);
  const { command } = options;
  if (
    typeof command !== 'string' ||
    command.trim() === '' ||
    command.length > 64 * 1024 ||
    command.includes('\0')
  )
    throw invalid(
      'command',
      'the command must be a non-empty string of at most 64 KiB without NUL',
      app,
    );
  const env = options.env === undefined ? {} : checkConfigPatch(options.env);
  if (Object.values(env).some((v) => v === null))
    throw invalid('env', 'env values must be strings', app);
  const size = options.size ?? p.o.defaultSize;
  if (!Object.hasOwn(p.o.sizes, size))
    throw invalid(
      'size',
      `${show(size)} is not a size: use ${Object.keys(p.o.sizes).join(', ')}`,
      app,
    );
  if (
    options.timeoutMs !== undefined &&
    (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1)
  )
    throw invalid(
      'timeoutMs',
      `timeoutMs must be a whole number of ms above 0, got ${show(options.timeoutMs)}`,
      app,
    );
  if (p.o.runner === undefined) throw noRunner(app);
  const record = await p.repo.requireApp(app, options);
  let release: Release | undefined;
  if (options.release !== undefined) {
    const n = releaseNumber(options.release);
    release = await p.repo.release(app, n, options);
    if (release === undefined) throw releaseNotFound(app, n);
  } else release = await formations.release(record, options);
  if (release?.build === undefined)
    throw new ControllerError(
      ControllerErrorCodes.NO_BUILD,
      `app ${app} has no build to run with: push one first`,
      { app },
    );
  const build = await p.repo.build(app, release.build, options);
  if (build?.artifact === undefined)
    throw new ControllerError(
      ControllerErrorCodes.NO_BUILD,
      `build ${release.build} of ${app} has no artifact`,
      { app },
    );
  await p.deployer.requireArtifact(build);
  const artifact = p.deployer.clusterRecord(release, build, release.id).artifact;
  const jobId = `${app}.run.${newId('r').slice(2)}`;
  const handle = await runs.start(
    compact<OneOffSpec>({
      id: jobId,
      app,
      release: release.id,
      type: 'run',
      command,
      artifact,
      env: { ...release.config, ...(env as Record<string, string>) },
      memoryMiB: p.deployer.resources(size).memory,
      timeoutMs: options.timeoutMs,
    }),
    options.signal === undefined ? {} : { signal: options.signal },
    size,
  );
  p.emit('run.started', { app, jobId, command });
  const exit = handle.exit.then((e) => {
    p.emit('run.finished', { app, jobId, code: e.code });
    return e;
  });
  return { id: handle.id, output: handle.output, exit, stop: () => handle.stop() };
}

function releaseNotFound(app: string, n: number): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.RELEASE_NOT_FOUND,
    `app ${app} has no release v${n}: check the number against the list of its releases`,
    { app },
  );
}

interface Tracked {
  readonly info: RunInfo;
  readonly handle: OneOffHandle;
  /** Settles when the job ended and was cleaned up (its `exit`, never rejecting). */
  readonly ended: Promise<void>;
}

/**
 * The one-offs this controller runs: a {@link OneOffRunner} over the configured one, through
 * which both `run` and the deployer's release phase start their jobs, so it can list them
 * (`listRuns`) and stop them (an app's destroy, the controller's close). A job leaves it when
 * its `exit` settles. Once closed it starts nothing more; a start in flight when it closed is
 * stopped as soon as it is up, and `close()` waits for that too.
 */
export class RunTracker implements OneOffRunner {
  readonly #runner: OneOffRunner | undefined;
  readonly #clock: Clock;
  readonly #defaultSize: string;
  readonly #closedError: () => Error;
  /** By app, then job id. */
  readonly #runs = new Map<string, Map<string, Tracked>>();
  /** Starts in flight, with their app, each settling once its job is registered (or its start failed). */
  readonly #starting = new Map<Promise<unknown>, string>();
  /** Apps being destroyed, by how many destroys: their one-offs are refused meanwhile. */
  readonly #refused = new Map<string, number>();
  #closed = false;

  constructor(
    runner: OneOffRunner | undefined,
    clock: Clock,
    defaultSize: string,
    closedError: () => Error,
  ) {
    this.#runner = runner;
    this.#clock = clock;
    this.#defaultSize = defaultSize;
    this.#closedError = closedError;
  }

  /** Starts the job with the runner and holds it until it ended; `size` defaults to the default size. */
  start(
    spec: OneOffSpec,
    options: { readonly signal?: AbortSignal } = {},
    size: string = this.#defaultSize,
  ): Promise<OneOffHandle> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#refused.has(spec.app)) return Promise.reject(notFound(spec.app));
    const runner = this.#runner;
    if (runner === undefined) return Promise.reject(noRunner(spec.app));
    const started = (async () => {
      const handle = await runner.start(spec, options);
      this.#add(spec, handle, size);
      // Closed while it started: close() waits for it, so it is stopped now.
      if (this.#closed) void handle.stop().catch(() => undefined);
      return handle;
    })();
    this.#starting.set(started, spec.app);
    const done = (): void => void this.#starting.delete(started);
    started.then(done, done);
    return started;
  }

  #add(spec: OneOffSpec, handle: OneOffHandle, size: string): void {
    const app = spec.app;
    const byId = this.#runs.get(app) ?? new Map<string, Tracked>();
    this.#runs.set(app, byId);
    const ended = handle.exit.then(
      () => undefined,
      () => undefined,
    );
    const tracked: Tracked = {
      info: {
        id: handle.id,
        type: spec.type === 'release' ? 'release' : 'run',
        command: spec.command,
        release: appRelease(spec.release),
        deployment: spec.release,
        size,
        startedAt: this.#clock.now(),
      },
      handle,
      ended,
    };
    byId.set(handle.id, tracked);
    void ended.then(() => {
      if (byId.get(handle.id) === tracked) byId.delete(handle.id);
      if (byId.size === 0 && this.#runs.get(app) === byId) this.#runs.delete(app);
    });
  }

  /** The app's one-offs still running, oldest first. */
  list(app: string): RunInfo[] {
    return [...(this.#runs.get(app)?.values() ?? [])]
      .map((t) => t.info)
      .sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Stops one of the app's one-offs and waits until it ended; false when it runs none of that id. */
  async stop(app: string, id: string): Promise<boolean> {
    const tracked = this.#runs.get(app)?.get(id);
    if (tracked === undefined) return false;
    await stopAndWait(tracked);
    return true;
  }

  /**
   * Refuses the app's one-offs (`FLOTILLA_CONTROLLER_APP_NOT_FOUND`) until the returned function
   * is called: an app's destroy holds it from before it stops the app's one-offs to its end, so
   * a run that found the app before it was marked destroying cannot start one after they were
   * stopped (it ran on, with the app's config, after the destroy).
   */
  refuse(app: string): () => void {
    this.#refused.set(app, (this.#refused.get(app) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#refused.get(app) ?? 1) - 1;
      if (n <= 0) this.#refused.delete(app);
      else this.#refused.set(app, n);
    };
  }

  /**
   * Stops every one-off of the app, those whose start is in flight too (their job may run
   * already), and waits until they ended.
   */
  async stopApp(app: string): Promise<void> {
    await Promise.allSettled([...this.#starting].flatMap(([p, a]) => (a === app ? [p] : [])));
    await Promise.all([...(this.#runs.get(app)?.values() ?? [])].map(stopAndWait));
  }

  /**
   * Starts no more; stops every one-off it runs (SIGTERM, then SIGKILL after the runner's
   * grace), including those whose start was in flight, and waits until they ended. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#starting.keys()]);
    const all = [...this.#runs.values()].flatMap((byId) => [...byId.values()]);
    await Promise.all(all.map(stopAndWait));
  }
}

/** `run` (or a release phase) on a controller configured without a one-off runner. */
function noRunner(app: string): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.NOT_CONFIGURED,
    'the controller has no one-off runner: configure one (DriverOneOffRunner)',
    { app },
  );
}

async function stopAndWait(t: Tracked): Promise<void> {
  await t.handle.stop().catch(() => undefined);
  await t.ended;
}
