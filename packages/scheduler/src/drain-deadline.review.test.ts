// Review of drain deadlines: the races a restart or an operator brings. A hand-played agent on
// a MemoryStore with a manual clock; the host 'other' has no room, so only the deadline moves
// the job off 'drain'.
import { ClusterState, type JobView } from '@flotilla/cluster';
import { ManualClock } from '@flotilla/core';
import { MemoryStore } from '@flotilla/store';
import { afterEach, expect, it } from 'vitest';
import { Scheduler } from './scheduler.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

const DEADLINE = 600_000;

async function setup(): Promise<{
  clock: ManualClock;
  cluster: ClusterState;
  scheduler: () => Promise<Scheduler>;
  job: JobView;
}> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const store = new MemoryStore({ clock });
  cleanup.push(() => store.close());
  const cluster = new ClusterState({ store, clock });
  cleanup.push(() => cluster.close());
  for (const [id, cpu] of [
    ['drain', 4000],
    ['other', 100],
  ] as const)
    await cluster.registerHost(
      { id, addr: '127.0.0.1:7000', capacity: { cpu, memory: 8192 } },
      { ttlMs: 3_600_000 },
    );
  const scheduler = async (): Promise<Scheduler> => {
    const s = new Scheduler({ store, clock, hostGraceMs: 3_600_000 });
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
  const first = await scheduler();
  await cluster.setFormation({
    app: 'demo',
    release: 'v1',
    processes: { web: { count: 1, resources: { cpu: 500, memory: 512 } } },
  });
  await first.idle();
  const job = (await cluster.jobs())[0] as JobView;
  expect(job.record.hostId).toBe('drain');
  expect(await cluster.reportJob('drain', job.record.id, { state: 'up', startedAt: 1 })).toBe(true);
  await first.idle();
  await first.close();
  return { clock, cluster, scheduler, job };
}

async function desired(cluster: ClusterState, job: JobView): Promise<unknown> {
  const j = (await cluster.jobs()).find((v) => v.record.id === job.record.id);
  return j === undefined ? 'gone' : { desired: j.record.desired, reason: j.record.stopReason };
}

it('a deadline that passes after a scheduler restart, armed by the first: the second forces it', async () => {
  const { clock, cluster, scheduler, job } = await setup();
  const a = await scheduler();
  await cluster.drainHost('drain', { deadlineMs: DEADLINE });
  await a.idle();
  await clock.advance(DEADLINE / 2);
  await a.close();
  const b = await scheduler();
  await b.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'run', reason: undefined });
  await clock.advance(DEADLINE / 2 - 1);
  await b.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'run', reason: undefined });
  await clock.advance(1);
  await b.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'stop', reason: 'drain-deadline' });
});

it('undrained at the deadline, in the same tick as the timer: nothing is forced after', async () => {
  const { clock, cluster, scheduler, job } = await setup();
  const s = await scheduler();
  await cluster.drainHost('drain', { deadlineMs: DEADLINE });
  await s.idle();
  await clock.advance(DEADLINE - 1);
  // The undrain is written; the timer fires before the scheduler has seen it.
  const undrained = cluster.undrainHost('drain');
  await clock.advance(1);
  await undrained;
  await s.idle();
  const after = await desired(cluster, job);
  // Either outcome of the race is allowed, but a stopped job must say why.
  if ((after as { desired: string }).desired === 'stop')
    expect(after).toEqual({ desired: 'stop', reason: 'drain-deadline' });
  // Once the undrain is seen, the host is up again and takes the replacement.
  expect((await cluster.host('drain'))?.state).toBe('up');
  expect((await cluster.host('drain'))?.drainForced).toBe(false);
  const running = (await cluster.jobs()).filter((j) => j.record.desired === 'run');
  expect(running.map((j) => j.record.hostId)).toEqual(['drain']);
});

it('re-drained with a later deadline before the first passes: the first no longer forces', async () => {
  const { clock, cluster, scheduler, job } = await setup();
  const s = await scheduler();
  await cluster.drainHost('drain', { deadlineMs: DEADLINE });
  await s.idle();
  await clock.advance(DEADLINE - 1000);
  await cluster.drainHost('drain', { deadlineMs: DEADLINE });
  await s.idle();
  await clock.advance(1000);
  await s.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'run', reason: undefined });
  await clock.advance(DEADLINE - 1000);
  await s.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'stop', reason: 'drain-deadline' });
});

it('a deadline past the longest timer (30 days > 2^31 ms): not forced early, forced when it passes', async () => {
  const { clock, cluster, scheduler, job } = await setup();
  const s = await scheduler();
  const days30 = 30 * 24 * 3_600_000;
  await cluster.drainHost('drain', { deadlineMs: days30 });
  await s.idle();
  // The first step of the wait ends here; the job still has its deadline ahead.
  await clock.advance(2 ** 31 - 1);
  await s.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'run', reason: undefined });
  await clock.advance(days30 - (2 ** 31 - 1) - 1);
  await s.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'run', reason: undefined });
  await clock.advance(1);
  await s.idle();
  expect(await desired(cluster, job)).toEqual({ desired: 'stop', reason: 'drain-deadline' });
});
