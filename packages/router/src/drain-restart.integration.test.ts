// A router's drained records on an etcd of their own that the tests freeze past the drain
// lease's TTL and kill: the records a deployer waits on (waitForDrained) must be there again
// once etcd is, with no help from anyone, and stay there past several TTLs.
import { EtcdStore } from '@flotilla/etcd';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startEtcd, type TestEtcd } from '../../../test/support/etcd.js';
import { waitForDrained } from './index.js';
import { Harness, must, request } from './test-support/harness.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** The router's registration and drain lease TTL: short, so that a freeze outlives it. */
const ttlMs = 2000;

async function setup(): Promise<{ etcd: TestEtcd; h: Harness; port: number; routerId: string }> {
  const etcd = await startEtcd();
  cleanups.push(() => etcd.stop());
  const h = new Harness(
    new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/drain/', requestTimeoutMs: 1000 }),
  );
  cleanups.push(() => h.close());
  await h.backend('demo-web', 'old', undefined, { ttlMs });
  await h.backend('demo-web', 'new', undefined, { ttlMs });
  const router = h.router({ ttlMs });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
  const port = must((await router.listen({ http: { port: 0, host: '127.0.0.1' } })).http).port;
  // Drained: 'old' turned not-ready, and the router published it.
  await must(h.backends[0]?.registration).setReady(false);
  await waitForDrained({
    store: h.store,
    discovery: h.discovery,
    service: 'demo-web',
    instanceId: 'old',
    timeoutMs: 10_000,
  });
  return { etcd, h, port, routerId: router.id };
}

/** The drained record of 'old', as a second client of the same etcd reads it. */
async function drainedRecord(etcd: TestEtcd, routerId: string): Promise<string | undefined> {
  const reader = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/drain/' });
  try {
    const kv = await reader.get(`router/drains/${routerId}/demo-web/old`);
    return kv?.key;
  } finally {
    await reader.close();
  }
}

/** Past several TTLs after etcd is back, the record is there, and a deployer's wait ends. */
async function expectDrainedKept(etcd: TestEtcd, h: Harness, routerId: string): Promise<void> {
  await vi.waitFor(async () => expect(await drainedRecord(etcd, routerId)).toBeDefined(), {
    timeout: 15_000,
    interval: 200,
  });
  // A record left under the lost lease would be gone by now: only a re-written one is kept.
  await sleep(3 * ttlMs);
  expect(await drainedRecord(etcd, routerId)).toBeDefined();
  await waitForDrained({
    store: h.store,
    discovery: h.discovery,
    service: 'demo-web',
    instanceId: 'old',
    timeoutMs: 10_000,
  });
}

describe('Drained records across etcd faults', () => {
  it('are written again after etcd was frozen (SIGSTOP) past the drain lease TTL', async () => {
    const { etcd, h, port, routerId } = await setup();
    await etcd.halt('SIGSTOP');
    await sleep(2.5 * ttlMs); // the router's keep-alives time out; etcd's clock passes the TTL
    await etcd.resume();
    await expectDrainedKept(etcd, h, routerId);
    // And the router kept serving, from the ready instance only.
    const res = await request(port, { host: 'demo.localhost' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('new');
  }, 40_000);

  it('are kept through a SIGKILL restart of etcd with its data', async () => {
    const { etcd, h, routerId } = await setup();
    await etcd.restart('SIGKILL');
    await expectDrainedKept(etcd, h, routerId);
  }, 40_000);
});
