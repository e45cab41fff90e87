import { describe, expect, it } from 'vitest';
import { ClusterKeys, ClusterState, type Formation, type JobRecord } from '@flotilla/cluster';
import { ManualClock } from '@flotilla/core';
import { MemoryStore, type Store, type TxnResult } from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { interceptStore, placesJobs } from '../../../test/support/intercept-store.js';
import { Scheduler, type CrashLoop, type PlanReport } from './scheduler.js';
import { ClusterSimulator, type SimulatedJob } from './simulator.js';
import { declare } from '../../../test/support/scheduler-probes.js';

const web = (count: number, extra: Partial<Formation['processes'][string]> = {}): Formation => ({
  app: 'demo',
  release: 'v1',
  processes: { web: { count, resources: { cpu: 500, memory: 512 }, ...extra } },
});

const running = (jobs: SimulatedJob[], filter: Partial<JobRecord> = {}): SimulatedJob[] =>
  jobs.filter(
    (j) =>
      ['pending', 'starting', 'up'].includes(j.state) &&
      Object.entries(filter).every(([k, v]) => (j as unknown as Record<string, unknown>)[k] === v),
  );

describe('Scheduler service (simulated cluster)', () => {
  it('runs a formation, scales it up and down, numbers its jobs, and leaves a stop to the agent', async () => {
    await using sim = new ClusterSimulator({ hosts: 6, seed: 1 });
    await sim.start();
    await sim.setFormation(web(4));
    let jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(4);
    expect(jobs.every((j) => j.state === 'up')).toBe(true);
    expect(new Set(jobs.map((j) => j.hostId)).size).toBe(4); // spread: one per host
    expect(jobs.map((j) => j.index).sort()).toEqual([1, 2, 3, 4]); // web.1 .. web.4

    await sim.setFormation(web(6));
    jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(6);
    expect(jobs.map((j) => j.index).sort()).toEqual([1, 2, 3, 4, 5, 6]);

    await sim.setFormation(web(2));
    jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(2);
    // Stopped jobs went stopping -> down (agent) -> collected with their status (scheduler).
    expect(jobs).toHaveLength(2);
    expect((await sim.store.list(sim.keys.jobStatuses)).kvs).toHaveLength(2);
    // Scaling up again reuses the freed numbers.
    await sim.setFormation(web(4));
    expect((await sim.jobs()).map((j) => j.index).sort()).toEqual([1, 2, 3, 4]);
    expect(await sim.overcommitted()).toEqual([]);
  });

  it('replaces the jobs of a killed host elsewhere once its heartbeat lapses', async () => {
    await using sim = new ClusterSimulator({ hosts: 5, seed: 2, heartbeatTtlMs: 2000 });
    const down: string[] = [];
    sim.scheduler.on('host-down', (id) => down.push(id));
    await sim.start();
    await sim.setFormation(web(5));
    const victim = (await sim.jobs())[0]?.hostId as string;
    await sim.killHost(victim);
    await sim.advance(1000);
    expect(down).toEqual([]); // not yet: the TTL has not run out
    await sim.advance(2000);
    expect(down).toEqual([victim]);
    const jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(5);
    expect(jobs.some((j) => j.hostId === victim)).toBe(false);
    expect((await sim.hosts()).find((h) => h.record.id === victim)?.state).toBe('down');
    // The replacement takes the lost job's number: still web.1 .. web.5, not web.6.
    expect(jobs.map((j) => j.index).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('moves jobs off a draining host, and a restarted agent does not undo the drain', async () => {
    await using sim = new ClusterSimulator({ hosts: 4, seed: 3 });
    await sim.start();
    await sim.setFormation(web(3));
    const host = (await sim.jobs())[0]?.hostId as string;
    await sim.drainHost(host);
    let jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(3);
    expect(jobs.some((j) => j.hostId === host)).toBe(false);
    // The agent dies and comes back: it registers again, the operator's drain stays.
    await sim.killHost(host);
    await sim.advance(3000);
    await sim.reviveHost(host);
    expect((await sim.hosts()).find((h) => h.record.id === host)?.state).toBe('draining');
    await sim.setFormation(web(4));
    jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(4);
    expect(jobs.some((j) => j.hostId === host)).toBe(false);
  });

  it('keeps the jobs of an ineligible host but places nothing new there', async () => {
    await using sim = new ClusterSimulator({ hosts: 3, seed: 8 });
    await sim.start();
    await sim.setFormation(web(3));
    const host = (await sim.jobs())[0]?.hostId as string;
    await sim.cluster.setEligible(host, false, { reason: 'kernel upgrade tonight' });
    await sim.settle();
    expect((await sim.hosts()).find((h) => h.record.id === host)?.state).toBe('ineligible');
    expect(running(await sim.jobs(), { hostId: host })).toHaveLength(1);
    await sim.setFormation(web(9));
    const jobs = running(await sim.jobs());
    expect(jobs).toHaveLength(9);
    expect(jobs.filter((j) => j.hostId === host)).toHaveLength(1);
  });

  it('restarts crashed jobs with backoff, reports a crash loop, and resets after quiet time', async () => {
    await using sim = new ClusterSimulator({
      hosts: 3,
      seed: 4,
      scheduler: {
        restartBackoffMs: [0, 10_000, 30_000],
        crashLoopAfter: 3,
        crashResetMs: 300_000,
      },
    });
    const loops: CrashLoop[] = [];
    sim.scheduler.on('crashloop', (l) => loops.push(l));
    await sim.start();
    await sim.setFormation(web(1));
    const up = async (): Promise<SimulatedJob[]> =>
      (await sim.jobs()).filter((j) => j.state === 'up');
    const first = async (): Promise<string> => ((await up())[0] as SimulatedJob).id;

    // 1st crash: restarted at once, under the same number.
    await sim.crash(await first());
    expect((await up()).map((j) => j.index)).toEqual([1]);
    // 2nd crash: 10 s backoff.
    await sim.crash(await first());
    expect(await up()).toHaveLength(0);
    await sim.advance(9000);
    expect(await up()).toHaveLength(0);
    await sim.advance(1500);
    expect(await up()).toHaveLength(1);
    // 3rd crash: 30 s, and reported.
    await sim.crash(await first());
    expect(loops).toEqual([
      { app: 'demo', release: 'v1', type: 'web', crashes: 3, nextRestartInMs: 30_000 },
    ]);
    await sim.advance(29_000);
    expect(await up()).toHaveLength(0);
    await sim.advance(1500);
    expect(await up()).toHaveLength(1);
    // Five quiet minutes later, a crash is restarted at once again.
    await sim.advance(300_000);
    await sim.crash(await first());
    expect(await up()).toHaveLength(1);
  }, 60_000);

  it('keeps replicas of a new release beside the old one, each reconciled on its own', async () => {
    await using sim = new ClusterSimulator({ hosts: 6, seed: 5 });
    await sim.start();
    await sim.setFormation(web(3));
    await sim.setFormation({ ...web(3), release: 'v2' });
    expect(running(await sim.jobs(), { release: 'v1' })).toHaveLength(3);
    expect(running(await sim.jobs(), { release: 'v2' })).toHaveLength(3);
    await sim.removeFormation('demo', 'v1');
    const jobs = await sim.jobs();
    expect(running(jobs, { release: 'v1' })).toHaveLength(0);
    expect(running(jobs, { release: 'v2' })).toHaveLength(3);
  });

  it('says what it cannot place and places it when capacity appears', async () => {
    await using sim = new ClusterSimulator({ hosts: [], seed: 6 });
    const reports: PlanReport[] = [];
    sim.scheduler.on('plan', (r) => reports.push(r));
    await sim.start();
    await sim.setFormation(web(2));
    expect(reports.at(-1)?.unplaced).toEqual([
      expect.objectContaining({ count: 2, reason: 'no-matching-host' }),
    ]);
    await sim.addHost({ id: 'late', tags: { zone: 'a' }, capacity: { cpu: 4000, memory: 8192 } });
    expect(running(await sim.jobs())).toHaveLength(2);
  });

  it.each([
    ['watching job records', false],
    ['leaving its own job records out of its watch (the default; read as it lists)', true],
  ])(
    'reports every record it cannot read, %s, keeps running, and schedules the rest',
    async (_, watchOwnJobs) => {
      await using sim = new ClusterSimulator({ hosts: 2, seed: 7, scheduler: { watchOwnJobs } });
      const invalid: [string, string][] = [];
      sim.scheduler.on('invalid-record', (key, err) => invalid.push([key, err.code]));
      // A sole scheduler that leaves job records out of its watch reads those written by hand
      // when it lists them: here, as it starts.
      const writeJobs = async (): Promise<void> => {
        await sim.store.put(bad.slashJob, '{}');
        await sim.store.put(
          bad.unknownDesired,
          JSON.stringify({
            id: 'web.x',
            app: 'demo',
            release: 'v1',
            type: 'web',
            hostId: 'host-0',
            index: 1,
            resources: { cpu: 1, memory: 1 },
            desired: 'maybe',
            createdAt: 0,
          }),
        );
      };
      const k = sim.keys;
      const bad = {
        // Negative count, and a formation that would have made 1e8 jobs of nothing.
        negative: k.formation('bad', 'v1'),
        huge: k.formation('huge', 'v1'),
        notJson: k.host('junk'),
        // Ids that cannot round-trip through their keys.
        slashType: `${k.formations}slash/v1`,
        slashJob: `${k.jobs}host-0/web/1`,
        unknownDesired: k.job('host-0', 'web.x'),
      };
      if (watchOwnJobs) await writeJobs();
      await sim.start();
      await sim.store.put(
        bad.negative,
        '{"app":"bad","release":"v1","processes":{"web":{"count":-1}}}',
      );
      await sim.store.put(
        bad.huge,
        JSON.stringify({
          app: 'huge',
          release: 'v1',
          processes: { web: { count: 1e8, resources: { cpu: 0, memory: 0 } } },
        }),
      );
      await sim.store.put(bad.notJson, 'not json');
      await sim.store.put(
        bad.slashType,
        JSON.stringify({
          app: 'slash',
          release: 'v1',
          processes: { 'a/b': { count: 1, resources: { cpu: 1, memory: 1 } } },
        }),
      );
      if (!watchOwnJobs) await writeJobs();
      await sim.settle();
      expect(invalid.map(([key]) => key).sort()).toEqual(Object.values(bad).sort());
      expect(new Set(invalid.map(([, code]) => code))).toEqual(
        new Set(['FLOTILLA_CLUSTER_INVALID_RECORD']),
      );
      expect(sim.scheduler.state).toBe('running');
      await sim.setFormation(web(1));
      expect(running(await sim.jobs())).toHaveLength(1);
      // The writer refuses such ids before anything is written.
      await expect(
        sim.cluster.setFormation({
          app: 'demo',
          release: 'v1',
          processes: { 'a/b': { count: 1, resources: { cpu: 1, memory: 1 } } },
        }),
      ).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_INVALID_RECORD' });
      expect(() => sim.keys.job('host/0', 'web.1')).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_CLUSTER_INVALID_ID' }),
      );
    },
  );

  it('refuses bad options with a coded error', () => {
    const store = new MemoryStore();
    for (const bad of [
      { hostGraceMs: -1 },
      { hostGraceMs: Number.NaN },
      { commitConcurrency: 0 },
      { restartBackoffMs: [] },
      { crashLoopAfter: 0.5 },
      { id: 'a/b' },
      { strategy: 'random' },
    ]) {
      expect(() => new Scheduler({ store, ...(bad as object) })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }),
      );
    }
  });
});

async function seedHosts(
  store: Store,
  clock: ManualClock,
  hosts: { id: string; tags?: Record<string, string>; capacity: { cpu: number; memory: number } }[],
): Promise<ClusterState> {
  const cluster = new ClusterState({ store, clock });
  for (const h of hosts)
    await cluster.registerHost({ ...h, addr: `test://${h.id}` }, { ttlMs: 600_000 });
  return cluster;
}

describe('resynchronising', () => {
  it('lists everything again when its watch falls behind a real compaction, and catches up', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock, historyLimit: 20 });
    const view = new PartitionableStore(memory, { clock });
    const cluster = await seedHosts(memory, clock, [
      { id: 'h1', capacity: { cpu: 2000, memory: 4096 } },
      { id: 'h2', capacity: { cpu: 2000, memory: 4096 } },
    ]);
    const scheduler = new Scheduler({ store: view, clock });
    const errors: unknown[] = [];
    scheduler.on('error', (e) => errors.push(e));
    await scheduler.start();
    // The scheduler is cut off: its watch breaks, and it backs off.
    view.partitioned = true;
    // Meanwhile a formation appears, a host goes away, and the store moves far past its history.
    await declare(cluster, web(2));
    const h2 = (await cluster.hosts()).find((h) => h.record.id === 'h2');
    await memory.delete(cluster.keys.heartbeat('h2'));
    await memory.delete(cluster.keys.host('h2'));
    for (let i = 0; i < 30; i++) await memory.put('elsewhere/noise', String(i));
    expect(h2?.state).toBe('up');
    expect((await memory.list(cluster.keys.jobs)).kvs).toHaveLength(0);
    // Back: watching from where it was fails as compacted, so it lists again and applies the difference.
    view.partitioned = false;
    const placed = new Promise<PlanReport>((resolve) => scheduler.once('plan', resolve));
    await clock.advance(5000);
    expect((await placed).started).toBe(2);
    await scheduler.idle();
    const jobs = await cluster.jobs();
    expect(jobs.map((j) => j.record.hostId)).toEqual(['h1', 'h1']);
    expect(scheduler.state).toBe('running');
    expect(errors.length).toBeGreaterThan(0); // it did lose the store for a while
    await scheduler.close();
    await cluster.close();
    await memory.close();
  });
});

/** A store whose transactions take a little real time, so that concurrent commits interleave. */
function withLatency(store: Store, ms: number): Store {
  return interceptStore(store, {
    txn: async (_txn, next) => {
      await new Promise((r) => setTimeout(r, ms));
      return next();
    },
  });
}

/** Resolves once `count` job records have been put (whoever put them), within 10 s. */
async function jobsPlaced(store: Store, cluster: ClusterState, count: number): Promise<void> {
  const seen = new Set<string>();
  for await (const ev of store.watch(cluster.keys.jobs, {
    fromRevision: 1,
    signal: AbortSignal.timeout(10_000),
  })) {
    if (ev.type === 'put') seen.add(ev.kv.key);
    if (seen.size >= count) return;
  }
}

describe('several schedulers on one store', () => {
  it('never over-commit a host nor over-place a formation, and together place what fits', async () => {
    /** One race on a fresh store; returns the conflicts the schedulers saw. */
    const race = async (): Promise<number> => {
      const clock = new ManualClock(Date.UTC(2026, 0, 1));
      const memory = new MemoryStore({ clock });
      const store = withLatency(memory, 2);
      const cluster = await seedHosts(
        memory,
        clock,
        Array.from({ length: 8 }, (_, i) => ({
          id: `h${i}`,
          tags: { zone: `z${i % 2}` },
          capacity: { cpu: 2000, memory: 4096 },
        })),
      );
      // 6 apps x 6 jobs of 500m: 36 wanted, 8 hosts x 4 = 32 fit. Declared before the
      // schedulers start, so that they all race from their first plan, while still joining.
      for (const app of ['a', 'b', 'c', 'd', 'e', 'f']) await declare(cluster, { ...web(6), app });
      const schedulers = [1, 2, 3].map(
        (i) => new Scheduler({ store, clock, id: `s${i}`, seed: i, hostGraceMs: 60_000 }),
      );
      let conflicts = 0;
      for (const s of schedulers) s.on('plan', (r) => (conflicts += r.conflicts));
      await Promise.all(schedulers.map((s) => s.start()));
      await jobsPlaced(memory, cluster, 32);
      await Promise.all(schedulers.map((s) => s.idle()));
      const jobs = await cluster.jobs();
      const perHost = new Map<string, { cpu: number; memory: number }>();
      for (const { record: j } of jobs) {
        const u = perHost.get(j.hostId) ?? { cpu: 0, memory: 0 };
        perHost.set(j.hostId, {
          cpu: u.cpu + j.resources.cpu,
          memory: u.memory + j.resources.memory,
        });
      }
      for (const [, u] of perHost) {
        expect(u.cpu).toBeLessThanOrEqual(2000);
        expect(u.memory).toBeLessThanOrEqual(4096);
      }
      expect(jobs).toHaveLength(32);
      const perApp = new Map<string, number>();
      for (const { record: j } of jobs) perApp.set(j.app, (perApp.get(j.app) ?? 0) + 1);
      for (const [, n] of perApp) expect(n).toBeLessThanOrEqual(6);
      expect(schedulers.map((s) => s.stats.members)).toEqual([
        ['s1', 's2', 's3'],
        ['s1', 's2', 's3'],
        ['s1', 's2', 's3'],
      ]);
      await Promise.all(schedulers.map((s) => s.close()));
      await cluster.close();
      await memory.close();
      return conflicts;
    };
    // A race in which the schedulers happened not to collide proves nothing: run another (at
    // most 3), every one checked in full.
    let conflicts = 0;
    for (let round = 0; round < 3 && conflicts === 0; round++) conflicts = await race();
    expect(conflicts).toBeGreaterThan(0); // they did race, and the commits caught it
  });

  it('refuses to run two schedulers with one id, and lets a restarted one take its id back', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const first = new PartitionableStore(memory, { clock });
    const a = new Scheduler({ store: first, clock, id: 'same', memberTtlMs: 1000 });
    await a.start();
    const twin = new Scheduler({ store: memory, clock, id: 'same', memberTtlMs: 1000 });
    const refused = twin.start().catch((err: unknown) => err);
    for (let t = 0; t < 2500; t += 250) await clock.advance(250);
    expect(await refused).toMatchObject({ code: 'FLOTILLA_SCHEDULER_ID_IN_USE' });
    // The first one dies without leaving (cut off): its key expires, and a restart joins.
    first.partitioned = true;
    const restarted = new Scheduler({ store: memory, clock, id: 'same', memberTtlMs: 1000 });
    const joined = restarted.start();
    for (let t = 0; t < 2000; t += 250) await clock.advance(250);
    await joined;
    expect(restarted.stats.members).toEqual(['same']);
    await restarted.close();
    await a.close();
    await twin.close();
    await memory.close();
  });

  it("hands a closed scheduler's apps to the others", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const cluster = await seedHosts(memory, clock, [
      { id: 'h', capacity: { cpu: 64_000, memory: 65_536 } },
    ]);
    const a = new Scheduler({ store: memory, clock, id: 'a' });
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await a.start();
    await b.start();
    await a.close();
    await b.idle();
    expect(b.stats.members).toEqual(['b']);
    for (const app of ['p', 'q', 'r', 's']) await declare(cluster, { ...web(2), app });
    await b.idle();
    expect(await cluster.jobs()).toHaveLength(8);
    await b.close();
    await cluster.close();
    await memory.close();
  });
});

// The keys are the cluster package's; the scheduler re-exports none of them.
it('leaves the cluster layout to @flotilla/cluster', async () => {
  const mod = (await import('./index.js')) as Record<string, unknown>;
  expect(mod.ClusterKeys).toBeUndefined();
  expect(new ClusterKeys().jobs).toBe('cluster/jobs/');
});

/**
 * A transaction held in flight until its call's signal aborts (as a store gives up a call),
 * then rejected with the abort's reason; `held` is called once it is held.
 */
function heldUntilAborted(
  options: Parameters<Store['txn']>[1],
  held: () => void,
): Promise<TxnResult> {
  const signal = options?.signal;
  if (signal === undefined) throw new Error('the commit passed no signal');
  held();
  return new Promise((_, reject) =>
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
  );
}

/** Expects each host's allocation record to count the jobs placed on it. */
async function expectAllocsCount(
  memory: MemoryStore,
  cluster: ClusterState,
  jobs: readonly { record: JobRecord }[],
  hosts: readonly string[],
): Promise<void> {
  for (const h of hosts) {
    const alloc = JSON.parse((await memory.get(cluster.keys.alloc(h)))?.value ?? '{}') as {
      jobs: number;
    };
    expect(alloc.jobs).toBe(jobs.filter((j) => j.record.hostId === h).length);
  }
}

describe('committing a plan', () => {
  /**
   * Hosts (`h1` alone unless told) each with room for 600 small jobs, and a scheduler recording
   * its plan reports.
   */
  const bigHosts = async (
    intercept?: (store: MemoryStore, cluster: ClusterState) => Store,
    hosts: readonly string[] = ['h1'],
  ): Promise<{
    memory: MemoryStore;
    cluster: ClusterState;
    scheduler: Scheduler;
    reports: PlanReport[];
  }> => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const cluster = await seedHosts(
      memory,
      clock,
      hosts.map((id) => ({ id, capacity: { cpu: 6000, memory: 9600 } })),
    );
    const store = intercept?.(memory, cluster) ?? withLatency(memory, 1);
    const scheduler = new Scheduler({ store, clock, hostGraceMs: 60_000 });
    const reports: PlanReport[] = [];
    scheduler.on('plan', (r) => reports.push(r));
    await scheduler.start();
    return { memory, cluster, scheduler, reports };
  };
  const small = (count: number): Formation => web(count, { resources: { cpu: 10, memory: 16 } });

  it("commits a host's starts beyond one transaction in one cycle, in full transactions", async () => {
    const { memory, cluster, scheduler, reports } = await bigHosts();
    await declare(cluster, small(300));
    await scheduler.idle();
    // One plan, committed in full: 300 jobs in ceil(300 / 124) transactions of at most 128
    // ops (the epoch and member compares, the host's compare and allocation). Before, a host
    // took at most 60 starts a cycle: five plans, 300 starts in five or more transactions.
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ started: 300, conflicts: 0, transactions: 3 });
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(300);
    expect(new Set(jobs.map((j) => j.record.index)).size).toBe(300);
    expect(Math.max(...jobs.map((j) => j.record.index))).toBe(300);
    const alloc = await memory.get(cluster.keys.alloc('h1'));
    expect(JSON.parse(alloc?.value ?? '{}')).toMatchObject({ jobs: 300, cpu: 3000, memory: 4800 });
    await scheduler.close();
    await cluster.close();
  });

  it('two schedulers chaining starts onto the same two hosts: no host over capacity, every app its count', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const store = withLatency(memory, 1);
    // Room for 1000 jobs of 10m in all; 6 apps want 150 each (900): each host takes hundreds,
    // several transactions' worth, while the other scheduler commits onto it too.
    const cluster = await seedHosts(memory, clock, [
      { id: 'h1', capacity: { cpu: 5000, memory: 8000 } },
      { id: 'h2', capacity: { cpu: 5000, memory: 8000 } },
    ]);
    const apps = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const app of apps) await declare(cluster, { ...small(150), app });
    const schedulers = [1, 2].map(
      (i) => new Scheduler({ store, clock, id: `s${i}`, seed: i, hostGraceMs: 60_000 }),
    );
    await Promise.all(schedulers.map((s) => s.start()));
    await jobsPlaced(memory, cluster, 900);
    await Promise.all(schedulers.map((s) => s.idle()));
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(900);
    for (const app of apps) {
      const mine = jobs.filter((j) => j.record.app === app);
      expect(mine).toHaveLength(150);
      expect(new Set(mine.map((j) => j.record.index)).size).toBe(150);
    }
    for (const h of ['h1', 'h2']) {
      const on = jobs.filter((j) => j.record.hostId === h);
      expect(on.reduce((a, j) => a + j.record.resources.cpu, 0)).toBeLessThanOrEqual(5000);
    }
    await expectAllocsCount(memory, cluster, jobs, ['h1', 'h2']);
    await Promise.all(schedulers.map((s) => s.close()));
    await cluster.close();
  });

  it('a failed transaction retried unit by unit writes the same records it first built', async () => {
    const sizes: number[] = [];
    let bumped = false;
    const { memory, cluster, scheduler, reports } = await bigHosts(
      (memory, cluster) =>
        interceptStore(memory, {
          txn: async (txn, next) => {
            if (placesJobs(txn, cluster.keys.jobs)) {
              sizes.push(txn.success.length);
              if (!bumped) {
                // Both hosts' units share the first transaction; h2's record changes under
                // it, so it fails and each unit is sent again on its own (h1's with its ops
                // built anew).
                bumped = true;
                const host = await memory.get(cluster.keys.host('h2'));
                await memory.put(cluster.keys.host('h2'), host?.value ?? '');
              }
            }
            return next();
          },
        }),
      ['h1', 'h2'],
    );
    await declare(cluster, small(100));
    await scheduler.idle();
    // The shared transaction (50 + 50 jobs and two allocations), h1's unit alone, h2's alone
    // (a conflict), then h2's jobs planned again.
    expect(sizes.slice(0, 3)).toEqual([102, 51, 51]);
    expect(reports.reduce((a, r) => a + r.conflicts, 0)).toBe(50);
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(100);
    expect(new Set(jobs.map((j) => j.record.index)).size).toBe(100);
    for (const j of jobs) {
      const kv = await memory.get(cluster.keys.job(j.record.hostId, j.record.id));
      expect(kv?.value).toBe(JSON.stringify(j.record));
    }
    await expectAllocsCount(memory, cluster, jobs, ['h1', 'h2']);
    await scheduler.close();
    await cluster.close();
  });

  it('close() while a failed transaction is retried unit by unit ends the commit and sends nothing more', async () => {
    let placing = 0;
    let closing = false;
    let sentAfterClose = 0;
    let held: () => void = () => undefined;
    const retrying = new Promise<void>((resolve) => (held = resolve));
    const { cluster, scheduler } = await bigHosts(
      (memory, cluster) =>
        interceptStore(memory, {
          txn: async (txn, next, options) => {
            if (!placesJobs(txn, cluster.keys.jobs)) return next();
            if (closing) sentAfterClose++;
            placing++;
            if (placing === 1) {
              // The shared transaction fails (h2 changed under it)...
              const host = await memory.get(cluster.keys.host('h2'));
              await memory.put(cluster.keys.host('h2'), host?.value ?? '');
              return next();
            }
            if (placing > 2) return next();
            // ...and the first unit's retry on its own is in flight when the scheduler closes.
            return heldUntilAborted(options, held);
          },
        }),
      ['h1', 'h2'],
    );
    await declare(cluster, small(100));
    await retrying;
    closing = true;
    await scheduler.close();
    expect(scheduler.state).toBe('stopped');
    expect(sentAfterClose).toBe(0);
    expect(placing).toBe(2);
    expect(await cluster.jobs()).toHaveLength(0);
    await cluster.close();
  });

  it("close() while a host's next unit waits on one in flight ends the commit and sends nothing more", async () => {
    let sent = 0;
    let closing = false;
    let sentAfterClose = 0;
    let held: () => void = () => undefined;
    const inFlight = new Promise<void>((resolve) => (held = resolve));
    const { cluster, scheduler } = await bigHosts((memory, cluster) =>
      interceptStore(memory, {
        txn: async (txn, next, options) => {
          if (!placesJobs(txn, cluster.keys.jobs)) return next();
          if (closing) sentAfterClose++;
          if (++sent > 1) return next();
          // The first unit of the host's chain of three: held until the scheduler gives up on
          // it (as a store does when the call's signal aborts). The other workers have nothing
          // to send but the host's rest, which waits for this unit to land.
          return heldUntilAborted(options, held);
        },
      }),
    );
    await declare(cluster, small(300));
    await inFlight;
    closing = true;
    await scheduler.close();
    expect(scheduler.state).toBe('stopped');
    expect(sentAfterClose).toBe(0);
    expect(sent).toBe(1);
    expect(await cluster.jobs()).toHaveLength(0);
    await cluster.close();
  });

  it("plans a host's remaining starts again when a unit in its chain conflicts, placing each job once", async () => {
    let placing = 0;
    const { memory, cluster, scheduler, reports } = await bigHosts((memory, cluster) =>
      interceptStore(memory, {
        txn: async (txn, next) => {
          // The second transaction of the chain: the host's record changes under it.
          if (txn.success.some((op) => op.op === 'put' && op.key.startsWith(cluster.keys.jobs)))
            if (++placing === 2) {
              const host = await memory.get(cluster.keys.host('h1'));
              await memory.put(cluster.keys.host('h1'), host?.value ?? '');
            }
          return next();
        },
      }),
    );
    await declare(cluster, small(300));
    await scheduler.idle();
    expect(reports.reduce((a, r) => a + r.conflicts, 0)).toBe(124);
    expect(reports.reduce((a, r) => a + r.started, 0)).toBe(300);
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(300);
    expect(new Set(jobs.map((j) => j.record.index)).size).toBe(300);
    const alloc = await memory.get(cluster.keys.alloc('h1'));
    expect(JSON.parse(alloc?.value ?? '{}')).toMatchObject({ jobs: 300, cpu: 3000 });
    await scheduler.close();
    await cluster.close();
  });
});
