// Two schedulers on one real etcd, racing to place more than fits: no host is over-committed.
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { ClusterKeys } from './keys.js';
import type { HostRecord, JobRecord } from './records.js';
import { Scheduler, type PlanReport } from './scheduler.js';

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(releaseEtcd);

describe('Scheduler on etcd', () => {
  it('two concurrent schedulers never over-commit a host', async () => {
    const prefix = uniquePrefix('scheduler');
    const admin = new EtcdStore({ endpoints, prefix });
    const keys = new ClusterKeys();
    const hosts: HostRecord[] = Array.from({ length: 10 }, (_, i) => ({
      id: `h${i}`,
      tags: { zone: `z${i % 3}` },
      capacity: { cpu: 2000, memory: 8192 },
      state: 'up',
    }));
    const lease = await admin.grant(60_000);
    await lease.keepAlive();
    for (const h of hosts) {
      await admin.put(keys.host(h.id), JSON.stringify(h));
      await admin.put(keys.heartbeat(h.id), '1', { lease: lease.id });
    }
    const stores = [1, 2].map(() => new EtcdStore({ endpoints, prefix }));
    const schedulers = stores.map(
      (store, i) =>
        new Scheduler({ store, id: `s${i}`, seed: i, strategy: i === 0 ? 'spread' : 'binpack' }),
    );
    const reports: PlanReport[] = [];
    for (const s of schedulers) s.on('plan', (r) => reports.push(r));
    await Promise.all(schedulers.map((s) => s.start()));

    // 8 apps x 10 jobs of 300m = 80 wanted; 10 hosts x 6 = 60 fit.
    await Promise.all(
      Array.from({ length: 8 }, (_, a) =>
        admin.put(
          keys.formation(`app${a}`, 'v1'),
          JSON.stringify({
            app: `app${a}`,
            release: 'v1',
            processes: { web: { count: 10, resources: { cpu: 300, memory: 512 } } },
          }),
        ),
      ),
    );
    const seen = new Set<string>();
    for await (const ev of admin.watch(keys.jobs, {
      fromRevision: 1,
      signal: AbortSignal.timeout(20_000),
    })) {
      if (ev.type === 'put') seen.add(ev.kv.key);
      if (seen.size >= 60) break;
    }
    await Promise.all(schedulers.map((s) => s.idle()));

    const jobs = (await admin.list(keys.jobs)).kvs.map((kv) => JSON.parse(kv.value) as JobRecord);
    const cpu = new Map<string, number>();
    for (const j of jobs) cpu.set(j.hostId, (cpu.get(j.hostId) ?? 0) + j.resources.cpu);
    for (const h of hosts) expect(cpu.get(h.id) ?? 0, h.id).toBeLessThanOrEqual(h.capacity.cpu);
    expect(jobs).toHaveLength(60);
    expect(reports.some((r) => r.unplaced.length > 0)).toBe(true);

    await Promise.all(schedulers.map((s) => s.close()));
    await Promise.all(stores.map((s) => s.close()));
    await admin.deletePrefix('');
    await lease.revoke();
    await admin.close();
  });
});
