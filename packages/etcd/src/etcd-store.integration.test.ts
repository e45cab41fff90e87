import { runStoreContract, takeEvents } from '@flotilla/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  etcdEndpoints,
  releaseEtcd,
  startEtcd,
  type TestEtcd,
  uniquePrefix,
} from '../../../test/support/etcd.js';
import { EtcdStore } from './etcd-store.js';

// The contract asserts exact revisions ("one more per write") and compacts: on the etcd that
// `npm test` shares between suites running in parallel, another suite's writes would break
// the first and the compaction could break the other suites' watches. So the contract runs
// on an etcd of its own; the tests below run on the shared one and tolerate others' writes.
let exclusive: TestEtcd | undefined;
let endpoints: string[] = [];
beforeAll(async () => {
  exclusive = await startEtcd();
  endpoints = await etcdEndpoints();
});
afterAll(async () => {
  await exclusive?.stop();
  await releaseEtcd();
});

runStoreContract({
  name: 'EtcdStore',
  create: () =>
    new EtcdStore({ endpoints: [exclusive?.endpoint ?? ''], prefix: uniquePrefix('contract') }),
});

describe('EtcdStore on a shared etcd', () => {
  it('keeps stores with different prefixes apart', async () => {
    const a = new EtcdStore({ endpoints, prefix: uniquePrefix('a') });
    const b = new EtcdStore({ endpoints, prefix: uniquePrefix('b') });
    try {
      const controller = new AbortController();
      const seenByB = b.watch('', { signal: controller.signal })[Symbol.asyncIterator]();
      await a.put('apps/web', 'from a');
      await b.put('apps/api', 'from b');
      expect((await a.list('')).kvs.map((kv) => [kv.key, kv.value])).toEqual([
        ['apps/web', 'from a'],
      ]);
      expect((await b.list('')).kvs.map((kv) => [kv.key, kv.value])).toEqual([
        ['apps/api', 'from b'],
      ]);
      expect(await b.get('apps/web')).toBeUndefined();
      expect((await b.deletePrefix('')).deleted).toBe(1);
      expect((await a.get('apps/web'))?.value).toBe('from a');
      // B's watch sees its own put and delete, never A's put.
      const events = await takeEvents(seenByB, 2);
      expect(events.map((e) => [e.type, e.kv.key])).toEqual([
        ['put', 'apps/api'],
        ['delete', 'apps/api'],
      ]);
      controller.abort();
    } finally {
      await a.deletePrefix('');
      await a.close();
      await b.close();
    }
  });

  it('rounds lease TTLs up to whole seconds', async () => {
    const store = new EtcdStore({ endpoints, prefix: uniquePrefix('ttl') });
    try {
      const lease = await store.grant(2500);
      expect(lease.ttlMs).toBe(3000);
      await lease.revoke();
    } finally {
      await store.close();
    }
  });

  it('maps etcd errors to the shared codes', async () => {
    const store = new EtcdStore({ endpoints, prefix: uniquePrefix('errors') });
    try {
      for (const lease of ['0', '007', 'not-a-lease']) {
        await expect(store.put('k', 'v', { lease })).rejects.toMatchObject({
          code: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
        });
      }
      // An unknown lease in the branch that does not run is no error, as in MemoryStore.
      const res = await store.txn({
        compare: [{ key: 'k', target: 'version', op: '>', value: 0 }],
        success: [{ op: 'put', key: 'k', value: 'v', lease: '42' }],
        failure: [{ op: 'get', key: 'k' }],
      });
      expect(res.succeeded).toBe(false);
      const now = await store.revision();
      await expect(store.compact(now + 1000)).rejects.toMatchObject({
        code: 'FLOTILLA_STORE_INVALID_ARGUMENT',
      });
      // Revision 1 holds nothing anyone watches, so this is harmless on a shared etcd; the second
      // time it is already compacted, which is no error.
      await store.compact(1);
      await store.compact(1);
      await expect(store.grant(1e15)).rejects.toMatchObject({
        code: 'FLOTILLA_STORE_INVALID_ARGUMENT',
      });
    } finally {
      await store.close();
    }
  });

  it('keeps keys under a unicode prefix and pages past the end of a prefix', async () => {
    const store = new EtcdStore({ endpoints, prefix: `${uniquePrefix('unicode')}集群/` });
    try {
      await store.put('a/1', '1');
      await store.put('b/1', '2');
      expect((await store.list('')).kvs.map((kv) => kv.key)).toEqual(['a/1', 'b/1']);
      expect((await store.list('a/', { after: 'a/1' })).kvs).toEqual([]);
      expect((await store.list('a/', { after: 'z' })).kvs).toEqual([]);
      expect((await store.list('', { after: 'a/1' })).kvs.map((kv) => kv.key)).toEqual(['b/1']);
      expect((await store.list('', { after: '' })).kvs).toHaveLength(2);
      await store.deletePrefix('');
    } finally {
      await store.close();
    }
  });

  it('watches from a future revision, delivering only from there', async () => {
    const store = new EtcdStore({ endpoints, prefix: uniquePrefix('future') });
    const controller = new AbortController();
    try {
      const from = (await store.revision()) + 3;
      const iterable = store.watch('f/', { fromRevision: from, signal: controller.signal });
      const events = iterable[Symbol.asyncIterator]();
      // Other suites may write to the same etcd: write until a put lands at or past `from`.
      const revisions: number[] = [];
      while ((revisions.at(-1) ?? 0) < from) {
        revisions.push((await store.put(`f/${revisions.length}`, 'x')).revision);
      }
      const [first] = await takeEvents(events, 1);
      expect(first?.revision).toBe(revisions.find((r) => r >= from));
    } finally {
      controller.abort();
      await store.deletePrefix('');
      await store.close();
    }
  });
});
