import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, raw, request, waitFor, must } from './test-support/harness.js';
import type { StoredRoute } from './index.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

describe('Router: routing', () => {
  it('proxies by domain and longest path prefix, wildcards too; 404 for unknown hosts, 503 without backends', async () => {
    await h.backend('demo-web', 'web');
    await h.backend('demo-api', 'api');
    await h.backend('wild', 'wild');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    await router.setRoute({
      type: 'http',
      domain: 'demo.localhost',
      path: '/api',
      service: 'demo-api',
    });
    await router.setRoute({ type: 'http', domain: '*.apps.localhost', service: 'wild' });
    await router.setRoute({ type: 'http', domain: 'empty.localhost', service: 'nobody' });
    const { http } = await router.listen({ http: { port: 0 } });
    const port = must(http).port;
    expect((await request(port, { path: '/' })).body).toBe('web');
    expect((await request(port, { path: '/api' })).body).toBe('api');
    expect((await request(port, { path: '/api/v1?x=1' })).body).toBe('api');
    expect((await request(port, { path: '/apix' })).body).toBe('web');
    expect((await request(port, { host: 'DEMO.localhost:8080', path: '/api?q' })).body).toBe('api');
    expect((await request(port, { host: 'a.b.apps.localhost' })).body).toBe('wild');
    const notFound = await request(port, { host: 'nope.localhost' });
    expect(notFound.status).toBe(404);
    expect(notFound.body).toContain('No route for host "nope.localhost"');
    const unavailable = await request(port, { host: 'empty.localhost' });
    expect(unavailable.status).toBe(503);
    expect(unavailable.body).toContain('No ready backend for service nobody');
  });

  it('matches the path as a backend reads it (escapes, dot segments, doubled slashes) and forwards it as sent', async () => {
    const urls: string[] = [];
    await h.backend('site', 'site');
    await h.backend('admin', 'admin', (req, res) => {
      urls.push(req.url ?? '');
      res.end('admin');
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'site' });
    await router.setRoute({
      type: 'http',
      domain: 'demo.localhost',
      path: '/admin',
      service: 'admin',
      maxBodyBytes: 10,
    });
    const { http } = await router.listen({ http: { port: 0 } });
    const port = must(http).port;
    // Each of these is /admin to a backend that decodes and resolves paths: none may escape
    // the /admin route (its limits, its service).
    for (const path of [
      '/%61dmin',
      '/%61dmin/x',
      '//admin',
      '/x/../admin/y',
      '/%2e%2e/admin',
      '/./admin',
    ])
      expect((await request(port, { path })).body, path).toBe('admin');
    expect(urls).toEqual([
      '/%61dmin',
      '/%61dmin/x',
      '//admin',
      '/x/../admin/y',
      '/%2e%2e/admin',
      '/./admin',
    ]);
    // Still the site: a longer name, a malformed escape, the root.
    for (const path of ['/adminx', '/%zzadmin', '/', '/x/..'])
      expect((await request(port, { path })).body, path).toBe('site');
    // The route's body limit holds for an escaped path too.
    const big = await request(port, { path: '/%61dmin', method: 'POST', body: 'x'.repeat(100) });
    expect(big.status).toBe(413);
  });

  it('an empty X-Forwarded-For from a client adds nothing before the peer address', async () => {
    const seen: (string | string[] | undefined)[] = [];
    await h.backend('demo-web', 'web', (req, res) => {
      seen.push(req.headers['x-forwarded-for']);
      res.end('ok');
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const { http } = await router.listen({ http: { port: 0 } });
    const port = must(http).port;
    const head = (xff: string): string =>
      `GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-Forwarded-For:${xff}\r\nConnection: close\r\n\r\n`;
    expect(await raw(port, head(''))).toMatch(/^HTTP\/1\.1 200/);
    expect(await raw(port, head('  '))).toMatch(/^HTTP\/1\.1 200/);
    expect(await raw(port, head(' 10.0.0.1'))).toMatch(/^HTTP\/1\.1 200/);
    expect(seen).toEqual(['127.0.0.1', '127.0.0.1', '10.0.0.1, 127.0.0.1']);
  });

  it('sets forwarding headers and removes hop-by-hop ones', async () => {
    let seen: Record<string, string | string[] | undefined> = {};
    await h.backend('demo-web', 'web', (req, res) => {
      seen = req.headers;
      res.setHeader('keep-alive', 'timeout=5');
      res.setHeader('x-custom', 'yes');
      res.end('ok');
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const { http } = await router.listen({ http: { port: 0 } });
    const res = await request(must(http).port, {
      headers: {
        'x-forwarded-for': '10.0.0.1',
        connection: 'x-secret',
        'x-secret': 'hop',
        'proxy-connection': 'keep-alive',
      },
    });
    expect(res.status).toBe(200);
    expect(seen['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-port']).toBe(String(must(http).port));
    expect(seen['x-request-id']).toMatch(/^[0-9a-f]+-[0-9a-z]+$/);
    expect(seen['x-request-start']).toMatch(/^t=\d{13}$/);
    expect(seen['x-secret']).toBeUndefined();
    expect(seen['proxy-connection']).toBeUndefined();
    expect(res.headers['x-custom']).toBe('yes');
    expect(res.headers['keep-alive']).toBeUndefined();
    await request(must(http).port, { headers: { 'x-request-id': 'abc-123' } });
    expect(seen['x-request-id']).toBe('abc-123');
  });

  it('picks up a route change made through a second router on the same store, without restart', async () => {
    await h.backend('one', 'one');
    await h.backend('two', 'two');
    const a = h.router();
    const b = h.router();
    await a.setRoute({ type: 'http', domain: 'demo.localhost', service: 'one' });
    const { http: ha } = await a.listen({ http: { port: 0 } });
    const { http: hb } = await b.listen({ http: { port: 0 } });
    expect((await request(must(hb).port)).body).toBe('one');
    const changed = waitFor<[readonly StoredRoute[]]>(b, 'routes', (routes) =>
      routes.some((r) => r.service === 'two'),
    );
    await a.setRoute({ type: 'http', domain: 'demo.localhost', service: 'two' });
    await changed;
    expect((await request(must(hb).port)).body).toBe('two');
    expect((await request(must(ha).port)).body).toBe('two');
  });
});

describe('Router: raw protocol', () => {
  it('keeps client connections alive across requests and pipelines', async () => {
    await h.backend('demo-web', 'web');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const { http } = await router.listen({ http: { port: 0 } });
    const req = 'GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n';
    const out = await raw(
      must(http).port,
      req + req + 'GET / HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200 OK/g)?.length).toBe(3);
  });

  it('reuses upstream connections: many sequential requests take one backend connection', async () => {
    const b = await h.backend('demo-web', 'web');
    let connections = 0;
    b.server.on('connection', () => connections++);
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    for (let i = 0; i < 50; i++) expect((await request(port)).body).toBe('web');
    expect(connections).toBe(1);
  });

  it('keeps a client connection open across a route change', async () => {
    await h.backend('one', 'one');
    await h.backend('two', 'two');
    const router = h.router();
    const route = await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'one' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    h.defer(() => agent.destroy());
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    expect((await request(port, { agent })).body).toBe('one');
    const changed = waitFor<[readonly StoredRoute[]]>(router, 'routes', (routes) =>
      routes.some((r) => r.service === 'two'),
    );
    await router.setRoute({ ...route, service: 'two' });
    await changed;
    expect((await request(port, { agent })).body).toBe('two');
    expect(sockets.size).toBe(1);
  });
});

describe('Router: listen options', () => {
  it('refuses missing or null listen options with FLOTILLA_ROUTER_INVALID_OPTIONS, not a TypeError', async () => {
    for (const bad of [undefined, null, { http: null }, { https: 'x' }]) {
      const router = h.router();
      await expect(router.listen(bad as never)).rejects.toMatchObject({
        code: 'FLOTILLA_ROUTER_INVALID_OPTIONS',
      });
      expect(router.state).toBe('idle');
    }
  });
  it('refuses a listen host that is not a string (node took a number as the backlog and bound every address)', async () => {
    for (const bad of [
      { http: { port: 0, host: 5 } },
      { https: { port: 0, host: null } },
      { http: { port: 0 }, tcp: { host: 5 } },
      { http: { port: 0 }, tcp: { host: '' } },
      { http: { port: 0 }, tcp: 'x' },
    ]) {
      const router = h.router();
      await expect(router.listen(bad as never), JSON.stringify(bad)).rejects.toMatchObject({
        code: 'FLOTILLA_ROUTER_INVALID_OPTIONS',
      });
      expect(router.state).toBe('idle');
    }
  });
});
