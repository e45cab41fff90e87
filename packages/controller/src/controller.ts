import { EventEmitter } from 'eventemitter3';
import type { Clock, Logger } from '@flotilla/core';
import type { HostView, Resources } from '@flotilla/cluster';
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
import type { ControllerEvent, ControllerEvents, EventStreamOptions } from './events.js';
import type { FormationEntry, FormationPatchEntry } from './formation.js';
import type { Hooks } from './hooks.js';
import type { JobLogSource } from './job-logs.js';
import type { OneOffHandle, OneOffRunner, RunOptions } from './one-off.js';
import type { Release, ReleaseOptions } from './release.js';
import type { RouteTableLike } from './route-table.js';

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
  readonly #options: ControllerOptions;
  #state: ControllerState = 'idle';

  constructor(options: ControllerOptions) {
    super();
    this.#options = options;
    void this.#options;
    this.id = options.id ?? 'controller';
    this.hooks = { add: () => () => undefined };
  }

  /** Where it is in its life. */
  get state(): ControllerState {
    return this.#state;
  }

  /**
   * Starts: takes its liveness lease, fails the builds and deploys of controllers that died
   * (their lease is gone, now or later), and watches jobs for `job.state` events. Idempotent.
   */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    void options;
    throw notImplemented('start');
  }

  /** Stops: cancels its builds (marked failed), ends its watches and event streams, revokes its lease. Jobs keep running. Idempotent. */
  async close(): Promise<void> {
    this.#state = 'stopped';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- apps ----------------------------------------------------------------------------------

  /** Creates an app (with `<name>.<baseDomain>` when configured). `FLOTILLA_CONTROLLER_APP_EXISTS` when taken. */
  async createApp(
    input: CreateAppInput = {},
    options: { signal?: AbortSignal } = {},
  ): Promise<App> {
    void input;
    void options;
    throw notImplemented('createApp');
  }

  /** An app; `FLOTILLA_CONTROLLER_APP_NOT_FOUND` when there is none. */
  async getApp(name: string, options: { signal?: AbortSignal } = {}): Promise<App> {
    void name;
    void options;
    throw notImplemented('getApp');
  }

  /** Every app, by name. */
  async listApps(options: { signal?: AbortSignal } = {}): Promise<App[]> {
    void options;
    throw notImplemented('listApps');
  }

  /**
   * Destroys an app: stops its jobs (waiting until they are gone), removes its formations,
   * routes, releases, builds, config and the artifacts no other app uses.
   */
  async destroyApp(name: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    void name;
    void options;
    throw notImplemented('destroyApp');
  }

  // --- config --------------------------------------------------------------------------------

  /** The app's config vars (those of its newest release). */
  async getConfig(
    app: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, string>> {
    void app;
    void options;
    throw notImplemented('getConfig');
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
    void app;
    void patch;
    void options;
    throw notImplemented('patchConfig');
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
    void app;
    void source;
    void options;
    throw notImplemented('createBuild');
  }

  /** A build; `FLOTILLA_CONTROLLER_BUILD_NOT_FOUND` when there is none. */
  async getBuild(app: string, id: string, options: { signal?: AbortSignal } = {}): Promise<Build> {
    void app;
    void id;
    void options;
    throw notImplemented('getBuild');
  }

  /** The app's builds, oldest first. */
  async listBuilds(app: string, options: { signal?: AbortSignal } = {}): Promise<Build[]> {
    void app;
    void options;
    throw notImplemented('listBuilds');
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
    void app;
    void id;
    void options;
    throw notImplemented('buildOutput');
  }

  /**
   * Resolves with the build once it ended, and its release and deploy (when asked for) are
   * done: `status` tells success. Never rejects for the build's own failure.
   */
  async waitForBuild(
    app: string,
    id: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Build> {
    void app;
    void id;
    void options;
    throw notImplemented('waitForBuild');
  }

  // --- releases and deploys ------------------------------------------------------------------

  /** The app's releases, newest first. */
  async listReleases(app: string, options: { signal?: AbortSignal } = {}): Promise<Release[]> {
    void app;
    void options;
    throw notImplemented('listReleases');
  }

  /** A release by id (`v3`) or number; `FLOTILLA_CONTROLLER_RELEASE_NOT_FOUND` when there is none. */
  async getRelease(
    app: string,
    release: string | number,
    options: { signal?: AbortSignal } = {},
  ): Promise<Release> {
    void app;
    void release;
    void options;
    throw notImplemented('getRelease');
  }

  /**
   * Rolls back: a new release `vN+1` from `to`'s build and config (default: the release before
   * the live one), deployed. Resolves with it once live.
   */
  async rollback(
    app: string,
    to?: string | number,
    options: ReleaseOptions & DeployOptions = {},
  ): Promise<Release> {
    void app;
    void to;
    void options;
    throw notImplemented('rollback');
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
    void app;
    void release;
    void options;
    throw notImplemented('deploy');
  }

  /** The app's deployments, newest first. */
  async listDeployments(
    app: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Deployment[]> {
    void app;
    void options;
    throw notImplemented('listDeployments');
  }

  // --- formation and dynos -------------------------------------------------------------------

  /** Quantity and size of each process type of the app. */
  async getFormation(
    app: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<FormationEntry[]> {
    void app;
    void options;
    throw notImplemented('getFormation');
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
    void app;
    void patch;
    void options;
    throw notImplemented('patchFormation');
  }

  /** The app's jobs with their state, host and release. */
  async listDynos(app: string, options: { signal?: AbortSignal } = {}): Promise<Dyno[]> {
    void app;
    void options;
    throw notImplemented('listDynos');
  }

  /** A rolling restart of every job of the app (`ps:restart`), by the deploy path. */
  async restart(app: string, options: DeployOptions = {}): Promise<Deployment> {
    void app;
    void options;
    throw notImplemented('restart');
  }

  /**
   * Runs a one-off command in a release's environment (`run`), with the configured
   * {@link OneOffRunner}: its output streams back, `exit` gives its status.
   */
  async run(app: string, options: RunOptions): Promise<OneOffHandle> {
    void app;
    void options;
    throw notImplemented('run');
  }

  // --- domains -------------------------------------------------------------------------------

  /** The app's domains. */
  async listDomains(app: string, options: { signal?: AbortSignal } = {}): Promise<Domain[]> {
    void app;
    void options;
    throw notImplemented('listDomains');
  }

  /** Adds a custom domain: a router route to the app's `web`. `FLOTILLA_CONTROLLER_DOMAIN_EXISTS` when any app has it. */
  async addDomain(
    app: string,
    hostname: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Domain> {
    void app;
    void hostname;
    void options;
    throw notImplemented('addDomain');
  }

  /** Removes a domain and its route. `FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND` when the app lacks it. */
  async removeDomain(
    app: string,
    hostname: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    void app;
    void hostname;
    void options;
    throw notImplemented('removeDomain');
  }

  // --- cluster -------------------------------------------------------------------------------

  /** The cluster's hosts, with their state. */
  async hosts(options: { signal?: AbortSignal } = {}): Promise<HostView[]> {
    void options;
    throw notImplemented('hosts');
  }

  /**
   * Collects artifacts no release keeps: each app keeps those of its last `keepReleases`
   * releases and of its live release. Resolves with the digests deleted.
   */
  async collectArtifacts(options: { signal?: AbortSignal } = {}): Promise<string[]> {
    void options;
    throw notImplemented('collectArtifacts');
  }

  // --- events --------------------------------------------------------------------------------

  /** The controller's events as an `AsyncIterable`, from now on, until `signal` aborts or the controller closes. */
  events(options: EventStreamOptions = {}): AsyncIterable<ControllerEvent> {
    void options;
    throw notImplemented('events');
  }
}

function notImplemented(what: string): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.NOT_CONFIGURED,
    `Controller.${what} is not implemented yet`,
  );
}
