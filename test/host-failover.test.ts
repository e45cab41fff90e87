// Two host agents and a scheduler on one MemoryStore: a host whose agent stops heartbeating
// (partitioned away: its lease is not released, it just stops being renewed) goes down, and its
// jobs start on the other host and become ready in discovery. A restarted agent adopts its jobs
// and leaves the operator's eligibility and drain as they were.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import type { HostAgent, ProcessDriver } from '@flotilla/host';
import { Scheduler } from '@flotilla/scheduler';
import { MemoryStore } from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { answers, deployHello, hostAgent, stopAll, untilReady } from './host-support.js';
import { claimPortRange } from './support/port-slots.js';

describe('host agents and a scheduler (MemoryStore)', () => {
  let dir: string;
  let store: MemoryStore;
  let cluster: ClusterState;
  let discovery: Discovery;
  let scheduler: Scheduler;
  let ports: { from: number; to: number };
  const agents: HostAgent[] = [];
  const drivers: ProcessDriver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-host-failover-'));
    store = new MemoryStore();
    cluster = new ClusterState({ store });
    discovery = new Discovery({ store });
    scheduler = new Scheduler({ store, hostGraceMs: 1000, restartBackoffMs: [0] });
    scheduler.on('error', () => undefined);
    await scheduler.start();
    ports = await claimPortRange(40);
  }, 45_000);

  afterEach(async () => {
    await scheduler.close();
    for (const a of agents.splice(0)) await a.close().catch(() => undefined);
    for (const d of drivers.splice(0)) await stopAll(d);
    await discovery.close();
    await cluster.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }, 45_000);

  /** Host `id` with ports `[slot * 20, slot * 20 + 19]` of the range. */
  async function host(
    id: string,
    slot: number,
    agentStore: MemoryStore | PartitionableStore = store,
  ): Promise<{ agent: HostAgent; driver: ProcessDriver }> {
    const h = await hostAgent(dir, id, {
      store: agentStore,
      ports: { from: ports.from + slot * 20, to: ports.from + slot * 20 + 19 },
    });
    agents.push(h.agent);
    drivers.push(h.driver);
    await h.agent.start();
    return h;
  }

  const onHosts = (ready: { meta: Record<string, string> }[]): string[] =>
    ready.map((i) => i.meta.host ?? '?').sort();

  it('a host that stops heartbeating goes down, and its jobs start on the other host and become ready', async () => {
    const view = new PartitionableStore(store);
    // h1's agent and its discovery registrations all go through the view.
    await host('h1', 0, view);
    await host('h2', 1);
    await deployHello(store, dir, 2);
    const before = await untilReady(discovery, 'demo-web', (r) => onHosts(r).join() === 'h1,h2');
    const lost = before.find((i) => i.meta.host === 'h1');
    expect(await answers(before)).toEqual(['hello from web.1', 'hello from web.2'].sort());

    view.partitioned = true; // h1's agent is cut off: its heartbeat lease runs out

    const after = await untilReady(
      discovery,
      'demo-web',
      (r) => r.length === 2 && onHosts(r).join() === 'h2,h2',
    );
    expect(after.map((i) => i.id)).not.toContain(lost?.id);
    // Both serve, as two distinct dynos (the replacement's index is the scheduler's choice).
    const greetings = await answers(after);
    expect(new Set(greetings).size).toBe(2);
    expect(greetings.every((g) => /^hello from web\.\d+$/.test(g))).toBe(true);
    expect((await cluster.hosts()).map((h) => [h.record.id, h.state])).toEqual([
      ['h1', 'down'],
      ['h2', 'up'],
    ]);
    await scheduler.idle();
    const jobs = await cluster.jobs({ app: 'demo' });
    expect(jobs.map((j) => [j.record.hostId, j.state])).toEqual([
      ['h2', 'up'],
      ['h2', 'up'],
    ]);
  }, 45_000);

  it("a restarted agent adopts its running job, starts no duplicate, and leaves the operator's eligibility and drain in place", async () => {
    const first = await host('h1', 0);
    await host('h2', 1);
    await deployHello(store, dir, 2);
    await untilReady(discovery, 'demo-web', (r) => onHosts(r).join() === 'h1,h2');
    const [running] = await first.driver.list();
    expect(running?.pid).toBeGreaterThan(0);
    await cluster.setEligible('h1', false, { reason: 'kernel upgrade' });
    const control = await store.get(cluster.keys.hostControl('h1'));

    // The agent restarts: its job keeps running and is adopted, not started again.
    await first.agent.close();
    await first.driver.close();
    const second = await host('h1', 0);
    await untilReady(discovery, 'demo-web', (r) => onHosts(r).join() === 'h1,h2');
    expect((await second.driver.list()).map((j) => [j.id, j.pid, j.adopted])).toEqual([
      [running?.id, running?.pid, true],
    ]);
    expect((await store.get(cluster.keys.hostControl('h1')))?.value).toBe(control?.value);
    expect((await cluster.hosts()).find((h) => h.record.id === 'h1')?.state).toBe('ineligible');
    await scheduler.idle();
    expect(await cluster.jobs({ app: 'demo' })).toHaveLength(2);

    // Drained: its job moves to h2; restarted again, h1 stays drained and runs nothing.
    await cluster.drainHost('h1', { reason: 'decommission' });
    await untilReady(discovery, 'demo-web', (r) => r.length === 2 && onHosts(r).join() === 'h2,h2');
    const drained = await store.get(cluster.keys.hostControl('h1'));
    await second.agent.close();
    await second.driver.close();
    const third = await host('h1', 0);
    expect(await third.driver.list()).toEqual([]);
    expect((await store.get(cluster.keys.hostControl('h1')))?.value).toBe(drained?.value);
    expect((await cluster.hosts()).find((h) => h.record.id === 'h1')?.state).toBe('draining');
    await scheduler.idle();
    expect((await cluster.jobs({ app: 'demo' })).map((j) => j.record.hostId)).toEqual(['h2', 'h2']);
  }, 45_000);
});
