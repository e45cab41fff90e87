import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, isFlotillaError } from '@flotilla/core';
import { SqliteStore } from '@flotilla/sqlite';
import {
  type CallOptions,
  MemoryStore,
  type Store,
  StoreError,
  StoreErrorCodes,
} from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Discovery } from './discovery.js';
import type { DiscoveryEvent } from './instance.js';
import type { Registration } from './registration.js';

// The same behaviour on the in-memory store and on SQLite, the embedded default.
// `historyLimit`: how many changes the store keeps for watches that resume (real compaction).
const backends: [
  string,
  (clock: ManualClock, historyLimit?: number) => { store: Store; cleanup: () => void },
][] = [
  [
    'MemoryStore',
    (clock, historyLimit) => ({
      store: new MemoryStore({ clock, ...(historyLimit === undefined ? {} : { historyLimit }) }),
      cleanup: () => undefined,
    }),
  ],
  [
    'SqliteStore',
    (clock, historyLimit) => {
      const dir = mkdtempSync(join(tmpdir(), 'flotilla-discovery-'));
      return {
        store: new SqliteStore({
          path: join(dir, 'state.db'),
          clock,
          synchronous: 'normal',
          ...(historyLimit === undefined ? {} : { historyLimit }),
        }),
        cleanup: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  ],
];

/** A view of `inner` with some of its methods replaced. */
function intercept(inner: Store, overrides: Partial<Store>): Store {
  return new Proxy(inner, {
    get(target, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof Store];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * A view of a store whose writes (puts and txns) can be held, as a request on the wire is:
 * `hold()` makes the next writes wait; `arrived` resolves when one is waiting; `release()` lets
 * them reach the store. A held write honours its signal as a network client does: the caller's
 * promise rejects at once, but the request still reaches the store on `release()` (etcd may
 * apply a write whose caller gave up).
 */
function holdWrites(inner: Store): {
  store: Store;
  hold: () => void;
  arrived: () => Promise<void>;
  release: () => Promise<void>;
} {
  let holding = false;
  let waiting: (() => Promise<unknown>)[] = [];
  let onArrive: (() => void) | undefined;
  const held = <O extends CallOptions, T>(
    options: O | undefined,
    send: (options: O | undefined) => Promise<T>,
  ): Promise<T> => {
    if (!holding) return send(options);
    const { signal, ...rest } = options ?? {};
    return new Promise<T>((resolve, reject) => {
      waiting.push(() => send(rest as O).then(resolve, reject));
      signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      onArrive?.();
    });
  };
  const put: Store['put'] = (key, value, options) => held(options, (o) => inner.put(key, value, o));
  const txn: Store['txn'] = (request, options) => held(options, (o) => inner.txn(request, o));
  return {
    store: intercept(inner, { put, txn }),
    hold: () => {
      holding = true;
    },
    arrived: () =>
      waiting.length > 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onArrive = () => {
              onArrive = undefined;
              resolve();
            };
          }),
    release: async () => {
      holding = false;
      const run = waiting;
      waiting = [];
      await Promise.allSettled(run.map((fn) => fn()));
    },
  };
}

let clock: ManualClock;
let store: Store;
let discovery: Discovery;
let cleanup: () => void;
const controllers: AbortController[] = [];

describe.each(backends)('Discovery on %s', (_name, make) => {
  beforeEach(() => {
    clock = new ManualClock(Date.UTC(2026, 10, 28));
    ({ store, cleanup } = make(clock));
    discovery = new Discovery({ store, clock });
  });

  afterEach(async () => {
    for (const c of controllers.splice(0)) c.abort();
    await discovery.close();
    await store.close();
    cleanup();
  });

  interface Watching {
    (): Promise<DiscoveryEvent>;
    /** The next event if one is already due, else undefined (leaves it for the next call). */
    maybe(): Promise<DiscoveryEvent | undefined>;
  }

  /** Starts a watch; calling the result pulls its next event. */
  function watching(service: string, readyOnly = false, from: Discovery = discovery): Watching {
    const controller = new AbortController();
    controllers.push(controller);
    const it = from.watch(service, { signal: controller.signal, readyOnly });
    let pending: Promise<IteratorResult<DiscoveryEvent>> | undefined;
    const take = (r: IteratorResult<DiscoveryEvent>): DiscoveryEvent => {
      pending = undefined;
      if (r.done === true) throw new Error('watch ended');
      return r.value;
    };
    const next = async (): Promise<DiscoveryEvent> => take(await (pending ??= it.next()));
    next.maybe = async (): Promise<DiscoveryEvent | undefined> => {
      const none = Symbol('none');
      const r = await Promise.race([(pending ??= it.next()), clock.advance(0).then(() => none)]);
      return r === none ? undefined : take(r as IteratorResult<DiscoveryEvent>);
    };
    return next;
  }

  describe('register and instances', () => {
    it('registers an instance with its fields, not ready by default', async () => {
      const reg = await discovery.register({
        service: 'demo-web',
        addr: '127.0.0.1:5001',
        meta: { release: 'v3' },
        ttlMs: 2000,
        id: 'web-1',
      });
      expect(reg.id).toBe('web-1');
      expect(await discovery.instances('demo-web')).toEqual([
        {
          id: 'web-1',
          service: 'demo-web',
          addr: '127.0.0.1:5001',
          meta: { release: 'v3' },
          ready: false,
          registeredAt: '2026-11-28T00:00:00.000Z',
        },
      ]);
      expect(await discovery.instances('demo-web', { readyOnly: true })).toEqual([]);
      await reg.setReady(true);
      expect(await discovery.instances('demo-web', { readyOnly: true })).toHaveLength(1);
      expect(await discovery.services()).toEqual(['demo-web']);
    });

    it('generates unique ids when none is given', async () => {
      const a = await discovery.register({ service: 's', addr: 'localhost:1' });
      const b = await discovery.register({ service: 's', addr: 'localhost:2' });
      expect(a.id).not.toBe(b.id);
      expect((await discovery.instances('s')).map((i) => i.addr).sort()).toEqual([
        'localhost:1',
        'localhost:2',
      ]);
    });

    it('refuses an id a live registrant holds, and leaves the holder alone', async () => {
      await discovery.register({ service: 's', addr: '127.0.0.1:1', id: 'x' });
      await expect(
        discovery.register({ service: 's', addr: '127.0.0.1:2', id: 'x' }),
      ).rejects.toMatchObject({
        code: 'FLOTILLA_DISCOVERY_DUPLICATE_ID',
      });
      expect((await discovery.instances('s')).map((i) => i.addr)).toEqual(['127.0.0.1:1']);
    });

    it.each(
      [
        [{ service: 'Demo_Web', addr: '127.0.0.1:1' }, 'FLOTILLA_DISCOVERY_INVALID_SERVICE'],
        [{ service: '-web', addr: '127.0.0.1:1' }, 'FLOTILLA_DISCOVERY_INVALID_SERVICE'],
        [{ service: 'web', addr: '127.0.0.1' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '127.0.0.1:0' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '127.0.0.1:65536' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '300.1.1.1:80' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '::1:80' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: 'exa mple:80' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '127.0.0.1:1', id: 'a/b' }, 'FLOTILLA_DISCOVERY_INVALID_ID'],
        [
          { service: 'web', addr: '127.0.0.1:1', meta: { n: 1 } },
          'FLOTILLA_DISCOVERY_INVALID_META',
        ],
        [
          { service: 'web', addr: '127.0.0.1:1', meta: { 'a b': 'x' } },
          'FLOTILLA_DISCOVERY_INVALID_META',
        ],
        [
          { service: 'web', addr: '127.0.0.1:1', meta: { big: 'x'.repeat(20_000) } },
          'FLOTILLA_DISCOVERY_INVALID_META',
        ],
        // 6,000 characters, 18,000 bytes of UTF-8: the limit counts bytes.
        [
          { service: 'web', addr: '127.0.0.1:1', meta: { big: '€'.repeat(6000) } },
          'FLOTILLA_DISCOVERY_INVALID_META',
        ],
        [{ service: 'web', addr: '127.0.0.1:1', ttlMs: 500 }, 'FLOTILLA_DISCOVERY_INVALID_TTL'],
        // Hostile input: nothing that cannot round-trip through its key, nor a TTL no lease keeps.
        [{ service: 'web/x', addr: '127.0.0.1:1' }, 'FLOTILLA_DISCOVERY_INVALID_SERVICE'],
        [{ service: 'web\0', addr: '127.0.0.1:1' }, 'FLOTILLA_DISCOVERY_INVALID_SERVICE'],
        [{ service: '', addr: '127.0.0.1:1' }, 'FLOTILLA_DISCOVERY_INVALID_SERVICE'],
        [{ service: 'web', addr: '127.0.0.1:1', id: 'a\0b' }, 'FLOTILLA_DISCOVERY_INVALID_ID'],
        [{ service: 'web', addr: '127.0.0.1:1', id: '..' }, 'FLOTILLA_DISCOVERY_INVALID_ID'],
        [{ service: 'web', addr: '127.0.0.1:1', id: '' }, 'FLOTILLA_DISCOVERY_INVALID_ID'],
        [{ service: 'web', addr: '127.0.0.1:1', id: 'a\n' }, 'FLOTILLA_DISCOVERY_INVALID_ID'],
        [
          { service: 'web', addr: '127.0.0.1:1', id: 'x'.repeat(129) },
          'FLOTILLA_DISCOVERY_INVALID_ID',
        ],
        [{ service: 'web', addr: '127.0.0.1:1\n' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: 'h\0st:1' }, 'FLOTILLA_DISCOVERY_INVALID_ADDR'],
        [{ service: 'web', addr: '127.0.0.1:1', ttlMs: NaN }, 'FLOTILLA_DISCOVERY_INVALID_TTL'],
        [{ service: 'web', addr: '127.0.0.1:1', ttlMs: -5000 }, 'FLOTILLA_DISCOVERY_INVALID_TTL'],
        [{ service: 'web', addr: '127.0.0.1:1', ttlMs: 2 ** 31 }, 'FLOTILLA_DISCOVERY_INVALID_TTL'],
        [
          { service: 'web', addr: '127.0.0.1:1', meta: JSON.parse('{"__proto__":"x"}') as object },
          'FLOTILLA_DISCOVERY_INVALID_META',
        ],
      ].map(([o, c]) => [c, o] as const),
    )('refuses bad input with %s (%#) and writes nothing', async (code, options) => {
      await expect(discovery.register(options as never)).rejects.toMatchObject({ code });
      expect((await store.list('')).kvs).toEqual([]);
    });

    it('accepts IPv6 and host names', async () => {
      await discovery.register({ service: 'v6', addr: '[::1]:8080' });
      await discovery.register({ service: 'v6', addr: 'web-1.internal:8080' });
      expect(await discovery.instances('v6')).toHaveLength(2);
    });
  });

  describe('watch', () => {
    it('starts with a snapshot, then up, update and down; close is seen at once', async () => {
      const existing = await discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
      const next = watching('web');
      const first = await next();
      expect(first).toEqual({ kind: 'current', instances: [existing.instance] });

      const reg = await discovery.register({
        service: 'web',
        addr: '127.0.0.1:2',
        id: 'b',
        ttlMs: 2000,
      });
      expect(await next()).toMatchObject({ kind: 'up', instance: { id: 'b', ready: false } });
      await reg.setReady(true);
      expect(await next()).toMatchObject({ kind: 'update', instance: { id: 'b', ready: true } });
      await reg.update({ meta: { release: 'v4' } });
      expect(await next()).toMatchObject({
        kind: 'update',
        instance: { id: 'b', meta: { release: 'v4' } },
      });
      await reg.close();
      // No time passes: a graceful close is seen without waiting for the TTL.
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'b' } });
      expect(clock.now()).toBe(Date.UTC(2026, 10, 28));
    });

    it('a change of one meta value is an update; a write that changes nothing is none', async () => {
      const reg = await discovery.register({
        service: 'web',
        addr: '127.0.0.1:2',
        id: 'b',
        meta: { release: 'v3', zone: 'a' },
      });
      const next = watching('web');
      await next();
      await reg.update({ meta: { release: 'v3', zone: 'a' } });
      expect(await next.maybe()).toBeUndefined();
      await reg.update({ meta: { release: 'v4', zone: 'a' } });
      expect(await next()).toMatchObject({
        kind: 'update',
        instance: { meta: { release: 'v4', zone: 'a' } },
      });
    });

    it('with readyOnly, readiness is up and down', async () => {
      const next = watching('web', true);
      expect(await next()).toEqual({ kind: 'current', instances: [] });
      const reg = await discovery.register({ service: 'web', addr: '127.0.0.1:2', id: 'b' });
      expect(await next.maybe()).toBeUndefined();
      await reg.setReady(true);
      expect(await next()).toMatchObject({ kind: 'up', instance: { id: 'b', ready: true } });
      await reg.setReady(false);
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'b', ready: false } });
      await reg.setReady(true);
      expect(await next()).toMatchObject({ kind: 'up' });
      await reg.close();
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'b' } });
    });

    it('does not mix services', async () => {
      const next = watching('web');
      await next();
      await discovery.register({ service: 'web2', addr: '127.0.0.1:1' });
      await discovery.register({ service: 'we', addr: '127.0.0.1:1' });
      expect(await next.maybe()).toBeUndefined();
    });

    it('lists again when the store compacts past a lagging watch, and emits the difference', async () => {
      const small = make(clock, 4);
      const d = new Discovery({ store: small.store, clock });
      const reg = (id: string): Promise<Registration> =>
        d.register({ service: 'web', addr: '127.0.0.1:1', id, ttlMs: 2000 });
      const [a, b, c] = [await reg('a'), await reg('b'), await reg('c')];
      const next = watching('web', false, d);
      const first = await next();
      expect(first).toEqual({ kind: 'current', instances: [a, b, c].map((r) => r.instance) });
      const listedAt = await small.store.revision();
      // The consumer lags behind while far more changes happen than the store keeps.
      await b.close();
      const e = await reg('e');
      await a.update({ meta: { release: 'v2' } });
      for (let i = 0; i < 40; i++) await c.setReady(i % 2 === 0); // ends as it began
      const stale = small.store.watch('web', { fromRevision: listedAt + 1 });
      await expect(stale[Symbol.asyncIterator]().next()).rejects.toMatchObject({
        code: 'FLOTILLA_STORE_COMPACTED',
      });
      // The watch lists again and emits the difference only, in key order: none of c's flips.
      expect([await next(), await next(), await next()]).toEqual([
        { kind: 'update', instance: a.instance },
        { kind: 'down', instance: expect.objectContaining({ id: 'b' }) },
        { kind: 'up', instance: e.instance },
      ]);
      expect(await next.maybe()).toBeUndefined();
      // And it goes on watching from the new list.
      await e.close();
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'e' } });
      for (const c of controllers.splice(0)) c.abort();
      await d.close();
      await small.store.close();
      small.cleanup();
    });

    it('backs off and resumes, missing nothing, when the store is unreachable', async () => {
      const view = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: view, clock });
      const next = watching('web', false, d);
      expect(await next()).toEqual({ kind: 'current', instances: [] });
      view.partitioned = true;
      await discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'x' });
      const ev = next();
      await clock.advance(100); // first retry: still unreachable
      await clock.advance(200);
      expect(await next.maybe()).toBeUndefined();
      view.partitioned = false;
      await clock.advance(400);
      expect(await ev).toMatchObject({ kind: 'up', instance: { id: 'x' } });
      await d.close();
    });

    it('backs off and retries its first list when the store is unreachable', async () => {
      await discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'x' });
      const view = new PartitionableStore(store, { clock });
      view.partitioned = true;
      const d = new Discovery({ store: view, clock });
      const next = watching('web', false, d);
      expect(await next.maybe()).toBeUndefined();
      view.partitioned = false;
      await clock.advance(100);
      expect(await next()).toMatchObject({ kind: 'current', instances: [{ id: 'x' }] });
      await d.close();
    });

    it('ends when its signal aborts', async () => {
      const controller = new AbortController();
      const events: string[] = [];
      const done = (async () => {
        for await (const ev of discovery.watch('web', { signal: controller.signal })) {
          events.push(ev.kind);
          controller.abort();
        }
      })();
      await done;
      expect(events).toEqual(['current']);
    });
  });

  describe('invalid entries', () => {
    const valid = {
      id: 'v',
      service: 'web',
      addr: '127.0.0.1:1',
      meta: {},
      ready: true,
      registeredAt: '2026-11-28T00:00:00.000Z',
    };
    const key = 'discovery/services/web/v';

    /** Collects what the Discovery reports as `invalid-record`: [key, code]. */
    function reported(): [string, string][] {
      const out: [string, string][] = [];
      discovery.on('invalid-record', (k, error) => out.push([k, error.code]));
      return out;
    }

    it('a watch reports them with a code and counts them as absent', async () => {
      const seen = reported();
      await store.put('discovery/services/web/bad', 'not json');
      await store.put('discovery/services/web/x/y', JSON.stringify({ ...valid, id: 'x/y' }));
      const a = await discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
      const next = watching('web');
      expect(await next()).toEqual({ kind: 'current', instances: [a.instance] });
      for (const k of ['discovery/services/web/bad', 'discovery/services/web/x/y']) {
        expect(await next()).toMatchObject({
          kind: 'invalid',
          key: k,
          error: { code: 'FLOTILLA_DISCOVERY_INVALID_RECORD', key: k },
        });
      }
      // An instance overwritten by something invalid goes down, then is reported.
      await store.put('discovery/services/web/a', JSON.stringify({ ...a.instance, id: 'b' }));
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'a' } });
      expect(await next()).toMatchObject({
        kind: 'invalid',
        key: 'discovery/services/web/a',
        error: { message: expect.stringMatching(/id "b" is not the one its key names/) },
      });
      // Written right again, it is up again.
      await store.put('discovery/services/web/a', JSON.stringify(a.instance));
      expect(await next()).toMatchObject({ kind: 'up', instance: { id: 'a' } });
      expect(seen.map(([k]) => k)).toEqual([
        'discovery/services/web/bad',
        'discovery/services/web/x/y',
        'discovery/services/web/a',
      ]);
      expect(new Set(seen.map(([, code]) => code))).toEqual(
        new Set(['FLOTILLA_DISCOVERY_INVALID_RECORD']),
      );
    });

    it.each([
      ['not JSON', 'not json'],
      ['a JSON array', '[]'],
      ['JSON null', 'null'],
      ['an id other than its key names', JSON.stringify({ ...valid, id: 'w' })],
      ['a service other than its key names', JSON.stringify({ ...valid, service: 'api' })],
      ['ready that is not a boolean', JSON.stringify({ ...valid, ready: 'yes' })],
      ['a missing addr', JSON.stringify({ ...valid, addr: undefined })],
      ['a bad addr', JSON.stringify({ ...valid, addr: 'nowhere' })],
      ['meta that is not strings', JSON.stringify({ ...valid, meta: { n: 1 } })],
      ['meta that is not a record', JSON.stringify({ ...valid, meta: 'x' })],
      ['no registeredAt', JSON.stringify({ ...valid, registeredAt: undefined })],
    ])('instances() skips and reports an entry with %s', async (_what, value) => {
      const seen = reported();
      const ok = await discovery.register({ service: 'web', addr: '127.0.0.1:2', id: 'ok' });
      await store.put(key, value);
      expect(await discovery.instances('web')).toEqual([ok.instance]);
      expect(seen).toEqual([[key, 'FLOTILLA_DISCOVERY_INVALID_RECORD']]);
    });

    it('instances() reads a valid entry written by hand', async () => {
      const seen = reported();
      await store.put(key, JSON.stringify(valid));
      expect(await discovery.instances('web')).toEqual([valid]);
      expect(seen).toEqual([]);
    });

    it('services() skips and reports keys that name no service and instance', async () => {
      const seen = reported();
      await discovery.register({ service: 'web', addr: '127.0.0.1:1' });
      await store.put('discovery/services/orphan', JSON.stringify(valid));
      await store.put('discovery/services/Bad_Name/v', JSON.stringify(valid));
      expect(await discovery.services()).toEqual(['web']);
      expect(seen).toEqual([
        ['discovery/services/Bad_Name/v', 'FLOTILLA_DISCOVERY_INVALID_RECORD'],
        ['discovery/services/orphan', 'FLOTILLA_DISCOVERY_INVALID_RECORD'],
      ]);
    });
  });

  describe('heartbeats and TTL', () => {
    it('an instance whose registrant goes silent is down exactly at its TTL', async () => {
      const silent = new PartitionableStore(store, { clock });
      const other = new Discovery({ store: silent, clock });
      await other.register({ service: 'web', addr: '127.0.0.1:9', id: 'dies', ttlMs: 2000 });
      const next = watching('web');
      await next();
      silent.partitioned = true; // the process is gone: no more heartbeats
      await clock.advance(1999);
      expect(await next.maybe()).toBeUndefined();
      await clock.advance(1);
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'dies' } });
      await other.close();
    });

    it('a live registrant is kept alive by heartbeats far beyond its TTL', async () => {
      await discovery.register({ service: 'web', addr: '127.0.0.1:9', id: 'lives', ttlMs: 2000 });
      const next = watching('web');
      await next();
      for (let i = 0; i < 10; i++) await clock.advance(1000);
      expect(await next.maybe()).toBeUndefined();
      expect(await discovery.instances('web')).toHaveLength(1);
    });

    it('re-registers by itself after its lease was lost, keeping id, meta and readiness', async () => {
      const flaky = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: flaky, clock });
      const reg = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r', ttlMs: 2000 });
      await reg.setReady(true);
      const lost: string[] = [];
      reg.on('lost', (why) => lost.push(why));
      const restored = new Promise((resolve) => reg.once('restored', resolve));
      const next = watching('web');
      await next();
      flaky.partitioned = true;
      await clock.advance(2000);
      expect(await next()).toMatchObject({ kind: 'down', instance: { id: 'r' } });
      flaky.partitioned = false;
      await clock.advance(1000); // next heartbeat finds the lease gone
      await restored;
      expect(lost).toEqual(['lease expired']);
      expect(reg.state).toBe('registered');
      expect(await next()).toMatchObject({ kind: 'up', instance: { id: 'r', ready: true } });
      await d.close();
      expect(await next()).toMatchObject({ kind: 'down' });
    });
  });

  describe('two registrants of one id', () => {
    it('registering at once: one wins, the other is told DUPLICATE_ID', async () => {
      const other = new Discovery({ store, clock });
      const results = await Promise.allSettled([
        discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'x' }),
        other.register({ service: 'web', addr: '127.0.0.1:2', id: 'x' }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(refused.map((r) => (r.reason as { code: string }).code)).toEqual([
        'FLOTILLA_DISCOVERY_DUPLICATE_ID',
      ]);
      const listed = await discovery.instances('web');
      expect(listed).toEqual([won[0]?.value.instance]);
      await other.close();
    });

    it('a registration that lost its lease does not take back an id someone took meanwhile', async () => {
      const flaky = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: flaky, clock });
      const first = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r', ttlMs: 2000 });
      const errors: unknown[] = [];
      first.on('error', (err) => errors.push(err));
      flaky.partitioned = true;
      await clock.advance(2000); // the store expires its lease: the id is free
      const second = await discovery.register({
        service: 'web',
        addr: '127.0.0.1:8',
        id: 'r',
        ttlMs: 2000,
      });
      flaky.partitioned = false;
      for (let i = 0; i < 5; i++) await clock.advance(1000); // lost, re-registering, refused
      expect(first.state).toBe('recovering');
      expect(errors).toContainEqual(
        expect.objectContaining({ code: 'FLOTILLA_DISCOVERY_DUPLICATE_ID' }),
      );
      expect(await discovery.instances('web')).toEqual([second.instance]);
      // Its updates still land: the key is its own.
      await second.update({ meta: { release: 'v2' } });
      expect((await discovery.instances('web'))[0]?.addr).toBe('127.0.0.1:8');
      // Once the id is free, the first takes it back.
      const restored = new Promise((resolve) => first.once('restored', resolve));
      await second.close();
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      await restored;
      expect(await discovery.instances('web')).toEqual([first.instance]);
      await d.close();
    });
  });

  describe('close while a registration recovers', () => {
    /**
     * A registration on its own view of the store whose lease was lost: its re-registration's
     * put is held on the wire when this returns.
     */
    async function recovering(): Promise<{
      d: Discovery;
      reg: Registration;
      release: () => Promise<void>;
    }> {
      const flaky = new PartitionableStore(store, { clock });
      const wire = holdWrites(flaky);
      const d = new Discovery({ store: wire.store, clock });
      const reg = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r', ttlMs: 2000 });
      flaky.partitioned = true;
      await clock.advance(2000); // the store expires the lease
      flaky.partitioned = false;
      wire.hold();
      await clock.advance(1000); // the next heartbeat finds it gone: re-registering
      await wire.arrived();
      expect(reg.state).toBe('recovering');
      return { d, reg, release: wire.release };
    }

    /** Nothing lists the instance now, nor after many TTLs of heartbeats would have passed. */
    async function staysGone(): Promise<void> {
      expect(await discovery.instances('web')).toEqual([]);
      for (let i = 0; i < 10; i++) await clock.advance(1000);
      expect(await discovery.instances('web')).toEqual([]);
    }

    it('a close that lands while the re-registration is in flight wins', async () => {
      const { reg, release } = await recovering();
      const closing = reg.close();
      await release(); // the re-put reaches the store after close began
      await closing;
      expect(reg.state).toBe('closed');
      await staysGone();
    });

    it('a re-put that reaches the store after close resolved is fenced off', async () => {
      const { reg, release } = await recovering();
      await reg.close(); // gives up on the held put...
      await release(); // ...which the store still receives
      expect(reg.state).toBe('closed');
      await staysGone();
    });

    it('Discovery.close() also wins against a registration in recovery', async () => {
      const { d, reg, release } = await recovering();
      const closing = d.close();
      await release();
      await closing;
      expect(reg.state).toBe('closed');
      await staysGone();
    });

    it('a close while the store is unreachable returns, and nothing comes back after', async () => {
      const flaky = new PartitionableStore(store, { clock });
      let refuseGrants = false;
      const view = intercept(flaky, {
        grant: (ttlMs, options) =>
          refuseGrants
            ? Promise.reject(new StoreError(StoreErrorCodes.UNAVAILABLE, 'unreachable (test)'))
            : flaky.grant(ttlMs, options),
      });
      const d = new Discovery({ store: view, clock });
      const reg = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r', ttlMs: 2000 });
      const errors: unknown[] = [];
      reg.on('error', (err) => errors.push(err));
      flaky.partitioned = true;
      await clock.advance(2000); // the store expires the lease
      flaky.partitioned = false;
      refuseGrants = true;
      await clock.advance(1000); // lost: re-registering, backing off
      expect(reg.state).toBe('recovering');
      expect(errors.length).toBeGreaterThan(0);
      await d.close();
      refuseGrants = false;
      await staysGone();
    });

    it('a second close(), or Discovery.close(), resolves only once the first has deregistered', async () => {
      const wire = holdWrites(store);
      const d = new Discovery({ store: wire.store, clock });
      const reg = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r' });
      wire.hold();
      const updating = reg.update({ meta: { release: 'v2' } }); // on the wire
      await wire.arrived();
      const first = reg.close();
      let secondDone = false;
      const second = Promise.all([reg.close(), d.close()]).then(() => (secondDone = true));
      await clock.advance(0);
      expect(secondDone).toBe(false); // the first close still waits for the write
      await wire.release();
      await second;
      expect(await discovery.instances('web')).toEqual([]);
      await first;
      await updating;
    });

    it('a register() in flight when Discovery.close() lands is refused and leaves nothing', async () => {
      let grant!: () => void;
      const granted = new Promise<void>((resolve) => (grant = resolve));
      const slow = intercept(store, {
        grant: async (ttlMs, options) => {
          await granted;
          return store.grant(ttlMs, options);
        },
      });
      const d = new Discovery({ store: slow, clock });
      const registering = d.register({ service: 'web', addr: '127.0.0.1:9', id: 'late' });
      const closing = d.close();
      grant();
      await expect(registering).rejects.toMatchObject({ code: 'FLOTILLA_DISCOVERY_CLOSED' });
      await closing;
      await staysGone();
    });
  });

  describe('leader election', () => {
    it('elects exactly one leader; the others see who it is', async () => {
      const candidates = ['a', 'b', 'c'].map((id) =>
        discovery.elect('scheduler', { id, ttlMs: 2000 }),
      );
      // What each `elected` listener saw, asserted below: an expect inside a listener would
      // be swallowed by the emitter.
      const leadingWhenElected: string[][] = [];
      for (const c of candidates) {
        c.on('elected', () =>
          leadingWhenElected.push(candidates.filter((x) => x.isLeader).map((x) => x.id)),
        );
      }
      await Promise.race(candidates.map((c) => c.waitForLeadership()));
      for (let i = 0; i < 5; i++) await clock.advance(1000); // heartbeats; nobody else wins
      expect(leadingWhenElected).toHaveLength(1);
      expect(leadingWhenElected[0]).toHaveLength(1);
      expect(candidates.filter((c) => c.isLeader).map((c) => c.id)).toEqual(leadingWhenElected[0]);
      const leader = candidates.find((c) => c.isLeader);
      for (const c of candidates) expect(c.leader?.id).toBe(leader?.id);
    });

    it('hands leadership over on resign, one leader at a time', async () => {
      const candidates = ['a', 'b', 'c'].map((id) => discovery.elect('sched', { id, ttlMs: 2000 }));
      const order: string[] = [];
      const leadingWhenElected: number[] = [];
      for (const c of candidates) {
        c.on('elected', () => {
          leadingWhenElected.push(candidates.filter((x) => x.isLeader).length);
          order.push(c.id);
        });
      }
      let lastTerm = 0;
      for (let round = 0; round < 3; round++) {
        await Promise.race(candidates.map((c) => c.waitForLeadership()));
        const leader = candidates.find((c) => c.isLeader);
        expect(leader).toBeDefined();
        // Each new leader's term (its fencing token) is larger than the one before.
        expect(leader?.term).toBeGreaterThan(lastTerm);
        lastTerm = leader?.term ?? Infinity;
        expect(candidates.filter((c) => c !== leader).every((c) => c.term === undefined)).toBe(
          true,
        );
        await leader?.resign();
        expect(leader?.state).toBe('idle');
      }
      expect([...order].sort()).toEqual(['a', 'b', 'c']);
      expect(leadingWhenElected).toEqual([1, 1, 1]);
    });

    it('a leader cut off from the store steps down by its TTL, and another is elected', async () => {
      const cutOff = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: cutOff, clock });
      const first = d.elect('sched', { id: 'first', ttlMs: 2000 });
      await first.waitForLeadership();
      const second = discovery.elect('sched', { id: 'second', ttlMs: 2000 });
      await clock.advance(0);
      expect(second.leader?.id).toBe('first');
      const lost = new Promise<string>((resolve) => first.once('lost', resolve));
      cutOff.partitioned = true;
      await clock.advance(2000);
      expect(await lost).toMatch(/deadline|expired/);
      expect(first.isLeader).toBe(false);
      await second.waitForLeadership();
      expect(second.leader?.id).toBe('second');
      await first.close().catch((err: unknown) => expect(isFlotillaError(err)).toBe(true));
      await d.close();
    });

    it('reports a leader entry it cannot read, and elects once it is gone', async () => {
      const key = 'discovery/elections/sched';
      await store.put(key, '{"id": 42}');
      const c = discovery.elect('sched', { id: 'a', ttlMs: 2000 });
      const errors: unknown[] = [];
      c.on('error', (err) => errors.push(err));
      await clock.advance(0);
      expect(errors).toEqual([
        expect.objectContaining({ code: 'FLOTILLA_DISCOVERY_INVALID_RECORD', key }),
      ]);
      expect(c.leader).toBeUndefined();
      expect(c.isLeader).toBe(false);
      await store.delete(key);
      await c.waitForLeadership();
      expect(c.leader?.id).toBe('a');
    });

    it('a close while the campaign backs off or its txn is on the wire leaves no leader', async () => {
      const flaky = new PartitionableStore(store, { clock });
      let holdTxn = Promise.resolve();
      const view = intercept(flaky, {
        txn: async (txn, options) => {
          await holdTxn;
          return flaky.txn(txn, options);
        },
      });
      const d = new Discovery({ store: view, clock });
      // Backing off: the store is unreachable.
      flaky.partitioned = true;
      const backingOff = d.elect('sched', { id: 'a', ttlMs: 2000 });
      await clock.advance(100);
      await backingOff.close();
      flaky.partitioned = false;
      // On the wire: the winning txn lands after close.
      let land!: () => void;
      holdTxn = new Promise((resolve) => (land = resolve));
      const onWire = d.elect('sched', { id: 'b', ttlMs: 2000 });
      await clock.advance(0);
      const closing = onWire.close();
      land();
      await closing;
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(backingOff.isLeader || onWire.isLeader).toBe(false);
      expect(await store.get('discovery/elections/sched')).toBeUndefined();
      await d.close();
    });

    it('close rejects waitForLeadership calls still waiting', async () => {
      const a = discovery.elect('sched', { id: 'a', ttlMs: 2000 });
      await a.waitForLeadership();
      const b = discovery.elect('sched', { id: 'b', ttlMs: 2000 });
      const waiting = b.waitForLeadership();
      waiting.catch(() => undefined); // it fails while close() is awaited: handled at once
      await clock.advance(0);
      await b.close();
      await expect(waiting).rejects.toMatchObject({ code: 'FLOTILLA_DISCOVERY_CLOSED' });
    });

    it('a second resign() or close() resolves only once the seat is free', async () => {
      const cutOff = new PartitionableStore(store, { clock });
      let revoking = Promise.resolve();
      const view = intercept(cutOff, {
        grant: async (ttlMs, options) => {
          const lease = await cutOff.grant(ttlMs, options);
          const revoke = lease.revoke.bind(lease);
          return Object.assign(lease, {
            revoke: async (o?: CallOptions) => {
              await revoking;
              await revoke(o);
            },
          });
        },
      });
      const d = new Discovery({ store: view, clock });
      const a = d.elect('sched', { id: 'a', ttlMs: 2000 });
      await a.waitForLeadership();
      let free!: () => void;
      revoking = new Promise((resolve) => (free = resolve));
      const first = a.resign();
      let othersDone = false;
      const others = Promise.all([a.resign(), a.close(), d.close()]).then(
        () => (othersDone = true),
      );
      await clock.advance(0);
      expect(othersDone).toBe(false); // the first resign is still revoking
      free();
      await others;
      expect(await store.get('discovery/elections/sched')).toBeUndefined();
      await first;
    });

    it('validates names and ids', () => {
      expect(() => discovery.elect('Bad Name', { id: 'a' })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_DISCOVERY_INVALID_SERVICE' }),
      );
      expect(() => discovery.elect('ok', { id: '' })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_DISCOVERY_INVALID_ID' }),
      );
    });
  });

  describe('listeners that throw', () => {
    /** Whether `p` settles once due work has run (a pending promise stays pending). */
    async function settles(p: Promise<unknown>): Promise<boolean> {
      let settled = false;
      p.then(
        () => (settled = true),
        () => (settled = true),
      );
      await clock.advance(0);
      return settled;
    }

    it('a throwing elected listener neither wedges the election nor silences the others', async () => {
      const errors: unknown[] = [];
      const a = discovery.elect('sched', { id: 'a', ttlMs: 2000 });
      const heard: string[] = [];
      a.on('elected', () => {
        throw new Error('boom in elected');
      });
      a.on('elected', () => heard.push('second listener'));
      a.on('error', (err) => errors.push(err));
      expect(await settles(a.waitForLeadership())).toBe(true);
      expect(a.isLeader).toBe(true);
      expect(heard).toEqual(['second listener']);
      expect(errors).toEqual([
        expect.objectContaining({
          code: 'FLOTILLA_DISCOVERY_LISTENER_FAILED',
          cause: expect.objectContaining({ message: 'boom in elected' }),
        }),
      ]);
      // It still leads for real: heartbeats go on, and it hands over on resign.
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(a.isLeader).toBe(true);
      const b = discovery.elect('sched', { id: 'b', ttlMs: 2000 });
      await clock.advance(0);
      expect(b.isLeader).toBe(false);
      await a.resign();
      expect(await settles(b.waitForLeadership())).toBe(true);
    });

    it('an async elected listener whose lease expires while it awaits: its rejection is reported', async () => {
      const cutOff = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: cutOff, clock });
      const a = d.elect('sched', { id: 'a', ttlMs: 2000 });
      const errors: unknown[] = [];
      a.on('error', (err) => errors.push(err));
      const lost = new Promise<string>((resolve) => a.once('lost', resolve));
      let termAfterAwait: number | undefined = -1;
      a.on('elected', async () => {
        await lost; // the leader's work, slow: meanwhile its lease expires
        termAfterAwait = a.term;
        throw new Error('not the leader any more');
      });
      await a.waitForLeadership();
      cutOff.partitioned = true;
      await clock.advance(2000);
      await lost;
      await clock.advance(0);
      expect(termAfterAwait).toBeUndefined(); // what a handler checks before acting as leader
      expect(errors).toContainEqual(
        expect.objectContaining({
          code: 'FLOTILLA_DISCOVERY_LISTENER_FAILED',
          cause: expect.objectContaining({ message: 'not the leader any more' }),
        }),
      );
      cutOff.partitioned = false;
      await d.close();
    });

    it('throwing lost and leader listeners do not stop the election either', async () => {
      const cutOff = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: cutOff, clock });
      const a = d.elect('sched', { id: 'a', ttlMs: 2000 });
      await a.waitForLeadership();
      a.on('lost', () => {
        throw new Error('boom in lost');
      });
      a.on('leader', () => {
        throw new Error('boom in leader');
      });
      cutOff.partitioned = true;
      await clock.advance(2000);
      expect(a.isLeader).toBe(false);
      cutOff.partitioned = false;
      await clock.advance(1000);
      expect(await settles(a.waitForLeadership())).toBe(true);
      await d.close();
    });

    it('a throwing lost or restored listener does not stop a registration recovering', async () => {
      const flaky = new PartitionableStore(store, { clock });
      const d = new Discovery({ store: flaky, clock });
      const reg = await d.register({ service: 'web', addr: '127.0.0.1:9', id: 'r', ttlMs: 2000 });
      const restored: string[] = [];
      const errors: unknown[] = [];
      reg.on('lost', () => {
        throw new Error('boom in lost');
      });
      reg.on('restored', () => {
        throw new Error('boom in restored');
      });
      reg.on('restored', (i) => restored.push(i.id));
      reg.on('error', (err) => errors.push(err));
      flaky.partitioned = true;
      await clock.advance(2000);
      flaky.partitioned = false;
      await clock.advance(1000);
      expect(reg.state).toBe('registered');
      expect(restored).toEqual(['r']);
      expect(errors.map((e) => (e as { code?: string }).code)).toEqual([
        'FLOTILLA_DISCOVERY_LISTENER_FAILED',
        'FLOTILLA_DISCOVERY_LISTENER_FAILED',
      ]);
      // Registered once, and it stays so: no loop of losses.
      for (let i = 0; i < 10; i++) await clock.advance(1000);
      expect(reg.state).toBe('registered');
      expect(restored).toEqual(['r']);
      expect(await discovery.instances('web')).toEqual([expect.objectContaining({ id: 'r' })]);
      await d.close();
    });
  });

  describe('close', () => {
    it('closing Discovery deregisters its instances and refuses new calls', async () => {
      await discovery.register({ service: 'web', addr: '127.0.0.1:1' });
      await discovery.close();
      expect((await store.list('')).kvs).toEqual([]);
      await expect(
        discovery.register({ service: 'web', addr: '127.0.0.1:1' }),
      ).rejects.toMatchObject({
        code: 'FLOTILLA_DISCOVERY_CLOSED',
      });
    });

    it('closing Discovery ends the watches opened on it (their consumers are not left waiting)', async () => {
      await discovery.register({ service: 'web', addr: '127.0.0.1:1', id: 'a' });
      const watches = ['web', 'api'].map((s) => discovery.watch(s)[Symbol.asyncIterator]());
      for (const w of watches) expect((await w.next()).value).toMatchObject({ kind: 'current' });
      const pending = watches.map((w) => w.next());
      await discovery.close();
      // The first may see its instance go down first; then each ends.
      const ends = await Promise.all(
        pending.map(async (p, i) => {
          let r = await p;
          const w = watches[i];
          while (r.done !== true && w !== undefined) r = await w.next();
          return r.done;
        }),
      );
      expect(ends).toEqual([true, true]);
    });
  });
});
