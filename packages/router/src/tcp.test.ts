// TCP routes: a listener per route port, forwarding to ready backends, changed live.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, waitFor } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

async function echoServer(tag: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(`${tag}:${d.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function talk(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    s.on('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('TCP routes', () => {
  it('forwards connections to a ready backend, skipping one that refuses', async () => {
    const echo = await echoServer('db');
    h.defer(() => echo.close());
    await h.discovery.register({
      service: 'db',
      id: 'db-1',
      addr: `127.0.0.1:${echo.port}`,
      ready: true,
      ttlMs: 60_000,
    });
    const dead = await freePort();
    await h.discovery.register({
      service: 'db',
      id: 'db-dead',
      addr: `127.0.0.1:${dead}`,
      ready: true,
      ttlMs: 60_000,
    });
    const port = await freePort();
    const router = h.router({ balancing: 'round-robin' });
    await router.setRoute({ type: 'tcp', port, service: 'db' });
    await router.listen({ tcp: { host: '127.0.0.1' } });
    for (let i = 0; i < 4; i++) expect(await talk(port, `ping${i}`)).toBe(`db:ping${i}`);
  });

  it('opens and closes listeners as TCP routes come and go', async () => {
    const echo = await echoServer('cache');
    h.defer(() => echo.close());
    await h.discovery.register({
      service: 'cache',
      id: 'c-1',
      addr: `127.0.0.1:${echo.port}`,
      ready: true,
      ttlMs: 60_000,
    });
    const router = h.router();
    await router.listen({});
    const port = await freePort();
    const added = waitFor(
      router,
      'routes',
      (routes: readonly { type: string }[]) => routes.length === 1,
    );
    const route = await router.setRoute({ type: 'tcp', port, service: 'cache' });
    await added;
    // the listener binds right after the routes change
    let answer = '';
    for (let i = 0; i < 100 && answer === ''; i++)
      answer = await talk(port, 'x').catch(
        () => new Promise<string>((r) => setTimeout(() => r(''), 10)),
      );
    expect(answer).toBe('cache:x');
    const removed = waitFor(router, 'routes', (routes: readonly unknown[]) => routes.length === 0);
    await router.removeRoute(route.id);
    await removed;
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      refused = await talk(port, 'x').then(
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 10)),
        () => true,
      );
    }
    expect(refused).toBe(true);
  });

  it('reports a port it cannot bind as a warning with a code, and keeps running', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    h.defer(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as net.AddressInfo).port;
    const router = h.router();
    await router.setRoute({ type: 'tcp', port, service: 'db' });
    const warned = waitFor<[Error & { code?: string }]>(router, 'warning');
    await router.listen({});
    const [err] = await warned;
    expect(err.code).toBe('FLOTILLA_ROUTER_LISTEN_FAILED');
    expect(router.state).toBe('running');
  });

  it('reads no more of a client than 64 KiB while the backend connect hangs', async () => {
    // A backend whose accept queue is full (its process stopped): the router's SYN is
    // dropped, and its connect hangs as it would to a host that went away without a trace.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('net').createServer((c) => {
           let n = 0;
           c.on('data', (d) => (n += d.length));
           c.on('end', () => n > 0 && console.log('got ' + n));
         });
         s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
           console.log(s.address().port);
           process.kill(process.pid, 'SIGSTOP');
         });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    h.defer(() => child.kill('SIGKILL'));
    const [line] = (await once(must(child.stdout), 'data')) as [Buffer];
    const stuck = Number(line.toString().trim());
    for (let i = 0; i < 4; i++) {
      const s = net.connect(stuck, '127.0.0.1');
      s.on('error', () => undefined);
      h.defer(() => s.destroy());
    }
    await h.discovery.register({
      service: 'stuck',
      id: 'stuck-1',
      addr: `127.0.0.1:${stuck}`,
      ready: true,
      ttlMs: 60_000,
    });
    const port = await freePort();
    const router = h.router({ connectTimeoutMs: 60_000 });
    await router.setRoute({ type: 'tcp', port, service: 'stuck' });
    await router.listen({ tcp: { host: '127.0.0.1' } });
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    h.defer(() => c.destroy());
    await once(c, 'connect');
    const sent = 64 * 1024 * 1024;
    c.write(Buffer.alloc(sent));
    // The router stops reading: what the client wrote stays with it, all but what the socket
    // buffers between them hold (before, the router took all 64 MiB).
    let last = -1;
    await expect
      .poll(
        () => {
          const stable = c.writableLength === last;
          last = c.writableLength;
          return stable;
        },
        { interval: 300, timeout: 15_000 },
      )
      .toBe(true);
    expect(c.writableLength).toBeGreaterThan(sent / 2);
    // Once the backend answers, every byte goes through.
    const got = once(must(child.stdout), 'data') as Promise<[Buffer]>;
    process.kill(must(child.pid), 'SIGCONT');
    c.end();
    expect((await got)[0].toString().trim()).toBe(`got ${sent}`);
  });
});
