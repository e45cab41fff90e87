// The router on a real etcd: routes shared by two routers on separate clients, and a
// drain-and-replace under load across both, with waitForDrained reading the drained records
// from etcd.
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import type { StoredRoute } from './index.js';
import { waitForDrained } from './index.js';
import { Harness, must, request, waitFor } from './test-support/harness.js';
import { startLoad } from './test-support/load.js';

let endpoints: string[];
const harnesses: Harness[] = [];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterEach(async () => {
  for (const h of harnesses.splice(0).reverse()) await h.close();
});
afterAll(releaseEtcd);

/** Two clients of one etcd prefix, as two machines would have. */
function twoClients(): [Harness, Harness] {
  const prefix = uniquePrefix('router');
  const a = new Harness(new EtcdStore({ endpoints, prefix }));
  const b = new Harness(new EtcdStore({ endpoints, prefix }));
  harnesses.push(a, b);
  return [a, b];
}

describe('Router on etcd', () => {
  it('picks up a route change made by another router on another client', async () => {
    const [a, b] = twoClients();
    await a.backend('one', 'one');
    await a.backend('two', 'two');
    const ra = a.router();
    const rb = b.router();
    await ra.setRoute({ type: 'http', domain: 'demo.localhost', service: 'one' });
    await ra.listen({ http: { port: 0 } });
    const pb = must((await rb.listen({ http: { port: 0 } })).http).port;
    expect((await request(pb)).body).toBe('one');
    const changed = waitFor<[readonly StoredRoute[]]>(rb, 'routes', (routes) =>
      routes.some((r) => r.service === 'two'),
    );
    await ra.setRoute({ type: 'http', domain: 'demo.localhost', service: 'two' });
    await changed;
    expect((await request(pb)).body).toBe('two');
  });

  it('fails 0 requests while an instance is drained and replaced under load through two routers', async () => {
    const [a, b] = twoClients();
    const old = await a.backend('demo-web', 'old', undefined, { ttlMs: 2000 });
    const ra = a.router();
    const rb = b.router();
    await ra.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const pa = must((await ra.listen({ http: { port: 0 } })).http).port;
    const pb = must((await rb.listen({ http: { port: 0 } })).http).port;
    const loads = [
      startLoad(pa, { concurrency: 6, method: 'mixed' }),
      startLoad(pb, { concurrency: 6, method: 'mixed' }),
    ];
    await must(loads[0]).after(200);
    await b.backend('demo-web', 'new', undefined, { ttlMs: 2000 });
    await must(old.registration).setReady(false);
    await waitForDrained({
      store: b.store,
      discovery: b.discovery,
      service: 'demo-web',
      instanceId: 'old',
      timeoutMs: 15_000,
    });
    await old.kill();
    await must(loads[0]).after(200);
    await must(loads[1]).after(200);
    const results = await Promise.all(loads.map((l) => l.stop()));
    for (const r of results) {
      expect(r.errors).toEqual([]);
      expect(r.byBackend.get('new') ?? 0).toBeGreaterThan(0);
    }
  });
});
