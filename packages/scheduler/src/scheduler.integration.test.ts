// Schedulers on one real etcd, racing from their first plan: no host is over-committed in
// either dimension, and no formation gets more jobs than it asks for.
import { ClusterState, type Formation } from '@flotilla/cluster';
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { Scheduler, type PlanReport } from './scheduler.js';

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(releaseEtcd);

describe('Scheduler on etcd', () => {
  it('three racing schedulers place each formation exactly, never over-committing a host', async () => {
    const prefix = uniquePrefix('scheduler');
    const admin = new EtcdStore({ endpoints, prefix });
    const cluster = new ClusterState({ store: admin });
    // 10 hosts; cpu fits 13 jobs of 300m each, memory 10 of 768 MiB on the small ones: room
    // for 115 jobs, so only the schedulers' own discipline keeps each formation at its count.
    const hosts = Array.from({ length: 10 }, (_, i) => ({
      id: `h${i}`,
      addr: `127.0.0.1:${7000 + i}`,
      tags: { zone: `z${i % 3}` },
      capacity: { cpu: 4000, memory: i % 2 === 0 ? 8192 : 16384 },
    }));
    for (const h of hosts) await cluster.registerHost(h, { ttlMs: 60_000 });
    const stores = [0, 1, 2].map(() => new EtcdStore({ endpoints, prefix }));
    const schedulers = stores.map(
      (store, i) =>
        new Scheduler({ store, id: `s${i}`, seed: i, strategy: i === 1 ? 'binpack' : 'spread' }),
    );
    const reports: PlanReport[] = [];
    for (const s of schedulers) s.on('plan', (r) => reports.push(r));
    await Promise.all(schedulers.map((s) => s.start()));
    await Promise.all(
      schedulers.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.stats.members.length === 3) resolve();
            else s.on('epoch', (m) => m.length === 3 && resolve());
          }),
      ),
    );
    // A round: 24 apps x 3 jobs = 72 wanted, all declared in one transaction, so that every
    // scheduler sees them at the same revision and plans at once. Rounds repeat (at most 3)
    // until the schedulers are seen to collide: a round without a conflict proves nothing.
    let conflicts = 0;
    for (let round = 0; round < 3 && conflicts === 0; round++) {
      const formations: Formation[] = Array.from({ length: 24 }, (_, a) => ({
        app: `r${round}-app${a}`,
        release: 'v1',
        processes: { web: { count: 3, resources: { cpu: 100, memory: 256 } } },
      }));
      const from = (await admin.revision()) + 1;
      await admin.txn({
        compare: [],
        success: formations.flatMap((f) => [
          {
            op: 'put' as const,
            key: cluster.keys.release(f.app, 'v1'),
            value: JSON.stringify({
              app: f.app,
              release: 'v1',
              artifact: { type: 'image', image: 'test' },
              config: {},
              processes: { web: { command: 'serve' } },
              createdAt: Date.now(),
            }),
          },
          {
            op: 'put' as const,
            key: cluster.keys.formation(f.app, 'v1'),
            value: JSON.stringify(f),
          },
        ]),
      });
      const seen = new Set<string>();
      for await (const ev of admin.watch(cluster.keys.jobs, {
        fromRevision: from,
        signal: AbortSignal.timeout(20_000),
      })) {
        if (ev.type === 'put') seen.add(ev.kv.key);
        if (seen.size >= 72) break;
      }
      await Promise.all(schedulers.map((s) => s.idle()));

      const jobs = (await cluster.jobs()).map((j) => j.record);
      const used = new Map<string, { cpu: number; memory: number }>();
      for (const j of jobs) {
        const u = used.get(j.hostId) ?? { cpu: 0, memory: 0 };
        used.set(j.hostId, { cpu: u.cpu + j.resources.cpu, memory: u.memory + j.resources.memory });
      }
      for (const h of hosts) {
        expect(used.get(h.id)?.cpu ?? 0, h.id).toBeLessThanOrEqual(h.capacity.cpu);
        expect(used.get(h.id)?.memory ?? 0, h.id).toBeLessThanOrEqual(h.capacity.memory);
      }
      const mine = jobs.filter((j) => j.app.startsWith(`r${round}-`));
      expect(mine).toHaveLength(72);
      const perApp = new Map<string, number[]>();
      for (const j of mine) perApp.set(j.app, [...(perApp.get(j.app) ?? []), j.index]);
      expect(perApp.size).toBe(24);
      for (const [app, indexes] of perApp) expect(indexes.sort(), app).toEqual([1, 2, 3]);
      conflicts = reports.reduce((a, r) => a + r.conflicts, 0);
    }
    // They really raced: some commits were refused (a host or the member list changed first).
    expect(conflicts).toBeGreaterThan(0);
    expect(schedulers.map((s) => s.stats.members)).toEqual([
      ['s0', 's1', 's2'],
      ['s0', 's1', 's2'],
      ['s0', 's1', 's2'],
    ]);

    await Promise.all(schedulers.map((s) => s.close()));
    await Promise.all(stores.map((s) => s.close()));
    await cluster.close();
    await admin.deletePrefix('');
    await admin.close();
  });

  it('commits many transactions at once without a MaxListenersExceeded warning', async () => {
    // Every transaction in flight carries the scheduler's close signal; at 16 in flight a
    // signal left at the default of 10 listeners printed a leak warning on every bulk placement.
    const prefix = uniquePrefix('scheduler-listeners');
    const store = new EtcdStore({ endpoints, prefix });
    const cluster = new ClusterState({ store });
    for (let i = 0; i < 40; i++)
      await cluster.registerHost(
        { id: `h${i}`, addr: `127.0.0.1:${7100 + i}`, capacity: { cpu: 64000, memory: 65536 } },
        { ttlMs: 60_000 },
      );
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    const scheduler = new Scheduler({ store, id: 'bulk', commitConcurrency: 16 });
    let transactions = 0;
    let started = 0;
    let placedAll: () => void = () => undefined;
    const placed = new Promise<void>((resolve) => (placedAll = resolve));
    scheduler.on('plan', (r) => {
      transactions += r.transactions;
      started += r.started;
      if (started >= 2000) placedAll();
    });
    try {
      await scheduler.start();
      await cluster.putRelease({
        app: 'bulk',
        release: 'v1',
        artifact: { type: 'image', image: 'test' },
        config: {},
        processes: { web: { command: 'serve' } },
        createdAt: Date.now(),
      });
      await cluster.setFormation({
        app: 'bulk',
        release: 'v1',
        processes: { web: { count: 2000, resources: { cpu: 10, memory: 16 } } },
      });
      await placed;
      await scheduler.idle();
      expect((await cluster.jobs()).length).toBe(2000);
      expect(transactions).toBeGreaterThan(16);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
      await scheduler.close();
      await cluster.close();
      await store.deletePrefix('');
      await store.close();
    }
  });
});
