// WebSockets, streaming both ways, sticky sessions, balancing, metrics and the access log.
import http from 'node:http';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { Harness, request, must } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

async function routed(
  service = 'demo-web',
  extra: Record<string, unknown> = {},
  options = {},
): Promise<number> {
  const router = h.router(options);
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service, ...extra });
  return must((await router.listen({ http: { port: 0 } })).http).port;
}

describe('protocols', () => {
  it('passes a WebSocket through both ways (echo)', async () => {
    const b = await h.backend('demo-web', 'ws', (_req, res) => res.end('plain'));
    const wss = new WebSocketServer({ server: b.server });
    wss.on('connection', (socket, req) => {
      socket.send(`hello ${req.headers['x-forwarded-for']}`);
      socket.on('message', (data) => socket.send(`echo ${String(data)}`));
    });
    h.defer(() => new Promise((r) => wss.close(r)));
    const port = await routed();
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, {
      headers: { host: 'demo.localhost' },
    });
    const messages: string[] = [];
    let wake: () => void = () => undefined;
    ws.on('message', (d) => {
      messages.push(String(d));
      wake();
    });
    const got = (n: number): Promise<void> =>
      new Promise((resolve) => {
        wake = () => {
          if (messages.length >= n) resolve();
        };
        wake();
      });
    await new Promise((r) => ws.once('open', r));
    await got(1);
    ws.send('one');
    ws.send('two');
    await got(3);
    ws.close();
    await new Promise((r) => ws.once('close', r));
    expect(messages).toEqual(['hello 127.0.0.1', 'echo one', 'echo two']);
    // The connection's plain HTTP still works afterwards.
    expect((await request(port)).body).toBe('plain');
  });

  it('streams a response before the backend has finished it', async () => {
    let finish!: () => void;
    const finished = new Promise<void>((r) => (finish = r));
    await h.backend('demo-web', 'stream', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      void finished.then(() => res.end('last'));
    });
    const port = await routed();
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, headers: { host: 'demo.localhost' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
            if (text === 'first;') finish(); // the first chunk arrived while the backend holds the rest
          });
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).toBe('first;last');
  });

  it('streams a request body to the backend before the client has sent all of it', async () => {
    let firstSeen!: () => void;
    const seen = new Promise<void>((r) => (firstSeen = r));
    await h.backend('demo-web', 'upload', (req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => {
        text += c.toString();
        if (text === 'part1;') firstSeen();
      });
      req.on('end', () => res.end(`got ${text}`));
    });
    const port = await routed();
    const res = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method: 'POST', headers: { host: 'demo.localhost' } },
        (r) => {
          let t = '';
          r.on('data', (c: Buffer) => (t += c.toString()));
          r.on('end', () => resolve(t));
        },
      );
      req.on('error', reject);
      req.write('part1;');
      void seen.then(() => req.end('part2'));
    });
    expect(res).toBe('got part1;part2');
  });

  it('carries a 1 MiB body each way intact', async () => {
    await h.backend('demo-web', 'echo', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(Buffer.concat(chunks)));
    });
    const port = await routed();
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 251;
    const res = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method: 'PUT', headers: { host: 'demo.localhost' } },
        (r) => {
          const chunks: Buffer[] = [];
          r.pipe(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) })).on(
            'finish',
            () => resolve(Buffer.concat(chunks)),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(res.equals(body)).toBe(true);
  });

  it('answers HEAD and 204 without a body and keeps the connection usable', async () => {
    await h.backend('demo-web', 'nobody', (req, res) => {
      if (req.url === '/204') {
        res.writeHead(204).end();
        return;
      }
      res.setHeader('content-length', '5');
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    });
    const port = await routed();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    h.defer(() => agent.destroy());
    expect((await request(port, { method: 'HEAD', agent })).status).toBe(200);
    expect((await request(port, { path: '/204', agent })).status).toBe(204);
    expect((await request(port, { agent })).body).toBe('hello');
  });
});

describe('balancing and stickiness', () => {
  it('round-robin spreads requests evenly', async () => {
    const bs = await Promise.all([
      h.backend('demo-web', 'a'),
      h.backend('demo-web', 'b'),
      h.backend('demo-web', 'c'),
    ]);
    const port = await routed('demo-web', {}, { balancing: 'round-robin' });
    for (let i = 0; i < 30; i++) await request(port);
    expect(bs.map((b) => b.count)).toEqual([10, 10, 10]);
  });

  for (const balancing of ['p2c', 'least-connections'] as const) {
    it(`${balancing} sends new requests away from a backend busy with slow ones`, async () => {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let slowCount = 0;
      const slow = await h.backend('demo-web', 'slow', (_req, res) => {
        slowCount++;
        void held.then(() => res.end('slow'));
      });
      const fast = await h.backend('demo-web', 'fast');
      const port = await routed('demo-web', {}, { balancing });
      // Occupy the slow backend: requests that land there stay in flight.
      const pending: Promise<unknown>[] = [];
      while (slowCount < 1) {
        pending.push(request(port));
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 5));
      }
      const before = slow.count;
      for (let i = 0; i < 20; i++) expect((await request(port)).body).toBe('fast');
      expect(slow.count).toBe(before);
      expect(fast.count).toBeGreaterThanOrEqual(20);
      release();
      await Promise.all(pending);
    });
  }

  it('pins a client to a backend with a signed cookie while it is ready, and ignores a forged one', async () => {
    const bs = await Promise.all([
      h.backend('demo-web', 'a'),
      h.backend('demo-web', 'b'),
      h.backend('demo-web', 'c'),
    ]);
    const port = await routed('demo-web', { sticky: true }, { balancing: 'round-robin' });
    const first = await request(port);
    const setCookie = first.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(
      /^flotilla_sticky=[a-c]\.[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    const cookie = must(setCookie.split(';')[0]);
    for (let i = 0; i < 9; i++) {
      const res = await request(port, { headers: { cookie: `other=1; ${cookie}` } });
      expect(res.body).toBe(first.body);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const forged = `flotilla_sticky=${first.body === 'a' ? 'b' : 'a'}.${cookie.split('.')[1]}`;
    const names = new Set<string>();
    for (let i = 0; i < 6; i++)
      names.add((await request(port, { headers: { cookie: forged } })).body);
    expect(names.size).toBeGreaterThan(1);
    // Its backend turns unready: the client moves, and gets a new cookie.
    await must(must(bs.find((b) => b.name === first.body)).registration).setReady(false);
    let moved: Awaited<ReturnType<typeof request>> | undefined;
    // Until the router has seen it go (a discovery event): bounded by time, 10 s for a loaded
    // machine, not by a count of 200 requests, whose time is what the machine makes of it.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      moved = await request(port, { headers: { cookie } });
      if (moved.body !== first.body) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(must(moved).body).not.toBe(first.body);
    expect(must(moved).headers['set-cookie']?.[0]).toMatch(
      new RegExp(`^flotilla_sticky=${must(moved).body}\\.`),
    );
  });
});

describe('observability', () => {
  it('exposes Prometheus metrics in a registry of its own, and one JSON access-log line per request', async () => {
    await h.backend('demo-web', 'web');
    const lines: string[] = [];
    const port = await routed(
      'demo-web',
      {},
      { accessLog: { write: (l: string) => lines.push(l) } },
    );
    const other = h.router(); // a second router in the same process: no clash
    await other.listen({});
    await request(port, { path: '/x?secret=1', headers: { 'x-request-id': 'req-1' } });
    await request(port, { host: 'unknown.localhost' });
    const text = await must(h.routers[0]).metrics.text();
    expect(text).toContain(
      'flotilla_router_requests_total{route="demo.localhost/",status="200"} 1',
    );
    expect(text).toContain('flotilla_router_requests_total{route="none",status="404"} 1');
    expect(text).toMatch(/flotilla_router_upstream_duration_seconds_count\{service="demo-web"\} 1/);
    expect(text).toMatch(
      /flotilla_router_upstream_duration_seconds_bucket\{le="\+Inf",service="demo-web"\} 1/,
    );
    expect(text).toContain('flotilla_router_active_connections');
    expect(await other.metrics.text()).not.toContain('status="200"');
    expect(lines).toHaveLength(2);
    const entry = JSON.parse(must(lines[0])) as Record<string, unknown>;
    expect(entry).toMatchObject({
      method: 'GET',
      host: 'demo.localhost',
      path: '/x',
      status: 200,
      requestId: 'req-1',
      route: 'demo.localhost/',
      remoteAddr: '127.0.0.1',
    });
    expect(JSON.parse(must(lines[1]))).toMatchObject({ status: 404 });
  });

  it('writes no access log by default', async () => {
    await h.backend('demo-web', 'web');
    const port = await routed();
    const writes: unknown[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: unknown, ...rest: unknown[]) => (
      writes.push(c),
      (orig as (...a: unknown[]) => boolean)(c, ...rest)
    )) as typeof process.stdout.write;
    try {
      await request(port);
    } finally {
      process.stdout.write = orig;
    }
    expect(writes.filter((w) => String(w).includes('"status"'))).toEqual([]);
  });
});
