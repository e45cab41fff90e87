import { ManualClock } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { listAndWatch, type ListWatchItem } from './list-and-watch.js';
import { MemoryStore } from './memory-store.js';
import { PartitionableStore } from './testing/partitionable-store.js';

async function next(it: AsyncIterator<ListWatchItem>): Promise<ListWatchItem> {
  const r = await it.next();
  if (r.done === true) throw new Error('listAndWatch ended early');
  return r.value;
}

describe('listAndWatch', () => {
  it('yields a snapshot, then every change after it, none missed or repeated', async () => {
    const store = new MemoryStore();
    await store.put('p/a', '1');
    await store.put('other', 'x');
    const ac = new AbortController();
    const it = listAndWatch(store, 'p/', { signal: ac.signal })[Symbol.asyncIterator]();
    const first = await next(it);
    expect(first).toMatchObject({ type: 'snapshot', reset: false });
    if (first.type !== 'snapshot') throw new Error('unreachable');
    expect(first.kvs.map((kv) => kv.key)).toEqual(['p/a']);
    // Written after the list but before the watch starts: still delivered.
    await store.put('p/b', '2');
    await store.delete('p/a');
    await store.put('other', 'y');
    const a = await next(it);
    const b = await next(it);
    expect(a.type === 'change' && [a.event.type, a.event.kv.key]).toEqual(['put', 'p/b']);
    expect(b.type === 'change' && [b.event.type, b.event.kv.key]).toEqual(['delete', 'p/a']);
    ac.abort();
    expect((await it.next()).done).toBe(true);
    await store.close();
  });

  it('with watchBefore, lists every key but yields only the changes before it', async () => {
    const store = new MemoryStore();
    await store.put('p/a', '1');
    await store.put('p/own/x', 'mine');
    const ac = new AbortController();
    const it = listAndWatch(store, 'p/', { signal: ac.signal, watchBefore: 'p/own/' })[
      Symbol.asyncIterator
    ]();
    const first = await next(it);
    if (first.type !== 'snapshot') throw new Error('expected a snapshot');
    expect(first.kvs.map((kv) => kv.key)).toEqual(['p/a', 'p/own/x']);
    await store.put('p/own/y', 'mine too');
    await store.put('p/b', '2');
    const change = await next(it);
    expect(change.type === 'change' && change.event.kv.key).toBe('p/b');
    ac.abort();
    await store.close();
  });

  it('lists again, as a reset snapshot, when the store compacted past the watch', async () => {
    const store = new MemoryStore({ historyLimit: 10 });
    await store.put('p/gone', 'x');
    await store.put('p/kept', '0');
    const ac = new AbortController();
    const it = listAndWatch(store, 'p/', { signal: ac.signal })[Symbol.asyncIterator]();
    expect(await next(it)).toMatchObject({ type: 'snapshot', reset: false });
    // The consumer lags while the store moves on far past its history limit.
    await store.delete('p/gone');
    for (let i = 1; i <= 30; i++) await store.put('p/kept', String(i));
    const reset = await next(it);
    expect(reset).toMatchObject({ type: 'snapshot', reset: true });
    if (reset.type !== 'snapshot') throw new Error('unreachable');
    expect(reset.kvs.map((kv) => [kv.key, kv.value])).toEqual([['p/kept', '30']]);
    expect(reset.revision).toBe(await store.revision());
    // And it watches on from the new list.
    await store.put('p/new', 'n');
    const after = await next(it);
    expect(after.type === 'change' && after.event.kv.key).toBe('p/new');
    ac.abort();
    await it.return?.(undefined);
    await store.close();
  });

  it('backs off on the clock while the store is unreachable, then resumes without a gap', async () => {
    const clock = new ManualClock();
    const inner = new MemoryStore({ clock });
    const store = new PartitionableStore(inner, { clock });
    const retries: number[] = [];
    const codes = new Set<unknown>();
    const ac = new AbortController();
    const it = listAndWatch(store, 'p/', {
      signal: ac.signal,
      clock,
      onRetry: (err, delayMs) => {
        codes.add((err as { code?: unknown }).code);
        retries.push(delayMs);
      },
    })[Symbol.asyncIterator]();
    store.partitioned = true;
    const pending = it.next();
    await clock.advance(0);
    await clock.advance(100); // first retry
    await clock.advance(200); // second retry
    expect(retries).toEqual([100, 200, 400]);
    expect([...codes]).toEqual(['FLOTILLA_STORE_UNAVAILABLE']);
    store.partitioned = false;
    await inner.put('p/x', '1');
    await clock.advance(400);
    const snap = (await pending).value as ListWatchItem;
    expect(snap).toMatchObject({ type: 'snapshot', reset: false });
    expect(snap.type === 'snapshot' && snap.kvs.map((kv) => kv.key)).toEqual(['p/x']);
    ac.abort();
    await it.return?.(undefined);
    await store.close();
    await inner.close();
  });

  it('throws what cannot be retried, and ends quietly when aborted during a backoff', async () => {
    const store = new MemoryStore();
    await store.close();
    await expect(next(listAndWatch(store, 'p/')[Symbol.asyncIterator]())).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_CLOSED',
    });

    const clock = new ManualClock();
    const cut = new PartitionableStore(new MemoryStore({ clock }), { clock });
    cut.partitioned = true;
    const ac = new AbortController();
    let retried!: () => void;
    const firstRetry = new Promise<void>((resolve) => (retried = resolve));
    const it = listAndWatch(cut, 'p/', {
      signal: ac.signal,
      clock,
      onRetry: () => retried(),
    })[Symbol.asyncIterator]();
    const pending = it.next();
    await firstRetry;
    ac.abort();
    expect((await pending).done).toBe(true);
    await cut.close();
  });
  it('throws FLOTILLA_STORE_CLOSED when the store closes mid-iteration or during a backoff', async () => {
    const store = new MemoryStore();
    await store.put('p/a', '1');
    const it = listAndWatch(store, 'p/')[Symbol.asyncIterator]();
    expect(await next(it)).toMatchObject({ type: 'snapshot' });
    const pending = it.next();
    pending.catch(() => undefined); // it fails while close() is awaited: handled at once
    await store.close();
    await expect(pending).rejects.toMatchObject({ code: 'FLOTILLA_STORE_CLOSED' });
    expect((await it.next()).done).toBe(true);

    const clock = new ManualClock();
    const inner = new MemoryStore({ clock });
    const cut = new PartitionableStore(inner, { clock });
    cut.partitioned = true;
    let retried!: () => void;
    const firstRetry = new Promise<void>((resolve) => (retried = resolve));
    const backingOff = listAndWatch(cut, 'p/', { clock, onRetry: () => retried() })[
      Symbol.asyncIterator
    ]();
    const failed = expect(backingOff.next()).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_CLOSED',
    });
    await firstRetry;
    await cut.close();
    await clock.advance(100);
    await failed;
    await inner.close();
  });
});

describe('a watch whose consumer stops reading', () => {
  it('fails as compacted past maxWatchBacklog, holding no more; listAndWatch lists again', async () => {
    const store = new MemoryStore({ limits: { maxWatchBacklog: 5 } });
    const raw = store.watch('p/')[Symbol.asyncIterator]();
    const ac = new AbortController();
    const it = listAndWatch(store, 'p/', { signal: ac.signal })[Symbol.asyncIterator]();
    expect(await next(it)).toMatchObject({ type: 'snapshot', reset: false });
    const first = it.next(); // its watch starts, and gets one event
    await store.put('p/0', '0');
    expect((await first).value).toMatchObject({ type: 'change' });
    // Both consumers stop reading while 20 more changes come.
    for (let i = 1; i <= 20; i++) await store.put(`p/${i}`, String(i));
    await expect(raw.next()).rejects.toMatchObject({ code: 'FLOTILLA_STORE_COMPACTED' });
    const reset = await next(it);
    expect(reset).toMatchObject({ type: 'snapshot', reset: true });
    expect(reset.type === 'snapshot' && reset.kvs).toHaveLength(21);
    ac.abort();
    await it.return?.(undefined);
    await store.close();
  });
});
