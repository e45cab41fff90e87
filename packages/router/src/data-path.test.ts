// Bytes through the HTTP/1 data path, byte for byte: upstream connections read into a buffer
// of their own that is reused between reads, so any byte a slow client has not taken yet must
// survive the next read. Slow readers, split heads, pipelining, a backend that says too much.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, raw, request } from './test-support/harness.js';

const MIB = 1024 * 1024;
const payload = randomBytes(8 * MIB);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let h: Harness;

beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

/**
 * GETs `paths` one after the other on one keep-alive connection, reading each response
 * slowly (paused for `pauseMs` after every chunk); resolves with the bodies.
 */
function slowGets(port: number, paths: string[], pauseMs: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const bodies: Buffer[] = [];
    const next = (): void => {
      const path = paths[bodies.length];
      if (path === undefined) {
        agent.destroy();
        resolve(bodies);
        return;
      }
      const req = http.get(
        { host: '127.0.0.1', port, path, agent, headers: { host: 'demo.localhost' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
          });
          res.on('end', () => {
            bodies.push(Buffer.concat(chunks));
            next();
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
    };
    next();
  });
}

describe('response bytes arrive intact', () => {
  it('gives slow readers 1 MiB and 8 MiB bodies byte for byte: Content-Length, chunked, small pieces', async () => {
    await h.backend('big', 'big', (req, res) => {
      const body = req.url?.startsWith('/big') ? payload : payload.subarray(0, MIB);
      if (req.url === '/big/trickle') {
        // Small pieces, one per turn of the backend's loop: the router reads them one by one.
        res.setHeader('content-length', body.length);
        let at = 0;
        const next = (): void => {
          if (at >= body.length) {
            res.end();
            return;
          }
          const ok = res.write(body.subarray(at, at + 3000));
          at += 3000;
          if (ok) setImmediate(next);
          else res.once('drain', next);
        };
        next();
      } else if (req.url?.endsWith('/chunked')) {
        // No Content-Length: node:http frames it chunked, in pieces of odd sizes.
        for (let at = 0; at < body.length; at += 65_537) res.write(body.subarray(at, at + 65_537));
        res.end();
      } else {
        res.setHeader('content-length', body.length);
        res.end(body);
      }
    });
    const port = await h.httpRouterFor('big');
    const expected = sha(payload.subarray(0, MIB));
    const runs = await Promise.all([
      slowGets(port, ['/length', '/chunked', '/length'], 2),
      slowGets(port, ['/chunked', '/length'], 1),
    ]);
    for (const bodies of runs) for (const b of bodies) expect(sha(b)).toBe(expected);
    // 8 MiB to a reader that stalls: the socket buffers fill, writes to it stop half-way.
    const big = await slowGets(port, ['/big', '/big/chunked', '/big/trickle'], 3);
    for (const b of big) expect(sha(b)).toBe(sha(payload));
  });

  it('forwards a head split across reads and a body that trickles in', async () => {
    const body = payload.subarray(0, 40_000);
    await h.rawBackend('trickle', 'trickle-raw', (s) => {
      s.once('data', () => {
        const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`;
        const pieces = [
          head.slice(0, 7),
          head.slice(7, 30),
          head.slice(30) + body.subarray(0, 5).toString('latin1'),
          body.subarray(5, 20_000),
          body.subarray(20_000),
        ];
        const send = (): void => {
          const p = pieces.shift();
          if (p === undefined) return;
          s.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
          setTimeout(send, 20);
        };
        send();
      });
    });
    const port = await h.httpRouterFor('trickle');
    const [got] = await slowGets(port, ['/'], 1);
    expect(sha(must(got))).toBe(sha(body));
  });

  it('passes header values with bytes above 0x7f through unchanged', async () => {
    await h.rawBackend('latin', 'latin-raw', (s) => {
      s.once('data', (req: Buffer) => {
        // Echo the request's X-Name value (as bytes) in a response header and the body.
        const m = /\r\nx-name: ([^\r]*)\r\n/i.exec(req.toString('latin1'));
        const value = Buffer.from(m?.[1] ?? '', 'latin1');
        s.write(
          Buffer.concat([
            Buffer.from('HTTP/1.1 200 OK\r\nX-Echo: ', 'latin1'),
            value,
            Buffer.from(`\r\nContent-Length: ${value.length}\r\n\r\n`, 'latin1'),
            value,
          ]),
        );
      });
    });
    const port = await h.httpRouterFor('latin');
    const value = Buffer.from([0x63, 0xe9, 0xff, 0x80, 0x20, 0x7e]);
    const out = await raw(
      port,
      Buffer.concat([
        Buffer.from('GET / HTTP/1.1\r\nHost: demo.localhost\r\nX-Name: ', 'latin1'),
        value,
        Buffer.from('\r\nConnection: close\r\n\r\n', 'latin1'),
      ]),
    );
    const bytes = Buffer.from(out, 'latin1');
    expect(bytes.includes(Buffer.concat([Buffer.from('X-Echo: ', 'latin1'), value]))).toBe(true);
    expect(bytes.subarray(bytes.length - value.length).equals(value)).toBe(true);
  });
});

describe('request bytes arrive intact', () => {
  it('passes binary bodies on byte for byte, with the head or after it, by length and chunked', async () => {
    await h.backend('sum', 'sum', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(sha(Buffer.concat(chunks))));
    });
    const port = await h.httpRouterFor('sum');
    // 1 KiB goes out in one write with the head; 300 KiB does not fit and follows it.
    for (const size of [1, 1024, 300 * 1024]) {
      const body = payload.subarray(size, 2 * size);
      const res = await request(port, { method: 'POST', body });
      expect(res.body).toBe(sha(body));
      const chunked = await request(port, {
        method: 'POST',
        body,
        headers: { 'transfer-encoding': 'chunked' },
      });
      expect(chunked.body).toBe(sha(body));
    }
  });
});

describe('request heads as the backend sees them', () => {
  it('copies the request line as sent after empty lines, and drops what Connection names', async () => {
    let seen = '';
    await h.rawBackend('heads', 'heads-raw', (s) => {
      s.on('data', (c: Buffer) => {
        seen += c.toString('latin1');
        if (seen.includes('\r\n\r\n')) s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      });
    });
    const port = await h.httpRouterFor('heads');
    const out = await raw(
      port,
      '\r\n\r\nPOST /p?q=1 HTTP/1.0\r\nHost: demo.localhost\r\nConnection: x-drop\r\n' +
        'X-Drop: 1\r\nX-Keep:  a  b\r\nContent-Length: 3\r\n\r\nabc',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(
      seen.startsWith('POST /p?q=1 HTTP/1.0\r\nHost: demo.localhost\r\nX-Keep:  a  b\r\n'),
    ).toBe(true);
    expect(seen.toLowerCase()).not.toContain('x-drop');
    expect(seen.toLowerCase()).not.toContain('connection: x-drop');
    expect(seen).toMatch(/\r\nx-forwarded-for: 127\.0\.0\.1\r\n/);
    expect(seen.endsWith('\r\n\r\nabc')).toBe(true);
  });
});

describe('framing between requests', () => {
  it('answers pipelined requests in order, each from its own response', async () => {
    await h.backend('echo', 'echo', (req, res) => {
      // The first answer is the slowest: order must come from the router, not the timing.
      const delay = req.url === '/a' ? 50 : 0;
      setTimeout(() => res.end(`path ${req.url}`), delay);
    });
    const port = await h.httpRouterFor('echo');
    const out = await raw(
      port,
      'GET /a HTTP/1.1\r\nHost: demo.localhost\r\n\r\n' +
        'GET /b HTTP/1.1\r\nHost: demo.localhost\r\n\r\n' +
        'GET /c HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n',
    );
    const bodies = [...out.matchAll(/\r\n\r\n(path \/[abc])/g)].map((m) => m[1]);
    expect(bodies).toEqual(['path /a', 'path /b', 'path /c']);
  });

  it('cuts a response at its Content-Length and never reuses a backend connection that said more', async () => {
    const st = await h.rawBackend('chatty', 'chatty-raw', (s) => {
      s.on('data', () => {
        s.write(
          'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad',
        );
      });
    });
    const port = await h.httpRouterFor('chatty');
    const out = await raw(
      port,
      'GET /1 HTTP/1.1\r\nHost: demo.localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200 OK/g)?.length).toBe(2);
    expect(out).not.toContain('bad');
    expect([...out.matchAll(/\r\n\r\n(hello)/g)].length).toBe(2);
    // The second request went on a new connection: the first had bytes past its response.
    expect(st.connections).toBe(2);
  });

  it('closes quietly on a head cut off mid-way and keeps serving others', async () => {
    await h.backend('web', 'web');
    const port = await h.httpRouterFor('web');
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => resolve(got));
      s.end('GET / HTTP/1.1\r\nHost: demo.loc');
    });
    expect(out).toBe('');
    const res = await request(port);
    expect(res.status).toBe(200);
    expect(res.body).toBe('web');
  });
});

describe('backpressure', () => {
  it('holds the backend back while a client does not read, and lets it go when the client leaves', async () => {
    let written = 0;
    let backendClosed!: () => void;
    const closed = new Promise<void>((r) => (backendClosed = r));
    await h.backend('flood', 'flood', (_req, res) => {
      res.socket?.on('close', () => backendClosed());
      const chunk = payload.subarray(0, 256 * 1024);
      // An endless body, written as fast as the router takes it.
      const pump = (): void => {
        while (!res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const port = await h.httpRouterFor('flood');
    const client = net.connect(port, '127.0.0.1');
    // Reset by the router's close when the test ends early (unread bytes): not an uncaught error.
    client.on('error', () => undefined);
    h.defer(() => client.destroy());
    client.pause(); // never reads
    client.write('GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n');
    // Until the backend stops getting rid of bytes: the router stopped reading it.
    let last = -1;
    while (written !== last) {
      last = written;
      await new Promise((r) => setTimeout(r, 300));
    }
    // Socket buffers on the way hold some MiB; an unbounded proxy would hold all of them.
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThan(64 * MIB);
    client.destroy();
    await closed;
  });

  it('gives a slow reader a tunnel (Upgrade) byte for byte', async () => {
    const body = payload.subarray(0, 4 * MIB);
    await h.rawBackend('ws', 'ws-raw', (s) => {
      s.once('data', () => {
        s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
        // Small pieces, one per turn of the loop, then the end.
        let at = 0;
        const next = (): void => {
          if (at >= body.length) {
            s.end();
            return;
          }
          const ok = s.write(body.subarray(at, at + 3000));
          at += 3000;
          if (ok) setImmediate(next);
          else s.once('drain', next);
        };
        next();
      });
    });
    const port = await h.httpRouterFor('ws');
    const got = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        s.pause();
        setTimeout(() => s.resume(), 3);
      });
      s.on('error', reject);
      s.on('end', () => {
        s.destroy();
        resolve(Buffer.concat(chunks));
      });
      s.write(
        'GET / HTTP/1.1\r\nHost: demo.localhost\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n',
      );
    });
    const headEnd = got.indexOf('\r\n\r\n') + 4;
    expect(got.subarray(0, headEnd).toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    expect(sha(got.subarray(headEnd))).toBe(sha(body));
  });
});
