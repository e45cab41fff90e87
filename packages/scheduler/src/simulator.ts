import { type Clock, ManualClock } from '@flotilla/core';
import {
  ClusterState,
  type DrainHostOptions,
  type Formation,
  type HostRegistration,
  type HostView,
  type JobRecord,
  type JobState,
  type JobStatus,
  type Resources,
} from '@flotilla/cluster';
import { listAndWatch, MemoryStore, type Store } from '@flotilla/store';
// Not '@flotilla/store/testing': that entry loads vitest (the contract suite), an optional peer.
import { PartitionableStore } from '@flotilla/store/testing/partitionable-store';
import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { rng } from './internal/rng.js';
import type { PlannerOptions } from './planner.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';

/** A host of a {@link ClusterSimulator}. */
export interface SimulatedHost {
  readonly id: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly capacity: Resources;
}

/** A job as the simulator reports it: the scheduler's record, the agent's status, the derived state. */
export interface SimulatedJob extends JobRecord {
  readonly state: JobState;
  readonly status: JobStatus | undefined;
}

/** Options of {@link ClusterSimulator}. */
export interface ClusterSimulatorOptions extends PlannerOptions {
  /** Hosts to start with: a count (sizes and zones drawn from `seed`) or the hosts. */
  readonly hosts?: number | readonly SimulatedHost[];
  /** Zones hosts are spread over when `hosts` is a count (default a, b, c). */
  readonly zones?: readonly string[];
  /** Host sizes drawn from when `hosts` is a count (default 4, 8 and 16 cores, 4 GiB a core). */
  readonly sizes?: readonly Resources[];
  /** Heartbeat lease TTL of the simulated host agents (default 2000 ms). */
  readonly heartbeatTtlMs?: number;
  /** Extra options for the scheduler under test. */
  readonly scheduler?: Partial<Omit<SchedulerOptions, 'store' | 'clock'>>;
  /** The store (default: a MemoryStore on the simulator's manual clock). */
  readonly store?: Store;
  /** The clock (default: a ManualClock starting at 2026-01-01). */
  readonly clock?: ManualClock;
}

interface SimHost {
  readonly host: SimulatedHost;
  /** The agent's own view of the store: cut off when the host is killed. */
  readonly view: PartitionableStore;
  readonly cluster: ClusterState;
  registration: HostRegistration | undefined;
  alive: boolean;
}

/**
 * A cluster in a box for tests and experiments: simulated host agents (registered through
 * {@link ClusterState}, heartbeat leases, jobs reported from nothing to `up`, stopped on
 * request, crashes on demand) around the real {@link Scheduler}, on a MemoryStore driven by a
 * ManualClock, deterministic for a seed.
 *
 * @example
 * ```ts
 * const sim = new ClusterSimulator({ hosts: 20, seed: 1 });
 * await sim.start();
 * await sim.setFormation({ app: 'demo', release: 'v1', processes: { web: { count: 10, resources } } });
 * await sim.killHost('host-3');
 * await sim.advance(3000); // heartbeat lapses: host down, its jobs placed elsewhere
 * ```
 */
export class ClusterSimulator implements AsyncDisposable {
  readonly store: Store;
  readonly clock: ManualClock;
  readonly scheduler: Scheduler;
  /** The cluster state as the controller and operators use it. */
  readonly cluster: ClusterState;
  readonly #hosts = new Map<string, SimHost>();
  readonly #ttl: number;
  readonly #ownsStore: boolean;
  readonly #abort = new AbortController();
  /** What the simulated agents last reported, by job id. */
  readonly #reported = new Map<string, JobStatus['state']>();
  #agent: Promise<void> | undefined;
  #inflight = 0;
  #work: Promise<void> = Promise.resolve();

  constructor(options: ClusterSimulatorOptions = {}) {
    this.clock = options.clock ?? new ManualClock(Date.UTC(2026, 0, 1));
    this.#ownsStore = options.store === undefined;
    this.store = options.store ?? new MemoryStore({ clock: this.clock as Clock });
    this.#ttl = options.heartbeatTtlMs ?? 2000;
    const prefix = options.scheduler?.prefix;
    this.cluster = new ClusterState({
      store: this.store,
      clock: this.clock,
      ...(prefix === undefined ? {} : { prefix }),
    });
    this.scheduler = new Scheduler({
      ...options,
      ...options.scheduler,
      store: this.store,
      clock: this.clock,
      hostGraceMs: options.scheduler?.hostGraceMs ?? this.#ttl,
    });
    const hosts =
      typeof options.hosts === 'number' ? generateHosts(options) : (options.hosts ?? []);
    for (const h of hosts) this.#hosts.set(h.id, this.#simHost(h));
  }

  /** The cluster keys. */
  get keys(): ClusterState['keys'] {
    return this.cluster.keys;
  }

  /** Registers the hosts, starts their agents and the scheduler. */
  async start(): Promise<void> {
    for (const host of this.#hosts.values()) await this.#register(host);
    this.#agent = this.#runAgents();
    await this.scheduler.start();
    await this.settle();
  }

  /** Adds a host (its agent registers and heartbeats). */
  async addHost(host: SimulatedHost): Promise<void> {
    const sim = this.#simHost(host);
    this.#hosts.set(host.id, sim);
    await this.#register(sim);
    await this.settle();
  }

  /** Kills a host: its agent stops heartbeating and acting, as if the machine died. */
  async killHost(id: string): Promise<void> {
    const host = this.#host(id);
    host.alive = false;
    // Cut off from the store: its lease is no longer renewed and expires after its TTL.
    host.view.partitioned = true;
    await this.settle();
  }

  /** Restarts a killed host's agent: it registers again (and keeps any operator's drain). */
  async reviveHost(id: string): Promise<void> {
    const host = this.#host(id);
    host.view.partitioned = false;
    host.alive = true;
    await this.#register(host);
    await this.settle();
  }

  /**
   * Drains a host, as an operator would: it gets nothing new, its jobs are moved away (with
   * `deadlineMs`, those still there when it passes are stopped anyway; see `advance`).
   */
  async drainHost(id: string, options: DrainHostOptions = {}): Promise<void> {
    await this.cluster.drainHost(id, options);
    await this.settle();
  }

  /** Writes the formation's release (a command per process type) if needed, then the formation. */
  async setFormation(formation: Formation): Promise<void> {
    const processes = Object.fromEntries(
      Object.keys(formation.processes).map((type) => [type, { command: `run-${type}` }]),
    );
    await this.cluster.putRelease({
      app: formation.app,
      release: formation.release,
      artifact: { type: 'image', image: 'sim' },
      config: {},
      processes,
      createdAt: 0,
    });
    await this.cluster.setFormation(formation);
    await this.settle();
  }

  /** Removes a formation: its jobs stop. */
  async removeFormation(app: string, release: string): Promise<void> {
    await this.cluster.removeFormation(app, release);
    await this.settle();
  }

  /** Makes a running job crash, as its agent would report it. */
  async crash(jobId: string): Promise<void> {
    const job = (await this.jobs()).find((j) => j.id === jobId);
    if (job === undefined) throw unknown(`job ${jobId}`);
    this.#reported.set(job.id, 'crashed');
    await this.#host(job.hostId).cluster.reportJob(job.hostId, job.id, {
      state: 'crashed',
      exitStatus: 1,
      finishedAt: this.clock.now(),
    });
    await this.settle();
  }

  /** Moves time forward (heartbeats renew, leases expire, backoffs end), then settles. */
  async advance(ms: number): Promise<void> {
    const step = Math.max(1, Math.floor(this.#ttl / 4));
    for (let left = ms; left > 0; left -= step) {
      await this.clock.advance(Math.min(step, left));
      await this.settle();
    }
  }

  /** Waits until the scheduler and the agents have nothing left to do. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      await this.scheduler.idle();
      await this.#work;
      await new Promise((resolve) => setImmediate(resolve));
      // Quiet once a further turn of the event loop brings no new work.
      if (this.#inflight !== 0) continue;
      await this.scheduler.idle();
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#inflight === 0) return;
    }
    throw new SchedulerError(
      SchedulerErrorCodes.NOT_SETTLED,
      'the simulated cluster did not settle after 1000 rounds: something keeps changing it',
    );
  }

  /** Every job, with its status and derived state. */
  async jobs(): Promise<SimulatedJob[]> {
    return (await this.cluster.jobs()).map((j) => ({
      ...j.record,
      state: j.state,
      status: j.status,
    }));
  }

  /** Every host, with its derived state. */
  async hosts(): Promise<HostView[]> {
    return this.cluster.hosts();
  }

  /** Hosts whose jobs hold more than their capacity (should always be empty). */
  async overcommitted(): Promise<{ hostId: string; cpu: number; memory: number }[]> {
    const used = new Map<string, { cpu: number; memory: number }>();
    for (const j of await this.jobs()) {
      if (j.state === 'down' || j.state === 'crashed') continue;
      const u = used.get(j.hostId) ?? { cpu: 0, memory: 0 };
      used.set(j.hostId, { cpu: u.cpu + j.resources.cpu, memory: u.memory + j.resources.memory });
    }
    const out: { hostId: string; cpu: number; memory: number }[] = [];
    for (const h of await this.hosts()) {
      const u = used.get(h.record.id);
      if (u !== undefined && (u.cpu > h.record.capacity.cpu || u.memory > h.record.capacity.memory))
        out.push({ hostId: h.record.id, ...u });
    }
    return out;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.scheduler.close();
    await this.#agent?.catch(() => undefined);
    for (const h of this.#hosts.values()) {
      await h.cluster.close().catch(() => undefined);
      await h.view.close();
    }
    await this.cluster.close();
    if (this.#ownsStore) await this.store.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #simHost(host: SimulatedHost): SimHost {
    const view = new PartitionableStore(this.store, { clock: this.clock });
    const cluster = new ClusterState({ store: view, clock: this.clock, prefix: this.keys.prefix });
    return { host, view, cluster, registration: undefined, alive: true };
  }

  #host(id: string): SimHost {
    const host = this.#hosts.get(id);
    if (host === undefined) throw unknown(`host ${id}`);
    return host;
  }

  async #register(host: SimHost): Promise<void> {
    host.registration = await host.cluster.registerHost(
      {
        id: host.host.id,
        addr: `sim://${host.host.id}`,
        capacity: host.host.capacity,
        ...(host.host.tags === undefined ? {} : { tags: host.host.tags }),
      },
      { ttlMs: this.#ttl },
    );
  }

  /** One watcher standing in for every host agent. */
  async #runAgents(): Promise<void> {
    const signal = this.#abort.signal;
    try {
      for await (const item of listAndWatch(this.store, this.keys.jobs, {
        signal,
        clock: this.clock,
      })) {
        const kvs =
          item.type === 'snapshot' ? item.kvs : item.event.type === 'put' ? [item.event.kv] : [];
        for (const kv of kvs) this.#act(JSON.parse(kv.value) as JobRecord);
        if (item.type === 'change' && item.event.type === 'delete') {
          const where = this.keys.parse(item.event.kv.key);
          if (where?.kind === 'job') this.#reported.delete(where.jobId);
        }
      }
    } catch {
      // closed
    }
  }

  #act(job: JobRecord): void {
    const host = this.#hosts.get(job.hostId);
    if (host === undefined || !host.alive) return;
    const last = this.#reported.get(job.id);
    let status: Omit<JobStatus, 'updatedAt'> | undefined;
    if (job.desired === 'stop' && last !== 'down' && last !== 'crashed')
      status = { state: 'down', exitStatus: 0, finishedAt: this.clock.now() };
    else if (job.desired === 'run' && last === undefined)
      status = { state: 'up', startedAt: this.clock.now() };
    if (status === undefined) return;
    this.#reported.set(job.id, status.state);
    const report = status;
    this.#inflight++;
    this.#work = this.#work.then(async () => {
      try {
        await host.cluster.reportJob(job.hostId, job.id, report);
      } catch {
        // the store closed, or the host was cut off
      } finally {
        this.#inflight--;
      }
    });
  }
}

function unknown(what: string): SchedulerError {
  return new SchedulerError(SchedulerErrorCodes.UNKNOWN_ID, `the simulated cluster has no ${what}`);
}

function generateHosts(options: ClusterSimulatorOptions): SimulatedHost[] {
  const zones = options.zones ?? ['a', 'b', 'c'];
  const sizes = options.sizes ?? [
    { cpu: 4000, memory: 16384 },
    { cpu: 8000, memory: 32768 },
    { cpu: 16000, memory: 65536 },
  ];
  const n = options.hosts as number;
  const next = rng(options.seed ?? 0);
  return Array.from({ length: n }, (_, i) => ({
    id: `host-${i}`,
    tags: { zone: zones[i % zones.length] as string },
    capacity: sizes[Math.floor(next() * sizes.length)] as Resources,
  }));
}
