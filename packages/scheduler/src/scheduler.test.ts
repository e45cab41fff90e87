import { describe, expect, it } from 'vitest';
import {
  MemoryStore,
  StoreError,
  StoreErrorCodes,
  type Store,
  type WatchEvent,
} from '@flotilla/store';
import { ManualClock } from '@flotilla/core';
import { ClusterKeys } from './keys.js';
import type { HostRecord, JobRecord } from './records.js';
import { Scheduler, type CrashLoop, type PlanReport } from './scheduler.js';
import { ClusterSimulator } from './simulator.js';
import type { Formation } from './types.js';

const web = (count: number, extra: Partial<Formation['processes'][string]> = {}): Formation => ({
  app: 'demo',
  release: 'v1',
  processes: { web: { count, resources: { cpu: 500, memory: 512 }, ...extra } },
});

const running = (jobs: JobRecord[], filter: Partial<JobRecord> = {}): JobRecord[] =>
  jobs.filter(
    (j) =>
      ['pending', 'starting', 'up'].includes(j.state) &&
      Object.entries(filter).every(([k, v]) => (j as unknown as Record<string, unknown>)[k] === v),
  );

describe('Scheduler service (simulated cluster)', () => {
  it('runs a formation, scales it up and down, and leaves a stopped job to its agent', async () => {
    await using sim = new ClusterSimulator({ hosts: 6, seed: 1 });
    await sim.start();
    await sim.setFormation(web(4));
    let jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(4);
    expect(jobs.every((j) => j.state === 'up')).toBe(true);
    expect(new Set(jobs.map((j) => j.hostId)).size).toBe(4); // spread: one per host

    await sim.setFormation(web(6));
    expect(running(await sim.jobs())).toHaveLength(6);

    await sim.setFormation(web(2));
    jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(2);
    // Stopped jobs went stopping -> down (agent) -> collected (scheduler).
    expect(jobs).toHaveLength(2);
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
    expect((await sim.hosts()).find((h) => h.id === victim)?.state).toBe('down');
  });

  it('moves jobs off a draining host and places nothing new there', async () => {
    await using sim = new ClusterSimulator({ hosts: 4, seed: 3 });
    await sim.start();
    await sim.setFormation(web(3));
    const host = (await sim.jobs())[0]?.hostId as string;
    await sim.drainHost(host);
    const jobs = await sim.jobs();
    expect(running(jobs)).toHaveLength(3);
    expect(jobs.some((j) => j.hostId === host)).toBe(false);
    await sim.setFormation(web(4));
    expect((await sim.jobs()).some((j) => j.hostId === host)).toBe(false);
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
    const up = async (): Promise<JobRecord[]> => (await sim.jobs()).filter((j) => j.state === 'up');

    // 1st crash: restarted at once.
    await sim.crash(((await up())[0] as JobRecord).id);
    expect(await up()).toHaveLength(1);
    // 2nd crash: 10 s backoff.
    await sim.crash(((await up())[0] as JobRecord).id);
    expect(await up()).toHaveLength(0);
    await sim.advance(9000);
    expect(await up()).toHaveLength(0);
    await sim.advance(1500);
    expect(await up()).toHaveLength(1);
    // 3rd crash: 30 s, and reported.
    await sim.crash(((await up())[0] as JobRecord).id);
    expect(loops).toEqual([
      { app: 'demo', release: 'v1', type: 'web', crashes: 3, nextRestartInMs: 30_000 },
    ]);
    await sim.advance(29_000);
    expect(await up()).toHaveLength(0);
    await sim.advance(1500);
    expect(await up()).toHaveLength(1);
    // Five quiet minutes later, a crash is restarted at once again.
    await sim.advance(300_000);
    await sim.crash(((await up())[0] as JobRecord).id);
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
    await sim.addHost({
      id: 'late',
      tags: { zone: 'a' },
      capacity: { cpu: 4000, memory: 8192 },
      state: 'up',
    });
    expect(running(await sim.jobs())).toHaveLength(2);
  });

  it('ignores invalid records and says so', async () => {
    await using sim = new ClusterSimulator({ hosts: 2, seed: 7 });
    const invalid: string[] = [];
    sim.scheduler.on('invalid-record', (key) => invalid.push(key));
    await sim.start();
    await sim.store.put(
      sim.keys.formation('bad', 'v1'),
      '{"app":"bad","release":"v1","processes":{"web":{"count":-1}}}',
    );
    await sim.store.put(sim.keys.host('junk'), 'not json');
    await sim.settle();
    expect(invalid.sort()).toEqual([sim.keys.formation('bad', 'v1'), sim.keys.host('junk')].sort());
    await sim.setFormation(web(1));
    expect(running(await sim.jobs())).toHaveLength(1);
  });
});

/** A store whose transactions take a little real time, so that concurrent commits interleave. */
function withLatency(store: Store, ms: number): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'txn') {
        return async (...args: Parameters<Store['txn']>) => {
          await new Promise((r) => setTimeout(r, ms));
          return target.txn(...args);
        };
      }
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

describe('resynchronising', () => {
  it('lists everything again when its watch falls behind compaction, and catches up', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const keys = new ClusterKeys();
    let trip: (() => void) | undefined;
    let watches = 0;
    // The scheduler's first watch goes blind, then fails as compacted; later ones are real.
    const store = new Proxy(memory, {
      get(target, prop, receiver) {
        if (prop === 'watch' && watches++ === 0) {
          return () => ({
            [Symbol.asyncIterator]: () => ({
              next: async (): Promise<IteratorResult<WatchEvent>> => {
                await new Promise<void>((resolve) => (trip = resolve));
                throw new StoreError(StoreErrorCodes.COMPACTED, 'compacted (test)', {
                  compactRevision: 1,
                });
              },
            }),
          });
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    const hosts: HostRecord[] = ['h1', 'h2'].map((id) => ({
      id,
      tags: {},
      capacity: { cpu: 2000, memory: 4096 },
      state: 'up',
    }));
    for (const h of hosts) {
      await memory.put(keys.host(h.id), JSON.stringify(h));
      await memory.put(keys.heartbeat(h.id), '1');
    }
    const scheduler = new Scheduler({ store, clock });
    await scheduler.start();
    // While it is blind: a formation appears and a host goes away.
    await memory.put(keys.formation('demo', 'v1'), JSON.stringify(web(2)));
    await memory.delete(keys.host('h2'));
    await scheduler.idle();
    expect((await memory.list(keys.jobs)).kvs).toHaveLength(0);
    trip?.();
    const placed = new Promise<PlanReport>((resolve) => scheduler.once('plan', resolve));
    expect((await placed).started).toBe(2);
    await scheduler.idle();
    const jobs = (await memory.list(keys.jobs)).kvs.map((kv) => JSON.parse(kv.value) as JobRecord);
    expect(jobs.map((j) => j.hostId)).toEqual(['h1', 'h1']);
    expect(scheduler.state).toBe('running');
    await scheduler.close();
    await memory.close();
  });
});

describe('several schedulers on one store', () => {
  it('never over-commit a host, and together place exactly what fits', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const memory = new MemoryStore({ clock });
    const store = withLatency(memory, 2);
    const keys = new ClusterKeys();
    const hosts: HostRecord[] = Array.from({ length: 8 }, (_, i) => ({
      id: `h${i}`,
      tags: { zone: `z${i % 2}` },
      capacity: { cpu: 2000, memory: 4096 },
      state: 'up',
    }));
    for (const h of hosts) {
      await store.put(keys.host(h.id), JSON.stringify(h));
      const lease = await store.grant(60_000);
      await store.put(keys.heartbeat(h.id), '1', { lease: lease.id });
    }
    const schedulers = [1, 2, 3].map(
      (i) => new Scheduler({ store, clock, id: `s${i}`, seed: i, hostGraceMs: 60_000 }),
    );
    let conflicts = 0;
    for (const s of schedulers) s.on('plan', (r) => (conflicts += r.conflicts));
    await Promise.all(schedulers.map((s) => s.start()));
    // 3 apps x 12 jobs of 500m: 36 wanted, 8 hosts x 4 = 32 fit.
    await Promise.all(
      ['a', 'b', 'c'].map((app) =>
        store.put(
          keys.formation(app, 'v1'),
          JSON.stringify({
            app,
            release: 'v1',
            processes: { web: { count: 12, resources: { cpu: 500, memory: 512 } } },
          }),
        ),
      ),
    );
    // Wait, on the store's own events, until 32 jobs exist; then let every scheduler go idle.
    const seen = new Set<string>();
    for await (const ev of memory.watch(keys.jobs, {
      fromRevision: 1,
      signal: AbortSignal.timeout(10_000),
    })) {
      if (ev.type === 'put') seen.add(ev.kv.key);
      if (seen.size >= 32) break;
    }
    await Promise.all(schedulers.map((s) => s.idle()));
    const jobs = (await store.list(keys.jobs)).kvs.map((kv) => JSON.parse(kv.value) as JobRecord);
    const perHost = new Map<string, number>();
    for (const j of jobs) perHost.set(j.hostId, (perHost.get(j.hostId) ?? 0) + j.resources.cpu);
    for (const [, cpu] of perHost) expect(cpu).toBeLessThanOrEqual(2000);
    expect(jobs).toHaveLength(32);
    expect(conflicts).toBeGreaterThan(0); // they did race, and the commits caught it
    await Promise.all(schedulers.map((s) => s.close()));
    await memory.close();
  });
});
