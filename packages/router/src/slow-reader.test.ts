// Clients that stop reading: the router neither piles up their responses nor holds their
// connections (and the backends' behind them) forever.
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { selfSignedCert } from './test-support/cert.js';
import { Harness, must } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

const GET = 'GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n';

/** Connects to `port` and stops reading at once. */
async function nonReader(port: number): Promise<net.Socket> {
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => undefined);
  await once(c, 'connect');
  c.pause();
  h.defer(() => c.destroy());
  return c;
}

it('reads no more pipelined requests while the client has not taken the responses', async () => {
  const body = Buffer.alloc(32 * 1024, 97);
  const b = await h.backend('web', 'web', (_req, res) => res.end(body));
  const router = h.router();
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  const port = must((await router.listen({ http: { port: 0 } })).http).port;
  const N = 1000;
  const c = await nonReader(port);
  c.write(GET.repeat(N));
  // The backend answers what the socket buffers between router and client take, then nothing
  // more: before, all 1000 responses (32 MB) were asked for and held in the router.
  let last = -1;
  await expect
    .poll(
      () => {
        const stable = b.count === last && b.count > 0;
        last = b.count;
        return stable;
      },
      { interval: 300, timeout: 15_000 },
    )
    .toBe(true);
  expect(b.count).toBeLessThan(N / 2);
  // Once the client reads, every request is answered, in order.
  let received: Buffer = Buffer.alloc(0);
  let answered = 0;
  const done = new Promise<void>((resolve) => {
    c.on('data', (d: Buffer) => {
      received = received.length === 0 ? d : Buffer.concat([received, d]);
      for (;;) {
        const at = received.indexOf('HTTP/1.1 200 OK');
        if (at === -1) break;
        answered++;
        received = received.subarray(at + 15);
      }
      if (answered === N) resolve();
    });
  });
  c.resume();
  await done;
  expect(b.count).toBe(N);
});

it('cuts off a client that takes nothing of a response for sendTimeoutMs, and frees the backend', async () => {
  const body = Buffer.alloc(32 * 1024 * 1024, 97);
  let backendGone: Promise<unknown> | undefined;
  await h.backend('web', 'web', (_req, res) => {
    backendGone = once(res, 'close');
    res.end(body);
  });
  const router = h.router({ sendTimeoutMs: 300 });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  const port = must((await router.listen({ http: { port: 0 } })).http).port;
  const c = await nonReader(port);
  const t = performance.now();
  c.write(GET);
  // The router lets the backend's connection go, rather than hold it paused behind the client.
  await expect.poll(() => backendGone).toBeDefined();
  await backendGone;
  expect(performance.now() - t).toBeGreaterThanOrEqual(250);
  // And the client, reading again, finds its connection cut before the end of the body.
  let bytes = 0;
  c.on('data', (d: Buffer) => (bytes += d.length));
  const closed = once(c, 'close');
  c.resume();
  await closed;
  expect(bytes).toBeGreaterThan(0);
  expect(bytes).toBeLessThan(body.length);
});

it('keeps a client that reads slowly but steadily', async () => {
  const body = Buffer.alloc(1024 * 1024, 97);
  await h.backend('web', 'web', (_req, res) => res.end(body));
  const router = h.router({ sendTimeoutMs: 500 });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  const port = must((await router.listen({ http: { port: 0 } })).http).port;
  const c = await nonReader(port);
  let bytes = 0;
  const complete = new Promise<void>((resolve, reject) => {
    c.on('close', () => reject(new Error(`cut off after ${bytes} bytes`)));
    c.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes >= body.length) resolve();
      // A pause after every read, shorter than the send timeout.
      c.pause();
      setTimeout(() => c.resume(), 100);
    });
  });
  c.write(GET);
  c.resume();
  await complete;
  expect(bytes).toBeGreaterThanOrEqual(body.length);
});

it('over HTTP/2, resets the stream of a client that takes nothing for sendTimeoutMs', async () => {
  const body = Buffer.alloc(32 * 1024 * 1024, 97);
  let backendGone: Promise<unknown> | undefined;
  await h.backend('web', 'web', (_req, res) => {
    backendGone = once(res, 'close');
    res.end(body);
  });
  const router = h.router({ sendTimeoutMs: 300 });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  await router.setCertificate({ domain: 'demo.localhost', ...selfSignedCert('demo.localhost') });
  const port = must((await router.listen({ https: { port: 0 } })).https).port;
  const client = http2.connect(`https://127.0.0.1:${port}`, {
    servername: 'demo.localhost',
    rejectUnauthorized: false,
  });
  client.on('error', () => undefined);
  h.defer(() => client.destroy());
  const r = client.request({ ':authority': 'demo.localhost', ':path': '/' });
  r.on('error', () => undefined);
  r.pause();
  const closed = once(r, 'close');
  await expect.poll(() => backendGone).toBeDefined();
  await backendGone;
  await closed;
  expect(r.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
});
