// The Scheduler service draining a host with a deadline, with a host agent played by the test
// (it reports exactly what each case needs: a replacement that never comes up, say). Run here
// on MemoryStore with a manual clock, and by drain-deadline-service.integration.test.ts on a
// real etcd with the system clock: the deadline then passes in real time.
import { ClusterState, type JobView } from '@flotilla/cluster';
import { ManualClock, type Clock } from '@flotilla/core';
import { MemoryStore, type Store } from '@flotilla/store';
import { afterEach, describe, expect, it } from 'vitest';
import { Scheduler, type PlanReport } from './scheduler.js';

/** How a suite's time passes: a manual clock it advances, or the system clock it waits on. */
export interface DrainTiming {
  readonly clock?: ManualClock;
  /** The deadline of the cases that let it pass (short on the system clock). */
  readonly deadlineMs: number;
}

const small = { cpu: 500, memory: 512 };

/** Drains with a deadline on the stores from `create` (one per test; the suite closes it). */
export function runDrainDeadlineServiceSuite(
  name: string,
  create: (clock: Clock | undefined) => Store | Promise<Store>,
  timing: () => DrainTiming,
): void {
  describe(`Scheduler drains with a deadline on ${name}`, () => {
    const cleanup: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
    });

    async function setup(otherCpu: number): Promise<{
      cluster: ClusterState;
      scheduler: () => Promise<Scheduler>;
      clock: ManualClock | undefined;
      deadlineMs: number;
      old: JobView;
    }> {
      const { clock, deadlineMs } = timing();
      const store = await create(clock);
      cleanup.push(async () => {
        await store.deletePrefix('');
        await store.close();
      });
      const cluster = new ClusterState({ store, ...(clock === undefined ? {} : { clock }) });
      cleanup.push(() => cluster.close());
      for (const [id, cpu] of [
        ['drain', 4000],
        ['other', otherCpu],
      ] as const)
        await cluster.registerHost(
          { id, addr: '127.0.0.1:7000', capacity: { cpu, memory: 8192 } },
          { ttlMs: 600_000 },
        );
      const scheduler = async (): Promise<Scheduler> => {
        const s = new Scheduler({
          store,
          hostGraceMs: 600_000,
          ...(clock === undefined ? {} : { clock }),
        });
        cleanup.push(() => s.close());
        await s.start();
        return s;
      };
      await cluster.putRelease({
        app: 'demo',
        release: 'v1',
        artifact: { type: 'image', image: 'demo' },
        config: {},
        processes: { web: { command: 'serve' } },
        createdAt: 0,
      });
      // The job lands on 'drain': 'other' takes nothing new meanwhile.
      await cluster.setEligible('other', false);
      const first = await scheduler();
      await cluster.setFormation({
        app: 'demo',
        release: 'v1',
        processes: { web: { count: 1, resources: small } },
      });
      const old = await waitJob(cluster, (j) => j.record.hostId === 'drain', 'the first job');
      await report(cluster, old, 'up');
      await cluster.setEligible('other', true);
      await first.idle();
      return { cluster, scheduler: async () => first, clock, deadlineMs, old };
    }

    it('no room elsewhere: the job serves until the deadline, then is stopped (drain-deadline)', async () => {
      const { cluster, clock, deadlineMs, old, scheduler } = await setup(100);
      const s = await scheduler();
      // The plan that sees the drain finds no room for the replacement.
      const unplaced = new Promise<PlanReport['unplaced']>((resolve) =>
        s.on('plan', (r) => r.unplaced.length > 0 && resolve(r.unplaced)),
      );
      const control = await cluster.drainHost('drain', { deadlineMs });
      expect(await unplaced).toEqual([
        expect.objectContaining({ app: 'demo', count: 1, reason: 'no-capacity' }),
      ]);
      expect(await stateOf(cluster, old)).toEqual({ desired: 'run', state: 'up' });
      if (clock !== undefined) {
        await clock.advance(deadlineMs - 1);
        await s.idle();
        expect(await stateOf(cluster, old)).toEqual({ desired: 'run', state: 'up' });
        await clock.advance(1);
      }
      const stopped = await waitJob(
        cluster,
        (j) => j.record.id === old.record.id && j.record.desired === 'stop',
        'the forced stop',
      );
      // Not before the deadline, by the clock of the cluster state.
      expect(Date.now() >= (control.drainDeadline as number) || clock !== undefined).toBe(true);
      expect(stopped.record.stopReason).toBe('drain-deadline');
      expect(await cluster.host('drain')).toMatchObject({ state: 'draining', drainForced: true });
    });

    it('a replacement that never comes up holds the job until the deadline, not longer', async () => {
      const { cluster, clock, deadlineMs, old, scheduler } = await setup(4000);
      const s = await scheduler();
      await cluster.drainHost('drain', { deadlineMs });
      const replacement = await waitJob(
        cluster,
        (j) => j.record.hostId === 'other',
        'a replacement',
      );
      // Its health check never passes (a crash-looping release, say): it stays starting.
      await report(cluster, replacement, 'starting');
      await s.idle();
      expect(await stateOf(cluster, old)).toEqual({ desired: 'run', state: 'up' });
      if (clock !== undefined) await clock.advance(deadlineMs);
      const stopped = await waitJob(
        cluster,
        (j) => j.record.id === old.record.id && j.record.desired === 'stop',
        'the forced stop',
      );
      expect(stopped.record.stopReason).toBe('drain-deadline');
      expect(await stateOf(cluster, replacement)).toEqual({ desired: 'run', state: 'starting' });
    });

    it('a replacement that comes up: the job moves without a gap, before the deadline', async () => {
      const { cluster, old, scheduler } = await setup(4000);
      const s = await scheduler();
      await cluster.drainHost('drain', { deadlineMs: 600_000 });
      const replacement = await waitJob(
        cluster,
        (j) => j.record.hostId === 'other',
        'a replacement',
      );
      await report(cluster, replacement, 'starting');
      await s.idle();
      expect(await stateOf(cluster, old)).toEqual({ desired: 'run', state: 'up' });
      await report(cluster, replacement, 'up');
      const stopped = await waitJob(
        cluster,
        (j) => j.record.id === old.record.id && j.record.desired === 'stop',
        'the stop of the drained job',
      );
      expect(stopped.record.stopReason).toBe('host-draining');
      // No gap: the replacement's up was written before the old job was asked to stop.
      const store = cluster.store;
      const up = await store.get(cluster.keys.jobStatus('other', replacement.record.id));
      const stop = await store.get(cluster.keys.job('drain', old.record.id));
      expect((up?.modRevision ?? Infinity) < (stop?.modRevision ?? 0)).toBe(true);
    });

    it('a scheduler that starts after the deadline passed stops the jobs left at once', async () => {
      const { cluster, clock, old, scheduler } = await setup(100);
      await (await scheduler()).close();
      await cluster.drainHost('drain', { deadlineMs: 1 });
      if (clock !== undefined) await clock.advance(1);
      else await waitUntil(async () => (await cluster.host('drain'))?.drainForced === true);
      expect(await stateOf(cluster, old)).toEqual({ desired: 'run', state: 'up' });
      const next = new Scheduler({
        store: cluster.store,
        hostGraceMs: 600_000,
        ...(clock === undefined ? {} : { clock }),
      });
      cleanup.push(() => next.close());
      await next.start();
      const stopped = await waitJob(
        cluster,
        (j) => j.record.id === old.record.id && j.record.desired === 'stop',
        'the forced stop',
      );
      expect(stopped.record.stopReason).toBe('drain-deadline');
    });
  });
}

/** The agent's report of a job. */
async function report(
  cluster: ClusterState,
  job: JobView,
  state: 'starting' | 'up',
): Promise<void> {
  const ok = await cluster.reportJob(job.record.hostId, job.record.id, {
    state,
    startedAt: 1,
  });
  expect(ok).toBe(true);
}

async function stateOf(
  cluster: ClusterState,
  job: JobView,
): Promise<{ desired: string; state: string } | undefined> {
  const j = (await cluster.jobs({ hostId: job.record.hostId })).find(
    (v) => v.record.id === job.record.id,
  );
  return j === undefined ? undefined : { desired: j.record.desired, state: j.state };
}

/** Waits for a job matching `pred`, on the store's watch (no polling). */
async function waitJob(
  cluster: ClusterState,
  pred: (j: JobView) => boolean,
  what: string,
): Promise<JobView> {
  for (let round = 0; round < 1000; round++) {
    const revision = await cluster.store.revision();
    const found = (await cluster.jobs()).find(pred);
    if (found !== undefined) return found;
    const ac = new AbortController();
    for await (const ev of cluster.store.watch(cluster.keys.prefix, {
      fromRevision: revision + 1,
      signal: ac.signal,
    })) {
      void ev;
      ac.abort();
    }
  }
  throw new Error(`${what} never came`);
}

/** Waits (real time) until `done()`; for the system clock passing a deadline. */
async function waitUntil(done: () => Promise<boolean>): Promise<void> {
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 5));
}

runDrainDeadlineServiceSuite(
  'MemoryStore (manual clock)',
  (clock) => new MemoryStore(clock === undefined ? {} : { clock }),
  () => ({ clock: new ManualClock(Date.UTC(2026, 0, 1)), deadlineMs: 600_000 }),
);
