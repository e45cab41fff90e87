// Smuggling, limits and timeouts, seen from a client on a raw socket.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, raw, request, must } from './test-support/harness.js';

let h: Harness;
let port: number;
let seen: { method: string; url: string; body: string }[];

beforeEach(async () => {
  h = new Harness();
  seen = [];
  await h.backend('demo-web', 'web', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body: Buffer.concat(chunks).toString(),
      });
      res.end(`got ${Buffer.concat(chunks).length}`);
    });
  });
  const router = h.router({
    maxHeaderBytes: 2048,
    maxHeaderCount: 20,
    // Every test's head must arrive within it, the client sharing this event loop with the
    // router: 300 ms was a stall's length on a loaded CI machine. The slowloris test trickles.
    headersTimeoutMs: 1000,
    idleTimeoutMs: 2000,
  });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
  await router.setRoute({
    type: 'http',
    domain: 'demo.localhost',
    path: '/small',
    service: 'demo-web',
    maxBodyBytes: 10,
  });
  port = must((await router.listen({ http: { port: 0 } })).http).port;
});
afterEach(async () => {
  await h.close();
});

const status = (out: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);

describe('smuggling attempts are refused and never reach a backend', () => {
  const attempts: [string, string, number][] = [
    [
      'Content-Length and Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: demo.localhost\r\n\r\n',
      400,
    ],
    [
      'Transfer-Encoding then Content-Length',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n',
      400,
    ],
    [
      'two different Content-Lengths',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
      400,
    ],
    [
      'a Content-Length list',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 4, 4\r\n\r\nabcd',
      400,
    ],
    [
      'a signed Content-Length',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: +4\r\n\r\nabcd',
      400,
    ],
    [
      'an obfuscated Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
      501,
    ],
    [
      'chunked not last',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
      501,
    ],
    [
      'two Transfer-Encoding fields',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n',
      400,
    ],
    [
      'a space before the colon',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      400,
    ],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: a\r\n b\r\n\r\n', 400],
    ['a bare LF', 'GET / HTTP/1.1\nHost: demo.localhost\r\n\r\n', 400],
    ['a bare CR in a value', 'GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: a\rb\r\n\r\n', 400],
    ['a NUL in a value', 'GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-A: a\0b\r\n\r\n', 400],
    ['a NUL in the target', 'GET /a\0b HTTP/1.1\r\nHost: demo.localhost\r\n\r\n', 400],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: demo.localhost\r\nHost: evil.localhost\r\n\r\n', 400],
    [
      'a bad chunk size',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      400,
    ],
    [
      'a chunk size overflow',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff0\r\nabc\r\n0\r\n\r\n',
      400,
    ],
    [
      'chunk data longer than its size',
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n',
      400,
    ],
    ['garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n', 400],
    ['HTTP/2.0 on the HTTP/1 port', 'GET / HTTP/2.0\r\nHost: demo.localhost\r\n\r\n', 505],
  ];
  it.each(attempts)('%s', async (_name, text, expected) => {
    const out = await raw(port, text);
    expect(status(out)).toBe(expected);
    expect(out.toLowerCase()).toContain('connection: close');
    // One response, then the connection is closed: nothing after it is read as a request.
    expect(out.match(/HTTP\/1\.1 /g)?.length).toBe(1);
    expect(seen.filter((s) => s.url === '/smuggled')).toEqual([]);
  });

  it('forwards a valid chunked body with its framing, and pipelined requests after it', async () => {
    const out = await raw(
      port,
      'POST / HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n' +
        'GET /next HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
    expect(seen).toEqual([
      { method: 'POST', url: '/', body: 'abcde' },
      { method: 'GET', url: '/next', body: '' },
    ]);
  });
});

describe('limits', () => {
  it('refuses a head over maxHeaderBytes with 431', async () => {
    const out = await raw(
      port,
      `GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`,
    );
    expect(status(out)).toBe(431);
  });

  it('refuses a head that never ends once it passes maxHeaderBytes', async () => {
    const out = await raw(
      port,
      `GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-Big: ${'a'.repeat(100_000)}`,
    );
    expect(status(out)).toBe(431);
  });

  it('refuses more than maxHeaderCount fields with 431', async () => {
    const fields = Array.from({ length: 25 }, (_, i) => `X-${i}: v\r\n`).join('');
    const out = await raw(port, `GET / HTTP/1.1\r\nHost: demo.localhost\r\n${fields}\r\n`);
    expect(status(out)).toBe(431);
  });

  it('refuses a body over the route limit with 413, by Content-Length or by counting chunks', async () => {
    const byLength = await request(port, { method: 'POST', path: '/small', body: 'x'.repeat(11) });
    expect(byLength.status).toBe(413);
    expect(byLength.body).toContain('limit of 10 bytes');
    const chunked = await raw(
      port,
      `POST /small HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n5\r\nabcde\r\n5\r\nabcde\r\n0\r\n\r\n`,
    );
    expect(status(chunked)).toBe(413);
    const ok = await request(port, { method: 'POST', path: '/small', body: 'x'.repeat(10) });
    expect(ok.status).toBe(200);
    expect(seen.map((s) => s.body)).toEqual(['x'.repeat(10)]);
  });
});

describe('timeouts', () => {
  it('answers 408 and closes a connection whose head trickles in (slowloris)', async () => {
    const s = net.connect(port, '127.0.0.1');
    h.defer(() => s.destroy());
    let out = '';
    s.on('data', (c) => (out += c.toString()));
    // A write that crosses the router's close fails (EPIPE, ECONNRESET, write after end): with
    // no listener, that 'error' would be an uncaught exception. The close is what is asserted.
    s.on('error', () => undefined);
    s.write('GET / HTTP/1.1\r\nHost: demo.localhost\r\n');
    const timer = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 100);
    s.once('close', () => clearInterval(timer));
    await new Promise((r) => s.once('close', r));
    expect(status(out)).toBe(408);
  });

  it('closes an idle keep-alive connection after idleTimeoutMs', async () => {
    const s = net.connect(port, '127.0.0.1');
    h.defer(() => s.destroy());
    let out = '';
    s.on('data', (c) => (out += c.toString()));
    s.on('error', () => undefined); // a reset instead of a close fails the status check, not the run
    s.write('GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n');
    const t0 = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(status(out)).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
  });
});
