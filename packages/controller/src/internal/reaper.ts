import type { Clock, Logger } from '@flotilla/core';
import { listAndWatch, type Store } from '@flotilla/store';
import type { Build } from '../build.js';
import type { Deployment } from '../deployment.js';
import { endOutput } from './build-output.js';
import type { ControllerKeys } from './keys.js';
import type { Repo } from './repo.js';

/**
 * Fails what dead controllers left running. Controllers hold `instances/<id>` under their
 * lease; when one's key is gone (at start, or when it vanishes later), its `pending` and
 * `running` builds are marked failed (never released: a release needs a succeeded build) and
 * their output ended, and its `running` deployments are rolled back: the app's formations are
 * put back to its live release (`restore`), so the new jobs of a half-done rollout do not keep
 * serving beside the old ones, and the deployment is marked `rolled-back` (`failed` when
 * another deploy of the app holds it and owns its formations now).
 */
export class Reaper {
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #ready!: () => void;
  readonly ready = new Promise<void>((resolve) => (this.#ready = resolve));

  constructor(
    readonly store: Store,
    readonly keys: ControllerKeys,
    readonly repo: Repo,
    readonly selfId: string,
    readonly clock: Clock,
    readonly logger: Logger,
    readonly onError: (err: unknown) => void,
    readonly onBuildFailed: (build: Build) => void,
    readonly onDeploymentFailed: (d: Deployment) => void,
    readonly restore: (
      app: string,
    ) => Promise<{ readonly liveRelease: string | undefined } | undefined>,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    try {
      for await (const item of listAndWatch(this.store, this.keys.instances, {
        signal,
        clock: this.clock,
      })) {
        if (item.type === 'snapshot') {
          await this.#sweep(undefined).catch((err: unknown) => this.onError(err));
          this.#ready();
        } else if (item.event.type === 'delete') {
          const id = item.event.kv.key.slice(this.keys.instances.length);
          await this.#sweep(id).catch((err: unknown) => this.onError(err));
        }
      }
    } catch (err) {
      if (!signal.aborted) this.onError(err);
    } finally {
      this.#ready();
    }
  }

  /** Whether a controller instance is alive now (its key exists). */
  async #alive(id: string, cache: Map<string, boolean>): Promise<boolean> {
    if (id === this.selfId) return true;
    let alive = cache.get(id);
    if (alive === undefined) {
      alive = (await this.store.get(this.keys.instance(id))) !== undefined;
      cache.set(id, alive);
    }
    return alive;
  }

  /** Fails the unfinished work of dead owners (of `owner` only, when given). */
  async #sweep(owner: string | undefined): Promise<void> {
    const cache = new Map<string, boolean>();
    for (const build of await this.repo.allBuilds()) {
      if (build.status !== 'pending' && build.status !== 'running') continue;
      if (owner !== undefined && build.owner !== owner) continue;
      if (await this.#alive(build.owner, cache)) continue;
      const error = `the controller running this build (${build.owner}) stopped before it finished: build again`;
      const failed = await this.repo.updateBuild(build.app, build.id, (b) =>
        b.status === 'pending' || b.status === 'running'
          ? { ...b, status: 'failed', error, finishedAt: this.clock.now() }
          : undefined,
      );
      if (failed?.status === 'failed' && failed.error === error) {
        this.logger.warn(
          { app: build.app, build: build.id, owner: build.owner },
          'build of a dead controller marked failed',
        );
        await endOutput(
          this.store,
          this.keys,
          build.app,
          build.id,
          `Build failed: ${error}`,
          this.clock,
        );
        this.onBuildFailed(failed);
      }
    }
    for (const d of await this.repo.allDeployments()) {
      if (d.status !== 'running') continue;
      if (owner !== undefined && d.owner !== owner) continue;
      if (await this.#alive(d.owner, cache)) continue;
      // The live release as read while the app was locked for the restore: no second read.
      const restored = await this.restore(d.app);
      const live = restored?.liveRelease;
      const reason =
        restored !== undefined
          ? `the controller running this deploy (${d.owner}) stopped before it finished; rolled back${live === undefined ? ': no release serves' : `, ${live} serves`}`
          : `the controller running this deploy (${d.owner}) stopped before it finished; another deploy of the app has taken over: deploy again`;
      const status = restored !== undefined ? 'rolled-back' : 'failed';
      const failed = await this.repo.updateDeployment(d.app, d.id, (x) =>
        x.status === 'running' ? { ...x, status, reason, finishedAt: this.clock.now() } : undefined,
      );
      if (failed?.status === status && failed.reason === reason) {
        this.logger.warn(
          { app: d.app, deployment: d.id, owner: d.owner, status },
          'deploy of a dead controller ended',
        );
        this.onDeploymentFailed(failed);
      }
    }
  }
}
