import { runStoreContract, takeEvents } from '@flotilla/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { EtcdStore } from './etcd-store.js';

let endpoints: string[] = [];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(async () => {
  await releaseEtcd();
});

runStoreContract({
  name: 'EtcdStore',
  create: () => new EtcdStore({ endpoints, prefix: uniquePrefix('contract') }),
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
});
