// The Scheduler on a real etcd that is killed or frozen while it commits: once etcd is back,
// every formation has exactly its jobs (no job placed twice by a commit whose answer was lost).
import { readFileSync } from 'node:fs';
import { ClusterState, type Formation } from '@flotilla/cluster';
import { EtcdStore } from '@flotilla/etcd';
import { afterEach, describe, expect, it } from 'vitest';
import { startEtcd, type TestEtcd } from '../../../test/support/etcd.js';
import { interceptStore, placesJobs } from '../../../test/support/intercept-store.js';
import { Scheduler } from './scheduler.js';

async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  for (let i = 0; i < 200; i++) {
    if (/^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`process ${pid} did not stop`);
}

/** Polls (real time: etcd is real) until `done()`, or fails after `ms`. */
async function until(done: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('Scheduler on an etcd that fails mid-commit', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  /**
   * A scheduler whose `fault` runs right after its third job-placing transaction is sent: that
   * commit's answer is lost, and whether it landed is unknown to the scheduler.
   */
  async function setup(fault: (etcd: TestEtcd) => void): Promise<{
    etcd: TestEtcd;
    cluster: ClusterState;
    scheduler: Scheduler;
    faulted: Promise<void>;
  }> {
    const etcd = await startEtcd();
    cleanup.push(() => etcd.stop());
    const admin = new EtcdStore({ endpoints: [etcd.endpoint], requestTimeoutMs: 2000 });
    cleanup.push(() => admin.close());
    const cluster = new ClusterState({ store: admin });
    cleanup.push(() => cluster.close());
    for (let i = 0; i < 20; i++)
      await cluster.registerHost(
        { id: `h${i}`, addr: `127.0.0.1:${7000 + i}`, capacity: { cpu: 64_000, memory: 262_144 } },
        { ttlMs: 60_000 },
      );
    const etcdStore = new EtcdStore({ endpoints: [etcd.endpoint], requestTimeoutMs: 2000 });
    cleanup.push(() => etcdStore.close());
    let placing = 0;
    let faulted!: () => void;
    const done = new Promise<void>((resolve) => (faulted = resolve));
    const store = interceptStore(etcdStore, {
      txn: (txn, next) => {
        const sent = next();
        if (placesJobs(txn, 'cluster/jobs/') && ++placing === 3) {
          fault(etcd);
          faulted();
        }
        return sent;
      },
    });
    const scheduler = new Scheduler({ store, hostGraceMs: 60_000, memberTtlMs: 30_000 });
    cleanup.push(() => scheduler.close());
    await scheduler.start();
    return { etcd, cluster, scheduler, faulted: done };
  }

  async function declare(cluster: ClusterState, n: number): Promise<void> {
    for (let a = 0; a < n; a++) {
      const f: Formation = {
        app: `app${a}`,
        release: 'v1',
        processes: { web: { count: 100, resources: { cpu: 10, memory: 16 } } },
      };
      await cluster.putRelease({
        app: f.app,
        release: 'v1',
        artifact: { type: 'image', image: 'test' },
        config: {},
        processes: { web: { command: 'serve' } },
        createdAt: 0, // the same record each time: declaring again is a no-op
      });
      await cluster.setFormation(f);
    }
  }

  async function expectExact(
    cluster: ClusterState,
    scheduler: Scheduler,
    apps: number,
  ): Promise<void> {
    await until(async () => (await cluster.jobs()).length >= apps * 100, 30_000, 'every job');
    await scheduler.idle();
    const jobs = (await cluster.jobs()).map((j) => j.record);
    expect(jobs.filter((j) => j.desired === 'stop')).toEqual([]);
    expect(jobs).toHaveLength(apps * 100);
    for (let a = 0; a < apps; a++) {
      const indexes = jobs.filter((j) => j.app === `app${a}`).map((j) => j.index);
      expect(new Set(indexes).size).toBe(100);
    }
  }

  it('places every job exactly once when etcd is killed (SIGKILL) mid-commit and restarted', async () => {
    let restarted: Promise<void> = Promise.resolve();
    const { cluster, scheduler, faulted } = await setup((etcd) => {
      restarted = etcd.restart('SIGKILL');
    });
    const errors: unknown[] = [];
    scheduler.on('error', (e) => errors.push(e));
    const declared = declare(cluster, 4).catch(() => undefined); // may be cut off by the kill
    await faulted;
    await restarted;
    await declared;
    await declare(cluster, 4); // the same records: a no-op for those that landed
    await expectExact(cluster, scheduler, 4);
    expect(errors.length).toBeGreaterThan(0); // it did lose the store
  }, 60_000);

  it('places every job exactly once when etcd is frozen (SIGSTOP) mid-commit past the timeout', async () => {
    let frozen: Promise<void> = Promise.resolve();
    const { etcd, cluster, scheduler, faulted } = await setup((e) => {
      frozen = freeze(e.pid as number);
    });
    const errors: unknown[] = [];
    scheduler.on('error', (e) => errors.push(e));
    const declared = declare(cluster, 4).catch(() => undefined);
    await faulted;
    await frozen;
    await new Promise((resolve) => setTimeout(resolve, 3000)); // longer than every call's timeout
    process.kill(etcd.pid as number, 'SIGCONT');
    await declared;
    await declare(cluster, 4);
    await expectExact(cluster, scheduler, 4);
    expect(errors.length).toBeGreaterThan(0); // it did lose the store
  }, 60_000);
});
