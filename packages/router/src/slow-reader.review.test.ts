// Review of the slow-reader and Trailer changes: the cases a hostile client or backend finds.
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

/** An HTTP/2 client of the router's TLS port, destroyed at the harness's close. */
async function h2Router(options: {
  sendTimeoutMs: number;
  upstreamTimeoutMs?: number;
}): Promise<http2.ClientHttp2Session> {
  const router = h.router(options);
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  await router.setCertificate({ domain: 'demo.localhost', ...selfSignedCert('demo.localhost') });
  const port = must((await router.listen({ https: { port: 0 } })).https).port;
  const client = http2.connect(`https://127.0.0.1:${port}`, {
    servername: 'demo.localhost',
    rejectUnauthorized: false,
  });
  client.on('error', () => undefined);
  h.defer(() => client.destroy());
  return client;
}

it('over HTTP/2, a client that pauses within sendTimeoutMs gets the whole body, whatever upstreamTimeoutMs', async () => {
  // upstreamTimeoutMs is how long a backend may take to answer a request's head; a client that
  // stops reading for less than sendTimeoutMs is not cut off (as over HTTP/1).
  const body = Buffer.alloc(8 * 1024 * 1024, 97);
  await h.backend('web', 'web', (_req, res) => res.end(body));
  const client = await h2Router({ sendTimeoutMs: 10_000, upstreamTimeoutMs: 300 });
  const r = client.request({ ':authority': 'demo.localhost', ':path': '/' });
  r.on('error', () => undefined);
  r.pause();
  await once(r, 'response');
  // Longer than upstreamTimeoutMs, well within sendTimeoutMs.
  await new Promise((resolve) => setTimeout(resolve, 1200));
  let bytes = 0;
  r.on('data', (d: Buffer) => (bytes += d.length));
  const closed = once(r, 'close');
  r.resume();
  await closed;
  expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  expect(bytes).toBe(body.length);
});

it('over HTTP/2, a stream the client resets while stalled lets the backend go; the session serves on', async () => {
  const body = Buffer.alloc(32 * 1024 * 1024, 97);
  let backendGone: Promise<unknown> | undefined;
  await h.backend('web', 'web', (req, res) => {
    if (req.url === '/small') {
      res.end('ok');
      return;
    }
    backendGone = once(res, 'close');
    res.end(body);
  });
  const client = await h2Router({ sendTimeoutMs: 60_000 });
  const r = client.request({ ':authority': 'demo.localhost', ':path': '/' });
  r.on('error', () => undefined);
  r.pause();
  await once(r, 'response');
  // (A poll of the promise itself would wait for it to settle.)
  await expect.poll(() => backendGone !== undefined).toBe(true);
  r.close(http2.constants.NGHTTP2_CANCEL);
  // Long before the 60 s send timeout.
  await backendGone;
  const s = client.request({ ':authority': 'demo.localhost', ':path': '/small' });
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (text += d));
  await once(s, 'end');
  expect(text).toBe('ok');
});

it('over HTTP/2, a body the backend cuts short ends in a reset the client can tell from the end', async () => {
  // Content-Length 100, 10 bytes, then the backend's connection drops.
  await h.rawBackend('web', 'web-raw', (s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      setTimeout(() => s.destroy(), 50);
    });
  });
  const client = await h2Router({ sendTimeoutMs: 60_000 });
  const r = client.request({ ':authority': 'demo.localhost', ':path': '/' });
  r.on('error', () => undefined);
  let bytes = 0;
  let ended = false;
  r.on('data', (d: Buffer) => (bytes += d.length));
  r.on('end', () => (ended = true));
  // (once() would reject on the stream's error event, which a reset emits.)
  await new Promise((resolve) => r.once('close', resolve));
  expect(bytes).toBe(10);
  // NO_ERROR would end the stream as if the body were whole: node:http2 emits 'end' for it.
  expect(r.rstCode).not.toBe(http2.constants.NGHTTP2_NO_ERROR);
  expect(ended).toBe(false);
});

it('an HTTP/1.0 client of a chunked response gets no Trailer header: the trailers never reach it', async () => {
  // A backend that answers chunked whatever the request's version (the router passes 1.0 on).
  await h.rawBackend('web', 'web-raw', (s) => {
    s.once('data', () =>
      s.end(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n' +
          '5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n',
      ),
    );
  });
  const router = h.router();
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  const port = must((await router.listen({ http: { port: 0 } })).http).port;
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => undefined);
  h.defer(() => c.destroy());
  let out = '';
  c.setEncoding('latin1');
  c.on('data', (d: string) => (out += d));
  c.write('GET / HTTP/1.0\r\nHost: demo.localhost\r\n\r\n');
  await once(c, 'close');
  const [head, rest] = out.split('\r\n\r\n');
  expect(rest).toBe('hello');
  expect(head).toMatch(/^HTTP\/1\.1 200 /);
  expect(head?.toLowerCase()).not.toContain('trailer:');
  expect(head?.toLowerCase()).not.toContain('transfer-encoding');
});
