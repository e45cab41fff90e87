// A hostile user's probes: bad options, busy ports, duplicate ids, broken backends, a client
// that leaves mid-request, close mid-request, a store that goes away, invalid records.
import http from 'node:http';
import net from 'node:net';
import { StoreError } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Router, waitForDrained } from './index.js';
import { Harness, must, raw, request, waitFor } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

async function rawBackend(reply: string): Promise<number> {
  const server = net.createServer((s) => {
    s.once('data', () => s.end(reply));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  h.defer(() => new Promise((r) => server.close(r)));
  return (server.address() as net.AddressInfo).port;
}

describe('probes', () => {
  it('refuses bad options with INVALID_OPTIONS', () => {
    const base = { store: h.store, discovery: h.discovery };
    for (const bad of [
      { id: 'a/b' },
      { id: '' },
      { maxRetries: -1 },
      { headersTimeoutMs: Number.NaN },
      { maxHeaderBytes: 1.5 },
      { balancing: 'random' },
      { ttlMs: 10 },
    ]) {
      expect(() => new Router({ ...base, ...(bad as object) })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_ROUTER_INVALID_OPTIONS' }) as Error,
      );
    }
    expect(() => new Router({} as never)).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_ROUTER_INVALID_OPTIONS' }) as Error,
    );
  });

  it('fails listen on a busy port with LISTEN_FAILED and leaves nothing behind', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    h.defer(() => new Promise((r) => blocker.close(r)));
    const router = h.router({ id: 'busy-router' });
    await expect(
      router.listen({ http: { port: (blocker.address() as net.AddressInfo).port } }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_LISTEN_FAILED' });
    expect(router.state).toBe('failed');
    expect(await h.discovery.instances('flotilla-router')).toEqual([]);
    await expect(router.listen({ http: { port: 0 } })).rejects.toMatchObject({
      code: 'FLOTILLA_ROUTER_INVALID_OPTIONS',
    });
    await router.close();
    await router.close();
  });

  it('refuses a second router with the same id (discovery DUPLICATE_ID), and the first keeps working', async () => {
    await h.backend('demo-web', 'web');
    const a = h.router({ id: 'edge-1' });
    await a.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await a.listen({ http: { port: 0 } })).http).port;
    const b = h.router({ id: 'edge-1' });
    await expect(b.listen({ http: { port: 0 } })).rejects.toMatchObject({
      code: 'FLOTILLA_DISCOVERY_DUPLICATE_ID',
    });
    expect((await request(port)).body).toBe('web');
  });

  it('rejects listen() with CLOSED after close(), and close() during listen() wins', async () => {
    const r1 = h.router();
    await r1.close();
    await expect(r1.listen({ http: { port: 0 } })).rejects.toMatchObject({
      code: 'FLOTILLA_ROUTER_CLOSED',
    });
    const r2 = h.router({ id: 'closing' });
    const listening = r2.listen({ http: { port: 0 } });
    const closed = r2.close();
    await expect(listening).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_CLOSED' });
    await closed;
    expect(await h.discovery.instances('flotilla-router')).toEqual([]);
  });

  it('answers 502 for a backend that sends garbage, both framings, or a huge head', async () => {
    const replies = [
      'garbage\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc',
      `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
      'HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n',
    ];
    const router = h.router({ maxRetries: 0 });
    for (const [i, reply] of replies.entries()) {
      const port = await rawBackend(reply);
      await h.discovery.register({
        service: `bad${i}`,
        id: 'b',
        addr: `127.0.0.1:${port}`,
        ready: true,
        ttlMs: 60_000,
      });
      await router.setRoute({ type: 'http', domain: `bad${i}.localhost`, service: `bad${i}` });
    }
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    for (let i = 0; i < replies.length; i++) {
      const res = await request(port, { host: `bad${i}.localhost` });
      expect(res.status, replies[i]?.slice(0, 40)).toBe(502);
    }
  });

  it('answers 504 when the backend does not answer within upstreamTimeoutMs', async () => {
    await h.backend('demo-web', 'mute', () => undefined);
    const router = h.router({ upstreamTimeoutMs: 300 });
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const res = await request(port);
    expect(res.status).toBe(504);
  });

  it('releases a request whose client left mid-way, so the instance can drain', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    const b = await h.backend('demo-web', 'held', () => arrived());
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const req = http.get({ host: '127.0.0.1', port, headers: { host: 'demo.localhost' } });
    req.on('error', () => undefined);
    await arrival;
    req.destroy();
    await must(b.registration).setReady(false);
    await waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'demo-web',
      instanceId: 'held',
      timeoutMs: 5000,
    });
  });

  it('close() lets an in-flight request finish, refuses new connections, and resolves', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    await h.backend('demo-web', 'slow', (_req, res) => {
      arrived();
      void held.then(() => res.end('finished'));
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const inflight = request(port);
    await arrival;
    const closing = router.close();
    await expect(request(port)).rejects.toThrow();
    release();
    expect((await inflight).body).toBe('finished');
    await closing;
    expect(router.state).toBe('stopped');
  });

  it('keeps serving its last routes when the store goes away, and says so', async () => {
    await h.backend('demo-web', 'web');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const warned = waitFor<[Error & { code?: string }]>(router, 'warning');
    await h.store.close();
    expect((await warned)[0].code).toBe('FLOTILLA_STORE_CLOSED');
    expect((await request(port)).body).toBe('web');
  });

  it('reports a stored route it cannot read, and keeps the others', async () => {
    await h.backend('demo-web', 'web');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const warned = waitFor<[Error & { code?: string; key?: string }]>(router, 'warning');
    await h.store.put('router/routes/tcp-9', '{"type":"tcp"');
    const [err] = await warned;
    expect(err.code).toBe('FLOTILLA_ROUTER_INVALID_RECORD');
    expect(err.key).toBe('router/routes/tcp-9');
    expect((await request(port)).body).toBe('web');
  });

  it('replaces an unusable X-Request-Id and never lets a header inject a line', async () => {
    let seen: http.IncomingHttpHeaders = {};
    await h.backend('demo-web', 'web', (req, res) => {
      seen = req.headers;
      res.end('ok');
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    await raw(
      port,
      `GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-Request-Id: has space ${'x'.repeat(300)}\r\nConnection: close\r\n\r\n`,
    );
    expect(seen['x-request-id']).toMatch(/^[0-9a-f]+-[0-9a-z]+$/);
  });

  it('writes a drained record once the store is reachable again (it was lost)', async () => {
    let failures = 0;
    const flaky = new Proxy(h.store, {
      get(target, prop, receiver) {
        if (prop === 'put') {
          return (key: string, value: string, options?: object) => {
            if (key.includes('/drains/') && failures < 3) {
              failures++;
              return Promise.reject(
                new StoreError('FLOTILLA_STORE_UNAVAILABLE', 'store unreachable (test)'),
              );
            }
            return target.put(key, value, options);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    const b = await h.backend('demo-web', 'web');
    const router = new Router({ store: flaky, discovery: h.discovery });
    h.routers.push(router);
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    await router.listen({ http: { port: 0 } });
    await must(b.registration).setReady(false);
    await waitForDrained({
      store: h.store,
      discovery: h.discovery,
      service: 'demo-web',
      instanceId: 'web',
      timeoutMs: 10_000,
    });
    expect(failures).toBe(3);
  });

  it('answers an HTTP/1.0 backend as HTTP/1.1, its header lines intact less the hop-by-hop ones', async () => {
    const port = await rawBackend(
      'HTTP/1.0 200 OK\r\nX-Keep:  two  spaces\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok',
    );
    await h.discovery.register({
      service: 'old',
      id: 'b',
      addr: `127.0.0.1:${port}`,
      ready: true,
      ttlMs: 60_000,
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'old.localhost', service: 'old' });
    const rport = must((await router.listen({ http: { port: 0 } })).http).port;
    const out = await raw(rport, 'GET / HTTP/1.1\r\nHost: old.localhost\r\n\r\n', {
      untilIncludes: '\r\n\r\nok',
    });
    expect(out).toBe('HTTP/1.1 200 OK\r\nX-Keep:  two  spaces\r\nContent-Length: 2\r\n\r\nok');
  });
});
