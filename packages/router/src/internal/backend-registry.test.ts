// The drained record of an instance that left discovery is kept a while, then removed; the
// registry's close() leaves no such removal pending.
import { ManualClock, silentLogger } from '@flotilla/core';
import { Discovery } from '@flotilla/discovery';
import { MemoryStore } from '@flotilla/store';
import { afterEach, expect, it } from 'vitest';
import { RouterMetrics } from '../metrics.js';
import { BackendRegistry } from './backend-registry.js';
import { DrainPublisher } from './drain-publisher.js';
import { UpstreamPool } from './upstream-pool.js';

const store = new MemoryStore();
const discovery = new Discovery({ store });
afterEach(async () => {
  await discovery.close();
  await store.close();
});

it("keeps a gone instance's drained record 5 minutes, and close() cancels the pending removal", async () => {
  const clock = new ManualClock();
  const events: string[] = [];
  let wrote!: () => void;
  let written = new Promise<void>((r) => (wrote = r));
  const drains = new DrainPublisher(
    store,
    '/flotilla/router/',
    'r1',
    10_000,
    silentLogger,
    (s, i, d) => {
      events.push(`${s}/${i}:${String(d)}`);
      wrote();
    },
  );
  await drains.start();
  const pool = new UpstreamPool({
    maxIdlePerBackend: 1,
    idleTimeoutMs: 1000,
    connectTimeoutMs: 1000,
    now: () => 0,
  });
  const ac = new AbortController();
  const registry = new BackendRegistry({
    discovery,
    pool,
    metrics: new RouterMetrics(),
    logger: silentLogger,
    balancing: 'round-robin',
    ejectAfter: 3,
    ejectMs: 1000,
    now: () => 0,
    clock,
    signal: ac.signal,
    drains: () => drains,
    warn: (err) => {
      throw err;
    },
  });
  const reg = await discovery.register({
    service: 'web',
    id: 'i1',
    addr: '127.0.0.1:1',
    ready: true,
    ttlMs: 60_000,
  });
  await registry.ensure('web');
  await reg.close();
  await written;
  expect(events).toEqual(['web/i1:true']);
  expect(clock.pending).toBe(1);
  written = new Promise<void>((r) => (wrote = r));
  clock.advance(5 * 60_000);
  await written;
  expect(events).toEqual(['web/i1:true', 'web/i1:false']);

  // Gone again: the removal is pending when the registry closes, and never runs.
  const again = await discovery.register({
    service: 'web',
    id: 'i2',
    addr: '127.0.0.1:2',
    ready: true,
    ttlMs: 60_000,
  });
  written = new Promise<void>((r) => (wrote = r));
  await again.close();
  await written;
  expect(clock.pending).toBe(1);
  registry.close();
  ac.abort();
  expect(clock.pending).toBe(0);
  await drains.close();
  pool.close();
});
