import { describe, expect, it } from 'vitest';
import { StoreError, StoreErrorCodes, type Store } from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { interceptStore, placesJobs } from '../../../test/support/intercept-store.js';
import { declare, setup, until, web } from '../../../test/support/scheduler-probes.js';
import { Scheduler } from './scheduler.js';

const ticks = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

interface Hooks {
  list?: (
    prefix: string,
    next: () => Promise<Awaited<ReturnType<Store['list']>>>,
  ) => ReturnType<Store['list']>;
  txn?: (
    txn: Parameters<Store['txn']>[0],
    next: () => ReturnType<Store['txn']>,
  ) => ReturnType<Store['txn']>;
}
function proxy(store: Store, hooks: Hooks): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const { list, txn } = hooks;
      if (prop === 'list' && list)
        return (p: string, o?: Parameters<Store['list']>[1]) => list(p, () => target.list(p, o));
      if (prop === 'txn' && txn)
        return (t: Parameters<Store['txn']>[0], o?: Parameters<Store['txn']>[1]) =>
          txn(t, () => target.txn(t, o));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

// Probes of the sole scheduler's watch (session 11 review): races of its listings with commits,
// epochs, compaction and close().
describe('review s11', () => {
  it('P1: switch back to own-jobs view while a commit is in flight loses the committed jobs', async () => {
    const { clock, memory, cluster } = await setup();
    let failNext = true;
    let listRace: { onListed: () => void; applied: Promise<void> } | undefined;
    let race:
      | {
          listed: Promise<void>;
          onListed: () => void;
          applied: Promise<void>;
          onApplied: () => void;
        }
      | undefined;
    const store = proxy(memory, {
      txn: async (txn, next) => {
        if (placesJobs(txn, cluster.keys.jobs) && failNext) {
          failNext = false;
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'injected');
        }
        if (race !== undefined && placesJobs(txn, cluster.keys.jobs)) {
          const r = race;
          race = undefined;
          listRace = r;
          await Promise.race([r.listed, new Promise((res) => setTimeout(res, 2000))]);
          const res = await next();
          void ticks().then(r.onApplied);
          return res;
        }
        return next();
      },
      list: async (prefix, next) => {
        const r = listRace;
        listRace = undefined;
        const res = await next();
        if (r !== undefined) {
          r.onListed();
          await Promise.race([r.applied, new Promise((res) => setTimeout(res, 2000))]);
        }
        return res;
      },
    });
    const s = new Scheduler({ store, clock, id: 'a' });
    await s.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await s.idle();
    expect(s.stats.jobs).toBe(2);
    await clock.advance(61_000);
    let onListed!: () => void;
    let onApplied!: () => void;
    const listed = new Promise<void>((r) => (onListed = r));
    const applied = new Promise<void>((r) => (onApplied = r));
    race = { listed, onListed, applied, onApplied };
    await declare(cluster, web(3, 'two'));
    await until(clock, async () => (await cluster.jobs()).length >= 5, 10_000);
    await ticks();
    await clock.advance(5000);
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs.filter((j) => j.record.app === 'two')).toHaveLength(3);
    expect(s.stats.jobs).toBe(5);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s11 P2', () => {
  it.each([true, false])(
    'P2 watchOwnJobs=%s: a second scheduler joining, placing and leaving while the sole one is behind: its jobs are never seen',
    async (watchOwnJobs) => {
      const { clock, memory, cluster } = await setup(0);
      await cluster.registerHost(
        { id: 'h0', addr: 'test://h0', capacity: { cpu: 1000, memory: 65_536 } },
        { ttlMs: 600_000 },
      );
      let release: (() => void) | undefined;
      let held: Promise<void> | undefined;
      const store = interceptStore(memory, {
        watchEvent: async () => {
          if (held !== undefined) await held;
        },
      });
      const a = new Scheduler({ store, clock, id: 'a', watchOwnJobs });
      await a.start();
      await declare(cluster, web(2, 'one'));
      await until(clock, async () => (await cluster.jobs()).length >= 2);
      await a.idle();
      // a falls behind its watch (a slow consumer, a busy event loop, one etcd watch response).
      held = new Promise<void>((r) => (release = r));
      const b = new Scheduler({ store: memory, clock, id: 'b' });
      await b.start();
      for (const app of ['two', 'three', 'four', 'five']) await declare(cluster, web(2, app));
      await until(clock, async () => (await cluster.jobs()).length > 2, 5000);
      await b.idle();
      const placedByB = (await cluster.jobs()).length - 2;
      await b.close();
      expect(JSON.parse((await memory.get(cluster.keys.schedulerEpoch))?.value ?? '{}')).toEqual({
        members: ['a'],
      });
      held = undefined;
      release?.();
      await until(clock, async () => (await cluster.jobs()).length >= 10, 10_000);
      await clock.advance(5000);
      await a.idle();
      const jobs = await cluster.jobs();
      const perApp = new Map<string, number>();
      for (const j of jobs) perApp.set(j.record.app, (perApp.get(j.record.app) ?? 0) + 1);
      const alloc = JSON.parse((await memory.get(cluster.keys.alloc('h0')))?.value ?? '{}') as {
        cpu?: number;
      };
      const cpu = jobs.reduce((n, j) => n + j.record.resources.cpu, 0);
      expect(placedByB).toBeGreaterThan(0);
      for (const [, n] of perApp) expect(n).toBeLessThanOrEqual(2);
      expect(cpu).toBeLessThanOrEqual(1000);
      expect(alloc.cpu).toBe(cpu);
      await a.close();
      await cluster.close();
      await memory.close();
    },
  );
});

describe('review s11 P3', () => {
  it('P3: close() while a mode switch waits on its listing resolves promptly', async () => {
    const { clock, memory, cluster } = await setup();
    let holdList = false;
    const store = proxy(memory, {
      list: async (_prefix, next) => {
        if (holdList) {
          // A slow listing (a million keys on etcd).
          await new Promise((r) => setTimeout(r, 300));
        }
        return next();
      },
    });
    const a = new Scheduler({ store, clock, id: 'a' });
    await a.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await a.idle();
    holdList = true;
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await ticks(50);
    const closing = a.close();
    const r = await Promise.race([
      closing.then(() => 'closed'),
      new Promise((res) => setTimeout(() => res('hung'), 3000)),
    ]);
    expect(r).toBe('closed');
    await b.close();
    await cluster.close();
    await memory.close();
  });

  it('P3b: idle() while not sole and the full listing keeps failing', async () => {
    const { clock, memory, cluster } = await setup();
    let failList = false;
    const store = proxy(memory, {
      list: async (_prefix, next) => {
        if (failList) throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'injected');
        return next();
      },
    });
    const a = new Scheduler({ store, clock, id: 'a' });
    await a.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await a.idle();
    failList = true;
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await until(clock, async () => a.stats.members.length === 2, 5000);
    const idle = a.idle().then(() => 'idle');
    const r = await Promise.race([
      idle,
      new Promise((res) => setTimeout(() => res('pending'), 500)),
    ]);
    // It cannot list the full view, so it does not plan: idle() resolves once it closes.
    expect(['pending', 'idle']).toContain(r);
    await a.close();
    expect(await idle).toBe('idle');
    await b.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s11 P4', () => {
  it('P4: sole, cut off, a job deleted by hand, history compacted, healed: replaced, counts right', async () => {
    const { clock, memory, cluster } = await setup(1, 20);
    const view = new PartitionableStore(memory, { clock });
    const a = new Scheduler({ store: view, clock, id: 'a' });
    const errors: string[] = [];
    a.on('error', (e) => errors.push(String((e as { code?: string }).code ?? e)));
    await a.start();
    await declare(cluster, web(3));
    await until(clock, async () => (await cluster.jobs()).length >= 3);
    await a.idle();
    view.partitioned = true;
    const [victim] = await cluster.jobs();
    await memory.delete(cluster.keys.job(victim?.record.hostId ?? '', victim?.record.id ?? ''));
    for (let i = 0; i < 80; i++) await memory.put(`noise/${i % 3}`, String(i));
    await clock.advance(1000);
    view.partitioned = false;
    await until(
      clock,
      async () => {
        const now = await cluster.jobs();
        return now.length === 3 && !now.some((j) => j.record.id === victim?.record.id);
      },
      20_000,
    );
    await clock.advance(2000);
    await a.idle();
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(3);
    expect(a.stats.jobs).toBe(3);
    await a.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s11 P5', () => {
  it('P5: start({ signal }) aborted during the first listing leaves no watch running', async () => {
    const { clock, memory, cluster } = await setup();
    const ac = new AbortController();
    let watches = 0;
    const store = proxy(memory, {
      list: async (_p, next) => {
        ac.abort();
        return next();
      },
    });
    const counting = new Proxy(store, {
      get(t, p, r) {
        if (p === 'watch')
          return (prefix: string, o?: Parameters<Store['watch']>[1]) => {
            watches++;
            const it = t.watch(prefix, o);
            return {
              async *[Symbol.asyncIterator]() {
                try {
                  for await (const e of it) yield e;
                } finally {
                  watches--;
                }
              },
            };
          };
        return Reflect.get(t, p, r) as unknown;
      },
    });
    const a = new Scheduler({ store: counting, clock, id: 'a' });
    const err = await a.start({ signal: ac.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeDefined();
    await ticks(50);
    await clock.advance(1000);
    await ticks(50);
    // the member key removed by leave()
    expect(await memory.get(cluster.keys.scheduler('a'))).toBeUndefined();
    expect(watches).toBe(0);
    await a.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s11 P6', () => {
  it('P6: deletes-only watch compacted right as a switch to own-jobs ends: a job deleted by hand afterwards is still replaced', async () => {
    const { clock, memory, cluster } = await setup(1, 20);
    let failNext = true;
    let noise = false;
    const lists: number[] = [];
    const store = proxy(memory, {
      txn: async (txn, next) => {
        if (placesJobs(txn, cluster.keys.jobs) && failNext) {
          failNext = false;
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'injected');
        }
        return next();
      },
      list: async (_p, next) => {
        const res = await next();
        lists.push(res.revision);
        if (noise) {
          noise = false;
          for (let i = 0; i < 80; i++) await memory.put(`noise/${i % 3}`, String(i));
        }
        return res;
      },
    });
    const a = new Scheduler({ store, clock, id: 'a' });
    await a.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await a.idle();
    await clock.advance(61_000);
    noise = true;
    await declare(cluster, web(1, 'two'));
    await until(clock, async () => (await cluster.jobs()).length >= 3, 5000);
    await clock.advance(2000);
    await a.idle();
    const [victim] = await cluster.jobs();
    await memory.delete(cluster.keys.job(victim?.record.hostId ?? '', victim?.record.id ?? ''));
    await until(
      clock,
      async () => {
        const now = await cluster.jobs();
        return now.length === 3 && !now.some((j) => j.record.id === victim?.record.id);
      },
      10_000,
    );
    await a.idle();
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(3);
    expect(a.stats.jobs).toBe(3);
    await a.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s11 P7', () => {
  it.each([true, false])(
    'P7 watchOwnJobs=%s: a brief disconnect after compaction, no job deleted: at most one listing (MemoryStore)',
    async (watchOwnJobs) => {
      const { clock, memory, cluster } = await setup(1, 20);
      let lists = 0;
      const counted = proxy(memory, {
        list: async (_p, next) => {
          lists++;
          return next();
        },
      });
      const view = new PartitionableStore(counted, { clock });
      const a = new Scheduler({ store: view, clock, id: 'a', watchOwnJobs });
      await a.start();
      await declare(cluster, web(3));
      await until(clock, async () => (await cluster.jobs()).length >= 3);
      await a.idle();
      // Ordinary traffic under the prefix, before jobs/ (allocation summaries, statuses, heartbeats).
      for (let i = 0; i < 80; i++)
        await memory.put(
          cluster.keys.alloc('h9'),
          JSON.stringify({ jobs: 0, cpu: 0, memory: 0, by: 'x' }),
        );
      await ticks(20);
      const before = lists;
      view.partitioned = true;
      await ticks(20);
      view.partitioned = false;
      await clock.advance(6000);
      await ticks(50);
      await a.idle();
      // MemoryStore has no progress notifications (etcd's deletesOnly watch does, see
      // @flotilla/etcd): its deletes-only watch resumes from its last delete, behind the
      // compaction, and lists once more. Bounded: one listing, not one per reconnect.
      expect(lists - before).toBeLessThanOrEqual(watchOwnJobs ? 1 : 0);
      await a.close();
      await cluster.close();
      await memory.close();
    },
  );
});

describe('review s11 P8', () => {
  it.each([false, true])(
    'P8 watchOwnJobs=%s: close() while the catch-up waits for the watch to pass the barrier',
    async (watchOwnJobs) => {
      const { clock, memory, cluster } = await setup();
      let held: Promise<void> | undefined;
      let failNext = true;
      // Holds watch events back, but lets an aborted watch end (as a real stalled stream does).
      const base = new Proxy(memory, {
        get(t, p, r) {
          if (p === 'watch')
            return (prefix: string, o?: Parameters<Store['watch']>[1]) => {
              const inner = t.watch(prefix, o);
              return (async function* () {
                for await (const ev of inner) {
                  if (held !== undefined) {
                    const sig = o?.signal;
                    await Promise.race([
                      held,
                      new Promise<void>((res) => {
                        if (sig?.aborted) res();
                        sig?.addEventListener('abort', () => res(), { once: true });
                      }),
                    ]);
                    if (sig?.aborted) return;
                  }
                  yield ev;
                }
              })();
            };
          const v = Reflect.get(t, p, r) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      }) as Store;
      const store = proxy(base, {
        txn: async (txn, next) => {
          if (placesJobs(txn, cluster.keys.jobs) && failNext) {
            failNext = false;
            // The store goes quiet for this scheduler's watch (a stalled stream, a slow member).
            held = new Promise(() => undefined);
            throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'injected');
          }
          return next();
        },
      });
      const a = new Scheduler({ store, clock, id: 'a', watchOwnJobs });
      await a.start();
      await declare(cluster, web(2));
      await until(clock, async () => !failNext, 5000);
      for (let i = 0; i < 10; i++) {
        await clock.advance(100);
        await ticks(10);
      }
      const r = await Promise.race([
        a.close().then(() => 'closed'),
        new Promise((res) => setTimeout(() => res('hung'), 3000)),
      ]);
      expect(r).toBe('closed');
      await cluster.close();
      await memory.close();
    },
  );
});

describe('review s11 P9', () => {
  it('P9: full listings by the sole scheduler when a second one joins', async () => {
    const { clock, memory, cluster } = await setup();
    let lists = 0;
    const store = proxy(memory, {
      list: async (_p, next) => {
        lists++;
        return next();
      },
    });
    const a = new Scheduler({ store, clock, id: 'a' });
    await a.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await a.idle();
    const before = lists;
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await until(clock, async () => a.stats.members.length === 2, 5000);
    await ticks(50);
    await clock.advance(2000);
    await a.idle();
    expect(lists - before).toBe(1);
    await b.close();
    await a.close();
    await cluster.close();
    await memory.close();
  });
});

describe('review s12', () => {
  it('close() after the listing of a change of watch mode failed for good resolves', async () => {
    const { clock, memory, cluster } = await setup();
    let failList = false;
    const store = proxy(memory, {
      list: async (_prefix, next) => {
        // Not retryable: the watch fails for good.
        if (failList) throw new StoreError(StoreErrorCodes.INVALID_ARGUMENT, 'injected');
        return next();
      },
    });
    const a = new Scheduler({ store, clock, id: 'a' });
    const errors: unknown[] = [];
    a.on('error', (err) => errors.push(err));
    await a.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await a.idle();
    failList = true;
    // A second scheduler: the first lists everything again, and that listing fails.
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await until(clock, async () => a.state === 'failed', 5000);
    expect(
      errors.some((e) => e instanceof StoreError && e.code === 'FLOTILLA_STORE_INVALID_ARGUMENT'),
    ).toBe(true);
    const r = await Promise.race([
      a.close().then(() => 'closed'),
      new Promise((res) => setTimeout(() => res('hung'), 3000)),
    ]);
    expect(r).toBe('closed');
    expect(a.state).toBe('stopped');
    await b.close();
    await cluster.close();
    await memory.close();
  });
});
