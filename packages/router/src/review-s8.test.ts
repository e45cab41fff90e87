// Review of the shared client read buffer (internal/user-buffer-socket.ts): probes of the paths
// that keep client bytes past a read, and of close() with connections on the moved sockets.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, noise } from './test-support/harness.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

/** Writes `packet` at once and resolves with everything read until the router closes. */
async function exchange(port: number, packet: Buffer): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  let out = '';
  s.on('data', (c: Buffer) => (out += c.toString('latin1')));
  const closed = once(s, 'close');
  s.write(packet);
  await closed;
  return out;
}

describe('client bytes kept past a first read', () => {
  it('a chunked body with a trailer section and a pipelined request, in one read, while the backend is slow', async () => {
    await h.echoBackend('echo', '/slow');
    const port = await h.httpRouterFor('echo');
    const [a, b, two] = [randomBytes(20_000), randomBytes(9_000), randomBytes(5_000)];
    const packet = Buffer.concat([
      Buffer.from(
        'POST /slow HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: one\r\nTransfer-Encoding: chunked\r\n\r\n',
      ),
      Buffer.from(`${a.length.toString(16)}\r\n`),
      a,
      Buffer.from(`\r\n${b.length.toString(16)};ext=1\r\n`),
      b,
      Buffer.from('\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Sum: 1\r\n\r\n'),
      Buffer.from(
        `POST /second HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: two\r\nContent-Length: ${two.length}\r\nConnection: close\r\n\r\n`,
      ),
      two,
    ]);
    const stop = { done: false };
    const other = noise(port, stop);
    const out = await exchange(port, packet);
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
    expect(out).toContain(`/slow one ${sha(Buffer.concat([a, b]))}`);
    expect(out).toContain(`/second two ${sha(two)}`);
  });

  it('requests answered by the router itself (no route) with the next ones in the same read', async () => {
    await h.echoBackend('echo', '/slow');
    const port = await h.httpRouterFor('echo');
    const body = randomBytes(30_000);
    const packet = Buffer.concat([
      Buffer.from('GET /a HTTP/1.1\r\nHost: nowhere.localhost\r\n\r\n'),
      Buffer.from(
        `POST /slow HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: after-404\r\nContent-Length: ${body.length}\r\n\r\n`,
      ),
      body,
      Buffer.from(
        'GET /last HTTP/1.1\r\nHost: demo.localhost\r\nX-Tag: last\r\nConnection: close\r\n\r\n',
      ),
    ]);
    const stop = { done: false };
    const other = noise(port, stop);
    const out = await exchange(port, packet);
    stop.done = true;
    expect(await other).toBeGreaterThan(0);
    expect(out).toMatch(/^HTTP\/1\.1 404 /);
    expect(out).toContain(`/slow after-404 ${sha(body)}`);
    expect(out).toContain(`/last last ${sha(Buffer.alloc(0))}`);
  });
});

describe('close() with plain connections on the moved sockets', () => {
  it('ends an idle and a half-headed connection, stops listening, and resolves', async () => {
    await h.echoBackend('echo');
    const router = h.router({ closeTimeoutMs: 300 });
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'echo' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const idle = net.connect(port, '127.0.0.1');
    await once(idle, 'connect');
    idle.write('GET /x HTTP/1.1\r\nHost: demo.localhost\r\n\r\n');
    await once(idle, 'data');
    const half = net.connect(port, '127.0.0.1');
    await once(half, 'connect');
    half.write('GET /y HTTP/1.1\r\nHost: demo.loc');
    // Either may be reset (a connection cut at close): that is an end too.
    for (const s of [idle, half]) s.on('error', () => undefined);
    const closed = [idle, half].map((s) => new Promise((r) => s.once('close', r)));
    await router.close();
    await Promise.all(closed);
    const refused = net.connect(port, '127.0.0.1');
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
  });
});
