// Client bytes on plain HTTP are read into one buffer that every connection shares and that the
// next read of any connection overwrites (see internal/user-buffer-socket.ts). Whatever a
// connection keeps past a read (a partial head, pipelined requests, body bytes waiting for a
// backend, tunnel bytes) must survive other clients' reads in between: each test interleaves
// another client's traffic with the bytes kept.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, noise, request } from './test-support/harness.js';
import { readIntoShared } from './internal/user-buffer-socket.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

/** Connects, writes `parts` one per `gapMs`, and resolves with everything read until close. */
async function sendInParts(port: number, parts: Buffer[], gapMs: number): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  let out = '';
  s.on('data', (c: Buffer) => (out += c.toString('latin1')));
  const closed = once(s, 'close');
  for (const p of parts) {
    s.write(p);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await closed;
  return out;
}

describe('client bytes kept past a read survive other clients', () => {
  it('a request head split across many reads', async () => {
    await h.echoBackend('echo');
    const port = await h.httpRouterFor('echo');
    const stop = { done: false };
    const other = noise(port, stop);
    const head = Buffer.from(
      'GET /split HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: head-in-pieces\r\nConnection: close\r\n\r\n',
      'latin1',
    );
    const parts: Buffer[] = [];
    for (let i = 0; i < head.length; i += 7) parts.push(head.subarray(i, i + 7));
    const out = await sendInParts(port, parts, 5);
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(out).toContain(`/split head-in-pieces ${sha(Buffer.alloc(0))}`);
  });

  it('pipelined requests with bodies, read with the first, while the first waits for its backend', async () => {
    await h.echoBackend('echo', '/slow');
    const port = await h.httpRouterFor('echo');
    const [one, two] = [randomBytes(700), randomBytes(3000)];
    const packet = Buffer.concat([
      Buffer.from(
        `POST /slow HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: one\r\nContent-Length: ${one.length}\r\n\r\n`,
      ),
      one,
      Buffer.from(
        `POST /second HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: two\r\nContent-Length: ${two.length}\r\nConnection: close\r\n\r\n`,
      ),
      two,
    ]);
    const stop = { done: false };
    const other = noise(port, stop);
    const out = await sendInParts(port, [packet], 0);
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
    expect(out).toContain(`/slow one ${sha(one)}`);
    expect(out).toContain(`/second two ${sha(two)}`);
  });

  it('a body that trickles in, and a large one the backend is slow to take', async () => {
    await h.backend('echo', 'echo', (req, res) => {
      // Not reading for a while: the router's writes to it stop finishing at once.
      req.pause();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`${req.url} ${sha(Buffer.concat(chunks))}`));
      setTimeout(() => req.resume(), 300);
    });
    const port = await h.httpRouterFor('echo');
    const stop = { done: false };
    const other = noise(port, stop);
    for (const [size, piece, gapMs] of [
      [50_000, 4999, 2],
      [8 * 1024 * 1024, 256 * 1024, 0],
    ] as const) {
      const body = randomBytes(size);
      const head = Buffer.from(
        `POST /${size} HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      const parts = [Buffer.concat([head, body.subarray(0, 100)])];
      for (let i = 100; i < body.length; i += piece) parts.push(body.subarray(i, i + piece));
      const out = await sendInParts(port, parts, gapMs);
      expect(out).toContain(`/${size} ${sha(body)}`);
    }
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
  });

  it('bodies that came with their heads, held while new backend connections open', async () => {
    await h.echoBackend('fresh');
    const port = await h.httpRouterFor('fresh');
    // Clients at once, each head with 40 KB of body in one write: every exchange waits for a
    // connection of its own while the others' bytes are read.
    const bodies = Array.from({ length: 4 }, () => randomBytes(40_000));
    const outs = await Promise.all(
      bodies.map((body, i) =>
        sendInParts(
          port,
          [
            Buffer.concat([
              Buffer.from(
                `POST /c${i} HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: c${i}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
              ),
              body,
            ]),
          ],
          0,
        ),
      ),
    );
    outs.forEach((out, i) => expect(out).toContain(`/c${i} c${i} ${sha(must(bodies[i]))}`));
  });

  it('a tunnel (Upgrade) carries the client bytes byte for byte, and its half-close', async () => {
    const ended = new Promise<void>((resolve) => {
      void h.rawBackend('tunnel', 'tunnel-raw', (s) => {
        let head = '';
        const onHead = (c: Buffer): void => {
          head += c.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          s.off('data', onHead);
          s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n');
          const parts: Buffer[] = [Buffer.from(head.slice(end + 4), 'latin1')];
          s.on('data', (d: Buffer) => parts.push(d));
          // Not reading for a while: the router's writes to it stop finishing at once.
          s.pause();
          setTimeout(() => s.resume(), 300);
          s.on('end', () => {
            // the client's half-close came through: the backend can still answer
            s.end(`got ${sha(Buffer.concat(parts))}`);
            resolve();
          });
        };
        s.on('data', onHead);
      });
    });
    await h.echoBackend('echo');
    await new Promise((r) => setTimeout(r, 50)); // the raw backend registered
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'tunnel' });
    await router.setRoute({ type: 'http', domain: 'noise.localhost', service: 'echo' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const payload = randomBytes(8 * 1024 * 1024);
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(s, 'connect');
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.write('GET / HTTP/1.1\r\nHost: demo.localhost\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n');
    while (!out.includes('\r\n\r\n')) await once(s, 'data');
    expect(out).toMatch(/^HTTP\/1\.1 101 /);
    const stop = { done: false };
    const other = (async () => {
      let n = 0;
      while (!stop.done) {
        const res = await request(port, {
          host: 'noise.localhost',
          method: 'POST',
          body: Buffer.alloc(900, 1),
        });
        expect(res.status).toBe(200);
        n++;
      }
      return n;
    })();
    for (let i = 0; i < payload.length; i += 256 * 1024) {
      if (!s.write(payload.subarray(i, i + 256 * 1024))) await once(s, 'drain');
    }
    s.end();
    await ended;
    await once(s, 'close');
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
    expect(out).toContain(`got ${sha(payload)}`);
  });
});

describe('readIntoShared', () => {
  it("moves an accepted connection, with the server's count of it", async () => {
    const views: string[] = [];
    const sockets: net.Socket[] = [];
    const server = net.createServer({ pauseOnConnect: true }, (raw) => {
      const s = readIntoShared(raw, (v) => views.push(v.toString()));
      expect(s).toBeDefined();
      sockets.push(must(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const c = net.connect(port, '127.0.0.1');
    c.write('hello');
    while (views.join('') !== 'hello') await new Promise((r) => setTimeout(r, 5));
    const count = (): Promise<number> =>
      new Promise((resolve, reject) =>
        server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
    expect(await count()).toBe(1);
    const closed = new Promise<void>((r) => server.close(() => r()));
    must(sockets[0]).end('bye');
    const [reply] = (await once(c, 'data')) as [Buffer];
    expect(reply.toString()).toBe('bye');
    c.destroy();
    await closed; // the server saw its one connection go
    expect(await count().catch(() => 0)).toBe(0);
  });

  it('leaves a socket that is not paused as it is', async () => {
    const server = net.createServer();
    const got = new Promise<net.Socket | undefined>((resolve) =>
      server.on('connection', (raw) => {
        resolve(readIntoShared(raw, () => undefined));
        raw.destroy();
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    c.on('error', () => undefined);
    // a flowing socket was already read as a stream: moving it would lose what it buffered
    expect(await got).toBeUndefined();
    c.destroy();
    await new Promise((r) => server.close(r));
  });
});
