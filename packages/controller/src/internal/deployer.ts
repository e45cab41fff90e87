import type { ClusterState, ProcessSpec, ReleaseRecord, Resources } from '@flotilla/cluster';
import { type Clock, isFlotillaError, type Logger } from '@flotilla/core';
import type { Discovery } from '@flotilla/discovery';
import { resolveHealthCheck } from '@flotilla/host';
import type { ArtifactStore } from '../artifact-store.js';
import type { Build } from '../build.js';
import type { Deployment, DeployOptions } from '../deployment.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { ControllerEventMap } from '../events.js';
import type { JobLogSource } from '../job-logs.js';
import type { OneOffRunner } from '../one-off.js';
import type { Release } from '../release.js';
import type { HookRegistry } from './hook-registry.js';
import type { JobMirror } from './job-mirror.js';
import type { AppLocks } from './lock.js';
import { newId } from './names.js';
import { placeFor } from './placement.js';
import type { AppRecord, FormationSetting } from './records.js';
import type { Repo } from './repo.js';
import { rollout, type RolloutSettings } from './rollout.js';

/** What a deploy is for. */
export type DeployKind = Deployment['kind'];

/** The parts a deploy works with. */
export interface DeployerContext {
  readonly id: string;
  readonly repo: Repo;
  readonly cluster: ClusterState;
  readonly discovery: Discovery;
  readonly mirror: JobMirror;
  readonly locks: AppLocks;
  readonly artifacts: ArtifactStore;
  readonly runner: OneOffRunner | undefined;
  readonly hooks: HookRegistry;
  readonly logs: JobLogSource | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sizes: Readonly<Record<string, Resources>>;
  readonly defaultSize: string;
  readonly defaults: RolloutSettings;
  readonly emit: <K extends keyof ControllerEventMap>(
    type: K,
    payload: ControllerEventMap[K],
  ) => void;
  /** Called after a deploy went live (artifact collection). */
  readonly afterDeploy: (app: string) => void;
  /** Aborted when the controller closes: deploys in flight roll back and end. */
  readonly closing: AbortSignal;
}

/** Options of one deploy. */
export interface DeployCall extends DeployOptions {
  /** Where progress lines also go (a build's output). */
  readonly progress?: (line: string) => void;
  /** Called with the deployment's record once written (a build records which deploy it started). */
  readonly started?: (deployment: Deployment) => void;
  /** The caller holds the app's lock already. */
  readonly locked?: boolean;
  /** Quantity changes to persist with the deploy when it goes live (a size change). */
  readonly formation?: Readonly<Record<string, FormationSetting>>;
}

const RELEASE_PHASE_LINES = 20;

/**
 * Deploys releases: writes the release record hosts read (immutable, so a restart gets a new
 * cluster release id `vN-rK`), runs the release phase, asks the pre-release hooks, rolls the
 * formation over (see {@link rollout}), records the deployment, and runs post-deploy hooks
 * (a veto deploys the release before again).
 */
export class Deployer {
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(readonly ctx: DeployerContext) {}

  /** Resolves when no deploy of this deployer runs (after close() aborted them: rolled back). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Resolved settings of one deploy; bad numbers are refused. */
  settings(options: DeployOptions): RolloutSettings {
    const d = this.ctx.defaults;
    const pick = (
      v: number | undefined,
      def: number,
      name: string,
      min: number,
      max: number,
    ): number => {
      if (v === undefined) return def;
      if (!Number.isSafeInteger(v) || v < min || v > max)
        throw new ControllerError(
          ControllerErrorCodes.INVALID_INPUT,
          `${name} must be a whole number from ${min} to ${max}, got ${String(v)}`,
          {
            path: name,
          },
        );
      return v;
    };
    const settings = {
      batchSize: pick(options.batchSize, d.batchSize, 'batchSize', 1, 100_000),
      surge: pick(options.surge, d.surge, 'surge', 0, 100_000),
      readyTimeoutMs: pick(
        options.readyTimeoutMs,
        d.readyTimeoutMs,
        'readyTimeoutMs',
        1,
        86_400_000,
      ),
      stopTimeoutMs: pick(options.stopTimeoutMs, d.stopTimeoutMs, 'stopTimeoutMs', 1, 86_400_000),
      minHealthyMs: pick(options.minHealthyMs, d.minHealthyMs, 'minHealthyMs', 0, 86_400_000),
    };
    if (settings.minHealthyMs >= settings.readyTimeoutMs)
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `minHealthyMs (${settings.minHealthyMs}) must be below readyTimeoutMs (${settings.readyTimeoutMs}): a new job must be able to stay up long enough within the time it has to become ready`,
        { path: 'minHealthyMs' },
      );
    return settings;
  }

  resources(size: string): Resources {
    return this.ctx.sizes[size] ?? (this.ctx.sizes[this.ctx.defaultSize] as Resources);
  }

  /** Refuses a build whose slug is no longer in the artifact store (collected). */
  async requireArtifact(build: Build): Promise<void> {
    const a = build.artifact;
    if (a?.type === 'slug' && (await this.ctx.artifacts.stat(a.sha256)) === undefined)
      throw new ControllerError(
        ControllerErrorCodes.ARTIFACT_INVALID,
        `the slug of build ${build.id} of ${build.app} (sha256 ${a.sha256.slice(0, 12)}) is no longer stored (collected: only the last releases keep theirs): build again`,
        { app: build.app },
      );
  }

  /** The record hosts read for a release of a build. */
  clusterRecord(release: Release, build: Build, clusterId: string): ReleaseRecord {
    const artifact = build.artifact;
    if (artifact === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `build ${build.id} of ${build.app} has no artifact`,
        { app: build.app },
      );
    return {
      app: release.app,
      release: clusterId,
      artifact:
        artifact.type === 'slug'
          ? {
              type: 'slug',
              url: this.ctx.artifacts.url(artifact.sha256),
              sha256: artifact.sha256,
              size: artifact.size,
            }
          : { type: 'image', image: artifact.image },
      config: release.config,
      processes: Object.fromEntries(
        Object.entries(release.processTypes).map(([t, command]) => [t, { command }]),
      ),
      createdAt: release.createdAt,
    };
  }

  /** Deploys release `version` of `app`. Resolves with the succeeded deployment. */
  deploy(
    appName: string,
    version: number,
    kind: DeployKind,
    given: DeployCall = {},
  ): Promise<Deployment> {
    const p = this.#deploy(appName, version, kind, given);
    this.#inflight.add(p);
    void p.then(
      () => this.#inflight.delete(p),
      () => this.#inflight.delete(p),
    );
    return p;
  }

  async #deploy(
    appName: string,
    version: number,
    kind: DeployKind,
    given: DeployCall,
  ): Promise<Deployment> {
    const settings = this.settings(given);
    const signal =
      given.signal === undefined
        ? this.ctx.closing
        : AbortSignal.any([given.signal, this.ctx.closing]);
    const call: DeployCall = { ...given, signal };
    const { repo, cluster } = this.ctx;
    const lock =
      call.locked === true
        ? undefined
        : await this.ctx.locks.acquire(appName, kind === 'release' ? 'deploy' : kind, {
            onBusy: call.onBusy ?? 'wait',
            ...(call.signal === undefined ? {} : { signal: call.signal }),
          });
    try {
      const app = await repo.requireApp(appName);
      const release = await repo.release(appName, version);
      if (release === undefined)
        throw new ControllerError(
          ControllerErrorCodes.RELEASE_NOT_FOUND,
          `app ${appName} has no release v${version}`,
          { app: appName },
        );
      if (release.build === undefined)
        throw new ControllerError(
          ControllerErrorCodes.NO_BUILD,
          `release ${release.id} of ${appName} has no build: push a build first`,
          {
            app: appName,
          },
        );
      const build = await repo.build(appName, release.build);
      if (build?.status !== 'succeeded' || build.artifact === undefined)
        throw new ControllerError(
          ControllerErrorCodes.NO_BUILD,
          `build ${release.build} of release ${release.id} did not succeed`,
          {
            app: appName,
          },
        );
      await this.requireArtifact(build);
      const clusterId = await this.#writeRecord(app, release, build, kind);
      const deployment: Deployment = {
        id: newId('d'),
        app: appName,
        release: release.id,
        from: app.live?.release,
        kind,
        status: 'running',
        createdAt: this.ctx.clock.now(),
        owner: this.ctx.id,
      };
      await repo.putDeployment(deployment);
      call.started?.(deployment);
      this.ctx.emit('deploy.started', { app: appName, deployment });
      const progress = (message: string): void => {
        call.progress?.(message);
        this.ctx.emit('deploy.progress', { app: appName, deploymentId: deployment.id, message });
      };
      try {
        if (kind === 'release' && release.processTypes.release !== undefined)
          await this.#releasePhase(appName, release, build, clusterId, progress, call.signal);
        await this.ctx.hooks.run(
          'pre-release',
          { app: appName, release, from: app.live?.release },
          call.signal ?? new AbortController().signal,
          appName,
        );
      } catch (err) {
        await this.#finish(deployment, 'failed', (err as Error).message);
        throw err;
      }
      // Quantities: what the app declares; web gets 1 when it was never given a quantity.
      const formation: Record<string, FormationSetting> = { ...app.formation, ...call.formation };
      if (release.processTypes.web !== undefined && formation.web === undefined)
        formation.web = { quantity: 1, size: this.ctx.defaultSize };
      // Placement: an image runs only on hosts whose driver runs images; an operator's
      // constraints on the live formation carry over.
      const liveFormation =
        app.live === undefined
          ? undefined
          : (await cluster.formations({ app: appName })).find(
              (f) => f.release === app.live?.deployment,
            );
      const processes: Record<string, ProcessSpec> = {};
      const healthChecked = new Set<string>();
      for (const type of Object.keys(release.processTypes)) {
        if (type === 'release') continue;
        const f = formation[type];
        processes[type] = placeFor(build.artifact.type, {
          count: f?.quantity ?? 0,
          resources: this.resources(f?.size ?? this.ctx.defaultSize),
          ...(liveFormation?.processes[type]?.constraints === undefined
            ? {}
            : { constraints: liveFormation.processes[type].constraints }),
        });
        if (resolveHealthCheck(type, undefined) !== undefined) healthChecked.add(type);
      }
      progress(`Deploying ${release.id} (${clusterId})`);
      const result = await rollout(
        {
          cluster,
          discovery: this.ctx.discovery,
          mirror: this.ctx.mirror,
          clock: this.ctx.clock,
          logger: this.ctx.logger,
          logs: this.ctx.logs,
          progress,
        },
        { app: appName, target: clusterId, processes, healthChecked },
        settings,
        call.signal,
      ).catch(async (err: unknown) => {
        // The rollback itself could not be written (the store is gone): say so, as far as possible.
        await this.#finish(
          deployment,
          'failed',
          `the deploy failed and could not be rolled back: ${(err as Error).message}`,
        ).catch(() => undefined);
        throw err;
      });
      if (!result.ok) {
        const failed = await this.#finish(
          deployment,
          'rolled-back',
          result.reason,
          result.failedJobs,
        );
        throw new ControllerError(
          ControllerErrorCodes.DEPLOY_FAILED,
          `deploy of ${release.id} to ${appName} failed and was rolled back${app.live === undefined ? '' : `, ${app.live.release} still serves`}: ${result.reason}`,
          { app: appName, deployment: failed },
        );
      }
      await repo.updateApp(appName, (a) => ({
        next: {
          ...a,
          live: { release: release.id, deployment: clusterId },
          formation: { ...a.formation, ...pickFormation(formation, a.formation, call.formation) },
        },
      }));
      const done = await this.#finish(deployment, 'succeeded');
      progress(`Deployed ${release.id}`);
      this.ctx.afterDeploy(appName);
      try {
        await this.ctx.hooks.run(
          'post-deploy',
          { app: appName, release, deployment: done },
          call.signal ?? new AbortController().signal,
          appName,
        );
      } catch (err) {
        if (!isFlotillaError(err, ControllerErrorCodes.VETOED) || app.live === undefined) throw err;
        progress(`${(err as Error).message}: deploying ${app.live.release} again`);
        const previous = Number(app.live.release.slice(1));
        await this.deploy(appName, previous, 'release', { ...call, locked: true });
        await repo.updateDeployment(appName, deployment.id, (d) => ({
          ...d,
          status: 'rolled-back',
          reason: (err as Error).message,
        }));
        throw err;
      }
      return done;
    } finally {
      await lock
        ?.release()
        .catch((err: unknown) =>
          this.ctx.logger.warn({ err, app: appName }, 'lock release failed'),
        );
    }
  }

  /**
   * Puts an app's formations back to what its app record says is live: the live cluster
   * release at the recorded quantities, every other formation removed (its jobs stopped). For
   * a deploy whose controller died mid-rollout: its new jobs must not keep serving beside the
   * old ones. Resolves with the live release (`v6`, undefined when none serves), or undefined
   * when another deploy holds the app (its rollout owns the formations now) or it is gone.
   */
  async restoreLive(
    appName: string,
  ): Promise<{ readonly liveRelease: string | undefined } | undefined> {
    const { repo, cluster } = this.ctx;
    let lock;
    try {
      lock = await this.ctx.locks.acquire(appName, 'restore', {
        onBusy: 'refuse',
        signal: this.ctx.closing,
      });
    } catch (err) {
      if (isFlotillaError(err, ControllerErrorCodes.DEPLOY_IN_PROGRESS)) return undefined;
      throw err;
    }
    try {
      const app = (await repo.app(appName))?.record;
      if (app === undefined) return undefined;
      const live = app.live?.deployment;
      for (const f of await cluster.formations({ app: appName })) {
        if (f.release !== live) {
          await cluster.removeFormation(appName, f.release);
          continue;
        }
        const artifact = (await cluster.getRelease(appName, f.release))?.artifact.type;
        const processes = Object.fromEntries(
          Object.entries(f.processes).map(([type, p]) => {
            const setting = app.formation[type];
            const spec =
              setting === undefined
                ? p
                : { ...p, count: setting.quantity, resources: this.resources(setting.size) };
            return [type, artifact === undefined ? spec : placeFor(artifact, spec)];
          }),
        );
        await cluster.setFormation({ app: appName, release: f.release, processes });
      }
      return { liveRelease: app.live?.release };
    } finally {
      await lock
        .release()
        .catch((err: unknown) =>
          this.ctx.logger.warn({ err, app: appName }, 'lock release failed'),
        );
    }
  }

  async #finish(
    deployment: Deployment,
    status: Deployment['status'],
    reason?: string,
    failedJobs?: Deployment['failedJobs'],
  ): Promise<Deployment> {
    const done: Deployment = {
      ...deployment,
      status,
      finishedAt: this.ctx.clock.now(),
      ...(reason === undefined ? {} : { reason }),
      ...(failedJobs === undefined ? {} : { failedJobs }),
    };
    await this.ctx.repo.putDeployment(done);
    this.ctx.emit('deploy.finished', { app: deployment.app, deployment: done });
    return done;
  }

  /**
   * Writes the cluster release record: `vN` the first time, a new `vN-rK` when `vN` was
   * written before (a restart, a resize, a deploy tried again, an artifact URL that moved).
   */
  async #writeRecord(
    app: AppRecord,
    release: Release,
    build: Build,
    kind: DeployKind,
  ): Promise<string> {
    const { cluster, repo } = this.ctx;
    if (kind === 'release') {
      const live = (await cluster.formations({ app: app.name })).some(
        (f) => f.release === release.id,
      );
      if (!live) {
        try {
          // Only a record written now: jobs of an earlier attempt under this id (a crashed
          // one held in the scheduler's backoff) must not count for this deploy.
          const { created } = await cluster.putRelease(
            this.clusterRecord(release, build, release.id),
          );
          if (created) return release.id;
        } catch (err) {
          if (!isFlotillaError(err, 'FLOTILLA_CLUSTER_RELEASE_EXISTS')) throw err;
        }
      }
    }
    const { result } = await repo.updateApp(app.name, (a) => ({
      next: { ...a, generation: a.generation + 1 },
      result: `${release.id}-r${a.generation + 1}`,
    }));
    const id = result as string;
    await cluster.putRelease(this.clusterRecord(release, build, id));
    return id;
  }

  async #releasePhase(
    app: string,
    release: Release,
    build: Build,
    clusterId: string,
    progress: (line: string) => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const runner = this.ctx.runner;
    const command = release.processTypes.release as string;
    if (runner === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NOT_CONFIGURED,
        `${release.id} of ${app} has a release process type, and the controller has no one-off runner to run it: configure a runner`,
        { app },
      );
    progress(`Running release command: ${command}`);
    const record = this.clusterRecord(release, build, clusterId);
    const handle = await runner.start(
      {
        id: `${app}.release.${newId('r').slice(2)}`,
        app,
        release: clusterId,
        type: 'release',
        command,
        artifact: record.artifact,
        env: release.config,
        memoryMiB: this.resources(this.ctx.defaultSize).memory,
      },
      signal === undefined ? {} : { signal },
    );
    const tail: string[] = [];
    for await (const l of handle.output) {
      progress(l.line);
      tail.push(l.line);
      if (tail.length > RELEASE_PHASE_LINES) tail.shift();
    }
    const exit = await handle.exit;
    if (exit.code !== 0)
      throw new ControllerError(
        ControllerErrorCodes.RELEASE_PHASE_FAILED,
        `the release command of ${release.id} failed (${exit.message}): the deploy stopped, no job changed. Last lines:\n${tail.join('\n')}`,
        { app },
      );
    progress('Release command done');
  }
}

/** The formation to persist after a deploy: the web default and the call's changes. */
function pickFormation(
  used: Readonly<Record<string, FormationSetting>>,
  current: Readonly<Record<string, FormationSetting>>,
  call: Readonly<Record<string, FormationSetting>> | undefined,
): Record<string, FormationSetting> {
  const out: Record<string, FormationSetting> = { ...call };
  if (current.web === undefined && used.web !== undefined) out.web = used.web;
  return out;
}
