// TLS: certificates by SNI from the store (hot-reloaded), HTTP/2 by ALPN, redirects and HSTS.
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { selfSignedCert, type TestCert } from './test-support/cert.js';
import { Harness, request, waitFor, must } from './test-support/harness.js';

const certs: Record<string, TestCert> = {};
beforeAll(() => {
  for (const cn of ['a.localhost', '*.wild.localhost', 'default.localhost', 'a2.localhost'])
    certs[cn] = selfSignedCert(cn);
});

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

function peerCN(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { host: '127.0.0.1', port, servername, rejectUnauthorized: false },
      () => {
        const cn = s.getPeerCertificate().subject.CN;
        s.destroy();
        resolve(Array.isArray(cn) ? cn.join(',') : (cn ?? ''));
      },
    );
    s.on('error', reject);
  });
}

function httpsGet(
  port: number,
  host: string,
  path = '/',
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: '127.0.0.1',
          port,
          path,
          servername: host,
          headers: { host },
          rejectUnauthorized: false,
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      )
      .on('error', reject);
  });
}

describe('TLS', () => {
  it('picks the certificate by SNI: exact, wildcard, default', async () => {
    const router = h.router();
    await router.setCertificate({ domain: 'a.localhost', ...must(certs['a.localhost']) });
    await router.setCertificate({ domain: '*.wild.localhost', ...must(certs['*.wild.localhost']) });
    await router.setCertificate({ domain: '*', ...must(certs['default.localhost']) });
    const { https: addr } = await router.listen({ https: { port: 0 } });
    expect(await peerCN(must(addr).port, 'a.localhost')).toBe('a.localhost');
    expect(await peerCN(must(addr).port, 'x.wild.localhost')).toBe('*.wild.localhost');
    expect(await peerCN(must(addr).port, 'A.LOCALHOST')).toBe('a.localhost');
    expect(await peerCN(must(addr).port, 'other.localhost')).toBe('default.localhost');
  });

  it('reloads a changed certificate without a restart', async () => {
    const router = h.router();
    await router.setCertificate({ domain: 'a.localhost', ...must(certs['a.localhost']) });
    const { https: addr } = await router.listen({ https: { port: 0 } });
    expect(await peerCN(must(addr).port, 'a.localhost')).toBe('a.localhost');
    const changed = waitFor(router, 'certificates');
    await router.setCertificate({ domain: 'a.localhost', ...must(certs['a2.localhost']) });
    await changed;
    expect(await peerCN(must(addr).port, 'a.localhost')).toBe('a2.localhost');
  });

  it('refuses a certificate that does not load, storing nothing', async () => {
    const router = h.router();
    await expect(
      router.setCertificate({ domain: 'a.localhost', cert: 'garbage', key: 'garbage' }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_CERTIFICATE' });
    await expect(
      router.setCertificate({
        domain: 'a.localhost',
        cert: must(certs['a.localhost']).cert,
        key: must(certs['a2.localhost']).key,
      }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_CERTIFICATE' });
    await expect(
      router.setCertificate({ domain: 'a/b', ...must(certs['a.localhost']) }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_ROUTER_INVALID_CERTIFICATE' });
    expect(await router.certificates.domains()).toEqual([]);
  });

  it('proxies HTTPS over HTTP/1.1 with X-Forwarded-Proto https, and HSTS when asked', async () => {
    let proto: unknown;
    await h.backend('demo-web', 'web', (req, res) => {
      proto = req.headers['x-forwarded-proto'];
      res.end('secure');
    });
    const router = h.router();
    await router.setCertificate({ domain: '*', ...must(certs['default.localhost']) });
    await router.setRoute({
      type: 'http',
      domain: 'demo.localhost',
      service: 'demo-web',
      hsts: true,
    });
    const { https: addr } = await router.listen({ https: { port: 0 } });
    const res = await httpsGet(must(addr).port, 'demo.localhost');
    expect(res.body).toBe('secure');
    expect(proto).toBe('https');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  it('speaks HTTP/2 to clients that negotiate it by ALPN', async () => {
    let seen: Record<string, unknown> = {};
    await h.backend('demo-web', 'web', (req, res) => {
      seen = { ...req.headers, httpVersion: req.httpVersion };
      res.setHeader('x-backend', 'web');
      res.end('over h2');
    });
    const router = h.router();
    await router.setCertificate({ domain: '*', ...must(certs['default.localhost']) });
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
    const { https: addr } = await router.listen({ https: { port: 0 } });
    const client = http2.connect(`https://127.0.0.1:${must(addr).port}`, {
      servername: 'demo.localhost',
      rejectUnauthorized: false,
    });
    client.on('error', () => undefined); // a session reset at the router's close; requests see theirs
    h.defer(() => client.close());
    const get = (
      path: string,
      authority = 'demo.localhost',
    ): Promise<{ status: number; body: string; backend: unknown }> =>
      new Promise((resolve, reject) => {
        const req = client.request({ ':path': path, ':authority': authority });
        let body = '';
        let status = 0;
        let backend: unknown;
        req.on('response', (hd) => {
          status = Number(hd[':status']);
          backend = hd['x-backend'];
        });
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => resolve({ status, body, backend }));
        req.on('error', reject);
        req.end();
      });
    const [one, two] = await Promise.all([get('/a'), get('/b')]);
    expect(one).toEqual({ status: 200, body: 'over h2', backend: 'web' });
    expect(two.status).toBe(200);
    expect(client.alpnProtocol).toBe('h2');
    expect(seen.host).toBe('demo.localhost');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect((await get('/', 'nope.localhost')).status).toBe(404);
  });

  it('redirects plain HTTP to HTTPS on an httpsOnly route', async () => {
    await h.backend('demo-web', 'web');
    const router = h.router();
    await router.setCertificate({ domain: '*', ...must(certs['default.localhost']) });
    await router.setRoute({
      type: 'http',
      domain: 'demo.localhost',
      service: 'demo-web',
      httpsOnly: true,
    });
    const { http: plain, https: secure } = await router.listen({
      http: { port: 0 },
      https: { port: 0 },
    });
    const get = await request(must(plain).port, { host: 'demo.localhost:8080', path: '/p?q=1' });
    expect(get.status).toBe(301);
    expect(get.headers.location).toBe(`https://demo.localhost:${must(secure).port}/p?q=1`);
    const post = await request(must(plain).port, { method: 'POST', body: 'x' });
    expect(post.status).toBe(308);
    expect((await httpsGet(must(secure).port, 'demo.localhost')).body).toBe('web');
  });
});
