import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Discovery, type Registration } from '@flotilla/discovery';
import { MemoryStore, type Store } from '@flotilla/store';
import { Router, type RouterOptions } from '../index.js';

/** A test backend: a node:http server on an ephemeral loopback port, registered in discovery. */
export interface TestBackend {
  readonly name: string;
  readonly server: http.Server;
  readonly port: number;
  registration: Registration | undefined;
  /** Requests it answered. */
  count: number;
  /** Stops it hard: listener closed, every connection destroyed (a crash). */
  kill(): Promise<void>;
}

/** Everything a router test needs, cleaned up by `close()`. */
export class Harness {
  readonly store: Store;
  readonly discovery: Discovery;

  /** On a new `MemoryStore`, or on `store` (closed with the harness). */
  constructor(store: Store = new MemoryStore()) {
    this.store = store;
    this.discovery = new Discovery({ store });
  }

  readonly backends: TestBackend[] = [];
  readonly routers: Router[] = [];
  readonly #cleanups: (() => Promise<unknown> | unknown)[] = [];

  /** Starts a backend answering `name` (or with `handler`), registered ready under `service`. */
  async backend(
    service: string,
    name: string,
    handler?: http.RequestListener,
    options: { ready?: boolean; register?: boolean; ttlMs?: number } = {},
  ): Promise<TestBackend> {
    const sockets = new Set<net.Socket>();
    const b: TestBackend = {
      name,
      server: http.createServer((req, res) => {
        b.count++;
        if (handler !== undefined) {
          handler(req, res);
          return;
        }
        req.resume();
        req.on('end', () => {
          res.setHeader('content-type', 'text/plain');
          res.setHeader('x-backend', name);
          res.end(name);
        });
      }),
      port: 0,
      registration: undefined,
      count: 0,
      kill: async () => {
        b.server.close();
        for (const s of sockets) s.destroy();
        await b.registration?.close().catch(() => undefined);
      },
    };
    b.server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    b.server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
    (b as { port: number }).port = (b.server.address() as net.AddressInfo).port;
    if (options.register !== false) {
      b.registration = await this.discovery.register({
        service,
        id: name,
        addr: `127.0.0.1:${b.port}`,
        ready: options.ready ?? true,
        ttlMs: options.ttlMs ?? 60_000,
      });
    }
    this.backends.push(b);
    this.#cleanups.push(() => b.kill());
    return b;
  }

  /**
   * A backend on a raw socket server (for answers node:http would not send), registered ready
   * under `service` as `id`; `onConnection` gets each connection. Resolves with its port and a
   * count of connections it accepted.
   */
  async rawBackend(
    service: string,
    id: string,
    onConnection: (s: net.Socket) => void,
  ): Promise<{ readonly port: number; connections: number }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      state.connections++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      onConnection(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const state = { port: (server.address() as net.AddressInfo).port, connections: 0 };
    const reg = await this.discovery.register({
      service,
      id,
      addr: `127.0.0.1:${state.port}`,
      ready: true,
      ttlMs: 60_000,
    });
    this.defer(async () => {
      await reg.close().catch(() => undefined);
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });
    return state;
  }

  /** A router on this harness's store and discovery. */
  router(options: Partial<RouterOptions> = {}): Router {
    const r = new Router({ store: this.store, discovery: this.discovery, ...options });
    this.routers.push(r);
    return r;
  }

  /** A router routing demo.localhost to `service`, listening on HTTP; resolves with its port. */
  async httpRouterFor(service: string): Promise<number> {
    const router = this.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service });
    const { http } = await router.listen({ http: { port: 0 } });
    if (http === undefined) throw new Error('the router did not listen on HTTP');
    return http.port;
  }

  /**
   * A backend for `service` answering `<path> <x-tag header> <sha256 of the body>`: what the
   * router passed on, byte for byte. `slowPath` is answered 150 ms late.
   */
  async echoBackend(service: string, slowPath?: string): Promise<TestBackend> {
    return this.backend(service, service, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
        const answer = `${req.url} ${String(req.headers['x-tag'])} ${body}`;
        setTimeout(() => res.end(answer), req.url === slowPath ? 150 : 0);
      });
    });
  }

  /** Registers something to undo at close. */
  defer(fn: () => Promise<unknown> | unknown): void {
    this.#cleanups.push(fn);
  }

  async close(): Promise<void> {
    for (const r of this.routers) await r.close();
    for (const fn of this.#cleanups.reverse()) await fn();
    await this.discovery.close();
    await this.store.close();
  }
}

/** One HTTP request through the router; resolves with status, headers and body. */
/**
 * Another client's POSTs of 60 KB (bytes unlike any test's) to demo.localhost until `stop.done`:
 * its reads overwrite the whole of the router's shared client read buffer, over any bytes a
 * connection kept from an earlier read. Resolves with how many it made; rejects on a non-200.
 */
export async function noise(port: number, stop: { done: boolean }): Promise<number> {
  let n = 0;
  const junk = Buffer.alloc(60_000, 0x5a);
  while (!stop.done) {
    const res = await request(port, { method: 'POST', path: '/noise', body: junk });
    if (res.status !== 200) throw new Error(`noise: HTTP ${res.status}: ${res.body.slice(0, 200)}`);
    n++;
  }
  return n;
}

export function request(
  port: number,
  options: {
    host?: string;
    path?: string;
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string | Buffer;
    agent?: http.Agent | false;
  } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: options.host ?? 'demo.localhost', ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends raw bytes on a fresh connection and resolves with everything read until it closes (or `untilBytes` arrive). */
export function raw(
  port: number,
  data: string | Buffer,
  options: { untilIncludes?: string; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, options.timeoutMs ?? 5000);
    s.on('data', (c) => {
      out += c.toString('latin1');
      if (options.untilIncludes !== undefined && out.includes(options.untilIncludes)) {
        clearTimeout(timer);
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(data);
  });
}

/** Resolves when `emitter` emits `event` with arguments that satisfy `test`. */
export function waitFor<A extends unknown[]>(
  emitter: {
    on(event: string, fn: (...args: A) => void): unknown;
    off(event: string, fn: (...args: A) => void): unknown;
  },
  event: string,
  test: (...args: A) => boolean = () => true,
): Promise<A> {
  return new Promise((resolve) => {
    const fn = (...args: A): void => {
      if (test(...args)) {
        emitter.off(event, fn);
        resolve(args);
      }
    };
    emitter.on(event, fn);
  });
}

/** `v`, or a thrown error when it is missing (tests use it instead of `!`). */
export function must<T>(v: T | undefined | null, what = 'value'): T {
  if (v === undefined || v === null) throw new Error(`expected a ${what}`);
  return v;
}
