// Hostile review of e255d76: a lost drain lease is granted again until the store answers.
// Tried: close() during the re-grant's retry, a lease lost twice in a row, a put failing after
// the grant, records drained and undrained while the store is down. After the store is back,
// it must hold exactly the records wanted, under one live lease, each drained/undrained change
// reported once; close() must leave no record and no lease.
import { ManualClock, silentLogger } from '@flotilla/core';
import { type Lease, MemoryStore, type Store, StoreError } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrainPublisher } from './drain-publisher.js';

const PREFIX = '/flotilla/router/';
const key = (id: string): string => `${PREFIX}drains/r1/web/${id}`;

let store: MemoryStore;
beforeEach(() => {
  store = new MemoryStore();
});
afterEach(async () => {
  await store.close();
});

interface Harness {
  store: Store;
  /** Whether the store answers: while down, every call the publisher makes fails (retryable). */
  down: boolean;
  /** Makes put fail (retryable) this many more times, the store otherwise up. */
  failPuts: number;
  /** Makes a lease's revoke fail (retryable) this many more times. */
  failRevokes: number;
  /** While set, grant() waits for it (a request on the wire). */
  grantGate: Promise<void> | undefined;
  /** Every lease granted, in order. */
  leases: (Lease & { expire(): Promise<void>; live(): boolean })[];
}

const unavailable = (): Promise<never> =>
  Promise.reject(new StoreError('FLOTILLA_STORE_UNAVAILABLE', 'the store is down'));

/** `store` behind a switch, with leases the test can end as an expiry would. */
function harness(): Harness {
  const h: Harness = {
    store,
    down: false,
    failPuts: 0,
    failRevokes: 0,
    grantGate: undefined,
    leases: [],
  };
  h.store = new Proxy(store, {
    get(target, prop) {
      if (prop === 'grant') {
        return async (ttlMs: number) => {
          if (h.grantGate !== undefined) await h.grantGate;
          if (h.down) return unavailable();
          const real = await target.grant(ttlMs);
          let end!: (r: 'expired') => void;
          const expired = new Promise<'expired'>((r) => (end = r));
          let gone = false;
          const lease = {
            id: real.id,
            ttlMs: real.ttlMs,
            get deadline() {
              return real.deadline;
            },
            get state() {
              return gone ? ('ended' as const) : real.state;
            },
            // An expiry is heard as one, not as the revoke that stands in for it in the store.
            ended: new Promise<'expired' | Awaited<typeof real.ended>>((resolve) => {
              void expired.then(resolve);
              void real.ended.then((r) => {
                if (!gone) resolve(r);
              });
            }),
            keepAlive: () => (h.down ? unavailable() : real.keepAlive()),
            renew: () => (h.down ? unavailable() : real.renew()),
            release: () => real.release(),
            revoke: () => {
              if (h.down) return unavailable();
              if (h.failRevokes > 0) {
                h.failRevokes--;
                return unavailable();
              }
              return real.revoke();
            },
            [Symbol.asyncDispose]: () => real.revoke(),
            /** The store dropped it (its keys go), and its owner hears so. */
            async expire() {
              gone = true;
              end('expired');
              await real.revoke();
            },
            /** Whether the store still has it (not expired, revoked). */
            live: () => !gone && real.state === 'active',
          };
          h.leases.push(lease);
          return lease;
        };
      }
      if (prop === 'put') {
        return (k: string, v: string, o?: object) => {
          if (h.down) return unavailable();
          if (h.failPuts > 0) {
            h.failPuts--;
            return unavailable();
          }
          return target.put(k, v, o);
        };
      }
      if (prop === 'delete') return (k: string) => (h.down ? unavailable() : target.delete(k));
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return h;
}

/**
 * A publisher on a manual clock: `retried()` resolves at its next retry delay; while `auto`,
 * each delay passes at once (the store is back: let it catch up).
 */
function publisher(h: Harness) {
  const clock = new ManualClock();
  let waiting: (() => void)[] = [];
  const events: string[] = [];
  const ctl = { auto: false };
  const logger = {
    ...silentLogger,
    warn: (obj: object | string) => {
      if (typeof obj !== 'object' || !('delayMs' in obj)) return;
      const w = waiting;
      waiting = [];
      for (const r of w) r();
      if (ctl.auto) setImmediate(() => clock.advance(obj.delayMs as number));
    },
  };
  const pub = new DrainPublisher(
    h.store,
    PREFIX,
    'r1',
    10_000,
    logger,
    (s, i, d) => events.push(`${s}/${i}:${String(d)}`),
    clock,
  );
  return {
    pub,
    clock,
    events,
    ctl,
    retried: () => new Promise<void>((r) => waiting.push(r)),
  };
}

/** Turns of the event loop until `cond()` holds (each write is a few promise hops). */
async function until(
  cond: () => Promise<boolean> | boolean,
  debug?: () => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`condition never held: ${JSON.stringify(await debug?.())}`);
}

/** The drain records in the store: key -> lease. */
async function records(): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const kv of (await store.list(`${PREFIX}drains/`)).kvs) out[kv.key] = kv.lease;
  return out;
}

describe('DrainPublisher, lease lost while the store is down', () => {
  it('records drained and undrained while down end up exactly as wanted, under one live lease, each reported', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    p.pub.drained('web', 'i4');
    await until(() => p.events.length === 2);

    h.down = true;
    let retried = p.retried();
    p.pub.drained('web', 'i2'); // before the lease is seen lost: tried under the old lease
    await retried;
    p.pub.undrained('web', 'i1');
    await (h.leases[0] as Harness['leases'][0]).expire();
    p.pub.drained('web', 'i3');
    p.pub.undrained('web', 'i4');
    p.pub.drained('web', 'i4'); // and back: the record is wanted again
    retried = p.retried();
    p.clock.advance(100);
    await retried;

    h.down = false;
    p.ctl.auto = true;
    p.clock.advance(200);
    const want = [key('i2'), key('i3'), key('i4')];
    await until(
      async () => {
        const r = await records();
        return (
          Object.keys(r).sort().join() === want.join() &&
          h.leases.filter((l) => l.live()).length === 1 &&
          p.events.length >= 6
        );
      },
      async () => ({
        r: await records(),
        live: h.leases.map((l) => [l.id, l.live()]),
        ev: p.events,
      }),
    );
    const r = await records();
    const live = h.leases.filter((l) => l.live());
    expect(live).toHaveLength(1);
    expect(new Set(Object.values(r))).toEqual(new Set([live[0]?.id]));
    // Each change reported once written: i1 undrained; i2 (tried under the lost lease, then
    // written by the re-grant), i3 and i4 (its new record) drained. Before: i2 never was.
    expect(p.events.slice(2).sort()).toEqual([
      'web/i1:false',
      'web/i2:true',
      'web/i3:true',
      'web/i4:true',
    ]);
    await p.pub.close();
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live())).toEqual([]);
  });

  it('a lease lost twice in a row, and a put failing after the grant: one live lease, none after close', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    p.pub.drained('web', 'i2');
    await until(() => p.events.length === 2);

    // Lost once; the new grant works but the puts after it fail twice (the store flaps).
    h.failPuts = 2;
    p.ctl.auto = true;
    await (h.leases[0] as Harness['leases'][0]).expire();
    await until(async () => Object.keys(await records()).length === 2);
    // Lost again, at once.
    const current = h.leases.filter((l) => l.live());
    expect(current).toHaveLength(1);
    await (current[0] as Harness['leases'][0]).expire();
    await until(
      async () =>
        Object.keys(await records()).length === 2 && h.leases.filter((l) => l.live()).length === 1,
    );
    const live = h.leases.filter((l) => l.live());
    expect(live).toHaveLength(1);
    expect(new Set(Object.values(await records()))).toEqual(new Set([live[0]?.id]));
    await p.pub.close();
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live())).toEqual([]);
  });

  it('a grant superseded while the store is down is not left live after the store is back', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    await until(() => p.events.length === 1);
    // Lost; the new grant works, then the store goes down before the put: the next attempt's
    // grant supersedes it while revoke cannot reach the store.
    h.failPuts = 1;
    let retried = p.retried();
    await (h.leases[0] as Harness['leases'][0]).expire();
    await retried;
    expect(h.leases).toHaveLength(2);
    h.down = true;
    retried = p.retried();
    p.clock.advance(100);
    await retried;
    h.down = false;
    p.ctl.auto = true;
    p.clock.advance(200);
    await until(async () => Object.keys(await records()).length === 1);
    await p.pub.close();
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live()).map((l) => l.id)).toEqual([]);
  });

  it('a superseded grant whose revoke fails (the store flapped) is not left live by close()', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    await until(() => p.events.length === 1);
    // Lost; the new grant works, its put does not; the next attempt's grant supersedes it, and
    // revoking it fails.
    h.failPuts = 1;
    h.failRevokes = 1;
    p.ctl.auto = true;
    await (h.leases[0] as Harness['leases'][0]).expire();
    await until(async () => Object.keys(await records()).length === 1 && h.leases.length === 3);
    const [, second, third] = h.leases;
    expect(Object.values(await records())).toEqual([third?.id]);
    expect(second?.live()).toBe(true); // left to its TTL, not kept alive
    await p.pub.close();
    expect(await records()).toEqual({});
    // Before: the superseded lease stayed in the store after close().
    expect(h.leases.filter((l) => l.live()).map((l) => l.id)).toEqual([]);
  });

  it('close() during the re-grant retry resolves with the clock stopped and leaves nothing', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    await until(() => p.events.length === 1);
    h.down = true;
    const retried = p.retried();
    await (h.leases[0] as Harness['leases'][0]).expire();
    await retried;
    await p.pub.close(); // the clock never moves: close() cuts the delay short
    h.down = false;
    p.clock.advance(60_000);
    await until(() => true);
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live())).toEqual([]);
    await p.pub.close(); // twice
  });

  it('a store down at start: the lease is granted once it answers, and the records written', async () => {
    const h = harness();
    const p = publisher(h);
    h.down = true;
    await p.pub.start(); // resolves: a router starts while its store is away
    expect(h.leases).toEqual([]);
    const retried = p.retried();
    p.pub.drained('web', 'i1');
    await retried;
    h.down = false;
    p.ctl.auto = true;
    p.clock.advance(100);
    // Before: the first write failed for good ("drain record written before the lease was
    // granted"), and so did every later one.
    await until(() => p.events.length === 1);
    const live = h.leases.filter((l) => l.live());
    expect(live).toHaveLength(1);
    expect(await records()).toEqual({ [key('i1')]: live[0]?.id });
    await p.pub.close();
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live())).toEqual([]);
  });

  it('close() while the re-grant is on the wire: what it writes after is revoked with it', async () => {
    const h = harness();
    const p = publisher(h);
    await p.pub.start();
    p.pub.drained('web', 'i1');
    await until(() => p.events.length === 1);
    let open!: () => void;
    h.grantGate = new Promise<void>((r) => (open = r));
    await (h.leases[0] as Harness['leases'][0]).expire();
    const closed = p.pub.close();
    open();
    await closed;
    expect(h.leases).toHaveLength(2); // the re-grant was on the wire: it went through
    expect(await records()).toEqual({});
    expect(h.leases.filter((l) => l.live())).toEqual([]);
  });
});
