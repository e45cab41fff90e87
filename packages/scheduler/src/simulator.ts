import { type Clock, ManualClock } from '@flotilla/core';
import { type Lease, MemoryStore, type Store } from '@flotilla/store';
import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { rng } from './internal/rng.js';
import { ClusterKeys } from './keys.js';
import type { PlannerOptions } from './planner.js';
import type { HostRecord, JobRecord } from './records.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import type { Formation, Resources } from './types.js';

/** Options of {@link ClusterSimulator}. */
export interface ClusterSimulatorOptions extends PlannerOptions {
  /** Hosts to start with: a count (sizes and zones drawn from `seed`) or the records. */
  readonly hosts?: number | readonly HostRecord[];
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
  record: HostRecord;
  lease: Lease | undefined;
  alive: boolean;
}

/**
 * A cluster in a box for tests and experiments: simulated host agents (heartbeat leases, jobs
 * taken from `pending` to `up`, stopped on request, crashes on demand) around the real
 * {@link Scheduler}, on a MemoryStore driven by a ManualClock, deterministic for a seed.
 *
 * @example
 * ```ts
 * const sim = new ClusterSimulator({ hosts: 20, seed: 1 });
 * await sim.start();
 * await sim.setFormation({ app: 'demo', release: 'v1', processes: { web: { count: 10, resources } } });
 * await sim.settle();
 * await sim.killHost('host-3');
 * await sim.advance(3000); // heartbeat lapses: host down, its jobs placed elsewhere
 * ```
 */
export class ClusterSimulator implements AsyncDisposable {
  readonly store: Store;
  readonly clock: ManualClock;
  readonly scheduler: Scheduler;
  readonly keys: ClusterKeys;
  readonly #hosts = new Map<string, SimHost>();
  readonly #ttl: number;
  readonly #ownsStore: boolean;
  readonly #abort = new AbortController();
  #agent: Promise<void> | undefined;
  #inflight = 0;
  #work: Promise<void> = Promise.resolve();

  constructor(options: ClusterSimulatorOptions = {}) {
    this.clock = options.clock ?? new ManualClock(Date.UTC(2026, 0, 1));
    this.#ownsStore = options.store === undefined;
    this.store = options.store ?? new MemoryStore({ clock: this.clock as Clock });
    this.#ttl = options.heartbeatTtlMs ?? 2000;
    this.keys = new ClusterKeys(options.scheduler?.prefix);
    this.scheduler = new Scheduler({
      ...options,
      ...options.scheduler,
      store: this.store,
      clock: this.clock,
      hostGraceMs: options.scheduler?.hostGraceMs ?? this.#ttl,
    });
    const records =
      typeof options.hosts === 'number' ? generateHosts(options) : (options.hosts ?? []);
    for (const r of records) this.#hosts.set(r.id, { record: r, lease: undefined, alive: true });
  }

  /** Registers the hosts, starts their agents and the scheduler. */
  async start(): Promise<void> {
    for (const host of this.#hosts.values()) await this.#register(host);
    this.#agent = this.#runAgents();
    await this.scheduler.start();
    await this.settle();
  }

  /** Adds a host (its agent registers and heartbeats). */
  async addHost(record: HostRecord): Promise<void> {
    const host: SimHost = { record, lease: undefined, alive: true };
    this.#hosts.set(record.id, host);
    await this.#register(host);
    await this.settle();
  }

  /** Kills a host: its agent stops heartbeating and acting, as if the machine died. */
  async killHost(id: string): Promise<void> {
    const host = this.#hosts.get(id);
    if (host === undefined) throw unknown(`host ${id}`);
    host.alive = false;
    // The lease is no longer renewed: the store expires it after its TTL.
    host.lease = undefined;
    await this.settle();
  }

  /** Marks a host draining: it gets nothing new, its jobs are moved away. */
  async drainHost(id: string): Promise<void> {
    const host = this.#hosts.get(id);
    if (host === undefined) throw unknown(`host ${id}`);
    host.record = { ...host.record, state: 'draining' };
    await this.store.put(this.keys.host(id), JSON.stringify(host.record));
    await this.settle();
  }

  /** Declares (or replaces) a formation. */
  async setFormation(formation: Formation): Promise<void> {
    await this.store.put(
      this.keys.formation(formation.app, formation.release),
      JSON.stringify(formation),
    );
    await this.settle();
  }

  /** Removes a formation: its jobs stop. */
  async removeFormation(app: string, release: string): Promise<void> {
    await this.store.delete(this.keys.formation(app, release));
    await this.settle();
  }

  /** Makes a running job crash, as its agent would report it. */
  async crash(jobId: string): Promise<void> {
    const job = (await this.jobs()).find((j) => j.id === jobId);
    if (job === undefined) throw unknown(`job ${jobId}`);
    await this.store.put(
      this.keys.job(job.hostId, job.id),
      JSON.stringify({ ...job, state: 'crashed', exitStatus: 1 }),
    );
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

  /** Every job record in the store. */
  async jobs(): Promise<JobRecord[]> {
    const res = await this.store.list(this.keys.jobs);
    return res.kvs.map((kv) => JSON.parse(kv.value) as JobRecord);
  }

  /** Every host record in the store. */
  async hosts(): Promise<HostRecord[]> {
    const res = await this.store.list(this.keys.hosts);
    return res.kvs.map((kv) => JSON.parse(kv.value) as HostRecord);
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
      const u = used.get(h.id);
      if (u !== undefined && (u.cpu > h.capacity.cpu || u.memory > h.capacity.memory))
        out.push({ hostId: h.id, ...u });
    }
    return out;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.scheduler.close();
    await this.#agent?.catch(() => undefined);
    if (this.#ownsStore) await this.store.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #register(host: SimHost): Promise<void> {
    await this.store.put(this.keys.host(host.record.id), JSON.stringify(host.record));
    const lease = await this.store.grant(this.#ttl);
    await this.store.put(this.keys.heartbeat(host.record.id), String(this.clock.now()), {
      lease: lease.id,
    });
    host.lease = lease;
    this.#keepAlive(host, lease);
  }

  /** Renews the heartbeat on the manual clock while the host lives. */
  #keepAlive(host: SimHost, lease: Lease): void {
    const tick = (): void => {
      if (!host.alive || host.lease !== lease || this.#abort.signal.aborted) return;
      lease.renew().then(
        () => this.clock.setTimeout(tick, this.#ttl / 3),
        () => undefined,
      );
    };
    this.clock.setTimeout(tick, this.#ttl / 3);
  }

  /** One watcher standing in for every host agent. */
  async #runAgents(): Promise<void> {
    const signal = this.#abort.signal;
    try {
      for await (const ev of this.store.watch(this.keys.jobs, { signal })) {
        if (ev.type !== 'put') continue;
        const job = JSON.parse(ev.kv.value) as JobRecord;
        const host = this.#hosts.get(job.hostId);
        if (host === undefined || !host.alive) continue;
        let next: JobRecord | undefined;
        if (job.desired === 'stop' && job.state !== 'down')
          next = { ...job, state: 'down', exitStatus: 0 };
        else if (job.desired === 'run' && (job.state === 'pending' || job.state === 'starting')) {
          next = { ...job, state: 'up', startedAt: this.clock.now() };
        }
        if (next === undefined) continue;
        const key = ev.kv.key;
        const value = JSON.stringify(next);
        const rev = ev.kv.modRevision;
        this.#inflight++;
        this.#work = this.#work.then(async () => {
          try {
            await this.store.txn({
              compare: [{ key, target: 'modRevision', op: '==', value: rev }],
              success: [{ op: 'put', key, value }],
            });
          } catch {
            // the store closed
          } finally {
            this.#inflight--;
          }
        });
      }
    } catch {
      // closed
    }
  }
}

function unknown(what: string): SchedulerError {
  return new SchedulerError(SchedulerErrorCodes.UNKNOWN_ID, `the simulated cluster has no ${what}`);
}

function generateHosts(options: ClusterSimulatorOptions): HostRecord[] {
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
    state: 'up' as const,
  }));
}
