// Failures under load: a killed backend, drained and replaced instances, refused connections.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitForDrained } from './index.js';
import { Harness, request, waitFor, must } from './test-support/harness.js';
import { startLoad } from './test-support/load.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

describe('Router under failures', () => {
  it('fails 0 GET requests while one of three backends is killed under load', async () => {
    const [a, b, c] = await Promise.all([
      h.backend('demo-web', 'a'),
      h.backend('demo-web', 'b'),
      h.backend('demo-web', 'c'),
    ]);
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const load = startLoad(port, { concurrency: 20 });
    await load.after(500);
    // Killed, still registered in discovery: only retries and passive health can save requests.
    b.server.close();
    b.server.closeAllConnections();
    const killedAt = b.count;
    await load.after(2000);
    const res = await load.stop();
    expect(res.errors).toEqual([]);
    expect(res.ok).toBeGreaterThanOrEqual(2500);
    expect(b.count).toBe(killedAt);
    expect(a.count + c.count).toBeGreaterThan(1500);
    const metrics = await router.metrics.text();
    expect(metrics).toMatch(/flotilla_router_ejections_total\{service="demo-web"\} [1-9]/);
    expect(metrics).toMatch(/flotilla_router_retries_total\{service="demo-web"\} [1-9]/);
  });

  it('fails 0 requests (GET and POST) while instances are drained and replaced under load', async () => {
    const old = await Promise.all([h.backend('demo-web', 'old-1'), h.backend('demo-web', 'old-2')]);
    const r1 = h.router();
    const r2 = h.router();
    await r1.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const p1 = must((await r1.listen({ http: { port: 0 } })).http).port;
    const p2 = must((await r2.listen({ http: { port: 0 } })).http).port;
    const loads = [
      startLoad(p1, { concurrency: 8, method: 'mixed' }),
      startLoad(p2, { concurrency: 8, method: 'mixed' }),
    ];
    await must(loads[0]).after(300);
    for (let i = 0; i < 2; i++) {
      await h.backend('demo-web', `new-${i + 1}`);
      const o = must(old[i]);
      await must(o.registration).setReady(false);
      await waitForDrained({
        store: h.store,
        discovery: h.discovery,
        service: 'demo-web',
        instanceId: o.name,
        timeoutMs: 10_000,
      });
      // Hard stop: any request still on its way to it would fail.
      await o.kill();
      await must(loads[0]).after(200);
    }
    await must(loads[1]).after(200);
    const results = await Promise.all(loads.map((l) => l.stop()));
    for (const r of results) {
      expect(r.errors).toEqual([]);
      expect(r.ok).toBeGreaterThan(300);
      expect(r.byBackend.get('new-1') ?? 0).toBeGreaterThan(0);
    }
  });

  it('waitForDrained waits for an in-flight request, then resolves; it times out with a code while one is held', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    const slow = await h.backend('demo-web', 'slow', (req, res) => {
      arrived();
      void held.then(() => res.end('late'));
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const inflight = request(port);
    await arrival;
    await must(slow.registration).setReady(false);
    await expect(
      waitForDrained({
        store: h.store,
        discovery: h.discovery,
        service: 'demo-web',
        instanceId: 'slow',
        timeoutMs: 300,
      }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_DRAIN_TIMEOUT' });
    // No new request reaches it meanwhile.
    expect((await request(port)).status).toBe(503);
    const drained = waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'demo-web',
      instanceId: 'slow',
      timeoutMs: 10_000,
    });
    release();
    expect((await inflight).body).toBe('late');
    await drained;
    // Ready again: the record is withdrawn and traffic returns.
    const withdrawn = waitFor<[string, string, boolean]>(
      router,
      'drain',
      (_s, id, d) => id === 'slow' && !d,
    );
    await must(slow.registration).setReady(true);
    await withdrawn;
    expect((await request(port)).body).toBe('late');
  });

  it('waitForDrained resolves at once for a service no route names, rejects on abort, and refuses bad ids', async () => {
    await waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'worker',
      instanceId: 'w1',
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    await h.backend('demo-web', 'busy');
    const other = h.router();
    await other.listen({ http: { port: 0 } });
    await router.listen({ http: { port: 0 } });
    const ac = new AbortController();
    const waiting = waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'demo-web',
      instanceId: 'busy',
      signal: ac.signal,
    });
    ac.abort(new Error('deploy cancelled'));
    await expect(waiting).rejects.toThrow('deploy cancelled');
    await expect(
      waitForDrained({
        store: h.store,
        discovery: h.discovery,
        service: 'demo-web',
        instanceId: 'a/b',
      }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_OPTIONS' });
    await expect(
      waitForDrained({
        store: h.store,
        discovery: h.discovery,
        service: 'Demo Web',
        instanceId: 'a',
      }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_OPTIONS' });
    await expect(
      waitForDrained({
        store: h.store,
        discovery: h.discovery,
        service: 'demo-web',
        instanceId: 'a',
        timeoutMs: Number.NaN,
      }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_OPTIONS' });
  });

  it('waitForDrained does not wait for a router that left discovery', async () => {
    await h.backend('demo-web', 'x');
    const a = h.router();
    const b = h.router();
    await a.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    await a.listen({ http: { port: 0 } });
    await b.listen({ http: { port: 0 } });
    await b.close();
    await must(must(h.backends[0]).registration).setReady(false);
    await waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'demo-web',
      instanceId: 'x',
      timeoutMs: 5000,
    });
  });

  it('retries a POST on another backend when the first refuses the connection (nothing was sent)', async () => {
    const good = await h.backend('demo-web', 'good');
    // Registered, but nothing listens there.
    const dead = await h.backend('demo-web', 'dead', undefined, { register: false });
    await dead.kill();
    await h.discovery.register({
      service: 'demo-web',
      id: 'dead',
      addr: `127.0.0.1:${dead.port}`,
      ready: true,
      ttlMs: 60_000,
    });
    const router = h.router({ balancing: 'round-robin' });
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    for (let i = 0; i < 6; i++) {
      const res = await request(port, { method: 'POST', body: 'x' });
      expect(res.status).toBe(200);
      expect(res.body).toBe('good');
    }
    expect(good.count).toBe(6);
  });

  it('answers 502 when a POST was sent and the backend reset without a response (not retried)', async () => {
    let posts = 0;
    await h.backend('demo-web', 'resetter', (req) => {
      posts++;
      req.socket.destroy();
    });
    await h.backend('demo-web', 'other', (req) => {
      posts++;
      req.socket.destroy();
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const res = await request(port, { method: 'POST', body: 'charge the card' });
    expect(res.status).toBe(502);
    expect(posts).toBe(1);
  });
});
