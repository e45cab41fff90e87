import { ManualClock } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { byteLength, countUtf8 } from './keys.js';
import { MemoryStore } from './memory-store.js';
import { runStoreContract } from './testing/contract.js';

let clock = new ManualClock();
runStoreContract({
  name: 'MemoryStore (manual clock)',
  create: () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1));
    return new MemoryStore({ clock });
  },
  advanceTime: (ms) => clock.advance(ms),
});

runStoreContract({
  name: 'MemoryStore (system clock)',
  create: () => new MemoryStore(),
  createWithHistoryLimit: (historyLimit) => new MemoryStore({ historyLimit }),
  leaseTtlMs: 300,
});

describe('MemoryStore specifics', () => {
  it('expires a lease at exactly its TTL on the manual clock and tells the owner', async () => {
    const c = new ManualClock();
    const store = new MemoryStore({ clock: c });
    const lease = await store.grant(2000);
    await store.put('k', 'v', { lease: lease.id });
    await c.advance(1999);
    expect(await store.get('k')).toBeDefined();
    await c.advance(1);
    expect(await store.get('k')).toBeUndefined();
    expect(await lease.ended).toBe('expired');
    await store.close();
  });

  it('keeps its key index right across the incremental limit', async () => {
    const store = new MemoryStore();
    const n = 60_000;
    for (let i = 0; i < n; i += 120) {
      await store.txn({
        compare: [],
        success: Array.from({ length: 120 }, (_, j) => ({
          op: 'put' as const,
          key: `k/${i + j}`,
          value: '',
        })),
      });
    }
    await store.delete('k/5');
    const listed = await store.list('k/');
    expect(listed.kvs).toHaveLength(n - 1);
    expect(listed.kvs.some((kv) => kv.key === 'k/5')).toBe(false);
    await store.close();
  });
});

describe('byteLength', () => {
  it('agrees with the portable count on ASCII, multibyte, astral and lone surrogates', () => {
    for (const s of ['', 'cluster/jobs/h1/web.1', 'é€', '😀x', '\ud800', 'a\udc00b', '\u0000'])
      expect([s, byteLength(s)]).toEqual([s, countUtf8(s)]);
  });
});
