import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isFlotillaError, type Logger } from '@flotilla/core';
import { ClusterState } from '@flotilla/cluster';
import { Controller, DirectoryArtifactStore, DriverOneOffRunner } from '@flotilla/controller';
import { Discovery } from '@flotilla/discovery';
import { buildImage, listImageTags, removeImage } from '@flotilla/docker';
import { Router, waitForDrained } from '@flotilla/router';
import { EtcdStore } from '@flotilla/etcd';
import { ArtifactCache, HostAgent, ProcessDriver, type Driver } from '@flotilla/host';
import { Scheduler } from '@flotilla/scheduler';
import { SqliteStore } from '@flotilla/sqlite';
import type { Store } from '@flotilla/store';
import { PaasError, PaasErrorCodes } from '../errors.js';
import { apiRoutes } from './api/routes.js';
import { ArtifactMirror } from './artifacts/artifact-mirror.js';
import { failoverFetch } from './artifacts/failover-fetch.js';
import { sweepDeadBuildSteps } from './build-sweep.js';
import { jobLogRoutes } from './api/job-logs.js';
import { type ServerConfig, urlHost } from './config.js';
import { gitHandler } from './git/git-handler.js';
import { GitRepos } from './git/repos.js';
import { ApiServer } from './http/api-server.js';
import { Routes } from './http/routes.js';
import { LogAggregator } from './logs/log-aggregator.js';
import { loadOrCreateToken } from './token.js';
import { dockerClient, dockerDriver } from './docker.js';

/** A component to close at shutdown. */
interface Closer {
  readonly name: string;
  readonly close: () => Promise<unknown>;
}

/** What a running server tells its operator. */
export interface ServerInfo {
  /** The API's URL (`http://127.0.0.1:7700`), when this process serves the API. */
  readonly apiUrl: string | undefined;
  /** The router's URL (`http://localhost:8080`), when this process runs a router. */
  readonly routerUrl: string | undefined;
  /** Where the token is kept, or `undefined` when it was given by flag or variable. */
  readonly tokenPath: string | undefined;
  /** The data directory, absolute. */
  readonly dataDir: string;
  /** The store, as a URL (`sqlite:/path`, `etcd://host:port/prefix`). */
  readonly store: string;
  /** This process's host id, when it runs a host agent. */
  readonly hostId: string | undefined;
}

/**
 * The `flotilla` server: the store, the scheduler, a host agent, the router, the controller
 * and its API, each according to `config.roles`. Components start in dependency order and
 * close in reverse; a failure while starting closes what had started.
 */
export class FlotillaServer implements AsyncDisposable {
  /** Where it serves and keeps its state. */
  readonly info: ServerInfo;
  readonly #closers: Closer[];
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  private constructor(info: ServerInfo, closers: Closer[], logger: Logger) {
    this.info = info;
    this.#closers = closers;
    this.#logger = logger;
  }

  /**
   * Starts every component of `config.roles`. `progress` hears about long steps (building the
   * stack image) while they run.
   */
  static async start(
    config: ServerConfig,
    logger: Logger,
    progress: (line: string) => void = () => undefined,
  ): Promise<FlotillaServer> {
    const closers: Closer[] = [];
    const server = new FlotillaServer(
      {
        apiUrl: undefined,
        routerUrl: undefined,
        tokenPath: undefined,
        dataDir: config.dataDir,
        store: '',
        hostId: undefined,
      },
      closers,
      logger,
    );
    try {
      return await server.#start(config, progress);
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  async #start(config: ServerConfig, progress: (line: string) => void): Promise<this> {
    const logger = this.#logger;
    const closers = this.#closers;
    const dir = (name: string): string => join(config.dataDir, name);
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw new PaasError(
        PaasErrorCodes.DATA_DIR,
        `cannot create the data directory ${config.dataDir}`,
        {
          cause: err,
        },
      );
    });
    // A router alone serves apps, not the API: it needs no token.
    const needsToken = config.roles.api || config.roles.host;
    const { token, path: tokenPath } = needsToken
      ? await loadOrCreateToken(dir('token'), config.token)
      : { token: '', path: undefined };

    const store = openStore(config, logger);
    closers.push({ name: 'store', close: () => store.close() });
    const discovery = new Discovery({ store, logger: logger.child({ c: 'discovery' }) });
    closers.push({ name: 'discovery', close: () => discovery.close() });
    const cluster = new ClusterState({ store, logger: logger.child({ c: 'cluster' }) });
    closers.push({ name: 'cluster', close: () => cluster.close() });

    // The API listens first: the host agent registers its address, and the hook calls it back.
    const routes = new Routes();
    let api: ApiServer | undefined;
    let apiUrl: string | undefined;
    if (config.roles.api || config.roles.host) {
      api = new ApiServer({ token, routes, logger: logger.child({ c: 'api' }) });
      const addr = await api.listen(config.apiPort, config.apiHost);
      // Registered for the host agent and its jobs, and given to other servers: the address
      // other machines dial (--advertise-host), or the one listened on.
      apiUrl = `http://${urlHost(config.advertiseHost ?? addr.address)}:${addr.port}`;
      const a = api;
      closers.push({ name: 'api', close: () => a.close() });
    }
    const apiBase = (): string => apiUrl ?? '';

    const single = config.store.kind === 'sqlite';
    // In a cluster, the servers that may have a slug when the one a release names is gone: this
    // one first, then every live host's address (a `flotilla host` answers 404, the next is tried).
    const peers = async (signal: AbortSignal | undefined): Promise<string[]> => [
      ...(config.roles.api && apiUrl !== undefined ? [apiUrl] : []),
      ...(await cluster.hosts(signal === undefined ? {} : { signal }))
        .filter((h) => h.live)
        .map((h) => `http://${h.record.addr}`),
    ];
    // What a release may point this machine's drivers at. On one machine, only the server's own
    // artifact directory: a record naming file:///etc/shadow is refused before anything is read.
    // In a cluster, slugs come from the API's /artifacts/ at whatever address the server has, so
    // any http(s) URL is taken (the store's writers are trusted there).
    const hostCache = (): ArtifactCache =>
      new ArtifactCache({
        dir: dir('cache'),
        token,
        ...(single
          ? { urlPrefixes: [pathToFileURL(`${dir('artifacts')}/`).href] }
          : { fetch: failoverFetch(peers) }),
      });
    let driver: Driver | undefined;
    let hostAgent: HostAgent | undefined;
    let cache: ArtifactCache | undefined;
    if (config.roles.host) {
      cache = hostCache();
      const d =
        config.driver === 'docker'
          ? await dockerDriver(dockerClient(), config.hostId, logger, progress)
          : await ProcessDriver.create({
              stateDir: dir('jobs'),
              logger: logger.child({ c: 'driver' }),
            });
      driver = d;
      closers.push({ name: 'driver', close: () => d.close() });
      const agent = new HostAgent({
        id: config.hostId,
        store,
        driver: d,
        discovery,
        address: apiBase().slice('http://'.length),
        capacity: config.capacity,
        ports: config.jobPorts,
        artifacts: cache,
        workDir: dir('run'),
        // A stopping job gets SIGTERM once every router has stopped sending it requests and
        // finished those in flight (at most drainMs): deploys drop no request.
        drainWait: (instance, signal) =>
          waitForDrained({
            store,
            discovery,
            service: instance.service,
            instanceId: instance.id,
            signal,
          }),
        drainMs: 30_000,
        logger: logger.child({ c: 'agent' }),
      });
      agent.on('error', (err) => logger.warn({ err }, 'host agent'));
      // Logs through the agent: it keeps a crashed job's last lines once the driver forgot it.
      hostAgent = agent;
      jobLogRoutes(routes, agent);
      await agent.start();
      closers.push({
        name: 'host agent',
        close: () => agent.close(config.stopJobsOnExit ? { stopJobs: true } : {}),
      });
    }

    if (config.roles.api && driver === undefined) {
      // `flotilla run` executes on the server that got the call, also one without a host agent
      // (--no-host: a cluster's API machine): a driver of its own runs one-off jobs only. Its
      // instance id `<host>.run` is no host agent's (host ids have no dot), so it never adopts
      // an agent's containers; whatever it finds at start was left by a run of a server killed
      // meanwhile, and is stopped and removed.
      const d =
        config.driver === 'docker'
          ? await dockerDriver(
              dockerClient(),
              `${config.hostId.slice(0, 59)}.run`,
              logger,
              progress,
            )
          : await ProcessDriver.create({
              stateDir: dir('one-off-jobs'),
              logger: logger.child({ c: 'one-off-driver' }),
            });
      closers.push({ name: 'one-off driver', close: () => d.close() });
      for (const job of await d.list()) {
        // An exited job refuses the stop; the removal is what counts.
        await d.stop(job.id).catch(() => undefined);
        await d
          .remove(job.id)
          .catch((err: unknown) =>
            logger.warn({ err, job: job.id }, 'a leftover one-off job cannot be removed'),
          );
      }
      driver = d;
      cache = hostCache();
    }

    // After the agent: it sees this host at once, and closes first (no 'host lapsed' at exit).
    if (config.roles.scheduler) {
      const scheduler = new Scheduler({ store, logger: logger.child({ c: 'scheduler' }) });
      scheduler.on('crashloop', (c) =>
        logger.warn({ crashloop: c }, 'a process type keeps crashing'),
      );
      // Dynos that find no host wait for room; without this the operator saw fewer dynos than
      // asked for and nothing said why.
      scheduler.on('plan', (report) => {
        for (const u of report.unplaced)
          logger.warn(
            { app: u.app, release: u.release, type: u.type, count: u.count, reason: u.reason },
            `${u.count} ${u.type} dyno(s) of ${u.app} cannot be placed: ${u.message}`,
          );
      });
      await scheduler.start();
      closers.push({ name: 'scheduler', close: () => scheduler.close() });
    }

    let routerUrl: string | undefined;
    if (config.roles.router) {
      const router = new Router({ store, discovery, logger: logger.child({ c: 'router' }) });
      router.on('warning', (err) => logger.warn({ err }, 'router'));
      const addrs = await router.listen({
        http: { port: config.routerPort, host: config.routerHost },
      });
      closers.push({ name: 'router', close: () => router.close() });
      // Apps answer at http://<app>.localhost:<port>: *.localhost is loopback.
      routerUrl = `http://localhost:${addrs.http?.port ?? config.routerPort}`;
    }

    if (config.roles.api && api !== undefined) {
      const artifacts = new DirectoryArtifactStore({
        dir: dir('artifacts'),
        // One machine: hosts read the file itself. A cluster: hosts fetch it from the API.
        ...(single ? {} : { url: (digest: string) => `${apiBase()}/artifacts/${digest}` }),
      });
      const hostAddress = async (
        id: string,
        signal: AbortSignal | undefined,
      ): Promise<string | undefined> =>
        (await cluster.hosts(signal === undefined ? {} : { signal })).find(
          (h) => h.record.id === id,
        )?.record.addr;
      // The log aggregation and the controller need each other: the controller is set below.
      const ref: { controller?: Controller } = {};
      const ctl = (): Controller => {
        if (ref.controller === undefined)
          throw new PaasError(PaasErrorCodes.STARTING, 'the server is starting', { status: 503 });
        return ref.controller;
      };
      const logs = new LogAggregator({
        localHostId: config.roles.host ? config.hostId : undefined,
        driver: hostAgent,
        dynos: (app, signal) => ctl().listDynos(app, signal === undefined ? {} : { signal }),
        events: (app, signal) => ctl().events({ app, signal }),
        hostAddress,
        token,
        logger: logger.child({ c: 'logs' }),
      });
      // A one-off's work dir (its slug, extracted) goes when the run ends; those of runs of a
      // server killed meanwhile were left for ever. This process runs none yet: all are leftovers.
      for (const leftover of await readdir(dir('one-off')).catch(() => []))
        await rm(join(dir('one-off'), leftover), { recursive: true, force: true });
      const controller = new Controller({
        store,
        artifacts,
        workDir: dir('builds'),
        // Builds: the controller's default (@flotilla/buildpack) and, with Docker, buildImage.
        ...(config.driver === 'docker'
          ? { docker: { buildImage, removeImage, listImageTags, client: dockerClient() } }
          : {}),
        // Apps answer at http://<app>.localhost:<port>: *.localhost is loopback.
        baseDomain: 'localhost',
        deploy: { minHealthyMs: config.deployMinHealthyMs },
        logs,
        ...(driver === undefined || cache === undefined
          ? {}
          : {
              runner: new DriverOneOffRunner({ driver, artifacts: cache, workDir: dir('one-off') }),
            }),
        logger: logger.child({ c: 'controller' }),
      });
      ref.controller = controller;
      controller.on('error', (err) => logger.warn({ err }, 'controller'));
      // Ended dynos, for their last lines in `flotilla logs` once they are replaced.
      controller.on('job.state', (ev) => logs.observe(ev));
      controller.on('app.destroyed', (ev) => logs.observe(ev));
      // Build steps of a server SIGKILLed mid-build still run: end them before building again.
      await sweepDeadBuildSteps(logger.child({ c: 'build-sweep' }));
      await controller.start();
      closers.push({ name: 'controller', close: () => controller.close() });
      if (!single) {
        // Every server keeps a copy of every released slug: losing the one that built it loses
        // neither the dynos' restarts elsewhere nor the next release.
        const mirror = new ArtifactMirror({
          store,
          cache: cache ?? hostCache(),
          artifacts,
          collect: () => controller.collectArtifacts(),
          logger: logger.child({ c: 'artifact-mirror' }),
        });
        mirror.start();
        closers.push({ name: 'artifact mirror', close: () => mirror.close() });
      }

      const repos = new GitRepos(dir('git'), hookEntry());
      // Repositories of apps destroyed while this server was down (or through another server),
      // and the leftovers of a crash mid-create or mid-delete.
      await repos
        .sweep(
          async (app) => {
            try {
              return String((await controller.getApp(app)).createdAt);
            } catch (err) {
              if (isFlotillaError(err, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')) return undefined;
              throw err;
            }
          },
          (app, err) =>
            logger.warn(
              { err, app },
              'the git repository of an app is kept: its app cannot be looked up',
            ),
        )
        .then(
          (removed) =>
            removed.length > 0 &&
            logger.info({ apps: removed }, 'deleted the repositories of destroyed apps'),
          (err: unknown) => logger.warn({ err }, 'the git repositories cannot be swept'),
        );
      const appUrl = (app: string): string | undefined =>
        routerUrl === undefined ? undefined : routerUrl.replace('://', `://${app}.`);
      apiRoutes(
        routes,
        {
          controller,
          cluster,
          artifacts,
          repos,
          logs,
          uploadDir: dir('uploads'),
          appUrl,
          logger,
        },
        apiBase,
      );
      api.raw(
        '/git/',
        gitHandler({
          repos,
          controller,
          apiUrl: apiBase,
          token,
          logger: logger.child({ c: 'git' }),
        }),
      );
    }
    api?.ready();

    Object.assign(this, {
      info: {
        apiUrl: config.roles.api ? apiUrl : undefined,
        routerUrl,
        tokenPath,
        dataDir: config.dataDir,
        store:
          config.store.kind === 'sqlite'
            ? `sqlite:${config.store.path}`
            : `etcd://${config.store.endpoints.map((e) => e.replace('http://', '')).join(',')}${config.store.prefix}`,
        hostId: config.roles.host ? config.hostId : undefined,
      } satisfies ServerInfo,
    });
    return this;
  }

  /** Closes every component, newest first. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const c of [...this.#closers].reverse()) {
        try {
          await c.close();
        } catch (err) {
          this.#logger.error({ err, component: c.name }, 'close failed');
        }
      }
    })();
    return this.#closing;
  }

  /** Same as {@link FlotillaServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function openStore(config: ServerConfig, logger: Logger): Store {
  const s = config.store;
  if (s.kind === 'sqlite')
    return new SqliteStore({ path: s.path, logger: logger.child({ c: 'store' }) });
  return new EtcdStore({
    endpoints: [...s.endpoints],
    prefix: s.prefix,
    logger: logger.child({ c: 'store' }),
  });
}

/** The compiled `pre-receive` hook, beside this file in `dist/`. */
function hookEntry(): string {
  return fileURLToPath(new URL('./git/hook.js', import.meta.url));
}
