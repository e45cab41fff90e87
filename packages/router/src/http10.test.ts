// HTTP/1.0 clients and chunked responses: an HTTP/1.0 client does not know chunked framing
// (RFC 9112 section 7.1), so it gets the data only and the close ends the body; a backend that
// breaks the framing gets the client's connection reset, never a clean close that would pass
// for a complete body. Also: the forwarded headers a client cannot forge.
import { createHash, randomBytes } from 'node:crypto';
import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { selfSignedCert } from './test-support/cert.js';
import { Harness, must } from './test-support/harness.js';

const HOST = 'Host: demo.localhost\r\n';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

/** A value that arrives later (a backend's response object, a raw backend's socket). */
function later<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A raw client connection: sends `request`, keeps every byte it reads, and tells a clean end
 * (FIN) from a reset. Destroyed at the harness's close.
 */
class RawClient {
  readonly socket: net.Socket;
  readonly #chunks: Buffer[] = [];
  received = 0;
  /** Whether the router closed its side cleanly (a FIN: for HTTP/1.0, "the body is complete"). */
  ended = false;
  /** The socket error's code, e.g. `ECONNRESET` when the router reset the connection. */
  error: string | undefined;
  readonly closed: Promise<void>;
  #waiters: { test: () => boolean; resolve: () => void }[] = [];

  constructor(port: number, request: string) {
    this.socket = net.connect(port, '127.0.0.1');
    h.defer(() => this.socket.destroy());
    this.socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.received += c.length;
      this.#check();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.#check();
    });
    this.closed = new Promise((resolve) => {
      this.socket.on('error', (err: NodeJS.ErrnoException) => {
        this.error = err.code ?? err.message;
      });
      this.socket.on('close', () => {
        resolve();
        this.#check(true);
      });
    });
    this.socket.write(request);
  }

  #check(closed = false): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test() && !closed) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once `test()` holds after a read (or the connection closed, whatever it holds). */
  until(test: () => boolean): Promise<void> {
    if (test() || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** The response head (latin1), or '' while it is incomplete. */
  head(): string {
    const b = this.bytes();
    const end = b.indexOf('\r\n\r\n');
    return end === -1 ? '' : b.subarray(0, end + 4).toString('latin1');
  }

  /** The bytes after the head. */
  body(): Buffer {
    const b = this.bytes();
    const end = b.indexOf('\r\n\r\n');
    return end === -1 ? Buffer.alloc(0) : b.subarray(end + 4);
  }
}

/** Whether a head has the header line `name: value` (name in any case). */
function hasLine(head: string, name: string, value?: string): boolean {
  return head
    .split('\r\n')
    .some(
      (l) =>
        l.toLowerCase().startsWith(`${name}:`) &&
        (value === undefined || l.slice(name.length + 1).trim() === value),
    );
}

/**
 * A raw backend under `service` whose connection the test drives: `conn` resolves with the
 * first one, once the request came.
 */
async function hostileBackend(service: string): Promise<{ conn: Promise<net.Socket> }> {
  const conn = later<net.Socket>();
  await h.rawBackend(service, `${service}-raw`, (s) => {
    s.once('data', () => conn.resolve(s));
  });
  return { conn: conn.promise };
}

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

describe('a chunked response to an HTTP/1.0 client', () => {
  it('streams the data only, byte for byte as the backend wrote it, and ends it by closing', async () => {
    const backendRes = later<http.ServerResponse>();
    let version = '';
    await h.backend('s', 's', (req, res) => {
      version = req.httpVersion;
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('transfer-encoding', 'chunked'); // node:http frames it chunked, also for 1.0
      res.flushHeaders();
      backendRes.resolve(res);
    });
    const port = await h.httpRouterFor('s');
    const c = new RawClient(port, `GET /stream HTTP/1.0\r\n${HOST}\r\n`);
    const res = await backendRes.promise;
    await c.until(() => c.head() !== '');
    const pieces = [
      Buffer.from('hello '),
      // Data that looks like framing must arrive as data.
      Buffer.from('5\r\nfake!\r\n0\r\n\r\n'),
      Buffer.from([0, 13, 10, 255, 0]),
      randomBytes(300_000),
      Buffer.from('the end'),
    ];
    let expected = 0;
    for (const p of pieces) {
      // Each piece is written only once the client has the ones before: streamed, not held.
      res.write(p);
      expected += p.length;
      await c.until(() => c.body().length >= expected);
      expect(c.body().length).toBe(expected);
      expect(c.ended).toBe(false);
    }
    res.end();
    await c.closed;
    expect(version).toBe('1.0');
    const head = c.head();
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(hasLine(head, 'transfer-encoding')).toBe(false);
    expect(hasLine(head, 'content-length')).toBe(false);
    expect(hasLine(head, 'connection', 'close')).toBe(true);
    expect(hasLine(head, 'content-type', 'application/octet-stream')).toBe(true);
    expect(sha(c.body())).toBe(sha(Buffer.concat(pieces)));
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
  });

  it('drops the trailers, and closes also for a client that asked for keep-alive', async () => {
    await h.backend('t', 't', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.setHeader('trailer', 'x-checksum');
      res.write('abc');
      res.addTrailers({ 'x-checksum': 'sum-in-trailer' });
      res.end('def');
    });
    const port = await h.httpRouterFor('t');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}Connection: keep-alive\r\n\r\n`);
    await c.closed;
    expect(c.body().toString('latin1')).toBe('abcdef');
    expect(c.bytes().toString('latin1')).not.toContain('sum-in-trailer');
    expect(hasLine(c.head(), 'connection', 'close')).toBe(true);
    expect(hasLine(c.head(), 'transfer-encoding')).toBe(false);
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
  });

  it('sets the sticky cookie on a de-chunked response as on any other', async () => {
    await h.backend('st', 'st-1', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.end('sticky');
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'st', sticky: true });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    await c.closed;
    expect(c.head()).toMatch(
      /\r\nset-cookie: flotilla_sticky=st-1\.[A-Za-z0-9_-]+; Path=\/; HttpOnly/,
    );
    expect(c.body().toString('latin1')).toBe('sticky');
  });

  it('answers an HTTP/1.0 HEAD with the head only, and keeps the connection it asked for', async () => {
    await h.backend('hd', 'hd', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.end(req.method === 'HEAD' ? undefined : `got ${req.url}`);
    });
    const port = await h.httpRouterFor('hd');
    const c = new RawClient(port, `HEAD /h HTTP/1.0\r\n${HOST}Connection: keep-alive\r\n\r\n`);
    await c.until(() => c.head() !== '');
    const head = c.head();
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(hasLine(head, 'transfer-encoding')).toBe(false);
    expect(hasLine(head, 'connection', 'keep-alive')).toBe(true);
    // The next request on the same connection is answered right after the head: no body came.
    c.socket.write(`GET /after HTTP/1.0\r\n${HOST}\r\n`);
    await c.closed;
    const rest = c.bytes().subarray(head.length).toString('latin1');
    expect(rest).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(rest.endsWith('\r\n\r\ngot /after')).toBe(true);
    expect(c.ended).toBe(true);
  });

  it('still gives an HTTP/1.1 client the chunked framing as the backend sent it, trailers too', async () => {
    await h.backend('c11', 'c11', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.setHeader('trailer', 'x-checksum');
      res.write('abc');
      res.addTrailers({ 'x-checksum': 'sum' });
      res.end('def');
    });
    const port = await h.httpRouterFor('c11');
    const c = new RawClient(port, `GET / HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`);
    await c.closed;
    expect(hasLine(c.head(), 'transfer-encoding', 'chunked')).toBe(true);
    expect(c.body().toString('latin1')).toBe(
      '3\r\nabc\r\n3\r\ndef\r\n0\r\nx-checksum: sum\r\n\r\n',
    );
  });

  it('streams a request body to the backend while the backend answers it chunked', async () => {
    const go = later<undefined>();
    await h.backend('echo', 'echo', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.write('start:');
      // The body is read only once the answer has begun: until then it piles up between.
      void go.promise.then(() => req.pipe(res));
    });
    const port = await h.httpRouterFor('echo');
    const mib = randomBytes(1024 * 1024);
    const body = Buffer.concat(Array.from({ length: 32 }, () => mib));
    const c = new RawClient(
      port,
      `POST / HTTP/1.0\r\n${HOST}Content-Length: ${body.length}\r\n\r\n`,
    );
    // More than the sockets between hold: the router reads the body as the backend takes it.
    c.socket.write(body);
    await c.until(() => c.body().toString('latin1') === 'start:');
    go.resolve(undefined);
    await c.closed;
    expect(c.body().length).toBe(body.length + 6);
    expect(sha(c.body().subarray(6))).toBe(sha(body));
    expect(c.ended).toBe(true);
  });

  it('resets the client when the router closes in the middle of the body', async () => {
    const sent = later<undefined>();
    await h.backend('cl', 'cl', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.write('part');
      sent.resolve(undefined);
    });
    const router = h.router({ closeTimeoutMs: 50 });
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'cl' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    await sent.promise;
    await c.until(() => c.body().toString('latin1') === 'part');
    await router.close();
    await c.closed;
    expect(c.ended).toBe(false);
    expect(c.error).toBe('ECONNRESET');
  });

  it('decodes any framing a backend may send: 1-byte chunks, odd sizes, extensions, split anywhere', async () => {
    const data = randomBytes(1024 * 1024);
    const framed: Buffer[] = [];
    // 20 000 chunks of 1 byte, then chunks of random sizes, some with extensions.
    let at = 0;
    for (; at < 20_000; at++)
      framed.push(Buffer.from('1\r\n'), data.subarray(at, at + 1), Buffer.from('\r\n'));
    while (at < data.length) {
      const n = Math.min(1 + Math.floor(Math.random() * 9000), data.length - at);
      const ext = n % 3 === 0 ? ';name=value ; x="y"' : '';
      framed.push(
        Buffer.from(`${n % 2 === 0 ? n.toString(16).toUpperCase() : n.toString(16)}${ext}\r\n`),
      );
      framed.push(data.subarray(at, at + n), Buffer.from('\r\n'));
      at += n;
    }
    framed.push(Buffer.from('0\r\nx-sum: 1\r\n\r\n'));
    const wire = Buffer.concat(framed);
    const { conn } = await hostileBackend('odd');
    const port = await h.httpRouterFor('odd');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    const s = await conn;
    s.write(CHUNKED_HEAD);
    // Slices of random sizes, each sent once the one before has left the backend.
    for (let i = 0; i < wire.length;) {
      const n = 1 + Math.floor(Math.random() * 40_000);
      await new Promise((r) => s.write(wire.subarray(i, i + n), r));
      i += n;
    }
    await c.closed;
    expect(c.body().length).toBe(data.length);
    expect(sha(c.body())).toBe(sha(data));
    expect(c.ended).toBe(true);
  });

  it('closes the backend connection when the HTTP/1.0 client goes away mid-body', async () => {
    const gone = later<undefined>();
    await h.backend('away', 'away', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.write('first');
      res.on('close', () => gone.resolve(undefined));
    });
    const port = await h.httpRouterFor('away');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    await c.until(() => c.body().toString('latin1') === 'first');
    c.socket.destroy();
    await gone.promise;
  });

  it('keeps 20 concurrent HTTP/1.0 clients apart', async () => {
    await h.backend('many', 'many', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      const n = Number(req.url?.slice(1));
      for (let i = 0; i < 50; i++) res.write(`${n}:${i};`.repeat(n + 1));
      res.end();
    });
    const port = await h.httpRouterFor('many');
    const clients = Array.from(
      { length: 20 },
      (_, n) => new RawClient(port, `GET /${n} HTTP/1.0\r\n${HOST}\r\n`),
    );
    await Promise.all(clients.map((c) => c.closed));
    clients.forEach((c, n) => {
      let expected = '';
      for (let i = 0; i < 50; i++) expected += `${n}:${i};`.repeat(n + 1);
      expect(c.body().toString('latin1')).toBe(expected);
      expect(c.ended).toBe(true);
    });
  });

  it('gives a slow HTTP/1.0 reader 8 MiB byte for byte', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    await h.backend('big', 'big', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      // Odd sizes: chunk lines fall anywhere in the router's reads.
      for (let at = 0; at < payload.length; at += 65_537)
        res.write(payload.subarray(at, at + 65_537));
      res.end();
    });
    const port = await h.httpRouterFor('big');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    // A reader that stops after each read and goes on once the event loop has turned.
    c.socket.on('data', () => {
      c.socket.pause();
      setImmediate(() => c.socket.resume());
    });
    await c.closed;
    expect(c.body().length).toBe(payload.length);
    expect(sha(c.body())).toBe(sha(payload));
    expect(c.ended).toBe(true);
  });

  it('holds the backend back while the HTTP/1.0 client reads nothing', async () => {
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 'x');
    let written = 0;
    let waiting = later<undefined>();
    await h.backend('bp', 'bp', (req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      const next = (): void => {
        while (written < total) {
          written += piece.length;
          if (!res.write(piece)) {
            waiting.resolve(undefined);
            res.once('drain', next);
            return;
          }
        }
        res.end();
      };
      next();
    });
    const port = await h.httpRouterFor('bp');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    c.socket.pause();
    // There is no event for "the backend can write no more": wait until its writes have been
    // blocked for a quarter of a second (a router that buffered would take all 64 MiB in that
    // time; with backpressure, only what the socket buffers between them hold).
    for (;;) {
      await waiting.promise;
      waiting = later();
      const before = written;
      await new Promise((r) => setTimeout(r, 250));
      if (written === before) break;
    }
    expect(written).toBeLessThan(total / 2);
    c.socket.resume();
    await c.closed;
    expect(c.body().length).toBe(total);
    expect(c.ended).toBe(true);
  });
});

describe('a backend that breaks the chunked framing: the HTTP/1.0 client is reset, never ended', () => {
  // [case, bytes after a good first chunk, the data of them the client gets, how it ends].
  const cases: [string, string, string, (s: net.Socket) => void][] = [
    ['a chunk longer than its size', '3\r\nabcdef\r\n0\r\n\r\n', '', (s) => s.end()],
    [
      'a chunk shorter than its size, then the end',
      '9\r\nab\r\n0\r\n\r\n',
      'ab\r\n0\r\n\r\n',
      (s) => s.end(),
    ],
    ['a chunk-size line of 100 000 digits', '1'.repeat(100_000), '', (s) => s.end()],
    ['a chunk size past 2^53', 'fffffffffffffff\r\n', '', (s) => s.end()],
    ['a chunk extension of 1 MiB', `5;${'x'.repeat(1024 * 1024)}\r\n`, '', (s) => s.end()],
    ['trailers of 1 MiB', `0\r\n${'x-t: y\r\n'.repeat(150_000)}\r\n`, '', (s) => s.end()],
    ['a body cut mid-chunk (close)', 'a\r\nhello', 'hello', (s) => s.end()],
    ['a body cut mid-chunk (reset)', 'a\r\nhello', 'hello', (s) => s.resetAndDestroy()],
    ['a body cut between chunks', '2\r\nok\r\n', 'ok', (s) => s.end()],
  ];
  for (const [name, bad, data, close] of cases) {
    it(name, async () => {
      const { conn } = await hostileBackend('bad');
      const port = await h.httpRouterFor('bad');
      const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
      const s = await conn;
      // A good first chunk, which the client gets before the backend goes wrong.
      s.write(`${CHUNKED_HEAD}4\r\ngood\r\n`);
      await c.until(() => c.body().toString('latin1') === 'good');
      expect(hasLine(c.head(), 'transfer-encoding')).toBe(false);
      s.write(bad);
      // The client reads what came before the backend closes. (A reset right behind unread
      // bytes reads as a clean end to a libuv client: it takes a hang-up after a short read
      // for the end without reading the error.)
      await c.until(() => c.body().toString('latin1') === `good${data}`);
      close(s);
      await c.closed;
      expect(c.body().toString('latin1')).toBe(`good${data}`);
      expect(c.ended).toBe(false);
      expect(c.error).toBe('ECONNRESET');
    });
  }

  it('bad framing in the same read as the head: the client is reset before any byte', async () => {
    const { conn } = await hostileBackend('bad1');
    const port = await h.httpRouterFor('bad1');
    const c = new RawClient(port, `GET / HTTP/1.0\r\n${HOST}\r\n`);
    (await conn).write(`${CHUNKED_HEAD}zz\r\n`);
    await c.closed;
    expect(c.received).toBe(0);
    expect(c.ended).toBe(false);
    expect(c.error).toBe('ECONNRESET');
  });

  it('a body without length that the backend resets is reset for an HTTP/1.1 client too; a close ends it', async () => {
    for (const [cut, ended] of [
      [(s: net.Socket) => s.resetAndDestroy(), false],
      [(s: net.Socket) => s.end(), true],
    ] as const) {
      const { conn } = await hostileBackend(`nolen-${ended}`);
      const port = await h.httpRouterFor(`nolen-${ended}`);
      const c = new RawClient(port, `GET / HTTP/1.1\r\n${HOST}\r\n`);
      const s = await conn;
      s.write('HTTP/1.1 200 OK\r\n\r\npart');
      await c.until(() => c.body().toString('latin1') === 'part');
      cut(s);
      await c.closed;
      expect(c.ended).toBe(ended);
      expect(c.error).toBe(ended ? undefined : 'ECONNRESET');
    }
  });
});
/** Forged on purpose: each names a client address, scheme, host or path prefix. */
const FORGED = [
  ['X-Real-IP', '6.6.6.6'],
  ['Forwarded', 'for=6.6.6.6;proto=https;host=evil.test'],
  ['X-Forwarded-Host', 'evil.test'],
  ['X-Forwarded-Ssl', 'on'],
  ['X-Forwarded-Scheme', 'https'],
  ['X-Forwarded-Prefix', '/admin'],
  ['Client-IP', '6.6.6.6'],
  ['True-Client-IP', '6.6.6.6'],
  ['x-forwarded-proto', 'https'],
  ['X-FORWARDED-PORT', '443'],
  ['X-Request-Start', 't=1'],
] as const;

/** A backend that answers with the request's header fields, as [lower-case name, value] pairs. */
async function echoBackend(service: string): Promise<void> {
  await h.backend(service, service, (req, res) => {
    const pairs: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      pairs.push([must(req.rawHeaders[i]).toLowerCase(), must(req.rawHeaders[i + 1])]);
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(pairs));
  });
}

function values(pairs: [string, string][], name: string): string[] {
  return pairs.filter((p) => p[0] === name).map((p) => p[1]);
}

describe('forwarded headers a client cannot forge', () => {
  it('drops the client address, scheme, host and prefix fields it sends; sets or appends its own', async () => {
    await echoBackend('echo');
    const port = await h.httpRouterFor('echo');
    const forged = FORGED.map(([n, v]) => `${n}: ${v}\r\n`).join('');
    const c = new RawClient(
      port,
      `GET /h HTTP/1.1\r\n${HOST}X-Forwarded-For: 6.6.6.6\r\n${forged}` +
        'X-Real-IP-Hint: kept\r\nForwarded-Note: kept\r\nConnection: close\r\n\r\n',
    );
    await c.closed;
    const pairs = JSON.parse(c.body().toString()) as [string, string][];
    for (const [name] of FORGED) expect(values(pairs, name.toLowerCase())).not.toContain('6.6.6.6');
    for (const name of [
      'x-real-ip',
      'forwarded',
      'x-forwarded-host',
      'x-forwarded-ssl',
      'x-forwarded-scheme',
      'x-forwarded-prefix',
      'client-ip',
      'true-client-ip',
    ])
      expect(values(pairs, name)).toEqual([]);
    expect(values(pairs, 'host')).toEqual(['demo.localhost']);
    // The client's claim stays first; the address the router saw is the last entry.
    expect(values(pairs, 'x-forwarded-for')).toEqual(['6.6.6.6, 127.0.0.1']);
    expect(values(pairs, 'x-forwarded-proto')).toEqual(['http']);
    expect(values(pairs, 'x-forwarded-port')).toEqual([String(port)]);
    expect(values(pairs, 'x-request-start')).toHaveLength(1);
    expect(values(pairs, 'x-request-start')).not.toContain('t=1');
    // Only those exact names: similar ones pass.
    expect(values(pairs, 'x-real-ip-hint')).toEqual(['kept']);
    expect(values(pairs, 'forwarded-note')).toEqual(['kept']);
  });

  it('drops the same fields from HTTP/2 requests', async () => {
    const tlsCert = selfSignedCert('demo.localhost');
    await echoBackend('echo2');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'echo2' });
    await router.setCertificate({
      domain: 'demo.localhost',
      ...tlsCert,
    });
    const port = must((await router.listen({ https: { port: 0 } })).https).port;
    const client = http2.connect(`https://127.0.0.1:${port}`, {
      servername: 'demo.localhost',
      rejectUnauthorized: false,
    });
    client.on('error', () => undefined); // a session reset at the router's close; requests see theirs
    h.defer(() => client.close());
    const headers: http2.OutgoingHttpHeaders = { ':authority': 'demo.localhost', ':path': '/' };
    for (const [n, v] of FORGED) headers[n.toLowerCase()] = v;
    const body = await new Promise<string>((resolve, reject) => {
      const req = client.request(headers);
      let out = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (out += d));
      req.on('end', () => resolve(out));
      req.on('error', reject);
      req.end();
    });
    const pairs = JSON.parse(body) as [string, string][];
    for (const name of [
      'x-real-ip',
      'forwarded',
      'x-forwarded-host',
      'x-forwarded-ssl',
      'x-forwarded-scheme',
      'x-forwarded-prefix',
      'client-ip',
      'true-client-ip',
    ])
      expect(values(pairs, name)).toEqual([]);
    expect(values(pairs, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(pairs, 'x-forwarded-for')).toEqual(['127.0.0.1']);
  });
});
