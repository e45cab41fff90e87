import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { EventEmitter } from 'eventemitter3';
import type { Clock, Logger } from '@flotilla/core';
import { ClusterState, type HostView, type Resources } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
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
import type { Builder, DockerImageBuild, ImageBuilder } from './builder.js';
import type { DeployOutcome } from './deploy-outcome.js';
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
import type { FormationEntry, FormationPatchEntry } from './formation.js';
import type { Hooks } from './hooks.js';
import type { JobLogSource } from './job-logs.js';
import type { OneOffHandle, OneOffRunner, RunInfo, RunOptions } from './one-off.js';
import type { Release, ReleaseOptions } from './release.js';
import type { RouteTableLike } from './route-table.js';
import { readOutput } from './internal/build-output.js';
import { compact } from './internal/check.js';
import { BuildService } from './internal/builds.js';
import { collectArtifacts } from './internal/collector.js';
import { destroyApp } from './internal/destroy.js';
import { DomainService } from './internal/domains.js';
import { FormationService } from './internal/formations.js';
import { RunTracker, startRun } from './internal/runs.js';
import { resolveOptions, type ResolvedOptions } from './internal/options.js';
import type { ControllerParts } from './internal/parts.js';
import { Deployer } from './internal/deployer.js';
import { eventStream } from './internal/event-stream.js';
import { HookRegistry } from './internal/hook-registry.js';
import { JobMirror } from './internal/job-mirror.js';
import { ControllerKeys } from './internal/keys.js';
import { Liveness } from './internal/liveness.js';
import { AppLocks } from './internal/lock.js';
import {
  appRelease,
  checkAppName,
  checkConfigPatch,
  checkHostname,
  checkMeta,
  invalid,
  MAX_CONFIG_BYTES,
  MAX_CONFIG_VARS,
  randomAppName,
  releaseNumber,
  show,
} from './internal/names.js';
import { Reaper } from './internal/reaper.js';
import type { AppRecord } from './internal/records.js';
import { Repo, type ReleaseDraft } from './internal/repo.js';
import { RetryingStore } from './internal/retrying-store.js';
import { releaseSummary } from './internal/summary.js';
import { deployOutcome } from './internal/outcome.js';

/** The longest name a new app may have (Heroku's): `<app>-<type>` is one DNS label. */
const MAX_NEW_APP_NAME = 30;

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
  /** Builds Dockerfile apps into images. Default: the one over {@link ControllerOptions.docker}, when given; without either, Dockerfile apps build with buildpacks. */
  readonly imageBuilder?: ImageBuilder;
  /**
   * `buildImage` of `@flotilla/docker` and its Docker client: the controller builds Dockerfile
   * apps with them, output streamed line by line (no adapter needed). Ignored when
   * `imageBuilder` is given.
   */
  readonly docker?: DockerImageBuild;
  /**
   * How long a build waits while another build (another controller or process on the same
   * `workDir`) holds the app's build cache, ms (default 900,000). The wait is said in the
   * build's output; past it the build fails with `FLOTILLA_BUILDPACK_CACHE_LOCKED`.
   */
  readonly cacheLockTimeoutMs?: number;
  /**
   * How long one hook may take, ms (default 300,000). Its signal aborts then, and a hook that
   * has not answered vetoes its step (`FLOTILLA_CONTROLLER_VETOED`, saying it timed out): a
   * plugin that hangs fails a build or deploy, and never holds it forever.
   */
  readonly hookTimeoutMs?: number;
  /** Runs one-off jobs and the release phase. Without it, `run` and a `release` process type fail with `FLOTILLA_CONTROLLER_NOT_CONFIGURED`. */
  readonly runner?: OneOffRunner;
  /** Router routes for domains. Default: `new RouteTable(store)` of `@flotilla/router`. */
  readonly routes?: RouteTableLike;
  /**
   * Every app gets the domain `<app>.<baseDomain>` (kind `default`) when set: `apps.example.com`,
   * or a single label such as `localhost` (apps then answer at `<app>.localhost`).
   */
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
  /** The cluster state over the retrying store, for background work. */
  readonly #steadyCluster: ClusterState;
  readonly #discovery: Discovery;
  readonly #liveness: Liveness;
  readonly #locks: AppLocks;
  readonly #mirror: JobMirror;
  readonly #reaper: Reaper;
  readonly #hooks: HookRegistry;
  readonly #deployer: Deployer;
  readonly #closing = new AbortController();
  readonly #parts: ControllerParts;
  /** The one-offs this controller runs (`run` and release phases): listed, stopped by an app's destroy and by close. */
  readonly #runs: RunTracker;
  readonly #buildService: BuildService;
  readonly #domains: DomainService;
  readonly #formations: FormationService;
  #state: ControllerState = 'idle';
  #starting: Promise<void> | undefined;
  #closingPromise: Promise<void> | undefined;
  #gc: Promise<unknown> = Promise.resolve();

  constructor(options: ControllerOptions) {
    super();
    // Every event stream and watch open listens on this signal until it ends: any number may be.
    setMaxListeners(0, this.#closing.signal);
    this.#o = resolveOptions(options);
    this.id = this.#o.id;
    this.#hooks = new HookRegistry(this.#o.hookTimeoutMs);
    this.hooks = this.#hooks;
    const { store, clock, logger } = this.#o;
    const report = (err: unknown): void => {
      logger.warn({ err }, 'controller background failure');
      if (this.listenerCount('error') > 0)
        this.emit('error', err instanceof Error ? err : new Error(String(err)));
    };
    this.#keys = new ControllerKeys(this.#o.prefix);
    this.#repo = new Repo(store, this.#keys, clock, report);
    this.#cluster = new ClusterState({ store, prefix: this.#o.clusterPrefix, clock, logger });
    // Background work (builds, deploys, the reaper, locks) rides out short store outages;
    // calls that only read answer at once, with the store's error.
    const steady = new RetryingStore(store, clock, logger);
    const steadyRepo = new Repo(steady, this.#keys, clock, report);
    this.#steadyCluster = new ClusterState({
      store: steady,
      prefix: this.#o.clusterPrefix,
      clock,
      logger,
    });
    this.#discovery = new Discovery({ store, prefix: this.#o.discoveryPrefix, clock, logger });
    this.#liveness = new Liveness(this.id, store, this.#keys, this.#o.leaseTtlMs, clock, logger);
    this.#locks = new AppLocks(steady, this.#keys, this.#liveness, clock);
    this.#mirror = new JobMirror(store, this.#cluster.keys, clock, logger, report);
    // Only runs started here: they are this process's jobs (one controller per server in the
    // reference PaaS), not recorded in the store.
    this.#runs = new RunTracker(this.#o.runner, clock, this.#o.defaultSize, closed);
    this.#reaper = new Reaper(
      steady,
      this.#keys,
      steadyRepo,
      this.id,
      clock,
      logger,
      report,
      (build) => this.#emit('build.finished', { app: build.app, build }),
      (deployment) => this.#emit('deploy.finished', { app: deployment.app, deployment }),
      (app) => this.#deployer.restoreLive(app),
    );
    this.#deployer = new Deployer({
      id: this.id,
      repo: steadyRepo,
      cluster: this.#steadyCluster,
      discovery: this.#discovery,
      mirror: this.#mirror,
      locks: this.#locks,
      artifacts: this.#o.artifacts,
      // Release phases start through the tracker too: listed while they run, stopped by close.
      runner: this.#o.runner === undefined ? undefined : this.#runs,
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
    this.#parts = {
      id: this.id,
      o: this.#o,
      store: steady,
      keys: this.#keys,
      repo: steadyRepo,
      cluster: this.#steadyCluster,
      mirror: this.#mirror,
      locks: this.#locks,
      hooks: this.#hooks,
      deployer: this.#deployer,
      emit: (type, payload) => this.#emit(type, payload),
    };
    this.#buildService = new BuildService(this.#parts);
    this.#domains = new DomainService(this.#parts);
    this.#formations = new FormationService(this.#parts);
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
          index: r.index,
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

  /**
   * Stops: stops the one-offs it runs (`run` and release phases: SIGTERM, then SIGKILL after
   * the runner's grace) and waits until they ended, cancels its builds (marked failed), ends its
   * watches and event streams, revokes its lease. Formation jobs keep running. Idempotent.
   */
  async close(): Promise<void> {
    this.#closingPromise ??= (async () => {
      const was = this.#state;
      this.#state = 'stopping';
      this.#closing.abort(closed());
      // First: a one-off runs with its app's config (its secrets) and nothing else stops it.
      await this.#runs.close();
      await this.#starting?.catch(() => undefined);
      await this.#buildService.close(closed());
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
    await this.#steadyCluster.close().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- apps ----------------------------------------------------------------------------------

  /**
   * Creates an app (with `<name>.<baseDomain>` when configured). `FLOTILLA_CONTROLLER_APP_EXISTS`
   * when taken; `FLOTILLA_CONTROLLER_INVALID_INPUT` for a name that is no DNS label or is over 30
   * characters (each process type is a service `<app>-<type>`, one DNS label).
   */
  async createApp(input: CreateAppInput = {}, options: CallOptions = {}): Promise<App> {
    this.#open();
    if (typeof input !== 'object' || input === null)
      throw invalid('input', 'createApp takes { name?, meta? }');
    const meta = checkMeta(input.meta);
    const given = input.name !== undefined;
    const name = given ? checkAppName(input.name) : randomAppName();
    // Each process type is a service `<app>-<type>`, one DNS label (63 at most), in discovery
    // and the route table: a new app leaves room for a type of 32.
    if (name.length > MAX_NEW_APP_NAME)
      throw invalid(
        'name',
        `an app name is at most ${MAX_NEW_APP_NAME} characters (${name.length} given): its services <app>-<process type> must stay one DNS label`,
      );
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
            await this.#domains.add(
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
   * Destroys an app: cancels its builds, stops its jobs (waiting until they are gone), removes its
   * formations, routes, releases, builds and config, and what only it owns: the slugs no other
   * app's build names, the images of its Dockerfile builds (with an image builder that can
   * remove them, see {@link ImageRemover}) and its build cache. Those deletions are best effort:
   * one that fails is logged and left behind (a slug is then collected by
   * {@link Controller.collectArtifacts}), never a reason to leave the app half-destroyed. The
   * app's record goes last, so its name is free only once nothing of the old app is deleted any
   * more. A destroy cut short (a crash) is finished by calling it again.
   */
  async destroyApp(name: string, options: CallOptions = {}): Promise<void> {
    this.#open();
    checkAppName(name);
    // Its one-offs first: they run with its config (its secrets), and nothing else stops them.
    // None starts from here to the end (the destroy may wait for a deploy's lock meanwhile).
    const allow = this.#runs.refuse(name);
    try {
      await this.#runs.stopApp(name);
      await destroyApp(this.#parts, name, options, this.#buildService, this.#domains);
    } finally {
      allow();
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
    this.#emit('release.created', { app, release: releaseSummary(release) });
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
    return this.#buildService.create(app, source, options);
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
    return this.#repo.builds(app, options);
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
   * done. Its `status` is the build's alone: a build whose deploy failed `succeeded`; to know
   * whether it went live, use {@link waitForDeploy}. Never rejects for the build's own failure.
   */
  async waitForBuild(app: string, id: string, options: CallOptions = {}): Promise<Build> {
    for await (const line of this.buildOutput(app, id, { ...options, follow: true })) void line;
    options.signal?.throwIfAborted();
    return this.getBuild(app, id, options);
  }

  /**
   * Waits as {@link waitForBuild}, then answers in one call whether the build went live, and if
   * not, why: the build failed, its deploy failed (the release before it still serves), or no
   * deploy was asked for. Never rejects for the build's or the deploy's own failure.
   *
   * @example
   * ```ts
   * const outcome = await controller.waitForDeploy('demo', build.id);
   * if (outcome.status !== 'live') console.error(`push rejected: ${outcome.reason}`);
   * ```
   */
  async waitForDeploy(app: string, id: string, options: CallOptions = {}): Promise<DeployOutcome> {
    const build = await this.waitForBuild(app, id, options);
    const deployment =
      build.deployment === undefined
        ? undefined
        : await this.#repo.deployment(app, build.deployment, options);
    const record = await this.#repo.app(app, options);
    return deployOutcome(build, deployment, record?.record.live?.release);
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
    this.#emit('release.created', { app, release: releaseSummary(release) });
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
    return (await this.#repo.deployments(app, options)).reverse();
  }

  // --- formation and dynos -------------------------------------------------------------------

  /** Quantity and size of each process type of the app. */
  async getFormation(app: string, options: CallOptions = {}): Promise<FormationEntry[]> {
    this.#open();
    checkAppName(app);
    return this.#formations.get(app, options);
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
    return this.#formations.patch(app, patch, options);
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
          release: appRelease(r.release),
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
    return startRun(this.#parts, this.#runs, this.#formations, app, options);
  }

  /**
   * The app's one-offs this controller runs, oldest first: its `run`s, and the release phase of
   * a deploy while its release command runs. Only those started through this instance (it
   * holds them in memory, the store does not record them): with several controllers over one
   * store, each lists its own (the reference PaaS has one per server). One leaves the list
   * once it ended and was cleaned up. `FLOTILLA_CONTROLLER_APP_NOT_FOUND` for an unknown app.
   *
   * @example
   * ```ts
   * for (const r of await controller.listRuns('demo')) console.log(r.id, r.type, r.command);
   * ```
   */
  async listRuns(app: string, options: CallOptions = {}): Promise<RunInfo[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return this.#runs.list(app);
  }

  /**
   * Stops one of the app's one-offs this controller runs (`ps:stop run.4821`): SIGTERM, then
   * SIGKILL after the runner's grace; resolves once it ended. `id` is its job id, as
   * {@link listRuns} gives it. False when this controller runs no one-off of that id for the app
   * (it ended, or another controller runs it); `FLOTILLA_CONTROLLER_APP_NOT_FOUND` for an unknown app.
   */
  async stopRun(app: string, id: string, options: CallOptions = {}): Promise<boolean> {
    this.#open();
    checkAppName(app);
    if (typeof id !== 'string' || id === '' || id.length > 256)
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `${show(id)} is not a job id: use one listRuns gives (demo.run.1a2b3c4d5e6f)`,
        { app, path: 'id' },
      );
    await this.#repo.requireApp(app, options);
    return this.#runs.stop(app, id);
  }

  // --- domains -------------------------------------------------------------------------------

  /** The app's domains. */
  async listDomains(app: string, options: CallOptions = {}): Promise<Domain[]> {
    this.#open();
    checkAppName(app);
    await this.#repo.requireApp(app, options);
    return this.#domains.list(app, options);
  }

  /**
   * Adds a custom domain: a router route to the app's `web`. `FLOTILLA_CONTROLLER_DOMAIN_EXISTS`
   * when any app has it; `FLOTILLA_CONTROLLER_INVALID_INPUT` for a name under the base domain
   * (`<app>.<baseDomain>` belongs to the app of that name, even one not created yet).
   */
  async addDomain(app: string, hostname: string, options: CallOptions = {}): Promise<Domain> {
    this.#open();
    checkAppName(app);
    const h = checkHostname(hostname);
    const base = this.#o.baseDomain;
    if (base !== undefined && (h === base || h.endsWith(`.${base}`)))
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `${h} is under the base domain ${base}, where apps get their default domains (<app>.${base}): add a domain of your own`,
        { app, path: 'hostname' },
      );
    await this.#repo.requireApp(app, options);
    return this.#domains.add(app, h, 'custom', options);
  }

  /** Removes a domain and its route. `FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND` when the app lacks it. */
  async removeDomain(app: string, hostname: string, options: CallOptions = {}): Promise<void> {
    this.#open();
    checkAppName(app);
    const h = checkHostname(hostname);
    await this.#repo.requireApp(app, options);
    await this.#domains.remove(app, h, options);
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
   * With an image builder that can list and remove images ({@link ImageRemover}, e.g.
   * `docker: { buildImage, removeImage, listImageTags, client }`), the images of Dockerfile
   * builds (`flotilla/<app>:<build id>`) are collected by the same rule, those of builds still
   * running kept, and those of apps gone removed; no other image is touched. Resolves with the
   * slug digests deleted.
   */
  async collectArtifacts(options: CallOptions = {}): Promise<string[]> {
    this.#open();
    return collectArtifacts(this.#parts, options);
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
    `app ${app} has no build ${show(id)}: check the id against the list of its builds`,
    { app },
  );
}

function releaseNotFound(app: string, n: number): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.RELEASE_NOT_FOUND,
    `app ${app} has no release v${n}: check the number against the list of its releases`,
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
