// Drains with a deadline and the by-host read, run here on MemoryStore and by
// host-drain.integration.test.ts on a real etcd: both backends must pass the very same tests.
import { ManualClock } from '@flotilla/core';
import { MemoryStore, type Store } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState, MAX_DRAIN_DEADLINE_MS, type HostView } from './cluster-state.js';
import type { ClusterError } from './errors.js';
import { ClusterKeys } from './keys.js';
import { validateHostControl } from './records.js';

const keys = new ClusterKeys();
const T0 = 1_700_000_000_000;
const host = (
  id: string,
): { id: string; addr: string; capacity: { cpu: number; memory: number } } => ({
  id,
  addr: `127.0.0.1:${7000 + id.length}`,
  capacity: { cpu: 4000, memory: 8192 },
});

/** Drain deadlines and `host()` on a fresh store from `create`; the suite closes it. */
export function runHostDrainSuite(name: string, create: () => Store | Promise<Store>): void {
  describe(`ClusterState drains on ${name}`, () => {
    let store: Store;
    let clock: ManualClock;
    let cluster: ClusterState;
    let agents: ClusterState;

    beforeEach(async () => {
      store = await create();
      clock = new ManualClock(T0);
      cluster = new ClusterState({ store, clock });
      agents = new ClusterState({ store });
      await agents.registerHost(host('h1'));
    });

    afterEach(async () => {
      await cluster.close();
      await agents.close();
      await store.deletePrefix('');
      await store.close();
    });

    it('drainHost with deadlineMs stores the absolute deadline; hosts() says forced once it has passed', async () => {
      const control = await cluster.drainHost('h1', { deadlineMs: 600_000, reason: 'kernel' });
      expect(control).toEqual({
        eligible: true,
        drain: true,
        drainDeadline: T0 + 600_000,
        reason: 'kernel',
        updatedAt: T0,
      });
      expect(await cluster.hosts()).toMatchObject([
        { state: 'draining', drainForced: false, control: { drainDeadline: T0 + 600_000 } },
      ]);
      await clock.advance(599_999);
      expect((await cluster.hosts())[0]?.drainForced).toBe(false);
      await clock.advance(1);
      expect((await cluster.hosts())[0]).toMatchObject({ state: 'draining', drainForced: true });
      expect((await cluster.host('h1'))?.drainForced).toBe(true);
    });

    it('setEligible keeps the drain and its deadline; a new drain without one drops it; undrain ends both', async () => {
      await cluster.drainHost('h1', { deadlineMs: 60_000 });
      await cluster.setEligible('h1', false, { reason: 'flaky nic' });
      expect((await cluster.host('h1'))?.control).toEqual({
        eligible: false,
        drain: true,
        drainDeadline: T0 + 60_000,
        reason: 'flaky nic',
        updatedAt: T0,
      });
      // Each drainHost sets the drain anew, deadline included (as the reason).
      await clock.advance(1000);
      await cluster.drainHost('h1', { deadlineMs: 5000 });
      expect((await cluster.host('h1'))?.control?.drainDeadline).toBe(T0 + 6000);
      await cluster.drainHost('h1');
      expect((await cluster.host('h1'))?.control).toEqual({
        eligible: false,
        drain: true,
        updatedAt: T0 + 1000,
      });
      await cluster.drainHost('h1', { deadlineMs: 1 });
      await cluster.undrainHost('h1');
      await clock.advance(10);
      expect(await cluster.host('h1')).toMatchObject({
        state: 'ineligible',
        drainForced: false,
        control: { eligible: false, drain: false },
      });
      expect((await cluster.host('h1'))?.control?.drainDeadline).toBeUndefined();
    });

    it('refuses a bad deadlineMs with INVALID_OPTION and writes nothing', async () => {
      for (const deadlineMs of [
        0,
        -1,
        1.5,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        MAX_DRAIN_DEADLINE_MS + 1,
        1e300,
        '600000' as unknown as number,
        null as unknown as number,
      ]) {
        await expect(
          cluster.drainHost('h1', { deadlineMs }),
          String(deadlineMs),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_OPTION',
          path: 'deadlineMs',
          message: expect.stringContaining('deadlineMs must be a whole number of ms'),
        });
      }
      expect(await store.get(keys.hostControl('h1'))).toBeUndefined();
      await expect(
        cluster.drainHost('h1', { deadlineMs: MAX_DRAIN_DEADLINE_MS }),
      ).resolves.toMatchObject({ drainDeadline: T0 + MAX_DRAIN_DEADLINE_MS });
    });

    it('a deadline on an undrained host is an invalid record, read or written', async () => {
      expect(() =>
        validateHostControl({ eligible: true, drain: false, drainDeadline: T0, updatedAt: T0 }),
      ).toThrow(expect.objectContaining({ path: 'hostControl.drainDeadline' }));
      const invalid: ClusterError[] = [];
      cluster.on('invalid', (e) => invalid.push(e));
      await store.put(
        keys.hostControl('h1'),
        JSON.stringify({ eligible: true, drain: true, drainDeadline: -5, updatedAt: T0 }),
      );
      // Reported, and the host shown without the unreadable control, by both reads.
      expect(await cluster.host('h1')).toMatchObject({ state: 'up', control: undefined });
      expect(await cluster.hosts()).toMatchObject([{ state: 'up', control: undefined }]);
      expect(invalid.map((e) => [e.code, e.key])).toEqual([
        ['FLOTILLA_CLUSTER_INVALID_RECORD', keys.hostControl('h1')],
        ['FLOTILLA_CLUSTER_INVALID_RECORD', keys.hostControl('h1')],
      ]);
    });

    it('host(id) gives what hosts() gives for that host; undefined for one never registered', async () => {
      await agents.registerHost(host('h2'));
      await agents.registerHost(host('h10'));
      await cluster.drainHost('h2', { deadlineMs: 1000, reason: 'disk' });
      await store.put(
        keys.alloc('h2'),
        JSON.stringify({ jobs: 1, cpu: 250, memory: 256, by: 'scheduler-1' }),
      );
      const all = await cluster.hosts();
      for (const id of ['h1', 'h2', 'h10']) {
        const one = await cluster.host(id);
        expect(one).toEqual(all.find((h: HostView) => h.record.id === id));
      }
      expect((await cluster.host('h2'))?.alloc).toBeDefined();
      expect(await cluster.host('h9')).toBeUndefined();
      await expect(cluster.host('h1/x')).rejects.toMatchObject({
        code: 'FLOTILLA_CLUSTER_INVALID_ID',
      });
      // A host whose agent is gone: its record stays, it is down.
      const reg = await agents.registerHost(host('h3'));
      await reg.close();
      expect(await cluster.host('h3')).toMatchObject({ live: false, state: 'down' });
    });

    it('host(id) does not read the other hosts: a corrupt record of another host is not reported', async () => {
      const invalid: ClusterError[] = [];
      cluster.on('invalid', (e) => invalid.push(e));
      await store.put(keys.host('h2'), '{not json');
      await store.put(keys.hostControl('h2'), JSON.stringify({ eligible: 'yes' }));
      expect((await cluster.host('h1'))?.record.id).toBe('h1');
      expect(invalid).toEqual([]);
      await cluster.hosts();
      expect(invalid.map((e) => e.key).sort()).toEqual(
        [keys.host('h2'), keys.hostControl('h2')].sort(),
      );
    });

    it('two operators draining at once with different deadlines: one of the two wins whole', async () => {
      const other = new ClusterState({ store, clock });
      try {
        await Promise.all([
          cluster.drainHost('h1', { deadlineMs: 1000, reason: 'a' }),
          other.drainHost('h1', { deadlineMs: 2000, reason: 'b' }),
        ]);
        const c = (await cluster.host('h1'))?.control;
        expect([
          [T0 + 1000, 'a'],
          [T0 + 2000, 'b'],
        ]).toContainEqual([c?.drainDeadline, c?.reason]);
      } finally {
        await other.close();
      }
    });

    it('calls on a closed ClusterState reject with CLOSED', async () => {
      const closed = new ClusterState({ store });
      await closed.close();
      await expect(closed.host('h1')).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_CLOSED' });
      await expect(closed.drainHost('h1', { deadlineMs: 5 })).rejects.toMatchObject({
        code: 'FLOTILLA_CLUSTER_CLOSED',
      });
    });
  });
}

runHostDrainSuite('MemoryStore', () => new MemoryStore());
