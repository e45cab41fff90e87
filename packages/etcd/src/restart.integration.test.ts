// EtcdStore against an etcd of its own that the tests stop, restart, freeze and wipe.
import { readFileSync } from 'node:fs';
import { isFlotillaError } from '@flotilla/core';
import type { Store, StoreError, WatchEvent } from '@flotilla/store';
import { takeEvents } from '@flotilla/store/testing';
import { Etcd3 } from 'etcd3';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  etcdEndpoints,
  releaseEtcd,
  startEtcd,
  type TestEtcd,
  uniquePrefix,
} from '../../../test/support/etcd.js';
import { EtcdStore } from './etcd-store.js';

const REQUEST_TIMEOUT_MS = 1000;
const TTL_MS = 2000;

/**
 * Runs `fn` until etcd answers: right after a restart the client may still be reconnecting.
 * There is no event to wait for here, so this retries (bounded) on UNAVAILABLE only.
 */
async function once<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isFlotillaError(err, 'FLOTILLA_STORE_UNAVAILABLE') || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Freezes a process with SIGSTOP and waits until the kernel reports it stopped. */
async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  // Delivery is asynchronous and there is no event for it: read the state from /proc.
  for (let i = 0; i < 200; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) [Tt] /.test(stat)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`process ${pid} did not stop`);
}

async function expectUnavailableWithin(call: Promise<unknown>, ms: number): Promise<void> {
  const started = Date.now();
  const err = await call.then(
    () => {
      throw new Error('expected the call to fail while etcd is down');
    },
    (e: unknown) => e,
  );
  expect(isFlotillaError(err, 'FLOTILLA_STORE_UNAVAILABLE'), String(err)).toBe(true);
  expect((err as StoreError).retryable).toBe(true);
  expect((err as StoreError).cause).toBeDefined();
  expect(Date.now() - started).toBeLessThan(ms);
}

describe('EtcdStore across etcd restarts', () => {
  let etcd: TestEtcd;
  const cleanups: (() => unknown)[] = [];
  const open = (prefix = uniquePrefix('restart')): EtcdStore => {
    const store = new EtcdStore({
      endpoints: [etcd.endpoint],
      prefix,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    cleanups.push(() => store.close());
    return store;
  };
  const watch = (store: Store, prefix: string, fromRevision?: number) => {
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const iterable = store.watch(prefix, {
      signal: controller.signal,
      ...(fromRevision === undefined ? {} : { fromRevision }),
    });
    return iterable[Symbol.asyncIterator]();
  };

  beforeEach(async () => {
    etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  it('resumes a watch after a restart with no gap and no duplicate', async () => {
    const store = open();
    const events = watch(store, 'w/');
    const first = await store.put('w/1', 'before');
    expect((await takeEvents(events, 1)).map((e) => e.kv.key)).toEqual(['w/1']);

    await etcd.halt();
    await etcd.resume();
    // Written as soon as etcd is back, most likely before the watch has reconnected: it must
    // replay them from the revision after the last one it delivered.
    const writer = open(store.prefix);
    const second = await once(() => writer.put('w/2', 'after'));
    await writer.put('w/other', 'x');
    await writer.txn({
      compare: [],
      success: [
        { op: 'put', key: 'w/3', value: 'after' },
        { op: 'delete', key: 'w/1' },
      ],
    });
    await writer.put('w/4', 'last');

    const seen = await takeEvents(events, 5);
    expect(seen.map((e) => [e.type, e.kv.key])).toEqual([
      ['put', 'w/2'],
      ['put', 'w/other'],
      ['put', 'w/3'],
      ['delete', 'w/1'],
      ['put', 'w/4'],
    ]);
    expect(seen[0]?.revision).toBe(second.revision);
    expect(second.revision).toBeGreaterThan(first.revision);
    const revisions = seen.map((e) => e.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    // Nothing more: no duplicate arrives before the next write.
    const next = await store.put('w/5', 'next');
    const [fifth] = await takeEvents(events, 1);
    expect(fifth?.revision).toBe(next.revision);
  }, 30_000);

  it('a deletesOnly watch quiet for a while resumes after compaction and a restart, from its progress', async () => {
    // etcd's progress notifications every 200 ms instead of 10 minutes.
    const quick = await startEtcd({
      extraArgs: ['--experimental-watch-progress-notify-interval', '200ms'],
    });
    cleanups.push(() => quick.stop());
    const store = new EtcdStore({
      endpoints: [quick.endpoint],
      prefix: uniquePrefix('progress'),
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    cleanups.push(() => store.close());
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const iterable = store.watch('q/', { deletesOnly: true, signal: controller.signal });
    const deletes = iterable[Symbol.asyncIterator]();
    await store.put('q/a', '1');
    await store.delete('q/a');
    expect((await takeEvents(deletes, 1)).map((e) => [e.type, e.kv.key])).toEqual([
      ['delete', 'q/a'],
    ]);
    // Puts only: the watch delivers nothing, and its last event's revision falls behind.
    let last = 0;
    for (let i = 0; i < 20; i++) last = (await store.put(`q/p${i}`, 'x')).revision;
    // No event tells that a progress notification arrived: wait several intervals.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await store.compact(last);
    await quick.restart();
    const gone = await once(() => store.delete('q/p0'));
    const [ev] = await takeEvents(deletes, 1);
    expect([ev?.type, ev?.kv.key, ev?.revision]).toEqual(['delete', 'q/p0', gone.revision]);
  }, 30_000);

  it('a watch with skipRevision resumes after a restart without the skipped revisions or a duplicate', async () => {
    const store = open();
    const skipped = new Set<number>();
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const iterable = store.watch('s/', {
      signal: controller.signal,
      skipRevision: (r) => skipped.has(r),
    });
    const events = iterable[Symbol.asyncIterator]();
    const first = await store.put('s/1', 'kept');
    skipped.add(first.revision + 1); // this etcd has no other writer: the next write's revision
    await store.put('s/2', 'skipped');
    expect((await takeEvents(events, 1)).map((e) => e.kv.key)).toEqual(['s/1']);

    await etcd.halt();
    await etcd.resume();
    // Written as soon as etcd is back, likely before the watch has reconnected and replays.
    const writer = open(store.prefix);
    const back = await once(() => writer.put('s/3', 'kept'));
    skipped.add(back.revision + 1);
    await writer.put('s/4', 'skipped');
    await writer.put('s/5', 'kept');
    const seen = await takeEvents(events, 2);
    expect(seen.map((e) => e.kv.key)).toEqual(['s/3', 's/5']);
    const next = await store.put('s/6', 'next');
    const [last] = await takeEvents(events, 1);
    expect(last?.revision).toBe(next.revision);
  }, 30_000);

  it('keeps a kept-alive lease and its key across a restart with the same data', async () => {
    const store = open();
    const lease = await store.grant(TTL_MS);
    await store.put('hosts/a', 'up', { lease: lease.id });
    await lease.keepAlive();

    await etcd.restart();
    // A lease granted after the restart and not kept alive proves a TTL really passed.
    const sentinel = await once(() => store.grant(TTL_MS));
    const put = await store.put('hosts/sentinel', 'x', { lease: sentinel.id });
    // From a known revision: the sentinel's expiry is etcd's own write, which no store's start
    // barrier holds; a watch "from now" that started late (a loaded machine) would miss it.
    const events = watch(store, 'hosts/', put.revision + 1);
    expect(await sentinel.ended).toBe('expired');
    expect((await takeEvents(events, 1)).map((e) => [e.type, e.kv.key])).toEqual([
      ['delete', 'hosts/sentinel'],
    ]);
    expect(await store.get('hosts/a')).toMatchObject({ value: 'up', lease: lease.id });
    expect(lease.state).toBe('active');
    await lease.revoke();
    expect(await lease.ended).toBe('revoked');
  }, 30_000);

  it('ends a kept-alive lease when etcd comes back without it, so the owner can re-grant', async () => {
    const store = open();
    const lease = await store.grant(TTL_MS);
    await store.put('hosts/a', 'up', { lease: lease.id });
    await lease.keepAlive();
    for (let i = 0; i < 5; i++) await store.put('history/k', String(i));
    const events = watch(store, 'history/', 1);
    expect(await takeEvents(events, 5)).toHaveLength(5);

    // Wipe: a new etcd with empty data on the same ports.
    await etcd.halt();
    const wiped = await startEtcd({ clientPort: etcd.clientPort, peerPort: etcd.peerPort });
    cleanups.push(() => wiped.stop());

    expect(await lease.ended).toBe('expired');
    // The watch cannot resume: the history it followed is gone.
    const err = await events.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFlotillaError(err, 'FLOTILLA_STORE_COMPACTED'), String(err)).toBe(true);

    const again = await once(() => store.grant(TTL_MS));
    await store.put('hosts/a', 'up again', { lease: again.id });
    expect(await store.get('hosts/a')).toMatchObject({ value: 'up again', lease: again.id });
    await again.revoke();
  }, 30_000);

  it('fails calls with a retryable FLOTILLA_STORE_UNAVAILABLE while etcd is down, and recovers', async () => {
    const store = open();
    await store.put('k', 'v');
    await etcd.halt();
    await expectUnavailableWithin(store.get('k'), REQUEST_TIMEOUT_MS + 1000);
    await expectUnavailableWithin(store.put('k', 'w'), REQUEST_TIMEOUT_MS + 1000);
    await etcd.resume();
    expect((await once(() => store.get('k')))?.value).toBe('v');
  }, 30_000);

  it('fails calls within the request timeout while etcd is hung', async () => {
    const store = open();
    await store.put('k', 'v');
    const pid = etcd.pid as number;
    await freeze(pid);
    try {
      await expectUnavailableWithin(store.get('k'), REQUEST_TIMEOUT_MS + 1000);
      await expectUnavailableWithin(
        store.txn({ compare: [], success: [{ op: 'put', key: 'k', value: 'w' }] }),
        REQUEST_TIMEOUT_MS + 1000,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await once(() => store.get('k')))?.value).toBeDefined();
  }, 30_000);

  it('a watch frozen with etcd past the request timeout delivers on after SIGCONT, no gap, no duplicate', async () => {
    const store = open();
    const events = watch(store, 'fw/');
    await store.put('fw/1', 'before');
    expect((await takeEvents(events, 1)).map((e) => e.kv.key)).toEqual(['fw/1']);
    const pid = etcd.pid as number;
    await freeze(pid);
    try {
      // Long enough for every timeout of the client to fire while etcd cannot answer.
      await new Promise((resolve) => setTimeout(resolve, REQUEST_TIMEOUT_MS * 3));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const writer = open(store.prefix);
    const second = await once(() => writer.put('fw/2', 'after'));
    const third = await writer.put('fw/3', 'after');
    const seen = await takeEvents(events, 2);
    expect(seen.map((e) => [e.kv.key, e.revision])).toEqual([
      ['fw/2', second.revision],
      ['fw/3', third.revision],
    ]);
  }, 30_000);

  it('a kept-alive lease frozen with etcd past its TTL agrees with etcd after SIGCONT', async () => {
    const store = open();
    const lease = await store.grant(TTL_MS);
    await store.put('fl/a', 'up', { lease: lease.id });
    await lease.keepAlive();
    const pid = etcd.pid as number;
    await freeze(pid);
    try {
      await new Promise((resolve) => setTimeout(resolve, TTL_MS * 2));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // etcd may expire it on waking, or the keep-alive may win: either way store and lease agree,
    // for longer than a TTL.
    const ended = await Promise.race([
      lease.ended,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), TTL_MS * 3)),
    ]);
    const kv = await once(() => store.get('fl/a'));
    if (ended === undefined) {
      expect(lease.state).toBe('active');
      expect(kv).toMatchObject({ value: 'up', lease: lease.id });
    } else {
      expect(ended).toBe('expired');
      expect(kv).toBeUndefined();
    }
  }, 30_000);

  it('a txn in flight when etcd is killed fails retryable, all or nothing, and the store recovers', async () => {
    const store = open();
    const pid = etcd.pid as number;
    await freeze(pid);
    const call = store.txn({
      compare: [],
      success: [
        { op: 'put', key: 'kt/a', value: '1' },
        { op: 'put', key: 'kt/b', value: '1' },
      ],
    });
    call.catch(() => undefined);
    await etcd.halt('SIGKILL'); // a frozen process dies of SIGKILL too
    await expectUnavailableWithin(call, REQUEST_TIMEOUT_MS + 1000);
    await etcd.resume();
    const listed = await once(() => store.list('kt/'));
    expect([0, 2]).toContain(listed.kvs.length);
    await store.put('kt/c', 'after');
    expect((await store.get('kt/c'))?.value).toBe('after');
  }, 30_000);

  it('a watch and a kept-alive lease live on after etcd is killed and restarted', async () => {
    const store = open();
    const lease = await store.grant(TTL_MS);
    const put = await store.put('kw/a', 'up', { lease: lease.id });
    await lease.keepAlive();
    // From a known revision: a watch "from now" that etcd had not yet started when it was
    // killed starts from its revision after the restart, past the other client's put (CI).
    const events = watch(store, 'kw/', put.revision + 1);
    await etcd.restart('SIGKILL');
    const writer = open(store.prefix);
    const after = await once(() => writer.put('kw/b', 'after'));
    const [ev] = await takeEvents(events, 1);
    expect(ev).toMatchObject({ type: 'put', revision: after.revision, kv: { key: 'kw/b' } });
    // Two TTLs after the crash, the kept-alive lease and its key are still there.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS * 2));
    expect(lease.state).toBe('active');
    expect(await store.get('kw/a')).toMatchObject({ value: 'up', lease: lease.id });
  }, 30_000);
});

describe('EtcdStore leases on a shared etcd', () => {
  let endpoints: string[] = [];
  beforeAll(async () => {
    endpoints = await etcdEndpoints();
    return releaseEtcd;
  });

  it('ends a kept-alive lease revoked by another client, and watchers see its keys go', async () => {
    const store = new EtcdStore({ endpoints, prefix: uniquePrefix('revoked') });
    const other = new Etcd3({ hosts: endpoints });
    const controller = new AbortController();
    try {
      const lease = await store.grant(TTL_MS);
      const put = await store.put('svc/a', 'x', { lease: lease.id });
      await lease.keepAlive();
      // From a known revision: a watch "from now" is not started in etcd when watch() returns,
      // and the other client's revoke, which this store's writes barrier does not hold, could
      // come first (the delete then is before "now", and never delivered).
      const watching = store.watch('svc/', {
        signal: controller.signal,
        fromRevision: put.revision + 1,
      });
      const events = watching[Symbol.asyncIterator]();
      await other.leaseClient.leaseRevoke({ ID: lease.id });
      expect((await takeEvents(events, 1)).map((e: WatchEvent) => [e.type, e.kv.key])).toEqual([
        ['delete', 'svc/a'],
      ]);
      expect(await lease.ended).toBe('expired');
      await expect(store.put('svc/b', 'x', { lease: lease.id })).rejects.toMatchObject({
        code: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
      });
    } finally {
      controller.abort();
      other.close();
      await store.close();
    }
  });

  it('resolves ended with expired for a lease nobody keeps alive', async () => {
    const store = new EtcdStore({ endpoints, prefix: uniquePrefix('expiry') });
    try {
      const lease = await store.grant(TTL_MS);
      expect(await lease.ended).toBe('expired');
      expect(lease.state).toBe('ended');
    } finally {
      await store.close();
    }
  });
});
