// Drains with a deadline: until it passes, a drained job stops only once its replacement is up
// (no gap); once it has passed, the jobs left are stopped whether or not their replacements are
// up. The pure core (schedule), the timers, and the Scheduler service in a simulated cluster.
import { setTimeout as delay } from 'node:timers/promises';
import type { Formation, HostControl } from '@flotilla/cluster';
import { ManualClock, systemClock } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { schedule } from './schedule.js';
import { DrainDeadlines } from './service/drain-deadlines.js';
import { ClusterSimulator, type SimulatedJob } from './simulator.js';
import type { HostSnapshot, JobSnapshot, PlanReport } from './index.js';

const small = { cpu: 500, memory: 512 };
const T0 = Date.UTC(2026, 0, 1);

const host = (id: string, extra: Partial<HostSnapshot> = {}): HostSnapshot => ({
  id,
  capacity: { cpu: 4000, memory: 8192 },
  state: 'up',
  ...extra,
});
const job = (id: string, hostId: string, extra: Partial<JobSnapshot> = {}): JobSnapshot => ({
  id,
  app: 'demo',
  release: 'v1',
  type: 'web',
  hostId,
  resources: small,
  state: 'up',
  createdAt: 1,
  ...extra,
});
const formation = (count: number): Formation => ({
  app: 'demo',
  release: 'v1',
  processes: { web: { count, resources: small } },
});

describe('schedule: a draining host past its deadline', () => {
  it('stops a job whose replacement cannot be placed (drain-deadline), still reporting it unplaced', () => {
    const hosts = [
      host('full', { capacity: { cpu: 100, memory: 128 } }),
      host('drain', { state: 'draining', drainForced: true }),
    ];
    const plan = schedule({ hosts, jobs: [job('r', 'drain')], formations: [formation(1)] });
    expect(plan.stop).toEqual([{ jobId: 'r', reason: 'drain-deadline' }]);
    expect(plan.start).toEqual([]);
    expect(plan.unplaced).toEqual([
      expect.objectContaining({ app: 'demo', type: 'web', count: 1, reason: 'no-capacity' }),
    ]);
    // Within its deadline, the same job keeps serving.
    const within = [hosts[0] as HostSnapshot, host('drain', { state: 'draining' })];
    expect(
      schedule({ hosts: within, jobs: [job('r', 'drain')], formations: [formation(1)] }).stop,
    ).toEqual([]);
  });

  it('stops at once a job whose replacement is placed but not up yet, and places the replacement', () => {
    const hosts = [host('up'), host('drain', { state: 'draining', drainForced: true })];
    const plan = schedule({ hosts, jobs: [job('r', 'drain')], formations: [formation(1)] });
    expect(plan.stop).toEqual([{ jobId: 'r', reason: 'drain-deadline' }]);
    expect(plan.start.map((s) => s.hostId)).toEqual(['up']);
  });

  it('a job whose replacement is up stops as any drained job (host-draining)', () => {
    const hosts = [host('up'), host('drain', { state: 'draining', drainForced: true })];
    const plan = schedule({
      hosts,
      jobs: [job('r', 'drain'), job('n', 'up', { createdAt: 2 })],
      formations: [formation(1)],
    });
    expect(plan.stop).toEqual([{ jobId: 'r', reason: 'host-draining' }]);
    expect(plan.start).toEqual([]);
  });

  it('spends the stops that replacements allow on the host past its deadline: the other keeps serving', () => {
    // count 2: one up elsewhere, one on each draining host; one may go, the forced one goes
    // either way. Spent on the forced one, the other still serves: 2 up, not 1.
    const hosts = [
      host('up', { capacity: { cpu: 500, memory: 512 } }),
      host('late', { state: 'draining', drainForced: true }),
      host('early', { state: 'draining' }),
    ];
    const jobs = [
      job('u', 'up'),
      // Newer than the forced one: newest-first alone would have picked it.
      job('e', 'early', { createdAt: 3 }),
      job('l', 'late', { createdAt: 2 }),
    ];
    const plan = schedule({ hosts, jobs, formations: [formation(2)] });
    expect(plan.stop).toEqual([{ jobId: 'l', reason: 'host-draining' }]);
  });

  it('omni and formation-less jobs on it go at once, as on any draining host', () => {
    const hosts = [host('up'), host('drain', { state: 'draining', drainForced: true })];
    const plan = schedule({ hosts, jobs: [job('r', 'drain')], formations: [] });
    expect(plan.stop).toEqual([{ jobId: 'r', reason: 'host-draining' }]);
  });
});

describe('DrainDeadlines', () => {
  const control = (drainDeadline: number): HostControl => ({
    eligible: true,
    drain: true,
    drainDeadline,
    updatedAt: 0,
  });

  it('calls onDue once the deadline has passed, not before; a deadline past 24.8 days waits in steps', async () => {
    const clock = new ManualClock(T0);
    const due: string[] = [];
    const deadlines = new DrainDeadlines(clock, (id) => due.push(id));
    const long = 30 * 24 * 3600_000;
    deadlines.track('h1', control(T0 + 1000));
    deadlines.track('h2', control(T0 + long));
    await clock.advance(999);
    expect(due).toEqual([]);
    expect(deadlines.forced(control(T0 + 1000))).toBe(false);
    await clock.advance(1);
    expect(due).toEqual(['h1']);
    expect(deadlines.forced(control(T0 + 1000))).toBe(true);
    await clock.advance(2 ** 31 - 1);
    expect(due).toEqual(['h1']);
    await clock.advance(long - 1000 - (2 ** 31 - 1) - 1);
    expect(due).toEqual(['h1']);
    await clock.advance(1);
    expect(due).toEqual(['h1', 'h2']);
    expect(clock.pending).toBe(0);
  });

  it('a new control moves or drops the timer; undrained, forgotten or closed, nothing fires', async () => {
    const clock = new ManualClock(T0);
    const due: string[] = [];
    const deadlines = new DrainDeadlines(clock, (id) => due.push(id));
    deadlines.track('h1', control(T0 + 1000));
    deadlines.track('h1', control(T0 + 5000));
    await clock.advance(1000);
    expect(due).toEqual([]);
    deadlines.track('h1', { eligible: true, drain: false, updatedAt: 0 });
    deadlines.track('h2', control(T0 + 2000));
    deadlines.forget('h2');
    deadlines.track('h3', control(T0 + 2000));
    deadlines.close();
    await clock.advance(10_000);
    expect(due).toEqual([]);
    // Already past when tracked: no timer (the refresh that follows says forced).
    deadlines.track('h4', control(T0));
    expect(clock.pending).toBe(0);
  });

  it('on the system clock, a deadline 30 days away does not fire at once (Node caps timers at 2^31-1 ms)', async () => {
    const due: string[] = [];
    const deadlines = new DrainDeadlines(systemClock, (id) => due.push(id));
    try {
      deadlines.track('h1', control(Date.now() + 30 * 24 * 3600_000));
      // An overflowing timer fires after 1 ms: 50 ms is well past it.
      await delay(50);
      expect(due).toEqual([]);
    } finally {
      deadlines.close();
    }
  });
});

describe('Scheduler service: drains with a deadline (simulated cluster)', () => {
  const upOn = (jobs: SimulatedJob[], hostId: string): SimulatedJob[] =>
    jobs.filter((j) => j.hostId === hostId && j.state === 'up');

  /** Two hosts; `other` has room for `room` jobs of `small`. Demo web=1 runs on `drain`. */
  async function cluster(room: number): Promise<ClusterSimulator> {
    const sim = new ClusterSimulator({
      hosts: [
        { id: 'drain', capacity: { cpu: 4000, memory: 8192 } },
        { id: 'other', capacity: { cpu: 500 * room, memory: 512 * room } },
      ],
      seed: 1,
      strategy: 'binpack',
    });
    await sim.start();
    // Make room only on 'drain' first: the job lands there.
    await sim.cluster.setEligible('other', false);
    await sim.setFormation(formation(1));
    await sim.cluster.setEligible('other', true);
    await sim.settle();
    expect(upOn(await sim.jobs(), 'drain')).toHaveLength(1);
    return sim;
  }

  it('no room elsewhere: the job serves until the deadline, then is stopped (drain-deadline) and its replacement reported unplaced', async () => {
    await using sim = await cluster(0);
    const reports: PlanReport[] = [];
    sim.scheduler.on('plan', (r) => reports.push(r));
    const [old] = await sim.jobs();
    await sim.drainHost('drain', { deadlineMs: 60_000 });
    expect(reports.at(-1)?.unplaced).toEqual([
      expect.objectContaining({ app: 'demo', count: 1, reason: 'no-capacity' }),
    ]);
    await sim.advance(59_000);
    expect(upOn(await sim.jobs(), 'drain').map((j) => j.id)).toEqual([old?.id]);
    expect((await sim.hosts()).find((h) => h.record.id === 'drain')).toMatchObject({
      state: 'draining',
      drainForced: false,
    });
    await sim.advance(1000);
    expect((await sim.hosts()).find((h) => h.record.id === 'drain')?.drainForced).toBe(true);
    const jobs = await sim.jobs();
    // Stopped and collected (the simulated agent reports it down at once): nothing left there.
    expect(jobs.filter((j) => j.hostId === 'drain' && j.state !== 'down')).toEqual([]);
    expect(jobs.filter((j) => j.state === 'up')).toEqual([]);
  });

  it('the stop says why: the job record asks to stop with reason drain-deadline', async () => {
    await using sim = await cluster(0);
    const [old] = await sim.jobs();
    await sim.drainHost('drain', { deadlineMs: 1000 });
    const from = (await sim.store.revision()) + 1;
    await sim.advance(1000);
    const ac = new AbortController();
    const asked: string[] = [];
    for await (const ev of sim.store.watch(sim.keys.jobsOf('drain'), {
      fromRevision: from,
      signal: ac.signal,
    })) {
      if (ev.type !== 'put') continue;
      const record = JSON.parse(ev.kv.value) as {
        id: string;
        desired: string;
        stopReason?: string;
      };
      asked.push(`${record.id} ${record.desired} ${record.stopReason ?? ''}`);
      ac.abort();
    }
    expect(asked).toEqual([`${old?.id} stop drain-deadline`]);
  });

  it('room elsewhere: the job moves without a gap before the deadline, as without one', async () => {
    await using sim = await cluster(1);
    const [old] = await sim.jobs();
    await sim.drainHost('drain', { deadlineMs: 60_000 });
    const jobs = await sim.jobs();
    const moved = upOn(jobs, 'other');
    expect(moved).toHaveLength(1);
    expect(jobs.filter((j) => j.hostId === 'drain' && j.state !== 'down')).toEqual([]);
    // No gap: the replacement was up (its status written) before the old job was asked to stop.
    const status = await sim.store.get(sim.keys.jobStatus('other', moved[0]?.id as string));
    const stopped = await sim.store.get(sim.keys.jobStatus('drain', old?.id as string));
    expect(stopped === undefined || (status?.modRevision ?? 0) < stopped.modRevision).toBe(true);
    // The deadline passing changes nothing more.
    await sim.advance(60_000);
    expect(upOn(await sim.jobs(), 'other').map((j) => j.id)).toEqual([moved[0]?.id]);
  });

  it('undrained before its deadline: nothing is forced when it would have passed', async () => {
    await using sim = await cluster(0);
    const [old] = await sim.jobs();
    await sim.drainHost('drain', { deadlineMs: 1000 });
    await sim.cluster.undrainHost('drain');
    await sim.advance(5000);
    expect(upOn(await sim.jobs(), 'drain').map((j) => j.id)).toEqual([old?.id]);
  });
});
