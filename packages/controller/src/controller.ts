import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import {
  ClusterState,
  type HostView,
  isResourceAmount,
  isValidId,
  MAX_PROCESS_COUNT,
  type Resources,
} from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { serviceName } from '@flotilla/host';
import type { Store } from '@flotilla/store';
import type { App, CreateAppInput } from './app.js';
import type { ArtifactStore } from './artifact-store.js';
import type {
  Build,
  BuildOutputLine,
  BuildOutputOptions,
  BuildSource,
  CreateBuildOptions,
} from './build.js';
import type { Builder, ImageBuilder } from './builder.js';
import type { Deployment, DeployOptions } from './deployment.js';
import type { Domain } from './domain.js';
import type { Dyno } from './dyno.js';
import { ControllerError, ControllerErrorCodes } from './errors.js';
import type {
  ControllerEvent,
  ControllerEventMap,
  ControllerEvents,
  ControllerEventType,
  EventStreamOptions,
} from './events.js';
import {
  DEFAULT_SIZE,
  DEFAULT_SIZES,
  type FormationEntry,
  type FormationPatchEntry,
} from './formation.js';
import type { Hooks } from './hooks.js';
import type { JobLogSource } from './job-logs.js';
import type { OneOffHandle, OneOffRunner, OneOffSpec, RunOptions } from './one-off.js';
import type { Release, ReleaseOptions } from './release.js';
import type { RouteTableLike } from './route-table.js';
import { BuildOutputWriter, readOutput } from './internal/build-output.js';
import {
  checkSource,
  defaultBuilder,
  failureReason,
  runBuild,
  untilAborted,
} from './internal/build-runner.js';
import { compact } from './internal/check.js';
import { Deployer } from './internal/deployer.js';
import { eventStream } from './internal/event-stream.js';
import { HookRegistry } from './internal/hook-registry.js';
import { JobMirror } from './internal/job-mirror.js';
import { ControllerKeys } from './internal/keys.js';
import { Liveness } from './internal/liveness.js';
import { AppLocks } from './internal/lock.js';
import {
  checkAppName,
  checkConfigPatch,
  checkHostname,
  checkMeta,
  invalid,
  MAX_CONFIG_BYTES,
  MAX_CONFIG_VARS,
  newId,
  randomAppName,
  releaseNumber,
  show,
} from './internal/names.js';
import { waitUntil } from './internal/notifier.js';
import { Reaper } from './internal/reaper.js';
import type { AppRecord, FormationSetting } from './internal/records.js';
import { notFound, Repo, type ReleaseDraft } from './internal/repo.js';
import type { RolloutSettings } from './internal/rollout.js';

/** Options of {@link Controller}. */
export interface ControllerOptions {
  /** The store holding the controller's data and the cluster state (`SqliteStore`, `EtcdStore`, `MemoryStore`). Not closed by the controller. */
  readonly store: Store;
  /** Key prefix of the controller's own records (default `'controller/'`). */
  readonly prefix?: string;
  /** Key prefix of the cluster state (default `'cluster/'`, as `@flotilla/cluster`). */
  readonly clusterPrefix?: string;
  /** Key prefix of discovery (default `'discovery/'`, as `@flotilla/discovery`). */
  readonly discoveryPrefix?: string;
  /** Where slugs are kept and served from to hosts. */
  readonly artifacts: ArtifactStore;
  /** A directory for build trees and build caches (one cache per app). Created if missing. */
  readonly workDir: string;
  /** Builds slugs. Default: `build` of `@flotilla/buildpack`, imported at the first build. */
  readonly builder?: Builder;
  /** Builds Dockerfile apps into images (`@flotilla/docker`). Without it, Dockerfile apps build with buildpacks. */
  readonly imageBuilder?: ImageBuilder;
  /** Runs one-off jobs and the release phase. Without it, `run` and a `release` process type fail with `FLOTILLA_CONTROLLER_NOT_CONFIGURED`. */
  readonly runner?: OneOffRunner;
  /** Router routes for domains. Default: `new RouteTable(store)` of `@flotilla/router`. */
  readonly routes?: RouteTableLike;
  /** Every app gets `<app>.<baseDomain>` when set (`apps.example.com`). */
  readonly baseDomain?: string;
  /** Where failed deploys find the last log lines of their jobs. */
  readonly logs?: JobLogSource;
  /** Size names and what each reserves (default {@link DEFAULT_SIZES}). */
  readonly sizes?: Readonly<Record<string, Resources>>;
  /** The size of a process type never given one (default `standard`). */
  readonly defaultSize?: string;
  /** Defaults of every deploy (batch size, surge, timeouts). */
  readonly deploy?: Omit<DeployOptions, 'signal' | 'onBusy'>;
  /** Artifacts of the last this many releases of each app are kept (default 5); older ones are collected. */
  readonly keepReleases?: number;
  /** TTL of this controller's liveness lease, ms (default 10,000): how soon another one fails its builds and frees its locks after a crash. */
  readonly leaseTtlMs?: number;
  /** This controller's instance id (default random). */
  readonly id?: string;
  readonly clock?: Clock;
  /** A pino-compatible logger (default silent). Config var values are never logged. */
  readonly logger?: Logger;
}

/** Where a {@link Controller} is in its life. */
export type ControllerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** Options every call takes. */
export interface CallOptions {
  /** Gives up waiting: the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * The platform's logic as a library, over one `Store`: apps, config vars, builds, releases,
 * formations, domains, artifacts, rolling deploys with automatic rollback, one-off runs, events
 * and hooks. No HTTP: the reference PaaS puts its API in front.
 *
 * @example
 * ```ts
 * const controller = new Controller({ store, artifacts: new DirectoryArtifactStore({ dir }), workDir });
 * await controller.start();
 * const app = await controller.createApp({ name: 'demo' });
 * const build = await controller.createBuild('demo', { type: 'git', dir: checkout, sha });
 * for await (const l of controller.buildOutput('demo', build.id)) console.log(l.line);
 * await controller.patchConfig('demo', { NODE_ENV: 'production', DEBUG: null });
 * await controller.patchFormation('demo', { web: { quantity: 3 } });
 * ```
 */
export class Controller extends EventEmitter<ControllerEvents> implements AsyncDisposable {
  /** This controller's instance id. */
  readonly id: string;
  /** Plugins' hooks: `controller.hooks.add('pre-build', (ctx) => ...)`. */
  readonly hooks: Hooks;
  readonly #o: ResolvedOptions;
  readonly #keys: ControllerKeys;
  readonly #repo: Repo;
  readonly #cluster: ClusterState;
  readonly #discovery: Discovery;
  readonly #liveness: Liveness;
  readonly #locks: AppLocks;
  readonly #mirror: JobMirror;
  readonly #reaper: Reaper;
  readonly #hooks = new HookRegistry();
  readonly #deployer: Deployer;
  readonly #closing = new AbortController();
  /** Builds running here: their cancel and their end. */
  readonly #builds = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Per app, the end of the last build queued here. */
  readonly #buildQueue = new Map<string, Promise<void>>();
  #routes: Promise<RouteTableLike> | undefined;
  #builder: Promise<Builder> | undefined;
  #state: ControllerState = 'idle';
  #starting: Promise<void> | undefined;
  #closingPromise: Promise<void> | undefined;
  #gc: Promise<unknown> = Promise.resolve();

  constructor(options: ControllerOptions) {
    super();
    this.#o = resolveOptions(options);
    this.id = this.#o.id;
    this.hooks = this.#hooks;
    const { store, clock, logger } = this.#o;
    this.#keys = new ControllerKeys(this.#o.prefix);
    this.#repo = new Repo(store, this.#keys, clock);
    this.#cluster = new ClusterState({ store, prefix: this.#o.clusterPrefix, clock, logger });
    this.#discovery = new Discovery({ store, prefix: this.#o.discoveryPrefix, clock, logger });
    this.#liveness = new Liveness(this.id, store, this.#keys, this.#o.leaseTtlMs, clock, logger);
    this.#locks = new AppLocks(store, this.#keys, this.#liveness, clock);
    const report = (err: unknown): void => {
      logger.warn({ err }, 'controller background failure');
      if (this.listenerCount('error') > 0)
        this.emit('error', err instanceof Error ? err : new Error(String(err)));
    };
    this.#mirror = new JobMirror(store, this.#cluster.keys, clock, logger, report);
    this.#reaper = new Reaper(
      store,
      this.#keys,
      this.#repo,
      this.id,
      clock,
      logger,
      report,
      (build) => this.#emit('build.finished', { app: build.app, build }),
      (deployment) => this.#emit('deploy.finished', { app: deployment.app, deployment }),
    );
    this.#deployer = new Deployer({
      id: this.id,
      repo: this.#repo,
      cluster: this.#cluster,
      discovery: this.#discovery,
      mirror: this.#mirror,
      locks: this.#locks,
      artifacts: this.#o.artifacts,
      runner: this.#o.runner,
      hooks: this.#hooks,
      logs: this.#o.logs,
      clock,
      logger,
      sizes: this.#o.sizes,
      defaultSize: this.#o.defaultSize,
      defaults: this.#o.deploy,
      emit: (type, payload) => this.#emit(type, payload),
      afterDeploy: () => {
        this.#gc = this.#gc.then(() => this.collectArtifacts().catch(report));
      },
      closing: this.#closing.signal,
    });
  }

  /** Where it is in its life. */
  get state(): ControllerState {
    return this.#state;
  }

  /**
   * Starts: takes its liveness lease, fails the builds and deploys of controllers that died
   * (their lease is gone, now or later), and watches jobs for `job.state` events. Idempotent.
   */
  async start(options: CallOptions = {}): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') throw closed();
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options: CallOptions): Promise<void> {
    this.#state = 'starting';
    try {
      await mkdir(this.#o.workDir, { recursive: true });
      await this.#liveness.start(options.signal);
      this.#mirror.subscribe((change) => {
        const r = change.record;
        if (r === undefined || change.job === undefined) return;
        this.#emit('job.state', {
          app: r.app,
          jobId: r.id,
          processType: r.type,
          release: r.release,
          host: r.hostId,
          state: change.job.state,
          previous: change.previous,
        });
      });
      this.#mirror.start();
      this.#reaper.start();
      await abortable(Promise.all([this.#mirror.ready, this.#reaper.ready]), options.signal);
      if (this.#closing.signal.aborted) throw closed();
      this.#state = 'running';
    } catch (err) {
      this.#state = 'failed';
      await this.#shutdown();
      throw err;
    }
  }

  /** Stops: cancels its builds (marked failed), ends its watches and event streams, revokes its lease. Jobs keep running. Idempotent. */
  async close(): Promise<void> {
    this.#closingPromise ??= (async () => {
      const was = this.#state;
      this.#state = 'stopping';
      this.#closing.abort(closed());
      await this.#starting?.catch(() => undefined);
      for (const b of this.#builds.values()) b.abort.abort(closed());
      await Promise.allSettled([...this.#builds.values()].map((b) => b.done));
      await this.#deployer.idle();
      await this.#gc;
      await this.#shutdown();
      this.#state = was === 'failed' ? 'failed' : 'stopped';
    })();
    return this.#closingPromise;
  }

  async #shutdown(): Promise<void> {
    await this.#reaper.close();
    await this.#mirror.close();
    await this.#liveness.close();
    await this.#discovery.close().catch(() => undefined);
    await this.#cluster.close().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- apps ----------------------------------------------------------------------------------

  /** Creates an app (with `<name>.<baseDomain>` when configured). `FLOTILLA_CONTROLLER_APP_EXISTS` when taken. */
  async createApp(input: CreateAppInput = {}, options: CallOptions = {}): Promise<App> {
    this.#open();
    if (typeof input !== 'object' || input === null)
      throw invalid('input', 'createApp takes { name?, meta? }');
    const meta = checkMeta(input.meta);
    const given = input.name !== undefined;
    const name = given ? checkAppName(input.name) : randomAppName();
    for (let attempt = 0; ; attempt++) {
      const candidate = attempt === 0 ? name : randomAppName();
      const record: AppRecord = {
        name: candidate,
        createdAt: this.#o.clock.now(),
        meta,
        seq: 0,
        formation: {},
        generation: 0,
      };
      if (await this.#repo.createApp(record, options)) {
        if (this.#o.baseDomain !== undefined) {
          try {
            await this.#addDomain(
              candidate,
              `${candidate}.${this.#o.baseDomain}`,
              'default',
              options,
            );
          } catch (err) {
            await this.#store.delete(this.#keys.app(candidate)).catch(() => undefined);
            throw err;
          }
        }
        this.#emit('app.created', { app: candidate });
        return toApp(record);
      }
      if (given)
        throw new ControllerError(
          ControllerErrorCodes.APP_EXISTS,
          `an app named ${candidate} exists: pick another name`,
          { app: candidate },
        );
      if (attempt > 8)
        throw new ControllerError(
          ControllerErrorCodes.CONFLICT,
          'no free random app name found: give a name',
          { retryable: true },
        );
    }
  }

  /** An app; `FLOTILLA_CONTROLLER_APP_NOT_FOUND` when there is none. */
  async getApp(name: string, options: CallOptions = {}): Promise<App> {
    this.#open();
    return toApp(await this.#repo.requireApp(checkAppName(name), options));
  }

  /** Every app, by name. */
  async listApps(options: CallOptions = {}): Promise<App[]> {
    this.#open();
    return (await this.#repo.apps(options)).filter((a) => a.destroying !== true).map(toApp);
  }

  /**
   * Destroys an app: stops its jobs (waiting until they are gone), removes its formations,
   * routes, releases, builds, config and the artifacts no other app uses. A destroy cut short
   * (a crash) is finished by calling it again.
   */
  async destroyApp(name: string, options: CallOptions = {}): Promise<void> {
    this.#open();
    checkAppName(name);
    const got = await this.#repo.app(name, options);
    if (got === undefined) throw notFound(name);
    const lock = await this.#locks.acquire(name, 'destroy', {
      onBusy: 'wait',
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    try {
      // From here on the app refuses everything else.
      for (let i = 0; i < 32; i++) {
        const cur = await this.#repo.app(name, options);
        if (cur === undefined) return;
        if (cur.record.destroying === true) break;
        const res = await this.#store.txn({
          compare: [
            {
              key: this.#keys.app(name),
              target: 'modRevision',
              op: '==',
              value: cur.kv.modRevision,
            },
          ],
          success: [
            {
              op: 'put',
              key: this.#keys.app(name),
              value: JSON.stringify({ ...cur.record, destroying: true }),
            },
          ],
        });
        if (res.succeeded) break;
      }
      for (const [key, b] of this.#builds)
        if (key.startsWith(`${name}/`)) b.abort.abort(notFound(name));
      for (const f of await this.#cluster.formations({ app: name }))
        await this.#cluster.removeFormation(name, f.release);
      await this.#mirror.ready;
      const gone = await waitUntil(
        this.#mirror.changed,
        () =>
          this.#mirror.jobs(name).every((j) => j.state === 'down' || j.state === 'crashed')
            ? true
            : undefined,
        { timeoutMs: this.#o.deploy.stopTimeoutMs, clock: this.#o.clock, signal: options.signal },
      );
      if ('aborted' in gone) options.signal?.throwIfAborted();
      for (const d of await this.#repo.domains(options)) {
        if (d.app !== name) continue;
        if (d.routeId !== undefined) await (await this.#routeTable()).remove(d.routeId);
        await this.#repo.deleteDomain(d.hostname);
      }
      // Artifacts only this app's builds use.
      const mine = new Set<string>();
      for (const b of await this.#repo.builds(name))
        if (b.artifact?.type === 'slug') mine.add(b.artifact.sha256);
      for (const b of await this.#repo.allBuilds())
        if (b.app !== name && b.artifact?.type === 'slug') mine.delete(b.artifact.sha256);
      for (const digest of mine) await this.#o.artifacts.delete(digest);
      await this.#store.deletePrefix(this.#cluster.keys.releasesOf(name));
      for (const prefix of [
        this.#keys.releasesOf(name),
        this.#keys.buildsOf(name),
        this.#keys.outputOfApp(name),
        this.#keys.deploymentsOf(name),
      ])
        await this.#store.deletePrefix(prefix);
      await this.#store.delete(this.#keys.app(name));
      await rm(join(this.#o.workDir, 'cache', name), { recursive: true, force: true });
      this.#emit('app.destroyed', { app: name });
    } finally {
      await lock.release().catch(() => undefined);
    }
  }

  // --- config --------------------------------------------------------------------------------

  /** The app's config vars (those of its newest release). */
  async getConfig(app: string, options: CallOptions = {}): Promise<Record<string, string>> {
    this.#open();
    const record = await this.#repo.requireApp(checkAppName(app), options);
    if (record.seq === 0) return {};
    return { ...(await this.#repo.release(app, record.seq, options))?.config };
  }

  /**
   * Sets and unsets config vars at once (`null` unsets): a new release, then a rolling
   * restart onto it when the app has a build. Keys must be `[A-Za-z_][A-Za-z0-9_]*`. Resolves
   * with the new release once it is live (or made, without a build); undefined when nothing
   * changed. A failed restart rejects with `FLOTILLA_CONTROLLER_DEPLOY_FAILED` (the release stays
   * in the ledger, the previous one serves).
   */
  async patchConfig(
    app: string,
    patch: Readonly<Record<string, string | null>>,
    options: ReleaseOptions & DeployOptions = {},
  ): Promise<Release | undefined> {
    this.#open();
    checkAppName(app);
    const changes = checkConfigPatch(patch);
    this.#deployer.settings(options);
    const set: string[] = [];
    const unset: string[] = [];
    const release = await this.#repo.allocateRelease(
      app,
      (_a, latest) => {
        const config: Record<string, string> = { ...latest?.config };
        set.length = 0;
        unset.length = 0;
        for (const [k, v] of Object.entries(changes)) {
          if (v === null) {
            if (Object.hasOwn(config, k)) {
              Reflect.deleteProperty(config, k);
              unset.push(k);
            }
          } else if (config[k] !== v) {
            config[k] = v;
            set.push(k);
          }
        }
        if (set.length === 0 && unset.length === 0) return undefined;
        if (Object.keys(config).length > MAX_CONFIG_VARS)
          throw invalid('config', `an app may have at most ${MAX_CONFIG_VARS} config vars`, app);
        if (Buffer.byteLength(JSON.stringify(config)) > MAX_CONFIG_BYTES)
          throw invalid(
            'config',
            `an app's config vars may take at most ${MAX_CONFIG_BYTES} bytes in all`,
            app,
          );
        const description = [
          set.length > 0 ? `Set ${set.join(', ')}` : '',
          unset.length > 0 ? `Unset ${unset.join(', ')}` : '',
        ]
          .filter((x) => x !== '')
          .join('; ');
        return compact<ReleaseDraft>({
          build: latest?.build,
          config,
          processTypes: latest?.processTypes ?? {},
          description: description.slice(0, 4096),
          user: options.user,
        });
      },
      options,
    );
    if (release === undefined) return undefined;
    this.#emit('config.changed', { app, set: [...set], unset: [...unset] });
    this.#emit('release.created', { app, release });
    if (release.build !== undefined && options.deploy !== false)
      await this.#deployer.deploy(app, release.version, 'release', options);
    return release;
  }

  // --- builds --------------------------------------------------------------------------------

  /**
   * Starts a build and resolves with its record once it is running (its pre-build hooks
   * passed). It then builds in the background; its output is followable with
   * {@link buildOutput}, its end awaitable with {@link waitForBuild}. Unless `deploy: false`,
   * a successful build makes a release and deploys it (its output says so).
   */
  async createBuild(
    app: string,
    source: BuildSource,
    options: CreateBuildOptions = {},
  ): Promise<Build> {
    this.#open();
    checkAppName(app);
    if (
      options.builder !== undefined &&
      options.builder !== 'buildpack' &&
      options.builder !== 'dockerfile'
    )
      throw invalid(
        'builder',
        `${show(options.builder)} is not a builder: use buildpack or dockerfile`,
        app,
      );
    if (
      options.buildpacks !== undefined &&
      (!Array.isArray(options.buildpacks) ||
        options.buildpacks.some(
          (b) => typeof b !== 'string' || b === '' || b.length > 4096 || b.includes('\0'),
        ))
    )
      throw invalid('buildpacks', 'buildpacks must be an array of names or URLs', app);
    await this.#repo.requireApp(app, options);
    const checked = await checkSource(source, options.signal);
    const build: Build = {
      id: newId('b'),
      app,
      source: checked.id,
      sourceType: checked.source.type,
      builder: checked.source.type === 'image' ? 'image' : (options.builder ?? 'buildpack'),
      status: 'pending',
      createdAt: this.#o.clock.now(),
      owner: this.id,
    };
    await this.#repo.createBuild(build, options);
    const out = new BuildOutputWriter(
      this.#store,
      this.#keys,
      app,
      build.id,
      this.#o.clock,
      this.#o.logger,
      (line) => this.#emit('build.output', { app, buildId: build.id, line }),
    );
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.#hooks.run('pre-build', { app, build, user: options.user }, abort.signal, app);
    } catch (err) {
      options.signal?.removeEventListener('abort', onAbort);
      await this.#failBuild(build, err, out);
      throw err;
    }
    const running = await this.#repo.updateBuild(app, build.id, (b) =>
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
    this.#emit('build.started', { app, build: running });
    const key = `${app}/${build.id}`;
    const done = this.#runBuild(running, checked.source, options, out, abort.signal).finally(() => {
      options.signal?.removeEventListener('abort', onAbort);
      this.#builds.delete(key);
    });
    this.#builds.set(key, { abort, done });
    return running;
  }

  async #runBuild(
    build: Build,
    source: BuildSource,
    options: CreateBuildOptions,
    out: BuildOutputWriter,
    signal: AbortSignal,
  ): Promise<void> {
    const { app } = build;
    let succeeded: Build | undefined;
    // One build of an app at a time here: builds share the app's cache directory.
    const previous = this.#buildQueue.get(app);
    let finished!: () => void;
    const turn = new Promise<void>((resolve) => (finished = resolve));
    const queued = (previous ?? Promise.resolve()).then(() => turn);
    this.#buildQueue.set(app, queued);
    try {
      if (previous !== undefined) {
        out.line(`-----> Waiting for the build of ${app} before this one`);
        await untilAborted(previous, signal);
      }
      const current = await this.#repo.app(app);
      const latest =
        current === undefined || current.record.seq === 0
          ? undefined
          : await this.#repo.release(app, current.record.seq);
      const product = await runBuild(
        {
          repo: this.#repo,
          artifacts: this.#o.artifacts,
          builder: () =>
            (this.#builder ??=
              this.#o.builder !== undefined ? Promise.resolve(this.#o.builder) : defaultBuilder()),
          imageBuilder: this.#o.imageBuilder,
          hooks: this.#hooks,
          workDir: this.#o.workDir,
          clock: this.#o.clock,
          logger: this.#o.logger,
        },
        build,
        source,
        latest?.config ?? {},
        options,
        out,
        signal,
      );
      const built: Build = compact<Build>({
        ...build,
        builder: product.builder,
        artifact: product.artifact,
        processTypes: product.processTypes,
        buildpacks: product.buildpacks,
      });
      await this.#hooks.run('post-build', { app, build: built, user: options.user }, signal, app);
      succeeded = await this.#repo.updateBuild(app, build.id, (b) =>
        b.status === 'running'
          ? compact<Build>({ ...built, status: 'succeeded', finishedAt: this.#o.clock.now() })
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
      this.#emit('build.finished', { app, build: succeeded });
      if (options.deploy === false) return;
      const release = await this.#repo.allocateRelease(app, (_a, latestNow) =>
        compact<ReleaseDraft>({
          build: build.id,
          config: latestNow?.config ?? {},
          processTypes: product.processTypes ?? {},
          description: `Deploy ${build.id} (${build.source.slice(0, 19)})`,
          user: options.user,
        }),
      );
      if (release === undefined) return;
      await this.#repo.updateBuild(app, build.id, (b) => ({ ...b, release: release.id }));
      this.#emit('release.created', { app, release });
      out.line(`-----> Released ${release.id}`);
      await this.#deployer.deploy(app, release.version, 'release', {
        ...this.#o.deploy,
        signal,
        progress: (line) => out.line(`       ${line}`),
      });
    } catch (err) {
      if (succeeded === undefined) await this.#failBuild(build, err, out);
      else out.line(`-----> Deploy failed: ${failureReason(err)}`);
    } finally {
      finished();
      if (this.#buildQueue.get(app) === queued) this.#buildQueue.delete(app);
      await out.end();
    }
  }

  async #failBuild(build: Build, err: unknown, out: BuildOutputWriter): Promise<void> {
    const error = failureReason(err).slice(0, 8192);
    out.line(`-----> Build failed: ${error}`);
    const failed = await this.#repo
      .updateBuild(build.app, build.id, (b) =>
        b.status === 'pending' || b.status === 'running'
          ? { ...b, status: 'failed', error, finishedAt: this.#o.clock.now() }
          : undefined,
      )
      .catch((e: unknown) => {
        this.#o.logger.error({ err: e, build: build.id }, 'could not mark the build failed');
        return undefined;
      });
    await out.end();
    if (failed !== undefined) this.#emit('build.finished', { app: build.app, build: failed });
  }

  /** A build; `FLOTILLA_CONTROLLER_BUILD_NOT_FOUND` when there is none. */
  async getBuild(app: string, id: string, options: CallOptions = {}): Promise<Build> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    const build = validBuildId(id) ? await this.#repo.build(app, id, options) : undefined;
    if (build === undefined) throw buildNotFound(app, id);
    return build;
  }

  /** The app's builds, oldest first. */
  async listBuilds(app: string, options: CallOptions = {}): Promise<Build[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return (await this.#repo.builds(app, options)).sort(
      (a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1),
    );
  }

  /**
   * A build's output, line by line: what is kept, then (with `follow`, the default) new lines
   * until the build ends and its release and deploy are done. Works from any controller
   * instance on the same store.
   */
  buildOutput(
    app: string,
    id: string,
    options: BuildOutputOptions = {},
  ): AsyncIterable<BuildOutputLine> {
    const follow = (): AsyncGenerator<BuildOutputLine> => this.#follow(app, id, options);
    return { [Symbol.asyncIterator]: follow };
  }

  async *#follow(
    app: string,
    id: string,
    options: BuildOutputOptions,
  ): AsyncGenerator<BuildOutputLine> {
    await this.getBuild(app, id, options);
    const after = options.after ?? -1;
    if (!Number.isSafeInteger(after) || after < -1)
      throw invalid('after', `after must be a line number, got ${show(after)}`, app);
    const signal =
      options.signal === undefined
        ? this.#closing.signal
        : AbortSignal.any([options.signal, this.#closing.signal]);
    yield* readOutput(this.#store, this.#keys, app, id, {
      follow: options.follow ?? true,
      after,
      signal,
      clock: this.#o.clock,
    });
  }

  /**
   * Resolves with the build once it ended, and its release and deploy (when asked for) are
   * done: `status` tells success. Never rejects for the build's own failure.
   */
  async waitForBuild(app: string, id: string, options: CallOptions = {}): Promise<Build> {
    for await (const line of this.buildOutput(app, id, { ...options, follow: true })) void line;
    options.signal?.throwIfAborted();
    return this.getBuild(app, id, options);
  }

  // --- releases and deploys ------------------------------------------------------------------

  /** The app's releases, newest first. */
  async listReleases(app: string, options: CallOptions = {}): Promise<Release[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return (await this.#repo.releases(app, options)).reverse();
  }

  /** A release by id (`v3`) or number; `FLOTILLA_CONTROLLER_RELEASE_NOT_FOUND` when there is none. */
  async getRelease(
    app: string,
    release: string | number,
    options: CallOptions = {},
  ): Promise<Release> {
    this.#open();
    checkAppName(app);
    const n = releaseNumber(release);
    await this.#repo.requireApp(app, options);
    const got = await this.#repo.release(app, n, options);
    if (got === undefined) throw releaseNotFound(app, n);
    return got;
  }

  /**
   * Rolls back: a new release `vN+1` from `to`'s build and config (default: the newest release
   * with a build before the live one), deployed. Resolves with it once live.
   */
  async rollback(
    app: string,
    to?: string | number,
    options: ReleaseOptions & DeployOptions = {},
  ): Promise<Release> {
    this.#open();
    checkAppName(app);
    this.#deployer.settings(options);
    const record = await this.#repo.requireApp(app, options);
    let target: Release | undefined;
    if (to !== undefined) {
      const n = releaseNumber(to, 'to');
      target = await this.#repo.release(app, n, options);
      if (target === undefined) throw releaseNotFound(app, n);
    } else {
      const live = record.live === undefined ? record.seq + 1 : releaseNumber(record.live.release);
      const before = (await this.#repo.releases(app, options)).filter(
        (r) => r.version < live && r.build !== undefined,
      );
      target = before[before.length - 1];
      if (target === undefined)
        throw new ControllerError(
          ControllerErrorCodes.RELEASE_NOT_FOUND,
          `app ${app} has no release with a build before ${record.live?.release ?? 'the newest'} to roll back to`,
          { app },
        );
    }
    if (target.build === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `${target.id} of ${app} has no build: roll back to a release that has one`,
        { app },
      );
    const from = target;
    const fromBuild = await this.#repo.build(app, target.build, options);
    if (fromBuild?.status !== 'succeeded')
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `the build of ${target.id} of ${app} did not succeed`,
        { app },
      );
    await this.#deployer.requireArtifact(fromBuild);
    const release = await this.#repo.allocateRelease(app, () =>
      compact<ReleaseDraft>({
        build: from.build,
        config: from.config,
        processTypes: from.processTypes,
        description: `Rollback to ${from.id}`,
        user: options.user,
      }),
    );
    if (release === undefined) throw new Error('unreachable: a rollback always makes a release');
    this.#emit('release.created', { app, release });
    if (options.deploy !== false)
      await this.#deployer.deploy(app, release.version, 'release', options);
    return release;
  }

  /**
   * Deploys a release that has a build (a rolling deploy; see the README). Resolves with the
   * deployment once the new jobs are ready and the old ones gone; rejects with
   * `FLOTILLA_CONTROLLER_DEPLOY_FAILED` after rolling back by itself, the previous release
   * still serving.
   */
  async deploy(
    app: string,
    release: string | number,
    options: DeployOptions = {},
  ): Promise<Deployment> {
    this.#open();
    checkAppName(app);
    const n = releaseNumber(release);
    return this.#deployer.deploy(app, n, 'release', options);
  }

  /** The app's deployments, newest first. */
  async listDeployments(app: string, options: CallOptions = {}): Promise<Deployment[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return (await this.#repo.deployments(app, options)).sort(
      (a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1),
    );
  }

  // --- formation and dynos -------------------------------------------------------------------

  /** The release whose process types the formation is about: the live one, else the newest with a build. */
  async #formationRelease(app: AppRecord, options: CallOptions): Promise<Release | undefined> {
    if (app.live !== undefined)
      return this.#repo.release(app.name, releaseNumber(app.live.release), options);
    const releases = await this.#repo.releases(app.name, options);
    return [...releases].reverse().find((r) => r.build !== undefined);
  }

  /** Quantity and size of each process type of the app. */
  async getFormation(app: string, options: CallOptions = {}): Promise<FormationEntry[]> {
    this.#open();
    checkAppName(app);
    const record = await this.#repo.requireApp(app, options);
    const release = await this.#formationRelease(record, options);
    const types = new Set([
      ...Object.keys(release?.processTypes ?? {}),
      ...Object.keys(record.formation),
    ]);
    types.delete('release');
    return [...types].sort().map((type) => {
      const f = record.formation[type];
      const size = f?.size ?? this.#o.defaultSize;
      return {
        type,
        quantity: f?.quantity ?? 0,
        size,
        resources: this.#deployer.resources(size),
        command: release?.processTypes[type],
      };
    });
  }

  /**
   * Changes quantities and sizes. A quantity applies at once to the live release; a size
   * change is a rolling restart. Types must exist in the live (or newest built) release.
   */
  async patchFormation(
    app: string,
    patch: Readonly<Record<string, FormationPatchEntry>>,
    options: DeployOptions = {},
  ): Promise<FormationEntry[]> {
    this.#open();
    checkAppName(app);
    this.#deployer.settings(options);
    if (
      typeof patch !== 'object' ||
      patch === null ||
      Array.isArray(patch) ||
      Object.keys(patch).length === 0
    )
      throw invalid(
        'formation',
        'give { type: { quantity?, size? } } for at least one process type',
        app,
      );
    const record = await this.#repo.requireApp(app, options);
    const release = await this.#formationRelease(record, options);
    if (release === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `app ${app} has no build yet: push one, then scale its process types`,
        { app },
      );
    const changes: Record<string, FormationPatchEntry> = {};
    for (const [type, entry] of Object.entries(patch)) {
      if (!Object.hasOwn(release.processTypes, type) || type === 'release')
        throw new ControllerError(
          ControllerErrorCodes.UNKNOWN_PROCESS_TYPE,
          `${release.id} of ${app} has no process type ${show(type)} (it has ${
            Object.keys(release.processTypes)
              .filter((t) => t !== 'release')
              .join(', ') || 'none'
          })`,
          { app, path: `formation.${type.slice(0, 40)}` },
        );
      if (typeof entry !== 'object' || entry === null)
        throw invalid(`formation.${type}`, 'give { quantity?, size? }', app);
      if (
        entry.quantity !== undefined &&
        (!Number.isSafeInteger(entry.quantity) ||
          entry.quantity < 0 ||
          entry.quantity > MAX_PROCESS_COUNT)
      )
        throw invalid(
          `formation.${type}.quantity`,
          `quantity must be a whole number from 0 to ${MAX_PROCESS_COUNT}, got ${show(entry.quantity)}`,
          app,
        );
      if (
        entry.size !== undefined &&
        (typeof entry.size !== 'string' || !Object.hasOwn(this.#o.sizes, entry.size))
      )
        throw invalid(
          `formation.${type}.size`,
          `${show(entry.size)} is not a size: use ${Object.keys(this.#o.sizes).join(', ')}`,
          app,
        );
      changes[type] = entry;
    }
    const lock = await this.#locks.acquire(app, 'scale', {
      onBusy: options.onBusy ?? 'wait',
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    try {
      const current = await this.#repo.requireApp(app, options);
      const next: Record<string, FormationSetting> = {};
      let resized = false;
      for (const [type, entry] of Object.entries(changes)) {
        const was = current.formation[type] ?? {
          quantity: type === 'web' && current.live === undefined ? 1 : 0,
          size: this.#o.defaultSize,
        };
        next[type] = { quantity: entry.quantity ?? was.quantity, size: entry.size ?? was.size };
        if (current.live !== undefined && next[type].size !== was.size) resized = true;
      }
      if (resized && current.live !== undefined) {
        await this.#deployer.deploy(app, releaseNumber(current.live.release), 'scale', {
          ...options,
          locked: true,
          formation: next,
        });
      } else {
        await this.#repo.updateApp(app, (a) => ({
          next: { ...a, formation: { ...a.formation, ...next } },
        }));
        if (current.live !== undefined) await this.#applyCounts(app, current.live.deployment, next);
      }
      this.#emit('scale', { app, processes: next });
    } finally {
      await lock.release().catch(() => undefined);
    }
    return this.getFormation(app, options);
  }

  /** Writes new counts into the live cluster formation: the scheduler starts or stops jobs. */
  async #applyCounts(
    app: string,
    clusterRelease: string,
    next: Readonly<Record<string, FormationSetting>>,
  ): Promise<void> {
    const existing = (await this.#cluster.formations({ app })).find(
      (f) => f.release === clusterRelease,
    );
    const processes: Record<string, { count: number; resources: Resources }> = {};
    for (const [type, spec] of Object.entries(existing?.processes ?? {}))
      processes[type] = { count: spec.count, resources: spec.resources };
    for (const [type, f] of Object.entries(next))
      processes[type] = {
        count: f.quantity,
        resources: processes[type]?.resources ?? this.#deployer.resources(f.size),
      };
    await this.#cluster.setFormation({ app, release: clusterRelease, processes });
  }

  /** The app's jobs with their state, host and release. */
  async listDynos(app: string, options: CallOptions = {}): Promise<Dyno[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    const jobs = await this.#cluster.jobs({ ...options, app });
    return jobs
      .map((j) => {
        const r = j.record;
        return compact<Dyno>({
          id: r.id,
          name: `${r.type}.${r.index}`,
          type: r.type,
          index: r.index,
          release: /^(v[0-9]+)/.exec(r.release)?.[1] ?? r.release,
          deployment: r.release,
          host: r.hostId,
          state: j.state,
          port: j.status?.port,
          startedAt: j.status?.startedAt,
          exitStatus: j.status?.exitStatus,
          message: j.status?.message,
          createdAt: r.createdAt,
        });
      })
      .sort((a, b) => (a.type === b.type ? a.index - b.index : a.type < b.type ? -1 : 1));
  }

  /** A rolling restart of every job of the app (`ps:restart`), by the deploy path. */
  async restart(app: string, options: DeployOptions = {}): Promise<Deployment> {
    this.#open();
    checkAppName(app);
    const record = await this.#repo.requireApp(app, options);
    if (record.live === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `app ${app} has nothing deployed to restart`,
        { app },
      );
    return this.#deployer.deploy(app, releaseNumber(record.live.release), 'restart', options);
  }

  /**
   * Runs a one-off command in a release's environment (`run`), with the configured
   * {@link OneOffRunner}: its output streams back, `exit` gives its status.
   */
  async run(app: string, options: RunOptions): Promise<OneOffHandle> {
    this.#open();
    checkAppName(app);
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
    const size = options.size ?? this.#o.defaultSize;
    if (!Object.hasOwn(this.#o.sizes, size))
      throw invalid(
        'size',
        `${show(size)} is not a size: use ${Object.keys(this.#o.sizes).join(', ')}`,
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
    const runner = this.#o.runner;
    if (runner === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NOT_CONFIGURED,
        'the controller has no one-off runner: configure one (DriverOneOffRunner)',
        { app },
      );
    const record = await this.#repo.requireApp(app, options);
    let release: Release | undefined;
    if (options.release !== undefined) {
      const n = releaseNumber(options.release);
      release = await this.#repo.release(app, n, options);
      if (release === undefined) throw releaseNotFound(app, n);
    } else release = await this.#formationRelease(record, options);
    if (release?.build === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `app ${app} has no build to run with: push one first`,
        { app },
      );
    const build = await this.#repo.build(app, release.build, options);
    if (build?.artifact === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `build ${release.build} of ${app} has no artifact`,
        { app },
      );
    await this.#deployer.requireArtifact(build);
    const artifact = this.#deployer.clusterRecord(release, build, release.id).artifact;
    const jobId = `${app}.run.${newId('r').slice(2)}`;
    const handle = await runner.start(
      compact<OneOffSpec>({
        id: jobId,
        app,
        release: release.id,
        type: 'run',
        command,
        artifact,
        env: { ...release.config, ...(env as Record<string, string>) },
        memoryMiB: this.#deployer.resources(size).memory,
        timeoutMs: options.timeoutMs,
      }),
      options.signal === undefined ? {} : { signal: options.signal },
    );
    this.#emit('run.started', { app, jobId, command });
    const exit = handle.exit.then((e) => {
      this.#emit('run.finished', { app, jobId, code: e.code });
      return e;
    });
    return { id: handle.id, output: handle.output, exit, stop: () => handle.stop() };
  }

  // --- domains -------------------------------------------------------------------------------

  /** The app's domains. */
  async listDomains(app: string, options: CallOptions = {}): Promise<Domain[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return (await this.#repo.domains(options)).filter((d) => d.app === app);
  }

  /** Adds a custom domain: a router route to the app's `web`. `FLOTILLA_CONTROLLER_DOMAIN_EXISTS` when any app has it. */
  async addDomain(app: string, hostname: string, options: CallOptions = {}): Promise<Domain> {
    this.#open();
    checkAppName(app);
    const h = checkHostname(hostname);
    await this.#repo.requireApp(app, options);
    return this.#addDomain(app, h, 'custom', options);
  }

  async #addDomain(
    app: string,
    hostname: string,
    kind: Domain['kind'],
    options: CallOptions,
  ): Promise<Domain> {
    const h = checkHostname(hostname);
    const routes = await this.#routeTable();
    const claim: Domain = {
      hostname: h,
      app,
      kind,
      routeId: undefined,
      createdAt: this.#o.clock.now(),
    };
    if (!(await this.#repo.claimDomain(claim, options))) {
      const holder = await this.#repo.domain(h);
      throw new ControllerError(
        ControllerErrorCodes.DOMAIN_EXISTS,
        `${h} is a domain of ${holder?.app ?? 'another app'}: remove it there first`,
        { app },
      );
    }
    try {
      const res = await routes.set({ type: 'http', domain: h, service: serviceName(app, 'web') });
      const domain: Domain = { ...claim, routeId: typeof res === 'string' ? res : res.id };
      await this.#repo.putDomain(domain);
      this.#emit('domain.added', { app, hostname: h });
      return domain;
    } catch (err) {
      await this.#repo.deleteDomain(h).catch(() => undefined);
      throw err;
    }
  }

  /** Removes a domain and its route. `FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND` when the app lacks it. */
  async removeDomain(app: string, hostname: string, options: CallOptions = {}): Promise<void> {
    this.#open();
    checkAppName(app);
    const h = checkHostname(hostname);
    await this.#repo.requireApp(app, options);
    const domain = await this.#repo.domain(h, options);
    if (domain?.app !== app)
      throw new ControllerError(
        ControllerErrorCodes.DOMAIN_NOT_FOUND,
        `app ${app} has no domain ${h}`,
        { app },
      );
    if (domain.routeId !== undefined) await (await this.#routeTable()).remove(domain.routeId);
    await this.#repo.deleteDomain(h, options);
    this.#emit('domain.removed', { app, hostname: h });
  }

  #routeTable(): Promise<RouteTableLike> {
    this.#routes ??=
      this.#o.routes !== undefined
        ? Promise.resolve(this.#o.routes)
        : defaultRouteTable(this.#store);
    // A failed import is not cached: the next call tries again.
    this.#routes.catch(() => (this.#routes = undefined));
    return this.#routes;
  }

  // --- cluster -------------------------------------------------------------------------------

  /** The cluster's hosts, with their state. */
  async hosts(options: CallOptions = {}): Promise<HostView[]> {
    this.#open();
    return this.#cluster.hosts(options);
  }

  /**
   * Collects artifacts no app keeps, and the stored output of each app's finished builds but
   * the newest `max(keepReleases, 20)`. Each app keeps the slugs of its last `keepReleases` releases,
   * of its live release and of its last `keepReleases` builds; artifacts stored in the last ten
   * minutes are kept too (a build of another controller may not have recorded its own yet).
   * Resolves with the digests deleted.
   */
  async collectArtifacts(options: CallOptions = {}): Promise<string[]> {
    this.#open();
    const keep = new Set<string>();
    const n = this.#o.keepReleases;
    for (const app of await this.#repo.apps(options)) {
      const builds = await this.#repo.builds(app.name, options);
      const byId = new Map(builds.map((b) => [b.id, b]));
      const releases = await this.#repo.releases(app.name, options);
      const kept = releases.slice(-n);
      if (app.live !== undefined) {
        const live = releases.find((r) => r.id === app.live?.release);
        if (live !== undefined) kept.push(live);
      }
      for (const r of kept) {
        const a = r.build === undefined ? undefined : byId.get(r.build)?.artifact;
        if (a?.type === 'slug') keep.add(a.sha256);
      }
      const byAge = [...builds].sort((x, y) => x.createdAt - y.createdAt);
      for (const b of byAge.slice(-n)) if (b.artifact?.type === 'slug') keep.add(b.artifact.sha256);
      // The stored output of finished builds older than the newest ones goes too.
      for (const b of byAge.slice(0, Math.max(0, byAge.length - Math.max(n, KEEP_BUILD_OUTPUTS))))
        if (b.status === 'succeeded' || b.status === 'failed')
          await this.#pruneOutput(app.name, b.id, options);
    }
    const deleted: string[] = [];
    const fresh = this.#o.clock.now() - 10 * 60_000;
    for (const a of await this.#o.artifacts.list()) {
      if (keep.has(a.digest) || a.createdAt > fresh) continue;
      if (await this.#o.artifacts.delete(a.digest)) deleted.push(a.digest);
    }
    return deleted;
  }

  /** Replaces a build's stored output with one ended line saying it was pruned (once). */
  async #pruneOutput(app: string, build: string, options: CallOptions): Promise<void> {
    const first = this.#keys.output(app, build, 0);
    const kvs = await this.#repo.listAll(this.#keys.outputOf(app, build), options);
    if (kvs.length === 1 && kvs[0]?.value.includes('"pruned":true')) return;
    const line = {
      seq: 0,
      time: this.#o.clock.now(),
      line: '(output pruned: only the newest builds keep theirs)',
    };
    // The first chunk becomes the whole output (ended), then the others go: a follower sees
    // an ended output at every step.
    await this.#store.put(
      first,
      JSON.stringify({ lines: [line], end: true, pruned: true }),
      options,
    );
    for (const kv of kvs) if (kv.key !== first) await this.#store.delete(kv.key, options);
  }

  // --- events --------------------------------------------------------------------------------

  /** The controller's events as an `AsyncIterable`, from now on, until `signal` aborts or the controller closes. */
  events(options: EventStreamOptions = {}): AsyncIterable<ControllerEvent> {
    return eventStream(this, options, this.#closing.signal);
  }

  #emit<K extends ControllerEventType>(type: K, payload: ControllerEventMap[K]): void {
    const event = { ...payload, type, time: this.#o.clock.now() } as unknown as Extract<
      ControllerEvent,
      { type: K }
    >;
    try {
      (this.emit as (t: K, e: unknown) => boolean)(type, event);
    } catch (err) {
      this.#o.logger.error({ err, type }, 'an event listener threw');
    }
  }

  get #store(): Store {
    return this.#o.store;
  }

  #open(): void {
    if (this.#state !== 'running')
      throw this.#state === 'idle' || this.#state === 'starting'
        ? new ControllerError(
            ControllerErrorCodes.CLOSED,
            'the controller is not started: await start() first',
          )
        : closed();
  }
}

interface ResolvedOptions {
  readonly store: Store;
  readonly prefix: string;
  readonly clusterPrefix: string;
  readonly discoveryPrefix: string;
  readonly artifacts: ArtifactStore;
  readonly workDir: string;
  readonly builder: Builder | undefined;
  readonly imageBuilder: ImageBuilder | undefined;
  readonly runner: OneOffRunner | undefined;
  readonly routes: RouteTableLike | undefined;
  readonly baseDomain: string | undefined;
  readonly logs: JobLogSource | undefined;
  readonly sizes: Readonly<Record<string, Resources>>;
  readonly defaultSize: string;
  readonly deploy: RolloutSettings;
  readonly keepReleases: number;
  readonly leaseTtlMs: number;
  readonly id: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

function resolveOptions(o: ControllerOptions): ResolvedOptions {
  const bad = (path: string, message: string): never => {
    throw new ControllerError(
      ControllerErrorCodes.INVALID_INPUT,
      `Controller option ${path}: ${message}`,
      { path },
    );
  };
  if (typeof o !== 'object' || o === null) bad('options', 'give { store, artifacts, workDir }');
  if (typeof o.store?.txn !== 'function')
    bad('store', 'a Store is needed (MemoryStore, SqliteStore, EtcdStore)');
  if (typeof o.artifacts?.put !== 'function')
    bad('artifacts', 'an ArtifactStore is needed (DirectoryArtifactStore)');
  if (typeof o.workDir !== 'string' || o.workDir === '' || o.workDir.includes('\0'))
    bad('workDir', 'a directory path is needed');
  const sizes = o.sizes ?? DEFAULT_SIZES;
  for (const [name, r] of Object.entries(sizes)) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      bad(`sizes.${name.slice(0, 40)}`, 'size names are 1 to 63 of a-z 0-9 -');
    if (!isResourceAmount(r?.cpu) || !isResourceAmount(r?.memory) || r.cpu < 1 || r.memory < 1)
      bad(`sizes.${name}`, 'cpu (millicores) and memory (MiB) must be whole numbers above 0');
  }
  const defaultSize =
    o.defaultSize ?? (Object.hasOwn(sizes, DEFAULT_SIZE) ? DEFAULT_SIZE : Object.keys(sizes)[0]);
  if (defaultSize === undefined || !Object.hasOwn(sizes, defaultSize))
    bad('defaultSize', 'must name one of the sizes');
  const baseDomain =
    o.baseDomain === undefined ? undefined : checkHostname(o.baseDomain, 'baseDomain');
  const id = o.id ?? `controller-${randomBytes(6).toString('hex')}`;
  if (!isValidId(id)) bad('id', 'use 1 to 200 of A-Z a-z 0-9 . _ - @ : +');
  const num = (
    v: number | undefined,
    def: number,
    path: string,
    min: number,
    max: number,
  ): number => {
    if (v === undefined) return def;
    if (!Number.isSafeInteger(v) || v < min || v > max)
      bad(path, `must be a whole number from ${min} to ${max}`);
    return v;
  };
  const d = o.deploy ?? {};
  return {
    store: o.store,
    prefix: o.prefix ?? 'controller/',
    clusterPrefix: o.clusterPrefix ?? 'cluster/',
    discoveryPrefix: o.discoveryPrefix ?? 'discovery/',
    artifacts: o.artifacts,
    workDir: resolve(o.workDir),
    builder: o.builder,
    imageBuilder: o.imageBuilder,
    runner: o.runner,
    routes: o.routes,
    baseDomain,
    logs: o.logs,
    sizes,
    defaultSize: defaultSize as string,
    deploy: {
      batchSize: num(d.batchSize, 1, 'deploy.batchSize', 1, 100_000),
      surge: num(d.surge, 1, 'deploy.surge', 0, 100_000),
      readyTimeoutMs: num(d.readyTimeoutMs, 60_000, 'deploy.readyTimeoutMs', 1, 86_400_000),
      stopTimeoutMs: num(d.stopTimeoutMs, 120_000, 'deploy.stopTimeoutMs', 1, 86_400_000),
    },
    keepReleases: num(o.keepReleases, 5, 'keepReleases', 1, 10_000),
    leaseTtlMs: num(o.leaseTtlMs, 10_000, 'leaseTtlMs', 1000, 3_600_000),
    id,
    clock: o.clock ?? systemClock,
    logger: o.logger ?? silentLogger,
  };
}

/** Builds per app whose output is kept at least. */
const KEEP_BUILD_OUTPUTS = 20;

function toApp(r: AppRecord): App {
  return {
    name: r.name,
    createdAt: r.createdAt,
    meta: r.meta,
    latestRelease: r.seq,
    liveRelease: r.live?.release,
  };
}

function closed(): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.CLOSED,
    'the controller is closed: create a new one',
  );
}

function validBuildId(id: unknown): id is string {
  return typeof id === 'string' && /^b-[0-9a-f]{12}$/.test(id);
}

function buildNotFound(app: string, id: unknown): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.BUILD_NOT_FOUND,
    `app ${app} has no build ${show(id)}: check the id (listBuilds)`,
    { app },
  );
}

function releaseNotFound(app: string, n: number): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.RELEASE_NOT_FOUND,
    `app ${app} has no release v${n}: check listReleases`,
    { app },
  );
}

async function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function defaultRouteTable(store: Store): Promise<RouteTableLike> {
  const specifier = '@flotilla/router';
  let mod: { RouteTable?: unknown };
  try {
    mod = (await import(specifier)) as { RouteTable?: unknown };
  } catch (err) {
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      `@flotilla/router could not be loaded (${(err as Error).message}): pass routes`,
      { cause: err },
    );
  }
  if (typeof mod.RouteTable !== 'function')
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      '@flotilla/router has no RouteTable in this version: pass routes',
    );
  const RouteTable = mod.RouteTable as new (store: Store) => RouteTableLike;
  return new RouteTable(store);
}
