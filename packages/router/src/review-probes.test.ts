// A hostile client and a hostile backend against the HTTP/1 data path, through a real Router
// on loopback: framing the router and a backend could read differently, head limits at their
// edges, backends that break the rules, and bytes of one response showing up in another.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, raw, request } from './test-support/harness.js';

interface Seen {
  method: string;
  url: string;
  version: string;
  headers: string[];
  body: string;
}

let h: Harness;
let port: number;
let seen: Seen[];
/** Connections the router opened to the web backend. */
let upstream: number;

const HOST = 'Host: demo.localhost\r\n';
const status = (out: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

beforeEach(async () => {
  h = new Harness();
  seen = [];
  upstream = 0;
  const web = await h.backend('web', 'web', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        version: req.httpVersion,
        headers: req.rawHeaders,
        body,
      });
      res.end(`got ${req.url ?? ''} ${body.length}`);
    });
  });
  web.server.on('connection', () => upstream++);
  const router = h.router({ maxHeaderBytes: 1024, maxHeaderCount: 20, headersTimeoutMs: 3000 });
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  await router.setRoute({ type: 'http', domain: 'hostile.localhost', service: 'hostile' });
  await router.setRoute({ type: 'http', domain: '*.wild.localhost', service: 'web' });
  await router.setRoute({
    type: 'http',
    domain: '*.secure.localhost',
    service: 'web',
    httpsOnly: true,
  });
  port = must((await router.listen({ http: { port: 0 } })).http).port;
});
afterEach(async () => {
  await h.close();
});

/**
 * A raw backend for `hostile.localhost` that answers each read with `reply(s, bytes)` (the
 * router sends one small request at a time, so a read is a request).
 */
async function hostile(
  reply: (s: net.Socket, bytes: string) => void,
): Promise<{ connections: number }> {
  return h.rawBackend('hostile', 'hostile-1', (s) =>
    s.on('data', (c: Buffer) => reply(s, c.toString('latin1'))),
  );
}

/** Writes `parts` one by one, each after the previous left; resolves with all read until close. */
function trickle(parts: (string | Buffer)[]): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    // The router may close while parts are still being written (that is what some tests check).
    s.on('error', () => undefined);
    s.on('close', () => resolve(out));
    let i = 0;
    const next = (): void => {
      const p = parts[i++];
      if (p === undefined) return;
      s.write(p, () => setImmediate(next));
    };
    s.on('connect', next);
  });
}

describe('request framing a backend could read differently is refused', () => {
  const refused: [string, string, number][] = [
    [
      'Transfer-Encoding in an HTTP/1.0 request',
      `POST / HTTP/1.0\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      'Transfer-Encoding and Content-Length in an HTTP/1.0 request',
      `POST / HTTP/1.0\r\n${HOST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    ['a hex Content-Length', `POST / HTTP/1.1\r\n${HOST}Content-Length: 0x4\r\n\r\nabcd`, 400],
    [
      'a Content-Length with a space inside',
      `POST / HTTP/1.1\r\n${HOST}Content-Length: 1 4\r\n\r\nabcd`,
      400,
    ],
    ['an empty Content-Length', `POST / HTTP/1.1\r\n${HOST}Content-Length:\r\n\r\n`, 400],
    ['an empty header name', `GET / HTTP/1.1\r\n${HOST}: x\r\n\r\n`, 400],
    ['a NUL in a header name', `GET / HTTP/1.1\r\n${HOST}X-A\0: x\r\n\r\n`, 400],
    ['a control byte in a value', `GET / HTTP/1.1\r\n${HOST}X-A: a\x01b\r\n\r\n`, 400],
    ['DEL in a value', `GET / HTTP/1.1\r\n${HOST}X-A: a\x7fb\r\n\r\n`, 400],
    ['a bare CR in the request line', `GET /a\rb HTTP/1.1\r\n${HOST}\r\n`, 400],
    ['a bare LF ending a header', `GET / HTTP/1.1\r\n${HOST}X-A: a\n\r\n`, 400],
    ['a tab-folded line', `GET / HTTP/1.1\r\n${HOST}X-A: a\r\n\tb\r\n\r\n`, 400],
    ['a tab before the colon', `GET / HTTP/1.1\r\n${HOST}X-A\t: a\r\n\r\n`, 400],
    ['a byte above 0x7f in the target', `GET /caf\xe9 HTTP/1.1\r\n${HOST}\r\n`, 400],
    ['a byte above 0x7f in the method', `G\xc9T / HTTP/1.1\r\n${HOST}\r\n`, 400],
    ['a byte above 0x7f in a header name', `GET / HTTP/1.1\r\n${HOST}X-\xe9: a\r\n\r\n`, 400],
    ['two spaces in the request line', `GET  / HTTP/1.1\r\n${HOST}\r\n`, 400],
    ['a lower-case version', `GET / http/1.1\r\n${HOST}\r\n`, 400],
    [
      'a chunk size followed by a second number',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3 4\r\nabc\r\n0\r\n\r\n`,
      400,
    ],
    [
      'a chunk-size line longer than the limit',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n${'0'.repeat(40)}3\r\nabc\r\n0\r\n\r\n`,
      400,
    ],
    [
      'a chunk extension without end',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3;${'e'.repeat(5000)}\r\nabc\r\n0\r\n\r\n`,
      400,
    ],
    [
      'a bare LF after a chunk size',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`,
      400,
    ],
    [
      'a bare LF in a trailer',
      `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: a\nb\r\n\r\n`,
      400,
    ],
  ];
  it.each(refused)('%s', async (_name, text, expected) => {
    const out = await raw(port, `${text}GET /smuggled HTTP/1.1\r\n${HOST}\r\n`);
    expect(status(out)).toBe(expected);
    // The router's own answer, not a backend's: nothing went on.
    expect(out).toContain('content-type: text/plain; charset=utf-8');
    expect(out.match(/HTTP\/1\.1 /g)?.length).toBe(1);
    expect(upstream).toBe(0);
  });

  it('never lets Connection strip the Content-Length that frames the body it forwards', async () => {
    const body = `GET /smuggled HTTP/1.1\r\n${HOST}\r\n`;
    const out = await raw(
      port,
      `POST /a HTTP/1.1\r\n${HOST}Connection: content-length, host\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}` +
        `GET /b HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    );
    expect(out.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
    expect(seen.map((s) => [s.url, s.body])).toEqual([
      ['/a', body],
      ['/b', ''],
    ]);
    expect(seen[0]?.headers).toContain('demo.localhost');
  });

  it('accepts what is valid: leading zeros, equal Content-Lengths, chunk extensions, trailers', async () => {
    const out = await raw(
      port,
      `POST /z HTTP/1.1\r\n${HOST}Content-Length: 0004\r\n\r\nabcd` +
        `POST /e HTTP/1.1\r\n${HOST}Content-Length: 3\r\ncontent-length: 3\r\n\r\nabc` +
        `POST /c HTTP/1.1\r\n${HOST}Transfer-Encoding: Chunked\r\n\r\n3;a=b;c="d"\r\nabc\r\n00\r\nX-T: 1\r\n\r\n` +
        `GET /last HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    );
    expect(out.match(/HTTP\/1\.1 200/g)?.length).toBe(4);
    expect(seen.map((s) => [s.url, s.body])).toEqual([
      ['/z', 'abcd'],
      ['/e', 'abc'],
      ['/c', 'abc'],
      ['/last', ''],
    ]);
    // Two equal Content-Lengths go on as one (node:http, like others, refuses a repeated one).
    expect(seen[1]?.headers.filter((n) => n.toLowerCase() === 'content-length')).toEqual([
      'Content-Length',
    ]);
  });
});

describe('head limits and boundaries', () => {
  /** A GET head of exactly `size` bytes. */
  const headOf = (size: number, extra = ''): string => {
    const start = `GET /size HTTP/1.1\r\n${HOST}Connection: close\r\n${extra}X-Pad: `;
    return `${start}${'p'.repeat(size - start.length - 4)}\r\n\r\n`;
  };

  it('takes a head of exactly maxHeaderBytes and refuses one byte more with 431', async () => {
    expect(headOf(1024).length).toBe(1024);
    expect(status(await raw(port, headOf(1024)))).toBe(200);
    expect(status(await raw(port, headOf(1025)))).toBe(431);
    // Leading empty lines count too: they are bytes the router had to hold.
    expect(status(await raw(port, `\r\n${headOf(1023)}`))).toBe(431);
    expect(seen.length).toBe(1);
  });

  it('takes exactly maxHeaderCount fields and refuses one more with 431', async () => {
    const fields = (n: number): string =>
      Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
    // Host and Connection are two of them.
    const ok = await raw(port, `GET / HTTP/1.1\r\n${HOST}Connection: close\r\n${fields(18)}\r\n`);
    expect(status(ok)).toBe(200);
    const over = await raw(port, `GET / HTTP/1.1\r\n${HOST}Connection: close\r\n${fields(19)}\r\n`);
    expect(status(over)).toBe(431);
  });

  it('parses a head and body sent one byte at a time, after empty lines', async () => {
    const text = `\r\n\r\nPOST /bytes HTTP/1.1\r\n${HOST}Content-Length: 5\r\nConnection: close\r\n\r\nhello`;
    const out = await trickle([...text]);
    expect(status(out)).toBe(200);
    expect(out.endsWith('got /bytes 5')).toBe(true);
    expect(seen.map((s) => [s.url, s.body])).toEqual([['/bytes', 'hello']]);
  });

  it('parses a request split in two at every byte', async () => {
    const text = `\r\nPOST /split HTTP/1.1\r\n${HOST}Content-Length: 3\r\nConnection: close\r\n\r\nabc`;
    const outs: string[] = [];
    for (let i = 1; i < text.length; i += 8) {
      const batch = [];
      for (let j = i; j < Math.min(i + 8, text.length); j++)
        batch.push(trickle([text.slice(0, j), text.slice(j)]));
      outs.push(...(await Promise.all(batch)));
    }
    expect(outs.length).toBe(text.length - 1);
    for (const out of outs) expect(out.endsWith('got /split 3')).toBe(true);
  });

  it('answers three pipelined requests in one packet, the last finished later', async () => {
    const a = `GET /1 HTTP/1.1\r\n${HOST}\r\n`;
    const b = `POST /2 HTTP/1.1\r\n${HOST}Content-Length: 3\r\n\r\nxyz`;
    const c = `GET /3 HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`;
    const out = await trickle([a + b + c.slice(0, 10), c.slice(10)]);
    expect([...out.matchAll(/got (\/\d) (\d)/g)].map((m) => `${m[1]} ${m[2]}`)).toEqual([
      '/1 0',
      '/2 3',
      '/3 0',
    ]);
  });

  it('reads nothing after a Connection: close request', async () => {
    const out = await raw(
      port,
      `GET /1 HTTP/1.1\r\n${HOST}Connection: close\r\n\r\nGET /smuggled HTTP/1.1\r\n${HOST}\r\n\r\n`,
    );
    expect(out.match(/HTTP\/1\.1 /g)?.length).toBe(1);
    expect(out.toLowerCase()).toContain('connection: close');
    expect(seen.map((s) => s.url)).toEqual(['/1']);
  });
});

describe('a hostile backend', () => {
  const get = `GET / HTTP/1.1\r\nHost: hostile.localhost\r\nConnection: close\r\n\r\n`;

  it('two different Content-Lengths, a chunked HTTP/1.0 answer, control bytes are a 502', async () => {
    const replies = [
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 200 O\0K\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\x1b[2J\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-A\x01: a\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    ];
    let n = 0;
    await hostile((s) => s.end(replies[n++] ?? ''));
    for (const reply of replies) expect(status(await raw(port, get)), reply).toBe(502);
  });

  it('never lets Connection strip the Content-Length that frames a response', async () => {
    await hostile((s, got) => {
      if (!got.includes('/second')) {
        // Without its Content-Length, the client would read the next answer as this body.
        s.write('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nfirst');
      } else {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
      }
    });
    const out = await raw(
      port,
      'GET /first HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n' +
        'GET /second HTTP/1.1\r\nHost: hostile.localhost\r\nConnection: close\r\n\r\n',
    );
    const heads = out.split('HTTP/1.1 200 OK\r\n').slice(1);
    expect(heads.length).toBe(2);
    expect(heads[0]?.toLowerCase()).toContain('content-length: 5\r\n');
  });

  it("passes two equal Content-Lengths of a response on as one line, as it does a request's", async () => {
    await hostile((s) =>
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\ncontent-length: 2\r\n\r\nok'),
    );
    // node:http (like others) refuses a response with a repeated Content-Length.
    const res = await request(port, { host: 'hostile.localhost' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok');
    const out = await raw(port, get);
    expect(out.toLowerCase().split('content-length: 2\r\n').length).toBe(2);
    expect(out).toContain('X-A: 1\r\n');
  });

  it('a Content-Length longer than the body, then a close: the client is cut off, not kept', async () => {
    await hostile((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort'));
    const out = await raw(port, `GET / HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n`);
    // The connection closed (raw resolved before its 5 s timeout) with the 5 bytes only.
    expect(out.endsWith('\r\n\r\nshort')).toBe(true);
  });

  it('passes a 100 then a 200 in one read and in two', async () => {
    await hostile((s, got) => {
      if (got.includes('/one'))
        s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else {
        s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2');
        setTimeout(() => s.end('00 OK\r\nContent-Length: 2\r\n\r\nok'), 20);
      }
    });
    for (const path of ['/one', '/two']) {
      const out = await raw(port, `GET ${path} HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n`, {
        untilIncludes: '\r\n\r\nok',
      });
      expect(out).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/);
    }
  });

  it('parses a 100 and a 200 split in two at every byte', async () => {
    const reply =
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 5\r\n\r\nhello';
    await hostile((s, got) => {
      const at = Number(/GET \/(\d+)/.exec(got)?.[1]);
      s.write(reply.slice(0, at));
      setTimeout(() => s.write(reply.slice(at)), 5);
    });
    for (let at = 1; at < reply.length; at++) {
      const out = await raw(port, `GET /${at} HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n`, {
        untilIncludes: '\r\n\r\nhello',
      });
      expect(out, `split at ${at}`).toBe(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 5\r\n\r\nhello',
      );
    }
  });

  it('drops a body after a 204 and never reuses that connection', async () => {
    const st = await hostile((s) => {
      s.write('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
    });
    const out = await raw(
      port,
      'GET /1 HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n' +
        'GET /2 HTTP/1.1\r\nHost: hostile.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out).not.toContain('evil');
    expect(out.match(/HTTP\/1\.1 204/g)?.length).toBe(2);
    expect(st.connections).toBe(2);
  });

  it('an answer before the request body: the rest of the body is never read as a request', async () => {
    await hostile((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly'));
    const smuggled = `GET /smuggled HTTP/1.1\r\n${HOST}\r\n`;
    const out = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        // The body goes only once the answer is in: the router must not read it as a head.
        if (got.endsWith('early')) s.write(smuggled);
      });
      s.write(
        `POST / HTTP/1.1\r\nHost: hostile.localhost\r\nContent-Length: ${smuggled.length}\r\n\r\n`,
      );
    });
    expect(out.match(/HTTP\/1\.1 /g)?.length).toBe(1);
    expect(out.toLowerCase()).toContain('connection: close');
    expect(upstream).toBe(0);
  });

  it('a backend that closes mid-body, or sends a bad chunk size, cuts the client off', async () => {
    await hostile((s, got) => {
      if (got.includes('/chunked')) {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
        setTimeout(() => s.end('zz\r\nxx\r\n0\r\n\r\n'), 20);
      } else s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    });
    for (const path of ['/length', '/chunked']) {
      const t0 = Date.now();
      const out = await raw(port, `GET ${path} HTTP/1.1\r\nHost: hostile.localhost\r\n\r\n`, {
        timeoutMs: 4000,
      });
      // Closed by the router (well before raw's own timeout), the head and partial body only.
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(status(out)).toBe(200);
      expect(out).toMatch(/(partial|\r\n3\r\nabc\r\n)$/);
    }
  });
});

describe('bytes of one response never reach another', () => {
  it('gives 40 concurrent clients, some slow, their own bodies', async () => {
    const bodyFor = (n: number): Buffer => {
      const size = 1000 + ((n * 7919) % 90_000);
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i++) b[i] = (n * 31 + i * 7) & 0xff;
      return b;
    };
    await h.backend('mix', 'mix', (req, res) => {
      const n = Number(req.url?.slice(1));
      const body = bodyFor(n);
      if (n % 2 === 0) res.setHeader('content-length', body.length);
      // Odd ones chunked, written in three pieces.
      res.write(body.subarray(0, 100));
      setImmediate(() => {
        res.write(body.subarray(100, 700));
        res.end(body.subarray(700));
      });
    });
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'mix.localhost', service: 'mix' });
    const mport = must((await router.listen({ http: { port: 0 } })).http).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    h.defer(() => agent.destroy());
    const one = (n: number): Promise<string> =>
      new Promise((resolve, reject) => {
        http
          .get(
            {
              host: '127.0.0.1',
              port: mport,
              path: `/${n}`,
              agent,
              headers: { host: 'mix.localhost' },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => {
                chunks.push(c);
                if (n % 3 === 0) {
                  res.pause();
                  setTimeout(() => res.resume(), 1);
                }
              });
              res.on('end', () => resolve(sha(Buffer.concat(chunks))));
              res.on('error', reject);
            },
          )
          .on('error', reject);
      });
    const ns = Array.from({ length: 40 }, (_, i) => i);
    const got = await Promise.all(ns.map(one));
    expect(got).toEqual(ns.map((n) => sha(bodyFor(n))));
  });
});

describe('headers as the backend sees them', () => {
  it('appends to X-Forwarded-For, drops hop-by-hop and spoofed forwarded fields in any case', async () => {
    const out = await raw(
      port,
      `GET /h HTTP/1.1\r\n${HOST}X-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n` +
        'X-FORWARDED-PROTO: https\r\nX-Request-Start: t=1\r\nKEEP-ALIVE: 5\r\nTE: trailers\r\n' +
        'Proxy-Connection: x\r\nUpgrade: h2c\r\nCONNECTION: X-Secret, close\r\nx-SECRET: 1\r\nX-Kept: k\r\n\r\n',
    );
    expect(status(out)).toBe(200);
    const hs = must(seen[0]).headers;
    const pairs: [string, string][] = [];
    for (let i = 0; i < hs.length; i += 2) pairs.push([must(hs[i]).toLowerCase(), must(hs[i + 1])]);
    const names = pairs.map((p) => p[0]);
    expect(pairs.filter((p) => p[0] === 'x-forwarded-for')).toEqual([
      ['x-forwarded-for', '1.2.3.4, 5.6.7.8, 127.0.0.1'],
    ]);
    expect(pairs.filter((p) => p[0] === 'x-forwarded-proto')).toEqual([
      ['x-forwarded-proto', 'http'],
    ]);
    expect(pairs.filter((p) => p[0] === 'x-request-start').length).toBe(1);
    for (const gone of [
      'keep-alive',
      'te',
      'proxy-connection',
      'upgrade',
      'connection',
      'x-secret',
    ])
      expect(names).not.toContain(gone);
    expect(pairs).toContainEqual(['x-kept', 'k']);
  });

  it('a Host that is no host name matches no wildcard route, and never makes a redirect', async () => {
    const ask = (host: string): Promise<string> =>
      raw(port, `GET /p HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    for (const host of [
      'x.evil.test/.wild.localhost',
      'x.evil.test/.secure.localhost',
      'a.wild.localhost:80@evil.test',
      'a.secure.localhost:@evil.test',
      'evil.test\\.wild.localhost',
      'evil.test?.secure.localhost',
      'a b.wild.localhost',
    ]) {
      const out = await ask(host);
      expect(status(out), host).toBe(404);
      expect(out.toLowerCase()).not.toContain('location:');
    }
    expect(upstream).toBe(0);
    const redirect = await ask('A.Secure.localhost.:8080');
    expect(status(redirect)).toBe(301);
    expect(redirect).toContain('location: https://A.Secure.localhost./p\r\n');
    expect(status(await ask('a.wild.localhost:8080'))).toBe(200);
    expect(status(await ask('[::1]:80'))).toBe(404);
  });

  it('refuses a trailer section without end (it counts in no body limit)', async () => {
    const trailers = Array.from({ length: 3000 }, (_, i) => `X-T${i}: ${'t'.repeat(40)}\r\n`);
    const out = await raw(
      port,
      `POST /t HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${trailers.join('')}\r\n`,
    );
    expect(status(out)).toBe(400);
    expect(out).toContain('trailers too large');
    expect(seen).toEqual([]);
  });

  it('an HTTP/1.0 request without Host gets a 404, not some route', async () => {
    const out = await raw(port, 'GET / HTTP/1.0\r\n\r\n');
    expect(status(out)).toBe(404);
    expect(seen).toEqual([]);
  });
});
