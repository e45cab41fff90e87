import { mkdir } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@flotilla/core';
import { ClusterState } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { EtcdStore } from '@flotilla/etcd';
import { ArtifactCache, HostAgent, ProcessDriver, type Driver } from '@flotilla/host';
import { Scheduler } from '@flotilla/scheduler';
import { SqliteStore } from '@flotilla/sqlite';
import type { Store } from '@flotilla/store';
import { PaasError, PaasErrorCodes } from '../errors.js';
import type { ServerConfig } from './config.js';
import { GitRepos } from './git/repos.js';
import { ApiServer } from './http/api-server.js';
import { Router } from './http/router.js';
import { apiRoutes } from './api/routes.js';
import { loadOrCreateToken } from './token.js';

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
  readonly dataDir: string;
  readonly store: string;
}

/**
 * The `flotilla` server: the store, the scheduler, a host agent, the router and the API, each
 * according to `config.roles`. Components start in dependency order and close in reverse;
 * a failure while starting closes what had started.
 */
export class FlotillaServer implements AsyncDisposable {
  readonly info: ServerInfo;
  readonly #closers: Closer[];
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  private constructor(info: ServerInfo, closers: Closer[], logger: Logger) {
    this.info = info;
    this.#closers = closers;
    this.#logger = logger;
  }

  /** Starts every component of `config.roles`. */
  static async start(config: ServerConfig, logger: Logger): Promise<FlotillaServer> {
    const closers: Closer[] = [];
    const closeAll = async (): Promise<void> => {
      for (const c of closers.reverse()) {
        try {
          await c.close();
        } catch (err) {
          logger.error({ err, component: c.name }, 'close failed');
        }
      }
    };
    try {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
        throw new PaasError(
          PaasErrorCodes.DATA_DIR,
          `cannot create the data directory ${config.dataDir}`,
          {
            cause: err,
          },
        );
      });
      const { token, path: tokenPath } = await loadOrCreateToken(
        join(config.dataDir, 'token'),
        config.token,
      );

      const store = openStore(config, logger);
      closers.push({ name: 'store', close: () => store.close() });
      const discovery = new Discovery({ store, logger: logger.child({ c: 'discovery' }) });
      closers.push({ name: 'discovery', close: () => discovery.close() });
      const cluster = new ClusterState({ store, logger: logger.child({ c: 'cluster' }) });
      closers.push({ name: 'cluster', close: () => cluster.close() });

      let apiUrl: string | undefined;
      let api: ApiServer | undefined;
      const router = new Router();
      if (config.roles.api) {
        api = new ApiServer({ token, router, raw: [], logger: logger.child({ c: 'api' }) });
        const addr = await api.listen(config.apiPort, config.apiHost);
        apiUrl = `http://${addr.address}:${addr.port}`;
        const a = api;
        closers.push({ name: 'api', close: () => a.close() });
      }
      const agentAddress =
        apiUrl === undefined
          ? `${config.apiHost}:${config.apiPort || 7700}`
          : apiUrl.slice('http://'.length);

      if (config.roles.scheduler) {
        const scheduler = new Scheduler({ store, logger: logger.child({ c: 'scheduler' }) });
        scheduler.on('crashloop', (c) =>
          logger.warn({ crashloop: c }, 'a process type keeps crashing'),
        );
        await scheduler.start();
        closers.push({ name: 'scheduler', close: () => scheduler.close() });
      }

      let driver: Driver | undefined;
      if (config.roles.host) {
        driver = await ProcessDriver.create({
          stateDir: join(config.dataDir, 'jobs'),
          logger: logger.child({ c: 'driver' }),
        });
        const d = driver;
        closers.push({ name: 'driver', close: () => d.close() });
        const agent = new HostAgent({
          id: config.hostId,
          store,
          driver,
          discovery,
          address: agentAddress,
          capacity: {
            cpu: availableParallelism() * 1000,
            memory: Math.floor(totalmem() / 2 ** 20),
          },
          ports: config.jobPorts,
          artifacts: new ArtifactCache({ dir: join(config.dataDir, 'cache'), token }),
          workDir: join(config.dataDir, 'run'),
          logger: logger.child({ c: 'agent' }),
        });
        agent.on('error', (err) => logger.warn({ err }, 'host agent'));
        await agent.start();
        closers.push({
          name: 'host agent',
          close: () => agent.close(config.stopJobsOnExit ? { stopJobs: true } : {}),
        });
      }

      if (api !== undefined) {
        const repos = new GitRepos(join(config.dataDir, 'git'), hookEntry());
        apiRoutes(router, { cluster, logger });
        void repos;
        api.ready();
      }

      const info: ServerInfo = {
        apiUrl,
        routerUrl: undefined,
        tokenPath,
        dataDir: config.dataDir,
        store:
          config.store.kind === 'sqlite'
            ? `sqlite:${config.store.path}`
            : `etcd://${config.store.endpoints.join(',')}`,
      };
      return new FlotillaServer(info, closers, logger);
    } catch (err) {
      await closeAll();
      throw err;
    }
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
