// Trailer sections through a real Router on loopback. A client's request trailers never reach
// a backend (a backend that merges them into its headers would take a forged X-Forwarded-For,
// Host or Content-Length from them); a backend's response trailers reach an HTTP/1.1 client
// less the hop-by-hop and framing fields. Malformed trailer fields are refused as malformed
// header fields are.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { selfSignedCert } from './test-support/cert.js';
import { Harness, must, raw, request } from './test-support/harness.js';

let h: Harness;
let port: number;
/** What the echo backend saw, per request. */
let seen: { url: string; body: string; trailers: string[]; headers: string[] }[];
/** Connections the router opened to the echo backend. */
let upstream: number;

const HOST = 'Host: demo.localhost\r\n';
const status = (out: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
const statuses = (out: string): number[] =>
  [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** Forged trailer fields: every one names a field the router sets, drops or frames by. */
const FORGED =
  'X-Forwarded-For: 6.6.6.6\r\nX-Request-Id: forged\r\nX-Real-IP: 6.6.6.6\r\n' +
  'Forwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Original-URL: /admin\r\n' +
  'Authorization: Basic Zm9yZ2VkOg==\r\nCookie: session=forged\r\nX-Checksum: abc\r\n';

beforeEach(async () => {
  h = new Harness();
  seen = [];
  upstream = 0;
  const web = await h.backend('web', 'web', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        url: req.url ?? '',
        body: Buffer.concat(chunks).toString('latin1'),
        trailers: req.rawTrailers,
        headers: req.rawHeaders,
      });
      res.end(`got ${req.url ?? ''}`);
    });
  });
  web.server.on('connection', () => upstream++);
  const router = h.router();
  await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
  await router.setRoute({ type: 'http', domain: 'wire.localhost', service: 'wire' });
  await router.setRoute({ type: 'http', domain: 'trailing.localhost', service: 'trailing' });
  port = must((await router.listen({ http: { port: 0 } })).http).port;
});
afterEach(async () => {
  await h.close();
});

/** Writes `parts` one by one, each after the previous left; resolves with all read until close. */
function trickle(parts: (string | Buffer)[]): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
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

describe('request trailers', () => {
  it('are dropped, every one of them; the body and the next request go on', async () => {
    const out = await raw(
      port,
      `POST /t HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n` +
        `5\r\nhello\r\n0\r\n${FORGED}\r\n` +
        `GET /next HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    );
    expect(statuses(out)).toEqual([200, 200]);
    expect(seen.map((s) => [s.url, s.body, s.trailers])).toEqual([
      ['/t', 'hello', []],
      ['/next', '', []],
    ]);
    // The head the backend got is the router's: no forged field came in through the trailers.
    const names = must(seen[0]).headers.map((n) => n.toLowerCase());
    for (const n of ['x-real-ip', 'forwarded', 'x-original-url', 'authorization', 'cookie'])
      expect(names).not.toContain(n);
    // Nor does it announce trailer fields that never come.
    expect(names).not.toContain('trailer');
  });

  it('are dropped when the section comes byte by byte, with the next request behind it', async () => {
    const head = `POST /slow HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n`;
    const section = `${FORGED}\r\n`;
    const out = await trickle([
      head,
      ...section.slice(0, -1),
      `${section.slice(-1)}GET /after HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    ]);
    expect(statuses(out)).toEqual([200, 200]);
    expect(seen.map((s) => [s.url, s.body, s.trailers])).toEqual([
      ['/slow', 'abc', []],
      ['/after', '', []],
    ]);
  });

  it('never carry framing or routing fields to the backend: its bytes end with the last chunk', async () => {
    let wire = '';
    await h.rawBackend('wire', 'wire-1', (s) => {
      s.on('data', (c: Buffer) => {
        wire += c.toString('latin1');
        if (wire.includes('\r\n0\r\n') && wire.endsWith('\r\n\r\n'))
          s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      });
    });
    const out = await raw(
      port,
      'POST /w HTTP/1.1\r\nHost: wire.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '4\r\nbody\r\n0\r\nHost: evil.localhost\r\nContent-Length: 30\r\n' +
        'Transfer-Encoding: chunked\r\nConnection: keep-alive\r\nUpgrade: h2c\r\n\r\n',
    );
    expect(status(out)).toBe(200);
    expect(wire.endsWith('\r\n\r\n4\r\nbody\r\n0\r\n\r\n')).toBe(true);
    expect(wire).not.toContain('evil.localhost');
  });

  it('are dropped from a request replayed on another backend', async () => {
    // The first connection to either backend is reset once the whole request is in: an
    // idempotent PUT goes to the other one, replayed from what the router kept.
    let connections = 0;
    const wires: string[] = [];
    const backend = (s: net.Socket): void => {
      const n = connections++;
      let wire = '';
      s.on('data', (c: Buffer) => {
        wire += c.toString('latin1');
        if (!wire.endsWith('\r\n\r\n') || !wire.includes('\r\n0\r\n')) return;
        wires.push(wire);
        if (n === 0) s.resetAndDestroy();
        else s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      });
    };
    await h.rawBackend('wire', 'wire-a', backend);
    await h.rawBackend('wire', 'wire-b', backend);
    const out = await raw(
      port,
      'PUT /r HTTP/1.1\r\nHost: wire.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        `4\r\nbody\r\n0\r\n${FORGED}\r\n`,
    );
    expect(status(out)).toBe(200);
    expect(wires).toHaveLength(2);
    for (const wire of wires) {
      expect(wire.endsWith('\r\n\r\n4\r\nbody\r\n0\r\n\r\n')).toBe(true);
      expect(wire).not.toContain('6.6.6.6, ');
    }
  });

  it.each([
    ['whitespace before the colon', 'X-T : a\r\n'],
    ['obsolete line folding', 'X-T: a\r\n folded\r\n'],
    ['no colon', 'X-T\r\n'],
    ['a name that is no token', 'X(T): a\r\n'],
  ])('with %s are refused (400), and nothing reaches a backend', async (_what, line) => {
    const out = await raw(
      port,
      `POST /bad HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${line}\r\n` +
        `GET /smuggled HTTP/1.1\r\n${HOST}\r\n`,
    );
    expect(statuses(out)).toEqual([400]);
    expect(out).toContain('invalid trailer');
    expect(seen).toEqual([]);
    expect(upstream).toBe(0);
  });
});

describe('response trailers', () => {
  /** A backend answering each request with a chunked body whose trailers are `section`. */
  async function trailing(section: string): Promise<{ connections: number }> {
    return h.rawBackend('trailing', 'trailing-1', (s) =>
      s.on('data', () =>
        s.write(
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Server-Timing, X-Kept\r\n' +
            `Connection: X-Hop\r\n\r\n5\r\nhello\r\n0\r\n${section}\r\n`,
        ),
      ),
    );
  }

  it('reach an HTTP/1.1 client less hop-by-hop and framing fields; the connection stays in step', async () => {
    const backend = await trailing(
      'Server-Timing: db;dur=53\r\nConnection: close\r\nKeep-Alive: timeout=1\r\n' +
        'Transfer-Encoding: chunked\r\nContent-Length: 5\r\nUpgrade: h2c\r\nTE: trailers\r\n' +
        'Proxy-Connection: close\r\nTrailer: X-More\r\nx-hop: 1\r\nX-Kept: 1\r\n',
    );
    const get = `GET / HTTP/1.1\r\nHost: trailing.localhost\r\n`;
    const out = await raw(port, `${get}\r\n${get}Connection: close\r\n\r\n`);
    const body = '5\r\nhello\r\n0\r\nServer-Timing: db;dur=53\r\nX-Kept: 1\r\n\r\n';
    const responses = out.split('HTTP/1.1 200 OK\r\n').slice(1);
    expect(responses).toHaveLength(2);
    for (const r of responses) expect(r.slice(r.indexOf('\r\n\r\n') + 4)).toBe(body);
    // Both went over one backend connection: the router read the section to its end.
    expect(backend.connections).toBe(1);
  });

  it('are filtered when the backend writes the section in pieces', async () => {
    const parts = [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0',
      '\r\nServer-Tim',
      'ing: db;dur=53\r',
      '\nConnection: cl',
      'ose\r\nX-Kept: 1\r\n',
      '\r',
      '\n',
    ];
    await h.rawBackend('trailing', 'trailing-pieces', (s) =>
      s.once('data', () => {
        let i = 0;
        const next = (): void => {
          const p = parts[i++];
          if (p !== undefined) s.write(p, () => setImmediate(next));
        };
        next();
      }),
    );
    const out = await raw(
      port,
      'GET / HTTP/1.1\r\nHost: trailing.localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out.slice(out.indexOf('\r\n\r\n') + 4)).toBe(
      '5\r\nhello\r\n0\r\nServer-Timing: db;dur=53\r\nX-Kept: 1\r\n\r\n',
    );
  });

  it('cut by a backend that dies in the section leave the client a body that never ends', async () => {
    await h.rawBackend('trailing', 'trailing-dies', (s) =>
      s.once('data', () =>
        s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-A: 1\r\n'),
      ),
    );
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: trailing.localhost\r\n\r\n');
    expect(status(out)).toBe(200);
    expect(out).toMatch(/\r\n\r\n5\r\nhello\r\n(0\r\n)?$/);
    // node:http, as a client, takes it for what it is: an aborted response.
    await expect(request(port, { host: 'trailing.localhost' })).rejects.toThrow();
  });

  it('with a malformed field cut the client off: it never gets the end of the body', async () => {
    // The section comes once the client has the data, so that the head is surely out.
    let backendSocket: net.Socket | undefined;
    await h.rawBackend('trailing', 'trailing-bad', (s) =>
      s.on('data', () => {
        backendSocket = s;
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      }),
    );
    const out = await new Promise<string>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      h.defer(() => c.destroy());
      let text = '';
      c.on('data', (d: Buffer) => {
        const had = text.includes('hello\r\n');
        text += d.toString('latin1');
        if (!had && text.includes('hello\r\n')) must(backendSocket).write('0\r\nX-Bad : 1\r\n\r\n');
      });
      c.on('error', () => undefined);
      c.on('close', () => resolve(text));
      c.write('GET / HTTP/1.1\r\nHost: trailing.localhost\r\n\r\n');
    });
    expect(status(out)).toBe(200);
    // At most the last chunk went on (a section is held back until it is complete and valid):
    // the body never ends.
    expect(out).toMatch(/\r\n\r\n5\r\nhello\r\n(0\r\n)?$/);
  });
});

describe('over HTTP/2', () => {
  it('trailers are dropped both ways', async () => {
    const tlsCert = selfSignedCert('localhost');
    await h.rawBackend('trailing', 'trailing-h2', (s) =>
      s.once('data', () =>
        s.write(
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Kept\r\n\r\n' +
            '5\r\nhello\r\n0\r\nX-Kept: 1\r\n\r\n',
        ),
      ),
    );
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'web' });
    await router.setRoute({ type: 'http', domain: 'trailing.localhost', service: 'trailing' });
    await router.setCertificate({
      domain: 'demo.localhost',
      ...tlsCert,
    });
    const tls = must((await router.listen({ https: { port: 0 } })).https).port;
    const client = http2.connect(`https://127.0.0.1:${tls}`, {
      servername: 'demo.localhost',
      rejectUnauthorized: false,
    });
    h.defer(() => client.close());
    /** The response's Trailer header, if any. */
    let announced: string | string[] | undefined;
    /** Sends a request (with a body and trailers when given); resolves with what came back. */
    const ask = (
      authority: string,
      trailers?: http2.OutgoingHttpHeaders,
    ): Promise<{ body: string; trailers: http2.IncomingHttpHeaders[] }> =>
      new Promise((resolve, reject) => {
        const got: http2.IncomingHttpHeaders[] = [];
        const r = client.request(
          {
            ':authority': authority,
            ':path': '/h2',
            ':method': trailers ? 'POST' : 'GET',
            ...(trailers ? { trailer: Object.keys(trailers).join(', ') } : {}),
          },
          { waitForTrailers: trailers !== undefined },
        );
        if (trailers !== undefined) r.on('wantTrailers', () => r.sendTrailers(trailers));
        let body = '';
        r.on('response', (headers) => (announced = headers.trailer));
        r.setEncoding('latin1');
        r.on('data', (d: string) => (body += d));
        r.on('trailers', (t: http2.IncomingHttpHeaders) => got.push(t));
        r.on('end', () => resolve({ body, trailers: got }));
        r.on('error', reject);
        r.end(trailers ? 'data' : undefined);
      });
    const sent = await ask('demo.localhost', {
      'x-forwarded-for': '6.6.6.6',
      'x-original-url': '/admin',
    });
    expect(sent.body).toBe('got /h2');
    expect(seen.map((x) => [x.body, x.trailers])).toEqual([['data', []]]);
    // Neither way is a trailer announced that never comes.
    expect(must(seen[0]).headers.map((n) => n.toLowerCase())).not.toContain('trailer');
    const back = await ask('trailing.localhost');
    expect(back.body).toBe('hello');
    expect(back.trailers).toEqual([]);
    expect(announced).toBeUndefined();
  });
});
