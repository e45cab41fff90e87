// Hostile review of 84518fc: Discovery.close() ends the watch() iterations opened on it.
// Tried: close() racing watch creation, a caller signal already aborted, 1000 watches, close()
// twice, and a registration whose deregistration fails for good.
import { getEventListeners } from 'node:events';
import { ManualClock } from '@flotilla/core';
import { type Lease, MemoryStore, type Store } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Discovery } from './discovery.js';
import type { DiscoveryEvent } from './instance.js';

let clock: ManualClock;
let store: MemoryStore;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  clock = new ManualClock(Date.UTC(2026, 11, 1));
  store = new MemoryStore({ clock });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await store.close();
});

function discovery(s: Store = store): Discovery {
  const d = new Discovery({ store: s, clock });
  cleanups.push(() => d.close());
  return d;
}

/** A view of `store` whose leases' revoke() waits for `gate` and then does `then`. */
function gatedRevoke(gate: Promise<void>, then: 'revoke' | 'fail'): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'grant') {
        return async (ttlMs: number, options?: object): Promise<Lease> => {
          const lease = await target.grant(ttlMs, options);
          return new Proxy(lease, {
            get(l, p) {
              if (p === 'revoke') {
                return async () => {
                  await gate;
                  if (then === 'fail') throw new Error('revoke refused (permission denied)');
                  await l.revoke();
                };
              }
              const v: unknown = Reflect.get(l, p, l);
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(l) : v;
            },
          });
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Reads `it` to its end; resolves with the events after the first. */
async function drain(it: AsyncIterator<DiscoveryEvent>): Promise<DiscoveryEvent[]> {
  const out: DiscoveryEvent[] = [];
  for (let r = await it.next(); r.done !== true; r = await it.next()) out.push(r.value);
  return out;
}

describe('Discovery.close() and open watches', () => {
  it('a second close() resolves only once the first has deregistered and ended the watches', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const d = discovery(gatedRevoke(gate, 'revoke'));
    await d.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
    const it = d.watch('web')[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ kind: 'current' });
    const ended = drain(it);
    const first = d.close();
    let secondDone = false;
    const second = d.close().then(() => {
      secondDone = true;
    });
    // The first close is held in the deregistration: the second must not report done before.
    const listed = await store.list('discovery/');
    expect(listed.kvs.length).toBe(1);
    expect(secondDone).toBe(false);
    open();
    await second;
    expect((await store.list('discovery/')).kvs).toEqual([]);
    await first;
    expect(await ended).toMatchObject([{ kind: 'down' }]);
  });

  it('a deregistration that fails for good still ends the watches (and close() says why)', async () => {
    const d = discovery(gatedRevoke(Promise.resolve(), 'fail'));
    await d.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
    const it = d.watch('web')[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ kind: 'current' });
    // Settled whatever happens: a failure here is the assertion below, not an unhandled error.
    const ended = drain(it).catch((err: unknown) => err);
    await expect(d.close()).rejects.toThrow('revoke refused');
    // Hung before: the watch went on until its consumer gave up.
    expect(await ended).toEqual([]);
    // Idempotent: a second call does not try again, nor hang.
    await expect(d.close()).rejects.toThrow('revoke refused');
  });

  it('ends a watch that close() races: opened before, first read after, and the reverse', async () => {
    const d = discovery();
    const a = d.watch('web')[Symbol.asyncIterator]();
    const b = d.watch('web')[Symbol.asyncIterator]();
    const bFirst = b.next(); // started before close(): ends with it
    const closing = d.close();
    // Not started before close(): refused with the typed error.
    await expect(a.next()).rejects.toMatchObject({ code: 'FLOTILLA_DISCOVERY_CLOSED' });
    await closing;
    const r = await bFirst;
    if (r.done !== true) {
      expect(r.value).toMatchObject({ kind: 'current' });
      expect(await drain(b)).toEqual([]);
    }
    await expect(d.watch('web')[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: 'FLOTILLA_DISCOVERY_CLOSED',
    });
  });

  it("a watch whose caller's signal is already aborted ends at once, and close() still works", async () => {
    const d = discovery();
    const ac = new AbortController();
    ac.abort();
    const events = await drain(d.watch('web', { signal: ac.signal })[Symbol.asyncIterator]()).catch(
      (err: unknown) => err,
    );
    // Ended (at most after its snapshot) or refused with the abort: never left open.
    expect(Array.isArray(events) || (events as Error).name === 'AbortError').toBe(true);
    await d.close();
  });

  it('1000 watches, with and without signals, all end at close(), without a listener warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    cleanups.push(async () => process.off('warning', onWarning));
    const d = discovery();
    await d.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
    const ac = new AbortController();
    const its = Array.from({ length: 1000 }, (_, i) =>
      d.watch('web', i % 2 === 0 ? {} : { signal: ac.signal })[Symbol.asyncIterator](),
    );
    for (const it of its) expect((await it.next()).value).toMatchObject({ kind: 'current' });
    const ends = its.map((it) => drain(it));
    await d.close();
    const all = await Promise.all(ends);
    expect(all.every((e) => e.length === 1 && e[0]?.kind === 'down')).toBe(true);
    // Warnings are emitted on the next tick: one more turn of the event loop.
    await new Promise<void>((r) => setImmediate(r));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('watches that end leave no abort listener behind on a signal that outlives them', async () => {
    const d = discovery();
    const caller = new AbortController();
    // Every signal an abort listener is added to while the watches run.
    const signals = new Set<AbortSignal>();
    const add = EventTarget.prototype.addEventListener;
    EventTarget.prototype.addEventListener = function (
      this: EventTarget,
      ...args: Parameters<typeof add>
    ): void {
      if (this instanceof AbortSignal) signals.add(this);
      add.apply(this, args);
    };
    try {
      for (let i = 0; i < 200; i++) {
        const opts = i % 2 === 0 ? {} : { signal: caller.signal };
        const it = d.watch('web', opts)[Symbol.asyncIterator]();
        await it.next(); // the snapshot
        const change = it.next(); // the store's watch is open now
        await d.register({ service: 'web', addr: '127.0.0.1:1', id: `i${i}` });
        expect((await change).value).toMatchObject({ kind: 'up' });
        await it.return(undefined);
      }
    } finally {
      EventTarget.prototype.addEventListener = add;
    }
    // Before: the Discovery's own signal held one listener (and the watch's queue) per watch
    // ended, for the Discovery's life. A watch's own signal may keep one: it goes with it.
    const most = Math.max(...[...signals].map((s) => getEventListeners(s, 'abort').length));
    expect(most).toBeLessThanOrEqual(1);
    expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
  });
});
