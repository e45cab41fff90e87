import type { Build, BuildSource, CreateBuildOptions } from '../build.js';
import type { Builder } from '../builder.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import { BuildOutputWriter } from './build-output.js';
import {
  checkSource,
  defaultBuilder,
  failureReason,
  runBuild,
  untilAborted,
} from './build-runner.js';
import { compact } from './check.js';
import { newId } from './names.js';
import type { ControllerParts } from './parts.js';
import type { ReleaseDraft } from './repo.js';
import { releaseSummary } from './summary.js';

/**
 * The builds this controller runs: each is written, passes its `pre-build` hooks, then runs in
 * the background (source, builder, artifact, `post-build` hooks, release, deploy), one at a
 * time per app, its output stored as it comes. Cancelled by {@link BuildService.cancel} and
 * {@link BuildService.close}: the build is marked failed.
 */
export class BuildService {
  /** Builds running here: their cancel and their end, by `<app>/<id>`. */
  readonly #builds = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Per app, the end of the last build queued here. */
  readonly #queue = new Map<string, Promise<void>>();
  #builder: Promise<Builder> | undefined;

  constructor(readonly p: ControllerParts) {}

  /** Starts a build; resolves with its record once it runs (see `Controller.createBuild`). */
  async create(app: string, source: BuildSource, options: CreateBuildOptions): Promise<Build> {
    await this.p.repo.requireApp(app, options);
    const checked = await checkSource(source, options.signal);
    const build: Build = {
      id: newId('b'),
      app,
      source: checked.id,
      sourceType: checked.source.type,
      builder: checked.source.type === 'image' ? 'image' : (options.builder ?? 'buildpack'),
      status: 'pending',
      createdAt: this.p.o.clock.now(),
      owner: this.p.id,
    };
    await this.p.repo.createBuild(build, options);
    const out = new BuildOutputWriter(
      this.p.store,
      this.p.keys,
      app,
      build.id,
      this.p.o.clock,
      this.p.o.logger,
      (line) => this.p.emit('build.output', { app, buildId: build.id, line }),
    );
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.p.hooks.run('pre-build', { app, build, user: options.user }, abort.signal, app);
    } catch (err) {
      options.signal?.removeEventListener('abort', onAbort);
      await this.#fail(build, err, out);
      throw err;
    }
    const running = await this.p.repo.updateBuild(app, build.id, (b) =>
      b.status === 'pending' ? { ...b, status: 'running' } : undefined,
    );
    if (running?.status !== 'running') {
      await out.end();
      throw new ControllerError(
        ControllerErrorCodes.BUILD_FAILED,
        `build ${build.id} of ${app} was ended before it ran`,
        { app },
      );
    }
    this.p.emit('build.started', { app, build: running });
    const key = `${app}/${build.id}`;
    const done = this.#run(running, checked.source, options, out, abort.signal).finally(() => {
      options.signal?.removeEventListener('abort', onAbort);
      this.#builds.delete(key);
    });
    this.#builds.set(key, { abort, done });
    return running;
  }

  /** Cancels the builds of an app running here, and waits until each has ended. */
  async cancel(app: string, reason: unknown): Promise<void> {
    const ending: Promise<void>[] = [];
    for (const [key, b] of this.#builds)
      if (key.startsWith(`${app}/`)) {
        b.abort.abort(reason);
        ending.push(b.done);
      }
    await Promise.allSettled(ending);
  }

  /** Cancels every build running here and waits until each is marked failed. */
  async close(reason: unknown): Promise<void> {
    for (const b of this.#builds.values()) b.abort.abort(reason);
    await Promise.allSettled([...this.#builds.values()].map((b) => b.done));
  }

  async #run(
    build: Build,
    source: BuildSource,
    options: CreateBuildOptions,
    out: BuildOutputWriter,
    signal: AbortSignal,
  ): Promise<void> {
    const { app } = build;
    let succeeded: Build | undefined;
    // One build of an app at a time here: builds share the app's cache directory.
    const previous = this.#queue.get(app);
    let finished!: () => void;
    const turn = new Promise<void>((resolve) => (finished = resolve));
    const queued = (previous ?? Promise.resolve()).then(() => turn);
    this.#queue.set(app, queued);
    try {
      if (previous !== undefined) {
        out.line(`-----> Waiting for the build of ${app} before this one`);
        await untilAborted(previous, signal);
      }
      const current = await this.p.repo.app(app);
      const latest =
        current === undefined || current.record.seq === 0
          ? undefined
          : await this.p.repo.release(app, current.record.seq);
      const product = await runBuild(
        {
          repo: this.p.repo,
          artifacts: this.p.o.artifacts,
          builder: () =>
            (this.#builder ??=
              this.p.o.builder !== undefined
                ? Promise.resolve(this.p.o.builder)
                : defaultBuilder(this.p.o.logger.child({ c: 'buildpack' }))),
          imageBuilder: this.p.o.imageBuilder,
          hooks: this.p.hooks,
          workDir: this.p.o.workDir,
          cacheLockTimeoutMs: this.p.o.cacheLockTimeoutMs,
          clock: this.p.o.clock,
          logger: this.p.o.logger,
        },
        build,
        source,
        latest?.config ?? {},
        options,
        out,
        signal,
      );
      checkProcessTypes(product.processTypes ?? {});
      const built: Build = compact<Build>({
        ...build,
        builder: product.builder,
        artifact: product.artifact,
        processTypes: product.processTypes,
        buildpacks: product.buildpacks,
      });
      await this.p.hooks.run('post-build', { app, build: built, user: options.user }, signal, app);
      succeeded = await this.p.repo.updateBuild(app, build.id, (b) =>
        b.status === 'running'
          ? compact<Build>({ ...built, status: 'succeeded', finishedAt: this.p.o.clock.now() })
          : undefined,
      );
      if (succeeded?.status !== 'succeeded') {
        succeeded = undefined;
        throw new Error(
          'the build was marked failed meanwhile (its controller was taken for dead)',
        );
      }
      out.line(
        `-----> Build succeeded: process types ${Object.keys(product.processTypes ?? {}).join(', ') || '(none)'}`,
      );
      this.p.emit('build.finished', { app, build: succeeded });
      if (options.deploy === false) return;
      const release = await this.p.repo.allocateRelease(app, (_a, latestNow) =>
        compact<ReleaseDraft>({
          build: build.id,
          config: latestNow?.config ?? {},
          processTypes: product.processTypes ?? {},
          description: `Deploy ${build.id} (${build.source.slice(0, 19)})`,
          user: options.user,
        }),
      );
      if (release === undefined) return;
      await this.p.repo.updateBuild(app, build.id, (b) => ({ ...b, release: release.id }));
      this.p.emit('release.created', { app, release: releaseSummary(release) });
      out.line(`-----> Released ${release.id}`);
      // The deployment is recorded on the build as soon as it starts (a controller that dies
      // mid-deploy leaves it named, for waitForDeploy), a failure's reason once it is known.
      const record = (fields: Pick<Build, 'deployment' | 'deployError'>): Promise<unknown> =>
        this.p.repo
          .updateBuild(app, build.id, (b) => compact<Build>({ ...b, ...fields }))
          .catch((e: unknown) =>
            this.p.o.logger.error({ err: e, build: build.id }, 'could not record the deploy'),
          );
      let recorded: Promise<unknown> = Promise.resolve();
      try {
        await this.p.deployer.deploy(app, release.version, 'release', {
          ...this.p.o.deploy,
          signal,
          progress: (line) => out.line(`       ${line}`),
          started: (d) => (recorded = record({ deployment: d.id })),
        });
        await recorded;
      } catch (err) {
        await recorded;
        // Before the output ends: waitForDeploy reads the build once it ended.
        await record({ deployError: failureReason(err).slice(0, 8192) });
        throw err;
      }
    } catch (err) {
      if (succeeded === undefined) await this.#fail(build, err, out);
      else out.line(`-----> Deploy failed: ${failureReason(err)}`);
    } finally {
      finished();
      if (this.#queue.get(app) === queued) this.#queue.delete(app);
      await out.end();
    }
  }

  async #fail(build: Build, err: unknown, out: BuildOutputWriter): Promise<void> {
    const error = failureReason(err).slice(0, 8192);
    out.line(`-----> Build failed: ${error}`);
    const failed = await this.p.repo
      .updateBuild(build.app, build.id, (b) =>
        b.status === 'pending' || b.status === 'running'
          ? { ...b, status: 'failed', error, finishedAt: this.p.o.clock.now() }
          : undefined,
      )
      .catch((e: unknown) => {
        this.p.o.logger.error({ err: e, build: build.id }, 'could not mark the build failed');
        return undefined;
      });
    await out.end();
    if (failed !== undefined) this.p.emit('build.finished', { app: build.app, build: failed });
  }
}

/** The most process types a build may declare: its formation and release records must fit the store. */
const MAX_PROCESS_TYPES = 100;
/** The most bytes all of a build's commands may take together, for the same reason. */
const MAX_COMMANDS_BYTES = 256 * 1024;

/**
 * Refuses process types a release cannot hold: a type must be a cluster id that is also a
 * discovery service name part (`a-z 0-9 _ -`, starting with a letter), and a command at most
 * 64 KiB without NUL; at least one type, at most {@link MAX_PROCESS_TYPES}, whose commands take
 * at most {@link MAX_COMMANDS_BYTES} in all (more overflowed the formation or release record
 * at deploy, after the release was written).
 */
function checkProcessTypes(types: Readonly<Record<string, string>>): void {
  const names = Object.keys(types);
  if (names.length === 0)
    throw new ControllerError(
      ControllerErrorCodes.BUILD_FAILED,
      'the build declares no process type: add a Procfile (web: <command>)',
    );
  if (names.length > MAX_PROCESS_TYPES)
    throw new ControllerError(
      ControllerErrorCodes.BUILD_FAILED,
      `the build declares ${names.length} process types: at most ${MAX_PROCESS_TYPES} are allowed; remove some from the Procfile`,
    );
  for (const [type, command] of Object.entries(types)) {
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(type))
      throw new ControllerError(
        ControllerErrorCodes.BUILD_FAILED,
        `process type ${JSON.stringify(type.slice(0, 64))} is not valid: use 1 to 63 of a-z 0-9 _ -, starting with a letter`,
        { path: `processTypes.${type.slice(0, 64)}` },
      );
    if (
      typeof command !== 'string' ||
      command.trim() === '' ||
      command.length > 64 * 1024 ||
      command.includes('\0')
    )
      throw new ControllerError(
        ControllerErrorCodes.BUILD_FAILED,
        `the command of process type ${type} must be a non-empty string of at most 64 KiB without NUL`,
        { path: `processTypes.${type}` },
      );
  }
  const bytes = Object.values(types).reduce((n, c) => n + Buffer.byteLength(c), 0);
  if (bytes > MAX_COMMANDS_BYTES)
    throw new ControllerError(
      ControllerErrorCodes.BUILD_FAILED,
      `the build's commands take ${bytes} bytes in all: at most ${MAX_COMMANDS_BYTES} are allowed; shorten them (move long scripts into files)`,
    );
}
