// Drained records while the store is unreachable: retried on the publisher's clock, and a
// close() does not wait out a pending delay.
import { type Logger, ManualClock, silentLogger } from '@flotilla/core';
import { MemoryStore, type Store, StoreError } from '@flotilla/store';
import { afterEach, describe, expect, it } from 'vitest';
import { DrainPublisher } from './drain-publisher.js';

const KEY = '/flotilla/router/drains/r1/web/i1';
let store: MemoryStore;

afterEach(async () => {
  await store.close();
});

/** `store` with `put` failing (retryable) while `down()` says so; counts put attempts. */
function flaky(down: () => boolean): { store: Store; puts: () => number } {
  let puts = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return (key: string, value: string, options?: object) => {
          puts++;
          if (down()) return Promise.reject(new StoreError('FLOTILLA_STORE_UNAVAILABLE', 'down'));
          return target.put(key, value, options);
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
  return { store: wrapped, puts: () => puts };
}

/** A logger whose `next()` resolves at the next 'retrying' warning. */
function retryLog(): Logger & { next(): Promise<void> } {
  let waiting: (() => void)[] = [];
  return {
    ...silentLogger,
    warn: (obj: object | string) => {
      if (typeof obj === 'object' && 'delayMs' in obj) {
        const w = waiting;
        waiting = [];
        for (const r of w) r();
      }
    },
    next: () => new Promise<void>((r) => waiting.push(r)),
  };
}

describe('DrainPublisher', () => {
  it('writes a record on its clock once the store answers again (100 ms, then 200 ms)', async () => {
    store = new MemoryStore();
    let failures = 2;
    const s = flaky(() => failures-- > 0);
    const log = retryLog();
    const clock = new ManualClock();
    const written: string[] = [];
    let wrote!: () => void;
    const done = new Promise<void>((r) => (wrote = r));
    const pub = new DrainPublisher(
      s.store,
      '/flotilla/router/',
      'r1',
      10_000,
      log,
      (svc, id, drained) => {
        written.push(`${svc}/${id}:${String(drained)}`);
        wrote();
      },
      clock,
    );
    await pub.start();
    let retried = log.next();
    pub.drained('web', 'i1');
    await retried;
    retried = log.next();
    clock.advance(100);
    await retried;
    expect(s.puts()).toBe(2);
    expect(await store.get(KEY)).toBeUndefined();
    clock.advance(200);
    await done;
    expect(written).toEqual(['web/i1:true']);
    expect(s.puts()).toBe(3);
    expect(await store.get(KEY)).toBeDefined();
    await pub.close();
  });

  it('a lease lost while the store is down is granted again once it answers, and every record written again', async () => {
    store = new MemoryStore();
    let down = false;
    let grants = 0;
    /** Ends the lease the publisher holds, as an expiry would (its keys go). */
    let expire = (): Promise<void> => Promise.resolve();
    const wrapped = new Proxy(store, {
      get(target, prop, receiver) {
        const unavailable = (): Promise<never> =>
          Promise.reject(new StoreError('FLOTILLA_STORE_UNAVAILABLE', 'down'));
        if (prop === 'grant') {
          return async (ttlMs: number) => {
            grants++;
            if (down) return unavailable();
            const lease = await target.grant(ttlMs);
            let end!: (reason: 'expired') => void;
            const ended = new Promise<'expired'>((r) => (end = r));
            expire = async () => {
              await lease.revoke();
              end('expired');
            };
            return {
              id: lease.id,
              ttlMs: lease.ttlMs,
              get state() {
                return lease.state;
              },
              ended,
              keepAlive: () => lease.keepAlive(),
              revoke: () => lease.revoke(),
            };
          };
        }
        if (prop === 'put') {
          return (key: string, value: string, options?: object) =>
            down ? unavailable() : target.put(key, value, options);
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    const log = retryLog();
    const clock = new ManualClock();
    let written!: () => void;
    let wrote = new Promise<void>((r) => (written = r));
    const pub = new DrainPublisher(
      wrapped,
      '/flotilla/router/',
      'r1',
      10_000,
      log,
      () => written(),
      clock,
    );
    await pub.start();
    pub.drained('web', 'i1');
    await wrote;
    expect(await store.get(KEY)).toBeDefined();

    // The store goes away for longer than the TTL: the lease ends, its record with it.
    down = true;
    let retried = log.next();
    await expire();
    await retried;
    expect(await store.get(KEY)).toBeUndefined();
    retried = log.next();
    clock.advance(100);
    await retried; // a second try, still down
    expect(grants).toBe(3);

    down = false;
    const key2 = '/flotilla/router/drains/r1/web/i2';
    wrote = new Promise<void>((r) => (written = r));
    pub.drained('web', 'i2'); // waits behind the new grant
    clock.advance(200);
    await wrote;
    expect(grants).toBe(4);
    const [one, two] = [await store.get(KEY), await store.get(key2)];
    expect(one?.lease).toBeDefined();
    expect(two?.lease).toBe(one?.lease);
    await pub.close();
    expect((await store.list('/flotilla/router/drains/')).kvs).toEqual([]);
  });

  it('a lease that cannot be kept alive is not used: revoked, and granted again for the first record', async () => {
    store = new MemoryStore();
    const leases: { id: string; kept: boolean }[] = [];
    const wrapped = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'grant') {
          return async (ttlMs: number) => {
            const lease = await target.grant(ttlMs);
            const entry = { id: lease.id, kept: false };
            leases.push(entry);
            const first = leases.length === 1;
            return new Proxy(lease, {
              get(l, p) {
                if (p === 'keepAlive')
                  return async () => {
                    // The first keep-alive fails: the store went away right after the grant.
                    if (first) throw new StoreError('FLOTILLA_STORE_UNAVAILABLE', 'down');
                    await l.keepAlive();
                    entry.kept = true;
                  };
                const v = Reflect.get(l, p, l) as unknown;
                return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(l) : v;
              },
            });
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    let written!: () => void;
    const wrote = new Promise<void>((r) => (written = r));
    const pub = new DrainPublisher(
      wrapped,
      '/flotilla/router/',
      'r1',
      10_000,
      silentLogger,
      () => written(),
      new ManualClock(),
    );
    await pub.start();
    pub.drained('web', 'i1');
    await wrote;
    expect(leases).toHaveLength(2);
    const kv = await store.get(KEY);
    expect(kv?.lease).toBe(leases[1]?.id);
    expect(leases[1]?.kept).toBe(true);
    // The first one is gone, not left to expire with nothing renewing it.
    await expect(store.put('/probe', 'x', { lease: leases[0]?.id ?? '' })).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
    });
    await pub.close();
  });

  it('close() ends a pending retry delay: it resolves with the clock stopped, and writes no more', async () => {
    store = new MemoryStore();
    const s = flaky(() => true);
    const log = retryLog();
    const clock = new ManualClock();
    const pub = new DrainPublisher(
      s.store,
      '/flotilla/router/',
      'r1',
      10_000,
      log,
      () => undefined,
      clock,
    );
    await pub.start();
    const retried = log.next();
    pub.drained('web', 'i1');
    await retried;
    expect(clock.pending).toBe(1);
    // The clock never moves: close() returns only if it cuts the delay short.
    await pub.close();
    expect(clock.pending).toBe(0);
    clock.advance(60_000);
    expect(s.puts()).toBe(1);
    expect(await store.get(KEY)).toBeUndefined();
  });
});
