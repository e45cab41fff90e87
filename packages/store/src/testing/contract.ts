import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { compareKeys } from '../keys.js';
import type { Lease, Store, Txn, TxnOp, WatchEvent, WatchOptions } from '../store.js';
import { MAX_LEASE_TTL_MS } from '../validate.js';

/** Options of {@link runStoreContract}. */
export interface StoreContractOptions {
  /** Suite name, e.g. `'MemoryStore'`. */
  readonly name: string;
  /** Makes a fresh, empty store for one test. It is closed after the test. */
  readonly create: () => Store | Promise<Store>;
  /**
   * Moves the store's clock forward, for stores on a manual clock. Without it, lease tests wait
   * in real time for the backend to expire leases (a few seconds each).
   */
  readonly advanceTime?: (ms: number) => Promise<void>;
  /** Lease TTL the lease tests use, in ms (default 2000: etcd's minimum). */
  readonly leaseTtlMs?: number;
  /**
   * Makes a fresh, empty store that keeps at most `historyLimit` revisions of history and
   * compacts older ones by itself, for backends with that option (`MemoryStore`,
   * `SqliteStore`). Without it, the suite leaves out the test of that bound.
   */
  readonly createWithHistoryLimit?: (historyLimit: number) => Store | Promise<Store>;
  /** How long to wait for an event before failing, in ms (default 10,000). */
  readonly eventTimeoutMs?: number;
}

/** Pulls `n` events from a watch, failing after `timeoutMs`. */
export async function takeEvents(
  iterator: AsyncIterator<WatchEvent>,
  n: number,
  timeoutMs = 10_000,
): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`watch delivered ${out.length} of ${n} events within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    while (out.length < n) {
      const r = await Promise.race([iterator.next(), timeout]);
      if (r.done === true) throw new Error(`watch ended after ${out.length} of ${n} events`);
      out.push(r.value);
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

async function expectCode(
  promise: Promise<unknown> | (() => unknown),
  code: string,
): Promise<void> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(isFlotillaError(err), `expected a FlotillaError ${code}, got ${String(err)}`).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected the call to fail with ${code}, but it succeeded`);
}

const summary = (ev: WatchEvent): [string, string, string] => [ev.type, ev.kv.key, ev.kv.value];

/**
 * The one suite every `Store` backend runs: memory, SQLite and etcd pass the very same tests.
 * Call it inside a vitest test file.
 *
 * Each store it creates must have the backend to itself while the test runs: the suite checks
 * exact revision steps and compacts history, so a backend shared with other writers (one etcd
 * used by several suites at once) must not be used; start one for the contract.
 *
 * @example
 * ```ts
 * import { runStoreContract } from '@flotilla/store/testing';
 * runStoreContract({ name: 'MyStore', create: () => new MyStore() });
 * ```
 */
export function runStoreContract(options: StoreContractOptions): void {
  const ttl = options.leaseTtlMs ?? 2000;
  const eventTimeout = options.eventTimeoutMs ?? 10_000;
  // Time passing is what lease tests are about: on a real clock they wait for it.
  const advance = (ms: number): Promise<void> =>
    options.advanceTime !== undefined
      ? options.advanceTime(ms)
      : new Promise((resolve) => setTimeout(resolve, ms));

  describe(`Store contract: ${options.name}`, () => {
    let store: Store;
    const cleanups: (() => unknown)[] = [];
    beforeEach(async () => {
      store = await options.create();
    });
    afterEach(async () => {
      for (const fn of cleanups.splice(0).reverse()) await fn();
      await store.close();
    });
    const watch = (prefix: string, fromRevision?: number): AsyncIterator<WatchEvent> => {
      const controller = new AbortController();
      cleanups.push(() => controller.abort());
      const iterable = store.watch(prefix, {
        signal: controller.signal,
        ...(fromRevision === undefined ? {} : { fromRevision }),
      });
      return iterable[Symbol.asyncIterator]();
    };

    describe('keys and revisions', () => {
      it('puts and gets a key with its revisions and version', async () => {
        const r1 = await store.put('a/one', 'v1');
        expect(await store.get('a/one')).toMatchObject({
          key: 'a/one',
          value: 'v1',
          createRevision: r1.revision,
          modRevision: r1.revision,
          version: 1,
        });
        const r2 = await store.put('a/one', 'v2');
        expect(r2.revision).toBeGreaterThan(r1.revision);
        expect(await store.get('a/one')).toMatchObject({
          value: 'v2',
          createRevision: r1.revision,
          modRevision: r2.revision,
          version: 2,
        });
        expect((await store.get('a/one'))?.lease).toBeUndefined();
      });

      it('returns undefined for an absent key', async () => {
        expect(await store.get('nope')).toBeUndefined();
      });

      it('increases one store-wide revision with every write', async () => {
        const start = await store.revision();
        const revs = [];
        for (const k of ['x', 'y', 'x', 'z']) revs.push((await store.put(k, k)).revision);
        revs.push((await store.delete('x')).revision);
        expect(revs).toEqual([start + 1, start + 2, start + 3, start + 4, start + 5]);
        expect(await store.revision()).toBe(start + 5);
      });

      it('deletes a key; deleting an absent key changes nothing', async () => {
        await store.put('d', '1');
        const del = await store.delete('d');
        expect(del.deleted).toBe(1);
        expect(await store.get('d')).toBeUndefined();
        const again = await store.delete('d');
        expect(again).toEqual({ deleted: 0, revision: del.revision });
        // A re-created key starts over at version 1.
        const put = await store.put('d', '2');
        expect(await store.get('d')).toMatchObject({ version: 1, createRevision: put.revision });
      });

      it('deletes a prefix in one revision and nothing outside it', async () => {
        await store.put('p/1', '1');
        await store.put('p/2', '2');
        await store.put('p/3/x', '3');
        await store.put('q/1', 'q');
        await store.put('p', 'not under p/');
        const events = watch('');
        const del = await store.deletePrefix('p/');
        expect(del.deleted).toBe(3);
        const seen = await takeEvents(events, 3, eventTimeout);
        expect(seen.map((e) => [e.type, e.kv.key, e.revision])).toEqual([
          ['delete', 'p/1', del.revision],
          ['delete', 'p/2', del.revision],
          ['delete', 'p/3/x', del.revision],
        ]);
        expect((await store.list('')).kvs.map((kv) => kv.key)).toEqual(['p', 'q/1']);
      });
    });

    describe('list', () => {
      it('lists a prefix sorted by key, with the revision it read at', async () => {
        for (const k of ['b/2', 'b/10', 'a/1', 'b/1', 'c/1']) await store.put(k, k.toUpperCase());
        const res = await store.list('b/');
        expect(res.kvs.map((kv) => [kv.key, kv.value])).toEqual([
          ['b/1', 'B/1'],
          ['b/10', 'B/10'],
          ['b/2', 'B/2'],
        ]);
        expect(res.more).toBe(false);
        expect(res.revision).toBe(await store.revision());
        expect((await store.list('')).kvs).toHaveLength(5);
        expect((await store.list('zz')).kvs).toEqual([]);
      });

      it('pages with limit and after', async () => {
        for (let i = 0; i < 7; i++) await store.put(`k/${i}`, String(i));
        const page1 = await store.list('k/', { limit: 3 });
        expect(page1.kvs.map((kv) => kv.key)).toEqual(['k/0', 'k/1', 'k/2']);
        expect(page1.more).toBe(true);
        const page2 = await store.list('k/', { limit: 3, after: 'k/2' });
        expect(page2.kvs.map((kv) => kv.key)).toEqual(['k/3', 'k/4', 'k/5']);
        const page3 = await store.list('k/', { limit: 3, after: 'k/5' });
        expect(page3.kvs.map((kv) => kv.key)).toEqual(['k/6']);
        expect(page3.more).toBe(false);
      });

      it('refuses a bad limit or after with coded errors', async () => {
        await expectCode(store.list('', { limit: 0 }), 'FLOTILLA_STORE_INVALID_ARGUMENT');
        await expectCode(store.list('', { limit: 1.5 }), 'FLOTILLA_STORE_INVALID_ARGUMENT');
        await expectCode(store.list('', { after: 'a\ud800' }), 'FLOTILLA_STORE_INVALID_KEY');
        await store.put('a', '1');
        expect((await store.list('', { after: '' })).kvs.map((kv) => kv.key)).toEqual(['a']);
      });

      it('stores many keys', async () => {
        const n = 1000;
        const keys = Array.from({ length: n }, (_, i) => `many/${String(i).padStart(4, '0')}`);
        for (let i = 0; i < n; i += 100) {
          await store.txn({
            compare: [],
            success: keys.slice(i, i + 100).map((key) => ({ op: 'put', key, value: key })),
          });
        }
        const all = await store.list('many/');
        expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
      });
    });

    describe('values and keys', () => {
      it('round-trips unicode keys and values and sorts keys by UTF-8 bytes', async () => {
        const keys = ['u/é', 'u/日本', 'u/😀', 'u/\uffff', 'u/a', 'u/Z', 'u/ß'];
        for (const k of keys) await store.put(k, `${k} ✓ \u0000 \u2028`);
        const listed = (await store.list('u/')).kvs;
        expect(listed.map((kv) => kv.key)).toEqual([...keys].sort(compareKeys));
        expect(listed.map((kv) => kv.key)).toEqual([
          'u/Z',
          'u/a',
          'u/ß',
          'u/é',
          'u/日本',
          'u/\uffff',
          'u/😀',
        ]);
        for (const kv of listed) expect(kv.value).toBe(`${kv.key} ✓ \u0000 \u2028`);
      });

      it('stores a value of the size limit and refuses a larger one', async () => {
        const big = 'x'.repeat(store.limits.maxValueBytes);
        await store.put('big', big);
        expect((await store.get('big'))?.value).toBe(big);
        await expectCode(store.put('big2', `${big}y`), 'FLOTILLA_STORE_TOO_LARGE');
        expect(await store.get('big2')).toBeUndefined();
      });

      it('refuses bad keys and values with coded errors', async () => {
        await expectCode(store.put('', 'x'), 'FLOTILLA_STORE_INVALID_KEY');
        await expectCode(store.get(''), 'FLOTILLA_STORE_INVALID_KEY');
        await expectCode(store.put('k', 42 as unknown as string), 'FLOTILLA_STORE_INVALID_VALUE');
        await expectCode(store.put('k\ud800', 'x'), 'FLOTILLA_STORE_INVALID_KEY');
        await expectCode(store.grant(0), 'FLOTILLA_STORE_INVALID_ARGUMENT');
        expect(await store.get('k')).toBeUndefined();
      });

      it('stores an empty value', async () => {
        await store.put('empty', '');
        expect(await store.get('empty')).toMatchObject({ value: '', version: 1 });
      });

      it('refuses a lease id that is not a string, in a put as in a txn', async () => {
        const lease = 5 as unknown as string;
        await expectCode(store.put('k', 'v', { lease }), 'FLOTILLA_STORE_INVALID_ARGUMENT');
        await expectCode(
          store.txn({ compare: [], success: [{ op: 'put', key: 'k', value: 'v', lease }] }),
          'FLOTILLA_STORE_INVALID_ARGUMENT',
        );
        expect(await store.get('k')).toBeUndefined();
      });
    });

    describe('limits, counted alike on every backend', () => {
      // Sizes are UTF-8 bytes, as etcd counts them. '日' is one UTF-16 unit but three bytes, so
      // a backend that counted string length would let through three times too much.
      const wide = (bytes: number): string =>
        '日'.repeat(Math.floor(bytes / 3)) + 'k'.repeat(bytes % 3);

      it('counts a value in UTF-8 bytes, in a put and in a txn', async () => {
        const max = store.limits.maxValueBytes;
        const fits = wide(max);
        const over = `${fits}é`; // two bytes over, yet far fewer UTF-16 units than the limit
        expect(over.length).toBeLessThan(max);
        await store.put('v/put', fits);
        expect((await store.get('v/put'))?.value).toBe(fits);
        await store.txn({ compare: [], success: [{ op: 'put', key: 'v/txn', value: fits }] });
        expect((await store.get('v/txn'))?.value).toBe(fits);
        await expectCode(store.put('v/over', over), 'FLOTILLA_STORE_TOO_LARGE');
        await expectCode(
          store.txn({ compare: [], success: [{ op: 'put', key: 'v/over', value: over }] }),
          'FLOTILLA_STORE_TOO_LARGE',
        );
        expect(await store.get('v/over')).toBeUndefined();
      });

      it('counts a put request (key and value) in UTF-8 bytes', async () => {
        const { maxValueBytes, maxRequestBytes } = store.limits;
        const value = 'x'.repeat(Math.min(maxValueBytes, maxRequestBytes - 3));
        // A key of multibyte characters that makes the request exactly the limit...
        const key = `r/${wide(maxRequestBytes - value.length - 2)}`;
        // ...and one that is three bytes over, though its UTF-16 length is well under.
        const over = `${key}日`;
        expect(over.length + value.length).toBeLessThan(maxRequestBytes);
        await store.put(key, value);
        expect((await store.get(key))?.value).toBe(value);
        await expectCode(store.put(over, value), 'FLOTILLA_STORE_TOO_LARGE');
        expect(await store.get(over)).toBeUndefined();
      });

      it('counts a txn request (keys, compared and put values) in UTF-8 bytes', async () => {
        const { maxValueBytes, maxRequestBytes } = store.limits;
        const value = 'x'.repeat(Math.min(maxValueBytes, maxRequestBytes - 6));
        // The compare carries 3 bytes; the key fills the rest up to exactly the limit.
        const fits = `t/${wide(maxRequestBytes - value.length - 3 - 2)}`;
        await store.put('c', 'x');
        const txn = (k: string): Txn => ({
          compare: [{ key: 'c', target: 'value', op: '!=', value: 'é' }], // 1 + 2 bytes
          success: [{ op: 'put', key: k, value }],
        });
        const over = `${fits}é`; // two bytes over; far under in UTF-16 units
        expect(over.length + value.length + 2).toBeLessThan(maxRequestBytes);
        await expectCode(store.txn(txn(over)), 'FLOTILLA_STORE_TOO_LARGE');
        expect(await store.get(over)).toBeUndefined();
        expect((await store.txn(txn(fits))).succeeded).toBe(true);
        expect((await store.get(fits))?.value).toBe(value);
      });

      it('refuses keys and prefixes larger than a request, in every call', async () => {
        const huge = 'k'.repeat(store.limits.maxRequestBytes + 1);
        const half = 'k'.repeat(Math.ceil(store.limits.maxRequestBytes / 2) + 1);
        const tooLarge = 'FLOTILLA_STORE_TOO_LARGE';
        await expectCode(store.get(huge), tooLarge);
        await expectCode(store.delete(huge), tooLarge);
        await expectCode(store.deletePrefix(huge), tooLarge);
        await expectCode(store.list(huge), tooLarge);
        await expectCode(store.list('', { after: huge }), tooLarge);
        await expectCode(store.list(half, { after: half }), tooLarge); // together over
        await expectCode(() => store.watch(huge), tooLarge);
        await expectCode(store.put(huge, ''), tooLarge);
        await expectCode(store.txn({ compare: [], success: [{ op: 'get', key: huge }] }), tooLarge);
      });

      it('refuses a lease TTL over MAX_LEASE_TTL_MS, and keeps a lease of that TTL', async () => {
        await expectCode(store.grant(MAX_LEASE_TTL_MS + 1), 'FLOTILLA_STORE_INVALID_ARGUMENT');
        const lease = await store.grant(MAX_LEASE_TTL_MS);
        cleanups.push(() => lease.revoke().catch(() => undefined));
        await store.put('long/a', '1', { lease: lease.id });
        await advance(ttl + 1);
        expect(lease.state).toBe('active');
        expect((await store.get('long/a'))?.lease).toBe(lease.id);
      });

      it('refuses malformed compares and ops with coded errors', async () => {
        const bad = [
          null,
          { compare: [null], success: [] },
          { compare: [], success: [null] },
          { compare: [], success: [], failure: [42] },
          { compare: [{ key: 'a', target: 'version', op: '=', value: 0 }], success: [] },
        ] as unknown as Txn[];
        for (const txn of bad) await expectCode(store.txn(txn), 'FLOTILLA_STORE_INVALID_ARGUMENT');
      });
    });

    describe('transactions', () => {
      it('answers for the ops as they were when called, whatever the caller changes after', async () => {
        await store.put('asked/a', '1');
        const success: TxnOp[] = [
          { op: 'get', key: 'asked/a' },
          { op: 'put', key: 'asked/b', value: '2' },
        ];
        const call = store.txn({ compare: [], success });
        // The caller reuses its array while the call is in flight.
        success.reverse();
        success.push({ op: 'delete', key: 'asked/a' });
        const res = await call;
        expect(res.results).toHaveLength(2);
        expect(res.results[0]).toMatchObject({ op: 'get', kv: { key: 'asked/a', value: '1' } });
        expect(res.results[1]).toEqual({ op: 'put' });
        expect((await store.get('asked/a'))?.value).toBe('1');
        expect((await store.get('asked/b'))?.value).toBe('2');
      });

      it('creates a key only if absent (version == 0)', async () => {
        const create = (value: string) =>
          store.txn({
            compare: [{ key: 'lock', target: 'version', op: '==', value: 0 }],
            success: [{ op: 'put', key: 'lock', value }],
            failure: [{ op: 'get', key: 'lock' }],
          });
        const first = await create('a');
        expect(first.succeeded).toBe(true);
        const second = await create('b');
        expect(second.succeeded).toBe(false);
        expect(second.results).toEqual([
          { op: 'get', kv: expect.objectContaining({ value: 'a' }) },
        ]);
        expect(second.revision).toBe(first.revision);
      });

      it('detects a conflicting write by modRevision (optimistic concurrency)', async () => {
        const { revision } = await store.put('host/a', '{"free":4}');
        await store.put('host/a', '{"free":3}'); // another writer wins the race
        const res = await store.txn({
          compare: [{ key: 'host/a', target: 'modRevision', op: '==', value: revision }],
          success: [{ op: 'put', key: 'host/a', value: '{"free":2}' }],
        });
        expect(res.succeeded).toBe(false);
        expect((await store.get('host/a'))?.value).toBe('{"free":3}');
      });

      it('compares values and revisions with ==, !=, < and >', async () => {
        const { revision } = await store.put('c', 'm');
        const check = async (cmp: Parameters<Store['txn']>[0]['compare'][number]) =>
          (await store.txn({ compare: [cmp], success: [] })).succeeded;
        expect(await check({ key: 'c', target: 'value', op: '==', value: 'm' })).toBe(true);
        expect(await check({ key: 'c', target: 'value', op: '!=', value: 'm' })).toBe(false);
        expect(await check({ key: 'c', target: 'value', op: '<', value: 'n' })).toBe(true);
        expect(await check({ key: 'c', target: 'value', op: '>', value: 'n' })).toBe(false);
        expect(await check({ key: 'c', target: 'modRevision', op: '<', value: revision + 1 })).toBe(
          true,
        );
        expect(await check({ key: 'c', target: 'createRevision', op: '==', value: revision })).toBe(
          true,
        );
        expect(await check({ key: 'c', target: 'version', op: '>', value: 0 })).toBe(true);
        expect(await check({ key: 'c', target: 'lease', op: '==', value: '0' })).toBe(true);
        expect(await check({ key: 'absent', target: 'modRevision', op: '==', value: 0 })).toBe(
          true,
        );
      });

      it('applies all writes of a transaction at one revision, atomically', async () => {
        await store.put('t/old', 'x');
        const events = watch('t/');
        const res = await store.txn({
          compare: [],
          success: [
            { op: 'put', key: 't/a', value: '1' },
            { op: 'put', key: 't/b', value: '2' },
            { op: 'delete', key: 't/old' },
            { op: 'get', key: 't/a' },
          ],
        });
        expect(res.succeeded).toBe(true);
        expect(res.results).toEqual([
          { op: 'put' },
          { op: 'put' },
          { op: 'delete', deleted: 1 },
          {
            op: 'get',
            kv: expect.objectContaining({ key: 't/a', value: '1', modRevision: res.revision }),
          },
        ]);
        const seen = await takeEvents(events, 3, eventTimeout);
        expect(new Set(seen.map((e) => e.revision))).toEqual(new Set([res.revision]));
        expect(seen.map(summary).sort()).toEqual([
          ['delete', 't/old', ''],
          ['put', 't/a', '1'],
          ['put', 't/b', '2'],
        ]);
      });

      it('enforces the op limit and refuses writing one key twice, writing nothing', async () => {
        const max = store.limits.maxTxnOps;
        const ops = (n: number): TxnOp[] =>
          Array.from({ length: n }, (_, i) => ({ op: 'put', key: `lim/${i}`, value: 'v' }));
        await store.txn({ compare: [], success: ops(max) });
        expect((await store.list('lim/')).kvs).toHaveLength(max);
        await store.deletePrefix('lim/');
        await expectCode(
          store.txn({ compare: [], success: ops(max + 1) }),
          'FLOTILLA_STORE_TOO_MANY_OPS',
        );
        await expectCode(
          store.txn({
            compare: [],
            success: [
              { op: 'put', key: 'dup', value: '1' },
              { op: 'put', key: 'dup', value: '2' },
            ],
          }),
          'FLOTILLA_STORE_DUPLICATE_KEY',
        );
        expect((await store.list('')).kvs).toEqual([]);
      });

      it('never loses an update under concurrent compare-and-set writers', async () => {
        await store.put('counter', '0');
        const writers = 8;
        const each = 5;
        const conflicts = { n: 0 };
        const increment = async (): Promise<void> => {
          for (;;) {
            const kv = await store.get('counter');
            if (kv === undefined) throw new Error('counter vanished');
            const res = await store.txn({
              compare: [{ key: 'counter', target: 'modRevision', op: '==', value: kv.modRevision }],
              success: [{ op: 'put', key: 'counter', value: String(Number(kv.value) + 1) }],
            });
            if (res.succeeded) return;
            conflicts.n++;
          }
        };
        await Promise.all(
          Array.from({ length: writers }, async () => {
            for (let i = 0; i < each; i++) await increment();
          }),
        );
        expect((await store.get('counter'))?.value).toBe(String(writers * each));
        expect((await store.get('counter'))?.version).toBe(writers * each + 1);
      });

      it('gives concurrent plain writes distinct revisions', async () => {
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.put(`cw/${i}`, String(i))),
        );
        expect(new Set(results.map((r) => r.revision)).size).toBe(50);
      });
    });

    describe('watch', () => {
      it('streams puts and deletes under a prefix in revision order', async () => {
        const events = watch('w/');
        await store.put('w/a', '1');
        await store.put('other', 'x');
        await store.put('w/b', '2');
        await store.put('w/a', '3');
        await store.delete('w/b');
        const seen = await takeEvents(events, 4, eventTimeout);
        expect(seen.map(summary)).toEqual([
          ['put', 'w/a', '1'],
          ['put', 'w/b', '2'],
          ['put', 'w/a', '3'],
          ['delete', 'w/b', ''],
        ]);
        const revs = seen.map((e) => e.revision);
        expect([...revs].sort((a, b) => a - b)).toEqual(revs);
        expect(seen[2]?.kv).toMatchObject({ version: 2, modRevision: revs[2] });
        expect(seen[3]?.kv).toMatchObject({ version: 0, modRevision: revs[3] });
      });

      it('resumes from a revision with no gap and no duplicate', async () => {
        const revs: number[] = [];
        for (let i = 0; i < 6; i++) revs.push((await store.put(`r/${i}`, String(i))).revision);
        const from = revs[2] as number;
        const events = watch('r/', from);
        const replayed = await takeEvents(events, 4, eventTimeout);
        expect(replayed.map((e) => e.kv.key)).toEqual(['r/2', 'r/3', 'r/4', 'r/5']);
        await store.put('r/6', '6');
        const [live] = await takeEvents(events, 1, eventTimeout);
        expect(live?.kv.key).toBe('r/6');
        expect(live?.revision).toBeGreaterThan(revs[5] as number);
      });

      it('lets a list then a watch from its revision + 1 see every change exactly once', async () => {
        await store.put('s/1', 'a');
        const snap = await store.list('s/');
        await store.put('s/2', 'b'); // after the list, before the watch starts
        const events = watch('s/', snap.revision + 1);
        await store.put('s/3', 'c');
        const seen = await takeEvents(events, 2, eventTimeout);
        expect(seen.map((e) => e.kv.key)).toEqual(['s/2', 's/3']);
      });

      it('fails with FLOTILLA_STORE_COMPACTED when the revision was compacted', async () => {
        const first = await store.put('cp/a', '1');
        await store.put('cp/a', '2');
        const last = await store.put('cp/a', '3');
        await store.compact(last.revision);
        const events = store.watch('cp/', { fromRevision: first.revision })[Symbol.asyncIterator]();
        try {
          await events.next();
          throw new Error('expected the watch to fail');
        } catch (err) {
          expect(isFlotillaError(err, 'FLOTILLA_STORE_COMPACTED')).toBe(true);
          expect((err as { compactRevision?: number }).compactRevision).toBeLessThanOrEqual(
            last.revision,
          );
        }
        // Watching from the compaction point itself still works.
        const ok = watch('cp/', last.revision);
        expect((await takeEvents(ok, 1, eventTimeout))[0]?.kv.value).toBe('3');
      });

      const { createWithHistoryLimit } = options;
      if (createWithHistoryLimit !== undefined) {
        it('compacts its own history beyond its historyLimit', async () => {
          const bounded = await createWithHistoryLimit(10);
          cleanups.push(() => bounded.close());
          const first = await bounded.put('a', '0');
          for (let i = 1; i < 30; i++) await bounded.put('a', String(i));
          const old = bounded.watch('a', { fromRevision: first.revision })[Symbol.asyncIterator]();
          await expect(old.next()).rejects.toMatchObject({ code: 'FLOTILLA_STORE_COMPACTED' });
          const from = (await bounded.revision()) - 5;
          const recent = bounded.watch('a', { fromRevision: from })[Symbol.asyncIterator]();
          cleanups.push(() => recent.return?.());
          expect((await takeEvents(recent, 6, eventTimeout)).map((e) => e.kv.value)).toEqual([
            '24',
            '25',
            '26',
            '27',
            '28',
            '29',
          ]);
        });
      }

      it('ends the iteration when its signal aborts', async () => {
        const controller = new AbortController();
        const seen: string[] = [];
        const done = (async () => {
          for await (const ev of store.watch('ab/', { signal: controller.signal })) {
            seen.push(ev.kv.key);
            if (seen.length === 1) controller.abort();
          }
        })();
        await store.put('ab/1', 'x');
        await done;
        expect(seen).toEqual(['ab/1']);
      });

      it('ends at once when its signal has already aborted', async () => {
        const controller = new AbortController();
        controller.abort();
        const seen: WatchEvent[] = [];
        for await (const ev of store.watch('', { signal: controller.signal })) seen.push(ev);
        expect(seen).toEqual([]);
        await store.put('after', 'x'); // the store is unaffected
        expect((await store.get('after'))?.value).toBe('x');
      });

      it('a watch that ends leaves no listener on its signal (one signal for many watches)', async () => {
        // A service's close signal, passed to one watch after another as they end and reopen.
        const controller = new AbortController();
        cleanups.push(() => controller.abort());
        for (let i = 0; i < 20; i++) {
          const it = store.watch(`ls${i}/`, { signal: controller.signal })[Symbol.asyncIterator]();
          const next = it.next();
          await store.put(`ls${i}/k`, 'v');
          expect((await next).value).toMatchObject({ type: 'put' });
          await it.return?.();
        }
        expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      });

      it('leaves out the revisions skipRevision names, live and replayed, and keeps order', async () => {
        const skipped = new Set<number>();
        const asked: number[] = [];
        const open = (fromRevision?: number): AsyncIterator<WatchEvent> => {
          const controller = new AbortController();
          cleanups.push(() => controller.abort());
          const iterable = store.watch('sk/', {
            signal: controller.signal,
            ...(fromRevision === undefined ? {} : { fromRevision }),
            skipRevision: (r) => {
              asked.push(r);
              return skipped.has(r);
            },
          });
          return iterable[Symbol.asyncIterator]();
        };
        const live = open();
        const a = await store.put('sk/a', '1');
        // A transaction of two keys: both of its changes share the revision, both are skipped.
        const echo = await store.txn({
          compare: [],
          success: [
            { op: 'put', key: 'sk/b', value: '2' },
            { op: 'delete', key: 'sk/a' },
          ],
        });
        skipped.add(echo.revision);
        await store.put('sk/c', '3');
        // MemoryStore and SQLite queue a change as it commits, before `txn()` answers: the
        // revision was asked before it was known. A replay from history asks again.
        const replay = open(a.revision);
        expect((await takeEvents(replay, 2, eventTimeout)).map(summary)).toEqual([
          ['put', 'sk/a', '1'],
          ['put', 'sk/c', '3'],
        ]);
        expect(asked).toContain(echo.revision);
        const seen = (await takeEvents(live, 2, eventTimeout)).map((e) => e.kv.key);
        // Live, the echo is skipped where the store asks after txn() answered (etcd), and
        // delivered where it asked before (in-process stores): either way in order, never torn.
        expect([
          ['sk/a', 'sk/c'],
          ['sk/a', 'sk/b'],
        ]).toContainEqual(seen);
      });

      it('watches only the keys before `before`, live and replayed, in revision order', async () => {
        const open = (fromRevision?: number): AsyncIterator<WatchEvent> => {
          const controller = new AbortController();
          cleanups.push(() => controller.abort());
          const iterable = store.watch('bf/', {
            signal: controller.signal,
            before: 'bf/m',
            ...(fromRevision === undefined ? {} : { fromRevision }),
          });
          return iterable[Symbol.asyncIterator]();
        };
        const live = open();
        const first = await store.put('bf/a', '1');
        await store.put('bf/m', 'left out: before is exclusive');
        await store.put('bf/z', 'left out');
        // One transaction on both sides of `before`: only its part before it is delivered.
        await store.txn({
          compare: [],
          success: [
            { op: 'put', key: 'bf/zz', value: 'left out' },
            { op: 'put', key: 'bf/l\u{10ffff}', value: 'in: sorts before bf/m' },
            { op: 'delete', key: 'bf/a' },
          ],
        });
        await store.put('bg/a', 'outside the prefix');
        await store.put('bf/b', '2');
        const expected = [
          ['put', 'bf/a', '1'],
          ['put', 'bf/l\u{10ffff}', 'in: sorts before bf/m'],
          ['delete', 'bf/a', ''],
          ['put', 'bf/b', '2'],
        ];
        expect((await takeEvents(live, 4, eventTimeout)).map(summary)).toEqual(expected);
        expect((await takeEvents(open(first.revision), 4, eventTimeout)).map(summary)).toEqual(
          expected,
        );
      });

      it('with deletesOnly, delivers the deletes and none of the puts, live and replayed', async () => {
        const open = (fromRevision?: number): AsyncIterator<WatchEvent> => {
          const controller = new AbortController();
          cleanups.push(() => controller.abort());
          const iterable = store.watch('do/', {
            signal: controller.signal,
            deletesOnly: true,
            ...(fromRevision === undefined ? {} : { fromRevision }),
          });
          return iterable[Symbol.asyncIterator]();
        };
        const live = open();
        const first = await store.put('do/a', '1');
        await store.put('do/b', '2');
        await store.txn({
          compare: [],
          success: [
            { op: 'put', key: 'do/c', value: '3' },
            { op: 'delete', key: 'do/a' },
          ],
        });
        await store.put('do/b', 'again');
        await store.delete('do/b');
        const expected = [
          ['delete', 'do/a', ''],
          ['delete', 'do/b', ''],
        ];
        expect((await takeEvents(live, 2, eventTimeout)).map(summary)).toEqual(expected);
        expect((await takeEvents(open(first.revision), 2, eventTimeout)).map(summary)).toEqual(
          expected,
        );
        expect(() => store.watch('do/', { deletesOnly: 'yes' as unknown as boolean })).toThrow(
          expect.objectContaining({ code: 'FLOTILLA_STORE_INVALID_ARGUMENT' }),
        );
      });

      it('refuses watch options that are not an object, with a code', () => {
        for (const options of [null, 'from 3', 3]) {
          expect(() => store.watch('wo/', options as unknown as WatchOptions)).toThrow(
            expect.objectContaining({ code: 'FLOTILLA_STORE_INVALID_ARGUMENT' }),
          );
        }
      });

      it('refuses a watch whose `before` does not sort after its prefix', () => {
        for (const before of ['bf/', 'be/z', '', 7]) {
          expect(() => store.watch('bf/', { before: before as unknown as string })).toThrow(
            expect.objectContaining({ code: 'FLOTILLA_STORE_INVALID_ARGUMENT' }),
          );
        }
      });

      it('fails a watch whose skipRevision throws, and refuses one that is not a function', async () => {
        const boom = new Error('skip failed');
        const throwing = store.watch('st/', {
          skipRevision: () => {
            throw boom;
          },
        });
        const events = throwing[Symbol.asyncIterator]();
        cleanups.push(() => events.return?.());
        await store.put('st/a', '1');
        await expect(events.next()).rejects.toBe(boom);
        expect(() =>
          store.watch('st/', { skipRevision: 'no' as unknown as (r: number) => boolean }),
        ).toThrow(expect.objectContaining({ code: 'FLOTILLA_STORE_INVALID_ARGUMENT' }));
        await store.put('st/b', '2'); // the store is unaffected
        expect((await store.get('st/b'))?.value).toBe('2');
      });

      it('serves several watchers of overlapping prefixes', async () => {
        const all = watch('');
        const some = watch('m/x');
        await store.put('m/y', '1');
        await store.put('m/x1', '2');
        expect((await takeEvents(all, 2, eventTimeout)).map((e) => e.kv.key)).toEqual([
          'm/y',
          'm/x1',
        ]);
        expect((await takeEvents(some, 1, eventTimeout)).map((e) => e.kv.key)).toEqual(['m/x1']);
      });
    });

    describe('leases', () => {
      it('attaches keys to a lease and deletes them on revoke, seen by watchers', async () => {
        const lease = await store.grant(ttl);
        expect(lease.state).toBe('active');
        await store.put('l/a', '1', { lease: lease.id });
        await store.put('l/b', '2', { lease: lease.id });
        await store.put('l/keep', '3');
        expect((await store.get('l/a'))?.lease).toBe(lease.id);
        const events = watch('l/');
        await lease.revoke();
        const seen = await takeEvents(events, 2, eventTimeout);
        expect(seen.map(summary)).toEqual([
          ['delete', 'l/a', ''],
          ['delete', 'l/b', ''],
        ]);
        expect(await lease.ended).toBe('revoked');
        expect(lease.state).toBe('ended');
        expect((await store.list('l/')).kvs.map((kv) => kv.key)).toEqual(['l/keep']);
        await lease.revoke(); // idempotent
      });

      it('expires a lease that is not kept alive, and watchers see its keys go', async () => {
        const lease = await store.grant(ttl);
        await store.put('exp/a', '1', { lease: lease.id });
        const events = watch('exp/');
        const gone = takeEvents(events, 1, ttl + eventTimeout);
        await advance(ttl + 1);
        const [ev] = await gone;
        expect(ev && summary(ev)).toEqual(['delete', 'exp/a', '']);
        expect(await store.get('exp/a')).toBeUndefined();
        await expectCode(
          store.put('exp/b', '1', { lease: lease.id }),
          'FLOTILLA_STORE_LEASE_NOT_FOUND',
        );
      });

      it('keeps a lease alive past its TTL with keepAlive', async () => {
        const lease = await store.grant(ttl);
        cleanups.push(() => lease.revoke().catch(() => undefined));
        await store.put('ka/a', '1', { lease: lease.id });
        await lease.keepAlive();
        // Three TTLs pass; a sentinel lease that is not kept alive proves time really passed.
        const sentinel = await store.grant(ttl);
        await store.put('ka/sentinel', 'x', { lease: sentinel.id });
        const events = watch('ka/');
        const sentinelGone = takeEvents(events, 1, ttl + eventTimeout);
        await advance(ttl + 1);
        expect((await sentinelGone).map(summary)).toEqual([['delete', 'ka/sentinel', '']]);
        await advance(ttl + 1);
        await advance(ttl + 1);
        expect((await store.get('ka/a'))?.value).toBe('1');
        expect(lease.state).toBe('active');
      });

      it('lets a released lease run out: its keys live until the TTL, then go, unrevoked', async () => {
        const lease = await store.grant(ttl);
        cleanups.push(() => lease.revoke().catch(() => undefined));
        await store.put('rel/a', '1', { lease: lease.id });
        await lease.keepAlive();
        lease.release();
        lease.release(); // idempotent
        expect((await store.get('rel/a'))?.value).toBe('1'); // not revoked
        const events = watch('rel/');
        const gone = takeEvents(events, 1, ttl + eventTimeout);
        await advance(ttl + 1);
        expect((await gone).map(summary)).toEqual([['delete', 'rel/a', '']]);
      });

      it('refuses a put with an unknown lease and writes nothing', async () => {
        await expectCode(
          store.put('nl', 'x', { lease: '987654321' }),
          'FLOTILLA_STORE_LEASE_NOT_FOUND',
        );
        expect(await store.get('nl')).toBeUndefined();
      });

      it('detaches a key from its lease when it is put again without one', async () => {
        const lease = await store.grant(ttl);
        await store.put('det', '1', { lease: lease.id });
        await store.put('det', '2');
        await lease.revoke();
        expect((await store.get('det'))?.value).toBe('2');
      });
    });

    describe('close', () => {
      it('rejects every call with FLOTILLA_STORE_CLOSED after close, and close is idempotent', async () => {
        const lease: Lease = await store.grant(ttl);
        await store.close();
        await store.close();
        await expectCode(store.get('a'), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.put('a', 'b'), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.list(''), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.delete('a'), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.txn({ compare: [], success: [] }), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.grant(ttl), 'FLOTILLA_STORE_CLOSED');
        await expectCode(store.revision(), 'FLOTILLA_STORE_CLOSED');
        await expectCode(() => store.watch('a'), 'FLOTILLA_STORE_CLOSED');
        expect(await lease.ended).toBe('closed');
      });

      it('rejects lease calls after close with FLOTILLA_STORE_CLOSED, not as a lost lease', async () => {
        const lease = await store.grant(ttl);
        await store.put('lc/a', '1', { lease: lease.id });
        await store.close();
        await expectCode(lease.renew(), 'FLOTILLA_STORE_CLOSED');
        await expectCode(lease.keepAlive(), 'FLOTILLA_STORE_CLOSED');
        // Its keys were not deleted (they end with the TTL): a revoke that resolved would lie.
        await expectCode(lease.revoke(), 'FLOTILLA_STORE_CLOSED');
        await lease[Symbol.asyncDispose](); // disposal after close is quiet
        expect(await lease.ended).toBe('closed');
      });

      it('fails open watches with FLOTILLA_STORE_CLOSED', async () => {
        const events = store.watch('x/')[Symbol.asyncIterator]();
        const next = events.next();
        // It fails while close() is awaited (on etcd, across I/O): handled at once, or the
        // rejection is reported as unhandled before expectCode sees it.
        next.catch(() => undefined);
        await store.close();
        await expectCode(next, 'FLOTILLA_STORE_CLOSED');
      });
    });

    it('rejects a call whose signal has aborted', async () => {
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      await expect(store.put('a', 'b', { signal: controller.signal })).rejects.toThrow('stop');
      expect(await store.get('a')).toBeUndefined();
    });
  });
}
