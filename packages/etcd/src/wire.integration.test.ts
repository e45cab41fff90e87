import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { EtcdStore } from './etcd-store.js';
import { decodeTxnResponse } from './internal/txn-codec.js';
import { decodeWatchResponse } from './internal/watch-codec.js';

// Transactions and watches are encoded and decoded by hand (internal/txn-codec.ts,
// watch-codec.ts): these are the corners where a hand-written protobuf codec goes wrong,
// checked against a real etcd.
let endpoints: string[] = [];
let store: EtcdStore;
beforeAll(async () => {
  endpoints = await etcdEndpoints();
  store = new EtcdStore({ endpoints, prefix: uniquePrefix('txn-wire') });
});
afterAll(async () => {
  await store.deletePrefix('').catch(() => undefined);
  await store.close();
  await releaseEtcd();
});

describe('EtcdStore transactions on the wire', () => {
  it('round-trips multi-byte, NUL-holding, empty and large keys and values', async () => {
    const value = `é€😀\u0000${'x'.repeat(200_000)}`;
    const res = await store.txn({
      compare: [],
      success: [
        { op: 'put', key: 'wire/ünï/\u0000/😀', value },
        { op: 'put', key: 'wire/empty', value: '' },
      ],
    });
    expect(res.succeeded).toBe(true);
    expect((await store.get('wire/ünï/\u0000/😀'))?.value).toBe(value);
    expect((await store.get('wire/empty'))?.value).toBe('');
    const read = await store.txn({
      compare: [{ key: 'wire/ünï/\u0000/😀', target: 'value', op: '==', value }],
      success: [
        { op: 'get', key: 'wire/ünï/\u0000/😀' },
        { op: 'get', key: 'wire/empty' },
        { op: 'get', key: 'wire/missing' },
      ],
    });
    expect(read.succeeded).toBe(true);
    expect(read.revision).toBe(res.revision);
    const [a, b, c] = read.results;
    expect(a).toMatchObject({ op: 'get', kv: { key: 'wire/ünï/\u0000/😀', value, version: 1 } });
    expect(b).toMatchObject({ op: 'get', kv: { key: 'wire/empty', value: '', version: 1 } });
    expect(c).toEqual({ op: 'get', kv: undefined });
  });

  it('compares zero, negative and large revisions as etcd means them', async () => {
    const { revision } = await store.put('wire/rev', 'a');
    const check = async (
      target: 'version' | 'createRevision' | 'modRevision',
      op: '==' | '!=' | '<' | '>',
      value: number,
    ): Promise<boolean> =>
      (await store.txn({ compare: [{ key: 'wire/rev', target, op, value }], success: [] }))
        .succeeded;
    expect(await check('modRevision', '==', revision)).toBe(true);
    expect(await check('modRevision', '==', 0)).toBe(false);
    expect(await check('version', '>', 0)).toBe(true);
    expect(await check('version', '>', -1)).toBe(true);
    expect(await check('version', '<', -1)).toBe(false);
    expect(await check('createRevision', '<', Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(await check('createRevision', '>', Number.MAX_SAFE_INTEGER)).toBe(false);
    expect(await check('modRevision', '!=', revision)).toBe(false);
    // A missing key has version 0, and each compare is against that.
    expect(
      (
        await store.txn({
          compare: [{ key: 'wire/none', target: 'version', op: '==', value: 0 }],
          success: [],
        })
      ).succeeded,
    ).toBe(true);
  });

  it('puts under a lease and compares lease ids, including ones etcd cannot hold', async () => {
    const lease = await store.grant(60_000);
    try {
      await store.txn({
        compare: [],
        success: [{ op: 'put', key: 'wire/leased', value: 'v', lease: lease.id }],
      });
      expect((await store.get('wire/leased'))?.lease).toBe(lease.id);
      const cmp = async (value: string): Promise<boolean> =>
        (
          await store.txn({
            compare: [{ key: 'wire/leased', target: 'lease', op: '==', value }],
            success: [],
          })
        ).succeeded;
      expect(await cmp(lease.id)).toBe(true);
      expect(await cmp('0')).toBe(false);
      expect(await cmp('9223372036854775807')).toBe(false);
      expect(await cmp('99999999999999999999')).toBe(false); // past int64: no lease has it
      expect(await cmp('not-a-lease')).toBe(false);
    } finally {
      await lease.revoke();
    }
  });

  it('fails a txn putting under an unknown lease with LEASE_NOT_FOUND, writing nothing', async () => {
    for (const lease of ['12345', 'not-a-lease', '99999999999999999999']) {
      await expect(
        store.txn({
          compare: [],
          success: [
            { op: 'put', key: 'wire/unleased', value: 'v' },
            { op: 'put', key: 'wire/leased-nowhere', value: 'v', lease },
          ],
        }),
      ).rejects.toMatchObject({ code: 'FLOTILLA_STORE_LEASE_NOT_FOUND' });
    }
    expect(await store.get('wire/unleased')).toBeUndefined();
    expect(await store.get('wire/leased-nowhere')).toBeUndefined();
  });

  it('reports deleted counts of deletes and prefix deletes, in the failure branch too', async () => {
    await store.txn({
      compare: [],
      success: [
        { op: 'put', key: 'wire/del/a', value: '1' },
        { op: 'put', key: 'wire/del/b', value: '2' },
        { op: 'put', key: 'wire/del/c', value: '3' },
      ],
    });
    const res = await store.txn({
      compare: [{ key: 'wire/del/a', target: 'version', op: '==', value: 0 }],
      success: [],
      failure: [
        { op: 'delete', key: 'wire/del/a' },
        { op: 'put', key: 'wire/other', value: 'z' },
        { op: 'deletePrefix', prefix: 'wire/del/' },
        { op: 'delete', key: 'wire/del/missing' },
      ],
    });
    expect(res.succeeded).toBe(false);
    expect(res.results).toEqual([
      { op: 'delete', deleted: 1 },
      { op: 'put' },
      { op: 'deletePrefix', deleted: 2 },
      { op: 'delete', deleted: 0 },
    ]);
    expect((await store.list('wire/del/')).kvs).toEqual([]);
    expect((await store.get('wire/other'))?.value).toBe('z');
  });
});

describe('EtcdStore with the whole keyspace (prefix "")', () => {
  it('writes, reads and watches keys with no prefix in front', async () => {
    const bare = new EtcdStore({ endpoints, prefix: '' });
    const dir = uniquePrefix('bare').slice(1); // a key of its own, without the leading '/'
    const controller = new AbortController();
    try {
      const events = bare.watch(dir, { signal: controller.signal })[Symbol.asyncIterator]();
      const res = await bare.txn({
        compare: [{ key: `${dir}k`, target: 'version', op: '==', value: 0 }],
        success: [
          { op: 'put', key: `${dir}k`, value: 'v' },
          { op: 'get', key: `${dir}k` },
        ],
      });
      expect(res.succeeded).toBe(true);
      expect(res.results[1]).toMatchObject({ op: 'get', kv: { key: `${dir}k`, value: 'v' } });
      expect((await events.next()).value).toMatchObject({
        type: 'put',
        kv: { key: `${dir}k`, value: 'v' },
      });
      // The same key seen through a store with a prefix.
      const prefixed = new EtcdStore({ endpoints, prefix: dir });
      expect((await prefixed.get('k'))?.value).toBe('v');
      await prefixed.close();
    } finally {
      controller.abort();
      await bare.deletePrefix(dir);
      await bare.close();
    }
  });
});

describe('EtcdStore closed with transactions in flight', () => {
  it('settles every one: committed, or refused with FLOTILLA_STORE_CLOSED', async () => {
    const closing = new EtcdStore({ endpoints, prefix: uniquePrefix('closing') });
    await closing.put('warm', 'up'); // connected
    const calls = Array.from({ length: 50 }, (_, i) =>
      closing.txn({
        compare: [],
        success: Array.from({ length: 100 }, (_, j) => ({
          op: 'put' as const,
          key: `k/${i}/${j}`,
          value: 'x'.repeat(200),
        })),
      }),
    );
    // Once the first has come back, the others have been sent and are in flight or done.
    await calls[0];
    await closing.close();
    const settled = await Promise.allSettled(calls);
    for (const s of settled) {
      if (s.status === 'fulfilled') expect(s.value.succeeded).toBe(true);
      else expect(s.reason).toMatchObject({ code: 'FLOTILLA_STORE_CLOSED' });
    }
    const reader = new EtcdStore({ endpoints, prefix: closing.prefix });
    try {
      // All or nothing per transaction.
      const { kvs } = await reader.list('k/');
      const per = new Map<string, number>();
      for (const kv of kvs) {
        const txn = kv.key.split('/')[1] as string;
        per.set(txn, (per.get(txn) ?? 0) + 1);
      }
      for (const n of per.values()) expect(n).toBe(100);
    } finally {
      await reader.deletePrefix('');
      await reader.close();
    }
  });
});

describe('EtcdStore watches on the wire', () => {
  it('delivers multi-byte keys and values, leases, deletes and prefix deletes as written', async () => {
    const controller = new AbortController();
    const events = store.watch('watch/', { signal: controller.signal })[Symbol.asyncIterator]();
    const lease = await store.grant(60_000);
    try {
      const value = `é€😀\u0000${'y'.repeat(100_000)}`;
      const a = await store.put('watch/ünï/\u0000/😀', value);
      const b = await store.put('watch/leased', '', { lease: lease.id });
      const c = await store.delete('watch/ünï/\u0000/😀');
      const d = await store.deletePrefix('watch/');
      const got = [];
      for (let i = 0; i < 4; i++) got.push((await events.next()).value);
      expect(got).toEqual([
        {
          type: 'put',
          revision: a.revision,
          kv: {
            key: 'watch/ünï/\u0000/😀',
            value,
            createRevision: a.revision,
            modRevision: a.revision,
            version: 1,
          },
        },
        {
          type: 'put',
          revision: b.revision,
          kv: {
            key: 'watch/leased',
            value: '',
            createRevision: b.revision,
            modRevision: b.revision,
            version: 1,
            lease: lease.id,
          },
        },
        {
          type: 'delete',
          revision: c.revision,
          kv: {
            key: 'watch/ünï/\u0000/😀',
            value: '',
            createRevision: 0,
            modRevision: c.revision,
            version: 0,
          },
        },
        {
          type: 'delete',
          revision: d.revision,
          kv: {
            key: 'watch/leased',
            value: '',
            createRevision: 0,
            modRevision: d.revision,
            version: 0,
          },
        },
      ]);
    } finally {
      controller.abort();
      await lease.revoke();
    }
  });

  it('replays from a revision in the past', async () => {
    const first = await store.put('replay/a', '1');
    await store.put('replay/b', '2');
    const controller = new AbortController();
    const watch = store.watch('replay/', {
      signal: controller.signal,
      fromRevision: first.revision,
    });
    const events = watch[Symbol.asyncIterator]();
    const got = [(await events.next()).value, (await events.next()).value];
    controller.abort();
    expect(got.map((e) => [e.kv.key, e.kv.value])).toEqual([
      ['replay/a', '1'],
      ['replay/b', '2'],
    ]);
  });
});

describe('decodeWatchResponse', () => {
  it('refuses an event without a key-value and truncated bytes', () => {
    // events (field 11) holding an Event { type = DELETE } and no kv
    expect(() => decodeWatchResponse(Buffer.from([0x5a, 0x02, 0x08, 0x01]))).toThrow(/key-value/);
    expect(() => decodeWatchResponse(Buffer.from([0x5a, 0x05, 0x08]))).toThrow(/truncated/);
  });

  it('reads a cancel with its reason and compact revision', () => {
    const reason = Buffer.from('mvcc: required revision has been compacted');
    const bytes = Buffer.concat([
      Buffer.from([0x0a, 0x02, 0x18, 0x07, 0x20, 0x01, 0x28, 0x05, 0x32, reason.length]),
      reason,
    ]);
    expect(decodeWatchResponse(bytes)).toEqual({
      revision: 7,
      created: false,
      canceled: true,
      compactRevision: 5,
      cancelReason: reason.toString(),
      events: [],
    });
  });
});

describe('decodeTxnResponse', () => {
  it('refuses bytes that end inside a field', () => {
    // header (field 1, 10 bytes long) with only 2 bytes present.
    expect(() => decodeTxnResponse(Buffer.from([0x0a, 0x0a, 0x18, 0x05]))).toThrow(/truncated/);
    // an unfinished varint.
    expect(() => decodeTxnResponse(Buffer.from([0x10, 0x80]))).toThrow(/truncated/);
  });

  it('skips fields it does not know, of every wire type', () => {
    const bytes = Buffer.from([
      // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32
      0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 0x02, 0xaa, 0xbb, 0x65, 1, 2, 3, 4,
      // succeeded = true; header { revision = 300 }
      0x10, 0x01, 0x0a, 0x03, 0x18, 0xac, 0x02,
    ]);
    expect(decodeTxnResponse(bytes)).toEqual({ succeeded: true, revision: 300, responses: [] });
  });
});
