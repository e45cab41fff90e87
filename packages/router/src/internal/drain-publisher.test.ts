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
