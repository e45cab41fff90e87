import {
  ClusterState,
  type AssignedJob,
  type HostRegistration,
  type JobStatus,
} from '@flotilla/cluster';
import { type Clock, systemClock } from '@flotilla/core';
import { Discovery, type Registration } from '@flotilla/discovery';
import { driverTags, serviceName } from '@flotilla/host';
import type { Store } from '@flotilla/store';

/** What a fake agent does with a job it is given. */
export type FakeJobBehaviour =
  /** Starts, becomes ready (published in discovery for `web`), runs until stopped. */
  | 'run'
  /**
   * Starts, then crashes with this exit status: before it is ready, or with `upForMs` after
   * it was up (and ready) for that long.
   */
  | { readonly crash: number; readonly message?: string; readonly upForMs?: number }
  /** Starts and never becomes ready. */
  | 'hang';

/** Options of {@link FakeAgents}. */
export interface FakeAgentsOptions {
  readonly store: Store;
  /** Host ids to run (default one, `host-1`). */
  readonly hosts?: readonly string[];
  /** Capacity of each host (default 64 cores, 64 GiB). */
  readonly capacity?: { readonly cpu: number; readonly memory: number };
  /**
   * Whether a host's driver runs images (default: every host's does). A host that does is
   * registered with the tag `flotilla.artifact.image: 'true'`, as a real agent on such a driver;
   * one that does not reports an image job it is given `crashed`, with the real agent's message
   * (`release v1 of demo is an image: the process driver runs slugs`).
   */
  readonly runsImages?: (hostId: string) => boolean;
  /** An operator's tags of a host (`zone`...), which formations' constraints match. */
  readonly tags?: (hostId: string) => Readonly<Record<string, string>> | undefined;
  /** What each job does (default: run). Decided from its assignment (record and release). */
  readonly behaviour?: (job: AssignedJob) => FakeJobBehaviour;
  readonly clusterPrefix?: string;
  readonly discoveryPrefix?: string;
  readonly clock?: Clock;
}

interface FakeJob {
  readonly hostId: string;
  reg?: Registration;
  state: JobStatus['state'];
}

/**
 * Host agents without processes, for tests of what drives the cluster (a controller, a
 * deploy tool): each registers its host, watches what the scheduler assigns to it, reports jobs
 * `starting` then `up` (publishing `web` jobs, ready, in discovery under `<app>-<type>` as real
 * agents do) or `crashed`, and on a stop deregisters the job, then reports it `down`. Run it
 * with a real `Scheduler` on the same store.
 *
 * @example
 * ```ts
 * const agents = new FakeAgents({ store, behaviour: (j) => (j.release?.config.BAD ? { crash: 1 } : 'run') });
 * await agents.start();
 * ```
 */
export class FakeAgents implements AsyncDisposable {
  readonly #o: FakeAgentsOptions;
  readonly #clusters: ClusterState[] = [];
  readonly #regs: HostRegistration[] = [];
  readonly #discovery: Discovery;
  readonly #jobs = new Map<string, FakeJob>();
  readonly #abort = new AbortController();
  readonly #loops: Promise<void>[] = [];
  #port = 20000;
  /** How many jobs each fake agent has started, in all. */
  started = 0;

  constructor(options: FakeAgentsOptions) {
    this.#o = options;
    this.#discovery = new Discovery({
      store: options.store,
      ...(options.discoveryPrefix === undefined ? {} : { prefix: options.discoveryPrefix }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  }

  async start(): Promise<void> {
    for (const id of this.#o.hosts ?? ['host-1']) {
      const cluster = new ClusterState({
        store: this.#o.store,
        ...(this.#o.clusterPrefix === undefined ? {} : { prefix: this.#o.clusterPrefix }),
        ...(this.#o.clock === undefined ? {} : { clock: this.#o.clock }),
      });
      this.#clusters.push(cluster);
      this.#regs.push(
        await cluster.registerHost({
          id,
          addr: `127.0.0.1:${7000 + this.#regs.length}`,
          capacity: this.#o.capacity ?? { cpu: 64_000, memory: 65_536 },
          ...this.#tags(id),
        }),
      );
      this.#loops.push(this.#run(cluster, id));
    }
  }

  async #run(cluster: ClusterState, hostId: string): Promise<void> {
    try {
      for await (const item of cluster.watchAssigned(hostId, { signal: this.#abort.signal })) {
        const jobs =
          item.type === 'snapshot' ? item.jobs : item.type === 'assigned' ? [item.job] : [];
        for (const job of jobs) void this.#act(cluster, job).catch(() => undefined);
        if (item.type === 'removed')
          void this.#stop(cluster, hostId, item.jobId).catch(() => undefined);
      }
    } catch {
      // closed
    }
  }

  async #act(cluster: ClusterState, job: AssignedJob): Promise<void> {
    const { record } = job;
    const known = this.#jobs.get(record.id);
    if (record.desired === 'stop') {
      await this.#stop(cluster, record.hostId, record.id);
      return;
    }
    if (known !== undefined) return;
    const local: FakeJob = { hostId: record.hostId, state: 'starting' };
    this.#jobs.set(record.id, local);
    this.started++;
    const port = this.#port++;
    const now = Date.now();
    await cluster.reportJob(record.hostId, record.id, { state: 'starting', startedAt: now, port });
    const behaviour: FakeJobBehaviour =
      job.release?.artifact.type === 'image' && !this.#runsImages(record.hostId)
        ? {
            crash: 1,
            message: `release ${record.release} of ${record.app} is an image: the process driver runs slugs`,
          }
        : (this.#o.behaviour?.(job) ?? 'run');
    if (behaviour === 'hang') return;
    if (typeof behaviour === 'object' && behaviour.upForMs === undefined) {
      local.state = 'crashed';
      await cluster.reportJob(record.hostId, record.id, {
        state: 'crashed',
        startedAt: now,
        finishedAt: Date.now(),
        exitStatus: behaviour.crash,
        message: behaviour.message ?? `exited with code ${behaviour.crash}`,
      });
      return;
    }
    if (record.type === 'web') {
      local.reg = await this.#discovery.register({
        service: serviceName(record.app, record.type),
        id: record.id,
        addr: `127.0.0.1:${port}`,
        ready: true,
        ttlMs: 10_000,
        meta: { app: record.app, release: record.release, type: record.type, host: record.hostId },
      });
    }
    if (this.#jobs.get(record.id) !== local || local.state !== 'starting') {
      await local.reg?.close();
      return;
    }
    local.state = 'up';
    await cluster.reportJob(record.hostId, record.id, { state: 'up', startedAt: now, port });
    if (typeof behaviour === 'object') {
      const { crash, message } = behaviour;
      (this.#o.clock ?? systemClock).setTimeout(() => {
        if (this.#jobs.get(record.id) !== local || local.state !== 'up') return;
        local.state = 'crashed';
        void (async () => {
          await local.reg?.close();
          await cluster.reportJob(record.hostId, record.id, {
            state: 'crashed',
            startedAt: now,
            finishedAt: Date.now(),
            exitStatus: crash,
            message: message ?? `exited with code ${crash}`,
          });
        })().catch(() => undefined);
      }, behaviour.upForMs ?? 0);
    }
  }

  /** A host record's tags: the operator's and, as a real agent adds them, its driver's. */
  #tags(hostId: string): { tags?: Record<string, string> } {
    const tags = {
      ...this.#o.tags?.(hostId),
      ...driverTags({ runsImages: this.#runsImages(hostId) }),
    };
    return Object.keys(tags).length === 0 ? {} : { tags };
  }

  #runsImages(hostId: string): boolean {
    return this.#o.runsImages?.(hostId) ?? true;
  }

  async #stop(cluster: ClusterState, hostId: string, jobId: string): Promise<void> {
    const local = this.#jobs.get(jobId);
    if (local === undefined || local.state === 'down' || local.state === 'crashed') return;
    local.state = 'down';
    await local.reg?.close();
    await cluster.reportJob(hostId, jobId, {
      state: 'down',
      finishedAt: Date.now(),
      exitStatus: 0,
    });
  }

  /** Jobs running now (started, not stopped or crashed), by id. */
  running(): string[] {
    return [...this.#jobs.entries()]
      .filter(([, j]) => j.state === 'up' || j.state === 'starting')
      .map(([id]) => id);
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
    for (const j of this.#jobs.values()) await j.reg?.close().catch(() => undefined);
    for (const r of this.#regs) await r.close().catch(() => undefined);
    for (const c of this.#clusters) await c.close().catch(() => undefined);
    await this.#discovery.close().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
