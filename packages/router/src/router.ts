import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { isFlotillaError, type Logger, silentLogger, systemClock } from '@flotilla/core';
import type { Discovery, Registration } from '@flotilla/discovery';
import { listAndWatch, type Store } from '@flotilla/store';
import pino from 'pino';
import type { Registry } from 'prom-client';
import { type Certificate, CertificateTable, parseCertificateRecord } from './certificate-table.js';
import { RouterError } from './errors.js';
import { RouterMetrics } from './metrics.js';
import type { Route, StoredRoute } from './route.js';
import { DEFAULT_ROUTER_PREFIX, parseRouteRecord, RouteTable } from './route-table.js';
import { DEFAULT_ROUTER_SERVICE } from './wait-for-drained.js';
import { BackendRegistry } from './internal/backend-registry.js';
import type { Balancing } from './internal/backend-set.js';
import type { AccessEntry, DataPlane } from './internal/data-plane.js';
import { DrainPublisher } from './internal/drain-publisher.js';
import { createH2Handler } from './internal/h2-handler.js';
import { readIntoShared } from './internal/user-buffer-socket.js';
import { Http1Connection } from './internal/http1-connection.js';
import type { HeadLimits } from './internal/http-head.js';
import { RouteMatcher } from './internal/route-matcher.js';
import { StickyCookies } from './internal/sticky.js';
import { SniContexts } from './internal/sni-contexts.js';
import { TcpListeners } from './internal/tcp-listeners.js';
import { UpstreamPool } from './internal/upstream-pool.js';

/** Where access-log lines go: a pino destination, a stream, anything with `write`. */
export interface AccessLogDestination {
  /** Receives one JSON line (with its newline) per request. */
  write(line: string): unknown;
}

/** Options of {@link Router}. */
export interface RouterOptions {
  /** Where routes, certificates and drained records live (shared by every router). */
  readonly store: Store;
  /** Where backends come from (ready instances of each route's service). */
  readonly discovery: Discovery;
  /** This router's id in discovery and its drained records (default `router-<random>`). */
  readonly id?: string;
  /** Key prefix in the store (default `router/`). */
  readonly prefix?: string;
  /** The discovery service routers register under (default `flotilla-router`). */
  readonly routerService?: string;
  /** Diagnostics (default: silent). */
  readonly logger?: Logger;
  /** Register the Prometheus metrics here (default: a registry of the router's own). */
  readonly metrics?: Registry;
  /**
   * Where the JSON access log goes, one line per request (a pino destination such as
   * `pino.destination(1)` or any `{ write(line) }`); default: off.
   */
  readonly accessLog?: AccessLogDestination | false;
  /** `p2c` (power of two choices on in-flight requests, default), `round-robin`, `least-connections`. */
  readonly balancing?: Balancing;
  /** Secret that signs sticky-session cookies; give every router the same (default: random). */
  readonly stickySecret?: string;
  /** Most bytes of a request head (default 16384); more gets 431. */
  readonly maxHeaderBytes?: number;
  /** Most request header fields (default 100); more gets 431. */
  readonly maxHeaderCount?: number;
  /** A request head not complete this long after it began gets 408 (default 10000 ms). */
  readonly headersTimeoutMs?: number;
  /** An idle keep-alive client connection is closed after this long (default 60000 ms). */
  readonly idleTimeoutMs?: number;
  /**
   * A client that takes nothing of a response for this long (it stopped reading) is cut off,
   * as nginx's `send_timeout` does; meanwhile no more of its requests are read (default 60000
   * ms).
   */
  readonly sendTimeoutMs?: number;
  /** A backend that has not answered a request's head this long: 504 (default 60000 ms). */
  readonly upstreamTimeoutMs?: number;
  /** A backend connect that takes longer fails over (default 3000 ms). */
  readonly connectTimeoutMs?: number;
  /** Most retries of one request on other backends (default 2). */
  readonly maxRetries?: number;
  /** Consecutive failures that eject a backend (default 3). */
  readonly ejectAfter?: number;
  /** First ejection period, doubling per ejection up to 30 s (default 1000 ms). */
  readonly ejectMs?: number;
  /** Idle keep-alive connections kept per backend (default 128). */
  readonly maxIdlePerBackend?: number;
  /** Idle upstream connections are closed after this long (default 4000 ms). */
  readonly upstreamIdleTimeoutMs?: number;
  /** TTL of the router's registration and drain lease (default 10000 ms). */
  readonly ttlMs?: number;
  /** How long `close()` lets in-flight requests finish (default 10000 ms). */
  readonly closeTimeoutMs?: number;
}

/** Where to listen. Every part is optional; port 0 picks a free port. */
export interface ListenOptions {
  /** Plain HTTP/1.1. */
  readonly http?: {
    /** The port (0: any free one). */
    readonly port: number;
    /** The address (default `127.0.0.1`). */
    readonly host?: string;
  };
  /** HTTPS (HTTP/1.1 and HTTP/2 by ALPN), with certificates by SNI from the store. */
  readonly https?: {
    /** The port (0: any free one). */
    readonly port: number;
    /** The address (default `127.0.0.1`). */
    readonly host?: string;
  };
  /** The address TCP routes' listeners bind (default `127.0.0.1`); their ports are the routes'. */
  readonly tcp?: {
    /** The address TCP route listeners bind (default `127.0.0.1`). */
    readonly host?: string;
  };
}

/** The addresses bound by {@link Router.listen}. */
export interface RouterAddresses {
  /** The plain HTTP listener's address, when asked for. */
  readonly http?: net.AddressInfo;
  /** The HTTPS listener's address, when asked for. */
  readonly https?: net.AddressInfo;
}

/** Events of {@link Router}. */
export interface RouterEvents {
  /** The routes in use changed (a store change was applied). */
  routes: [routes: readonly StoredRoute[]];
  /** The certificates in use changed. */
  certificates: [domains: readonly string[]];
  /** A drained record was written (`drained` true) or withdrawn. */
  drain: [service: string, instanceId: string, drained: boolean];
  /** A background problem: an invalid record, a TCP port that could not be bound. */
  warning: [error: Error];
}

/** The router's lifecycle state. */
export type RouterState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

function positive(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 31 - 1) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_OPTIONS',
      `router option ${name} must be an integer from ${min} to 2^31 - 1, not ${String(v)}`,
    );
  }
  return v;
}

/**
 * The Flotilla router: HTTP, HTTPS (HTTP/2 by ALPN) and TCP, routes from the store, backends
 * from discovery. It registers itself in discovery and publishes when it has drained an
 * instance, so that deployers can `waitForDrained` before stopping it.
 *
 * @example
 * ```ts
 * const router = new Router({ store, discovery });
 * await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
 * const { http } = await router.listen({ http: { port: 8080, host: '127.0.0.1' } });
 * // ...
 * await router.close();
 * ```
 */
export class Router extends EventEmitter<RouterEvents> implements AsyncDisposable {
  /** This router's id (discovery instance id, drained records). */
  readonly id: string;
  /** The routes in the store. */
  readonly routes: RouteTable;
  /** The certificates in the store. */
  readonly certificates: CertificateTable;
  /** The Prometheus metrics. */
  readonly metrics: RouterMetrics;
  #state: RouterState = 'idle';
  readonly #o: RouterOptions;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #plane: DataPlane & { matcher: RouteMatcher; httpsPort: number | undefined };
  readonly #backends: BackendRegistry;
  readonly #conns = new Set<Http1Connection>();
  readonly #sockets = new Set<net.Socket>();
  readonly #raw = new Set<net.Socket>();
  readonly #servers: net.Server[] = [];
  #tcp: TcpListeners | undefined;
  readonly #contexts = new SniContexts();
  readonly #ac = new AbortController();
  readonly #agent: http.Agent;
  #drains: DrainPublisher | undefined;
  #registration: Registration | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #seq = 0;
  readonly #idPrefix = randomBytes(6).toString('hex');

  /** Checks the options; makes no I/O (that starts with {@link listen}). */
  constructor(options: RouterOptions) {
    super();
    if (
      typeof options !== 'object' ||
      options === null ||
      options.store === undefined ||
      options.discovery === undefined
    ) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_OPTIONS',
        'new Router({ store, discovery }) needs a store and a discovery',
      );
    }
    this.#o = options;
    this.id = options.id ?? `router-${randomBytes(6).toString('hex')}`;
    if (!ID_RE.test(this.id)) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_OPTIONS',
        `router id ${JSON.stringify(this.id)} must be 1-128 of [A-Za-z0-9_.-]`,
      );
    }
    const balancing = options.balancing ?? 'p2c';
    if (!['p2c', 'round-robin', 'least-connections'].includes(balancing)) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_OPTIONS',
        `router option balancing must be "p2c", "round-robin" or "least-connections", not ${JSON.stringify(balancing)}`,
      );
    }
    this.#logger = options.logger ?? silentLogger;
    this.#prefix = options.prefix ?? DEFAULT_ROUTER_PREFIX;
    this.routes = new RouteTable(options.store, { prefix: this.#prefix, logger: this.#logger });
    this.certificates = new CertificateTable(options.store, { prefix: this.#prefix });
    this.metrics = new RouterMetrics(options.metrics);
    const limits: HeadLimits = {
      maxHeaderBytes: positive('maxHeaderBytes', options.maxHeaderBytes, 16384, 64),
      maxHeaderCount: positive('maxHeaderCount', options.maxHeaderCount, 100),
    };
    const connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 3000);
    const ejectAfter = positive('ejectAfter', options.ejectAfter, 3);
    const ejectMs = positive('ejectMs', options.ejectMs, 1000);
    this.#ttlMs = positive('ttlMs', options.ttlMs, 10000, 1000);
    this.#closeTimeoutMs = positive('closeTimeoutMs', options.closeTimeoutMs, 10000, 0);
    const pool = new UpstreamPool({
      maxIdlePerBackend: positive('maxIdlePerBackend', options.maxIdlePerBackend, 128, 0),
      idleTimeoutMs: positive('upstreamIdleTimeoutMs', options.upstreamIdleTimeoutMs, 4000),
      connectTimeoutMs,
      now: () => performance.now(),
    });
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 60_000 });
    let accessLog: ((e: AccessEntry) => void) | undefined;
    if (options.accessLog !== undefined && options.accessLog !== false) {
      const log = pino(
        { base: null, messageKey: 'msg' },
        options.accessLog as pino.DestinationStream,
      );
      accessLog = (e) => log.info(e);
    }
    const sticky = new StickyCookies(options.stickySecret ?? randomBytes(32));
    this.#backends = new BackendRegistry({
      discovery: options.discovery,
      pool,
      metrics: this.metrics,
      logger: this.#logger,
      balancing,
      ejectAfter,
      ejectMs,
      now: () => performance.now(),
      clock: systemClock,
      signal: this.#ac.signal,
      drains: () => this.#drains,
      warn: (err) => this.#warn(err),
    });
    const backends = this.#backends;
    this.#plane = {
      matcher: new RouteMatcher([]),
      backends: (service) => backends.get(service),
      pool,
      limits,
      headersTimeoutMs: positive('headersTimeoutMs', options.headersTimeoutMs, 10000),
      idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, 60000),
      sendTimeoutMs: positive('sendTimeoutMs', options.sendTimeoutMs, 60000),
      upstreamTimeoutMs: positive('upstreamTimeoutMs', options.upstreamTimeoutMs, 60000),
      maxRetries: positive('maxRetries', options.maxRetries, 2, 0),
      httpsPort: undefined,
      sticky,
      metrics: this.metrics,
      accessLog,
      requestId: () => `${this.#idPrefix}-${(++this.#seq).toString(36)}`,
      now: () => performance.now(),
    };
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  readonly #connectTimeoutMs: number;
  readonly #ttlMs: number;
  readonly #closeTimeoutMs: number;

  /** The lifecycle state. */
  get state(): RouterState {
    return this.#state;
  }

  /** Stores a route (replacing the one with the same domain and path, or port). */
  setRoute(route: Route): Promise<StoredRoute> {
    return this.routes.set(route);
  }

  /** Removes a route by id; resolves false when there was none. */
  removeRoute(id: string): Promise<boolean> {
    return this.routes.remove(id);
  }

  /** Stores a certificate for a domain (or `*`, the default); routers load it live. */
  setCertificate(certificate: Certificate): Promise<void> {
    return this.certificates.set(certificate);
  }

  /** Removes a domain's certificate. */
  removeCertificate(domain: string): Promise<boolean> {
    return this.certificates.remove(domain);
  }

  /**
   * Starts the router: loads routes and certificates (and keeps watching them), binds the
   * listeners, registers the router in discovery. Resolves with the bound addresses once the
   * routes and their backends are loaded.
   */
  async listen(
    options: ListenOptions & { readonly signal?: AbortSignal },
  ): Promise<RouterAddresses> {
    if (this.#state !== 'idle') {
      throw new RouterError(
        this.#state === 'stopping' || this.#state === 'stopped'
          ? 'FLOTILLA_ROUTER_CLOSED'
          : 'FLOTILLA_ROUTER_INVALID_OPTIONS',
        `listen() was already called on router ${this.id} (state ${this.#state})`,
      );
    }
    if (typeof options !== 'object' || options === null) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_OPTIONS',
        'listen() needs options: { http?: { port }, https?: { port }, tcp?: { host } }',
      );
    }
    for (const k of ['http', 'https'] as const) {
      const l = options[k];
      if (
        l !== undefined &&
        (typeof l !== 'object' ||
          l === null ||
          typeof l.port !== 'number' ||
          !Number.isInteger(l.port) ||
          l.port < 0 ||
          l.port > 65535)
      ) {
        throw new RouterError(
          'FLOTILLA_ROUTER_INVALID_OPTIONS',
          `listen ${k}.port must be an integer from 0 to 65535, not ${String((l as { port?: unknown } | null)?.port)}`,
        );
      }
      checkListenHost(`${k}.host`, l?.host);
    }
    const tcp: unknown = options.tcp;
    if (tcp !== undefined) {
      if (typeof tcp !== 'object' || tcp === null)
        throw new RouterError(
          'FLOTILLA_ROUTER_INVALID_OPTIONS',
          `listen tcp must be an object ({ host?: string }), not ${String(tcp)}`,
        );
      checkListenHost('tcp.host', (tcp as { host?: unknown }).host);
    }
    this.#state = 'starting';
    try {
      const signal = AbortSignal.any([
        this.#ac.signal,
        ...(options.signal === undefined ? [] : [options.signal]),
      ]);
      this.#drains = new DrainPublisher(
        this.#o.store,
        this.#prefix,
        this.id,
        this.#ttlMs,
        this.#logger,
        (s, i, d) => this.emit('drain', s, i, d),
      );
      await this.#drains.start();
      signal.throwIfAborted();
      await Promise.all([this.#watchRoutes(), this.#watchCertificates()]);
      signal.throwIfAborted();
      const out: { http?: net.AddressInfo; https?: net.AddressInfo } = {};
      if (options.http !== undefined) {
        // Accepted paused: each connection then reads into the router's own buffer.
        const server = net.createServer({
          allowHalfOpen: true,
          noDelay: true,
          pauseOnConnect: true,
        });
        out.http = await this.#bind(
          server,
          options.http.port,
          options.http.host ?? '127.0.0.1',
          (s) => this.#acceptPlain(s),
        );
      }
      if (options.https !== undefined) {
        out.https = await this.#bind(
          this.#tlsServer(),
          options.https.port,
          options.https.host ?? '127.0.0.1',
        );
        this.#plane.httpsPort = out.https.port;
      }
      this.#tcp = new TcpListeners({
        host: options.tcp?.host ?? '127.0.0.1',
        plane: {
          backends: this.#plane.backends,
          maxRetries: this.#plane.maxRetries,
          connectTimeoutMs: this.#connectTimeoutMs,
          metrics: this.metrics,
        },
        closing: () => this.#state === 'stopping' || this.#state === 'stopped',
        warn: (err) => this.#warn(err),
      });
      await this.#tcp.reconcile(this.#plane.matcher.tcp);
      const addr = out.http ?? out.https;
      this.#registration = await this.#o.discovery.register({
        service: this.#o.routerService ?? DEFAULT_ROUTER_SERVICE,
        id: this.id,
        addr:
          addr === undefined
            ? '127.0.0.1:1'
            : `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
        ready: true,
        ttlMs: this.#ttlMs,
      });
      this.#sweeper = setInterval(() => {
        const now = this.#plane.now();
        for (const c of this.#conns) c.sweep(now);
        this.#plane.pool.sweep(now);
      }, 1000);
      this.#sweeper.unref();
      if (this.#state !== 'starting')
        throw new RouterError(
          'FLOTILLA_ROUTER_CLOSED',
          `router ${this.id} was closed while starting`,
        );
      this.#state = 'running';
      return out;
    } catch (err) {
      if (this.#state === 'starting') this.#state = 'failed';
      await this.#shutdown(0);
      if (this.#ac.signal.aborted && this.#closing !== undefined && !isFlotillaError(err)) {
        throw new RouterError(
          'FLOTILLA_ROUTER_CLOSED',
          `router ${this.id} was closed while starting`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Listens. `accept`: takes each connection and returns the socket it goes on as (plain HTTP
   * moves it to another, see {@link readIntoShared}).
   */
  #bind(
    server: net.Server,
    port: number,
    host: string,
    accept: (s: net.Socket) => net.Socket = (s) => s,
  ): Promise<net.AddressInfo> {
    this.#servers.push(server);
    // Every raw connection, so that close() can end those a TLS handshake still holds.
    server.on('connection', (raw: net.Socket) => {
      const s = accept(raw);
      this.#raw.add(s);
      s.once('close', () => this.#raw.delete(s));
    });
    return new Promise((resolve, reject) => {
      server.once('error', (cause: NodeJS.ErrnoException) =>
        reject(
          new RouterError(
            'FLOTILLA_ROUTER_LISTEN_FAILED',
            `cannot listen on ${host}:${port} (${cause.code ?? cause.message}): choose a free port or an address of this machine`,
            { cause },
          ),
        ),
      );
      server.listen(port, host, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.#warn(err));
        resolve(server.address() as net.AddressInfo);
      });
    });
  }

  #tlsServer(): tls.Server {
    const h2 = http2.createServer({
      maxSendHeaderBlockLength: this.#plane.limits.maxHeaderBytes,
      settings: { maxHeaderListSize: this.#plane.limits.maxHeaderBytes },
    });
    h2.on('request', createH2Handler(this.#plane, this.#agent));
    h2.on('sessionError', () => undefined);
    const server = tls.createServer({
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: this.#plane.headersTimeoutMs,
      SNICallback: (name, cb) => cb(null, this.#contexts.lookup(name)),
    });
    server.on('secureConnection', (s: tls.TLSSocket) => {
      if (s.alpnProtocol === 'h2') {
        this.#sockets.add(s);
        this.metrics.connection('https', 1);
        s.once('close', () => {
          this.#sockets.delete(s);
          this.metrics.connection('https', -1);
        });
        h2.emit('connection', s);
      } else this.#accept(s, true, 'https');
    });
    server.on('tlsClientError', () => undefined);
    return server;
  }

  /** A plain HTTP connection (accepted paused): read into the router's buffer where it can be. */
  #acceptPlain(raw: net.Socket): net.Socket {
    // Its first bytes come on a later turn of the loop, once the connection is made below.
    const to: { conn: Http1Connection | undefined } = { conn: undefined };
    const socket = readIntoShared(raw, (view) => to.conn?.onView(view));
    if (socket === undefined) {
      this.#accept(raw, false, 'http');
      raw.resume();
      return raw;
    }
    to.conn = this.#accept(socket, false, 'http', true);
    return socket;
  }

  #accept(
    socket: net.Socket,
    secure: boolean,
    protocol: 'http' | 'https',
    viewed = false,
  ): Http1Connection | undefined {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      socket.destroy();
      return undefined;
    }
    this.metrics.connection(protocol, 1);
    const conn = new Http1Connection(
      socket,
      this.#plane,
      secure,
      (c) => {
        this.#conns.delete(c);
        this.metrics.connection(protocol, -1);
      },
      viewed,
    );
    this.#conns.add(conn);
    return conn;
  }

  async #watchRoutes(): Promise<void> {
    let first: (() => void) | undefined;
    const ready = new Promise<void>((resolve) => (first = resolve));
    const routes = new Map<string, StoredRoute>();
    const prefix = this.routes.routesPrefix;
    let generation = 0;
    // A change is swapped in once the backends of its services are known (or after 5 s), so
    // that a route moved to a new service never answers 503 while its discovery watch starts.
    const apply = async (): Promise<void> => {
      const gen = ++generation;
      const matcher = new RouteMatcher(routes.values());
      const synced = [...matcher.services].map((service) => this.#backends.ensure(service));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(synced), new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      if (gen !== generation || this.#ac.signal.aborted) return; // a newer change supersedes it
      this.#backends.retain(matcher.services);
      this.#plane.matcher = matcher;
      void this.#tcp?.reconcile(matcher.tcp);
      this.emit('routes', [...routes.values()]);
    };
    const read = (key: string, value: string): void => {
      try {
        const r = parseRouteRecord(key, value, this.#prefix);
        routes.set(r.id, r);
      } catch (err) {
        routes.delete(key.slice(prefix.length));
        this.#warn(err as Error);
      }
    };
    void (async () => {
      for await (const item of listAndWatch(this.#o.store, prefix, {
        signal: this.#ac.signal,
        onRetry: (err) => this.#logger.warn({ err }, 'route watch retrying'),
      })) {
        if (item.type === 'snapshot') {
          routes.clear();
          for (const kv of item.kvs) read(kv.key, kv.value);
          const p = apply();
          if (first !== undefined) {
            void p.then(first);
            first = undefined;
          }
        } else {
          const ev = item.event;
          if (ev.type === 'put') read(ev.kv.key, ev.kv.value);
          else routes.delete(ev.kv.key.slice(prefix.length));
          void apply();
        }
      }
    })().catch((err: unknown) => this.#warn(err as Error));
    await ready;
  }

  async #watchCertificates(): Promise<void> {
    let first: (() => void) | undefined;
    const ready = new Promise<void>((resolve) => (first = resolve));
    const prefix = this.certificates.certsPrefix;
    const read = (key: string, value: string): void => {
      const domain = key.slice(prefix.length);
      try {
        this.#contexts.set(domain, parseCertificateRecord(key, value).context);
      } catch (err) {
        this.#contexts.delete(domain);
        this.#warn(err as Error);
      }
    };
    void (async () => {
      for await (const item of listAndWatch(this.#o.store, prefix, { signal: this.#ac.signal })) {
        if (item.type === 'snapshot') {
          this.#contexts.clear();
          for (const kv of item.kvs) read(kv.key, kv.value);
          first?.();
          first = undefined;
        } else if (item.event.type === 'put') read(item.event.kv.key, item.event.kv.value);
        else this.#contexts.delete(item.event.kv.key.slice(prefix.length));
        this.emit('certificates', this.#contexts.domains());
      }
    })().catch((err: unknown) => this.#warn(err as Error));
    await ready;
  }

  #warn(err: Error): void {
    if (this.#ac.signal.aborted) return;
    this.#logger.warn({ err }, err.message);
    this.emit('warning', err);
  }

  /**
   * Stops the router: stops accepting, closes idle connections, lets in-flight requests finish
   * (up to `closeTimeoutMs`), then deregisters and withdraws its drained records. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      if (this.#state !== 'failed') this.#state = 'stopping';
      this.#closing = this.#shutdown(this.#closeTimeoutMs).finally(() => {
        this.#state = 'stopped';
      });
    }
    return this.#closing;
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#ac.abort();
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    const tcpClosed = this.#tcp?.stopListening();
    const closed = [...this.#servers].map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    for (const c of this.#conns) c.closeIdle();
    const deadline = Date.now() + graceMs;
    while (this.#conns.size > 0 && Date.now() < deadline) {
      for (const c of this.#conns) c.closeIdle();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const c of this.#conns) c.abort();
    for (const s of this.#sockets) s.destroy();
    this.#tcp?.destroyConnections();
    for (const s of this.#raw) s.destroy();
    this.#backends.close();
    this.#plane.pool.close();
    this.#agent.destroy();
    await Promise.all([...closed, tcpClosed]);
    await this.#registration?.close().catch(() => undefined);
    await this.#drains?.close();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Refuses a listen address that is not a non-empty string: node:net takes a number there as
 * the backlog and an empty string as no address, and binds every address either way.
 */
function checkListenHost(what: string, host: unknown): void {
  if (host !== undefined && (typeof host !== 'string' || host === ''))
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_OPTIONS',
      `listen ${what} must be an address of this machine such as '127.0.0.1', not ${JSON.stringify(host) ?? String(host)}`,
    );
}
