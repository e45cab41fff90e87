import type net from 'node:net';
import type { Backend, BackendSet } from './backend-set.js';
import type { UpSocket, UpstreamOwner } from './upstream-pool.js';
import { BodyFramer, FramingError } from './body-framer.js';
import type { DataPlane } from './data-plane.js';
import {
  findHeadEnd,
  HeadError,
  latin1,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from './http-head.js';
import type { ActiveHttpRoute } from './route-matcher.js';
import { STICKY_COOKIE } from './sticky.js';
import {
  ANNOUNCES_TRAILERS,
  IDEMPOTENT,
  isHopByHop,
  isNotFromClient,
  keepResponseTrailer,
} from './forwarding.js';
import { keptTrailerLines } from './trailer-fields.js';

const REQUEST_ID_RE = /^[\x21-\x7e]{1,200}$/;
/** A request's trailer section as it goes on: empty (see splitBody). */
const NO_TRAILERS = Buffer.from('\r\n', 'latin1');
/** Request bytes kept to replay on another backend; a longer request is not retried once sent. */
const REPLAY_LIMIT = 64 * 1024;
/**
 * The largest body sent in the same string write as its head (decoded as latin1, see
 * http-head.ts), without a Buffer copy or a second write; a larger one follows the head in one
 * writev.
 */
const INLINE_BODY = 16 * 1024;
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

type ConnState = 'head' | 'request' | 'tunnel' | 'closed';

/**
 * One client connection speaking HTTP/1.x (plain or over TLS): parses request heads strictly,
 * and proxies one request at a time (pipelined ones wait) through an {@link Exchange}.
 */
export class Http1Connection {
  state: ConnState = 'head';
  /** Client bytes not yet consumed (a partial head, or pipelined requests). */
  buf: Buffer | null = null;
  /** Where a tunnel's client bytes go, and its client's half-close (set once it is one). */
  tunnel: { data(chunk: Buffer): void; end(): void } | null = null;
  /** Set while the head parsed is in a read buffer that is reused after the call. */
  #transient = false;
  /** When the current wait for a head began. */
  headStart: number;
  exchange: Exchange | null = null;
  readonly remoteAddr: string;
  readonly localPort: number;
  /** The forwarded lines that are the same for every request of this connection. */
  readonly forwardedLines: string;
  /** The same, with the X-Forwarded-For line and the start of the X-Request-Id one. */
  readonly forwardedHead: string;
  /**
   * When the router began to wait for the client to take what was written to it (0: it is
   * not waiting). A client that takes nothing for the plane's `sendTimeoutMs` is cut off.
   */
  drainSince = 0;

  /**
   * `viewed`: the socket's bytes come through {@link Http1Connection.onView} (it reads into a
   * buffer of its own) rather than as `data` events.
   */
  constructor(
    readonly socket: net.Socket,
    readonly plane: DataPlane,
    readonly secure: boolean,
    readonly onClosed: (c: Http1Connection) => void,
    viewed = false,
  ) {
    this.headStart = plane.now();
    const ra = socket.remoteAddress ?? '';
    this.remoteAddr = ra.startsWith('::ffff:') ? ra.slice(7) : ra;
    this.localPort = socket.localPort ?? 0;
    this.forwardedLines =
      `${this.remoteAddr}\r\nx-forwarded-proto: ${secure ? 'https' : 'http'}\r\n` +
      `x-forwarded-port: ${this.localPort}\r\n`;
    this.forwardedHead = `x-forwarded-for: ${this.forwardedLines}x-request-id: `;
    socket.setNoDelay(true);
    if (!viewed) socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      // The client closed its side. Between requests: close ours. During a request: it has
      // gone (as nginx, 499): the exchange is released rather than held for a reader that
      // will never read. A tunnel's pipes carry the half-close through.
      if (this.state === 'head') socket.end();
      else if (this.state === 'request') socket.destroy();
      else if (this.state === 'tunnel') this.tunnel?.end();
    });
    socket.on('close', () => this.#onClose());
  }

  /**
   * Client bytes in a read buffer that is reused once this returns: a whole head (the usual
   * case) is parsed from it; whatever is kept past the call is copied.
   */
  onView(view: Buffer): void {
    if (this.state !== 'head' || this.buf !== null) {
      this.#onData(Buffer.from(view));
      return;
    }
    this.buf = view;
    this.#transient = true;
    try {
      this.#parse();
    } finally {
      this.#transient = false;
    }
    // A partial head waits for the rest.
    if (this.buf === view) this.buf = Buffer.from(view);
  }

  #onData(chunk: Buffer): void {
    if (this.state === 'head') {
      this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
      this.#parse();
    } else if (this.state === 'request') {
      this.exchange?.onClientData(chunk);
    } else if (this.state === 'tunnel') {
      this.tunnel?.data(chunk);
    }
  }

  #parse(): void {
    const buf = this.buf;
    if (buf === null || this.state !== 'head') return;
    let head: RequestHead;
    const limits = this.plane.limits;
    let text: string;
    try {
      const end = findHeadEnd(buf, limits);
      if (end === -1) return;
      text = latin1(buf, 0, end);
      head = parseRequestHead(buf, text, end, limits);
    } catch (err) {
      if (err instanceof HeadError) this.fail(err.status, err.message);
      else this.socket.destroy();
      return;
    }
    const rest = buf.length > head.length ? buf.subarray(head.length) : null;
    this.buf = null;
    this.state = 'request';
    this.exchange = new Exchange(this, head, text);
    this.exchange.start(rest, this.#transient);
  }

  /** Answers with an error and closes the connection (the framing can no longer be trusted). */
  fail(status: number, detail: string): void {
    this.respond(status, `${REASONS[status] ?? 'Error'}: ${detail}\n`, false);
    this.state = 'closed';
  }

  /** Writes a short local response. */
  respond(status: number, body: string, keepAlive: boolean, extra = ''): void {
    if (this.socket.destroyed) return;
    const text =
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Status'}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n${extra}${keepAlive ? '' : 'connection: close\r\n'}\r\n${body}`;
    if (keepAlive) this.socket.write(text);
    else this.socket.end(text);
  }

  /** The exchange finished: go on with pipelined requests, or close. */
  next(keepAlive: boolean, rest: Buffer | null, now = this.plane.now()): void {
    this.exchange = null;
    if (!keepAlive || this.socket.destroyed) {
      this.state = 'closed';
      if (!this.socket.destroyed) this.socket.end();
      return;
    }
    if (this.socket.readableEnded) {
      this.state = 'closed';
      this.socket.end();
      return;
    }
    this.state = 'head';
    this.headStart = now;
    if (rest !== null && rest.length > 0)
      this.buf = this.buf === null ? rest : Buffer.concat([rest, this.buf]);
    if (this.socket.writableNeedDrain) {
      // The client has not taken the responses written so far (it pipelines, or sends its next
      // request without reading): no more of its requests are read until it does. Otherwise a
      // client that never reads had every response it asked for held here, thousands of them
      // for a few kilobytes of requests.
      this.socket.pause();
      this.awaitDrain(() => {
        if (this.state !== 'head') return;
        this.headStart = this.plane.now();
        this.#readOn();
      });
      return;
    }
    this.#readOn();
  }

  #readOn(): void {
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null) this.#parse();
  }

  /**
   * Calls `then` once the client has taken all that was written to it; until then, {@link
   * sweep} cuts off a client that takes nothing for the plane's `sendTimeoutMs`.
   */
  awaitDrain(then: () => void): void {
    this.drainSince = this.plane.now();
    this.socket.once('drain', () => {
      this.drainSince = 0;
      then();
    });
  }

  /** Called by the router's sweeper about once a second: head and idle timeouts. */
  sweep(now: number): void {
    if (this.drainSince !== 0) {
      // Waiting for the client to read: the send timeout is the one that applies (a head that
      // waits behind it is not late, and the request in progress is not the backend's fault).
      if (now - this.drainSince >= this.plane.sendTimeoutMs) this.abort();
      return;
    }
    if (this.state === 'head') {
      const elapsed = now - this.headStart;
      if (this.buf === null || this.buf.length === 0) {
        if (elapsed >= this.plane.idleTimeoutMs) this.socket.destroy();
      } else if (elapsed >= this.plane.headersTimeoutMs) {
        this.fail(408, 'the request head took too long');
      }
    } else if (this.state === 'request') {
      this.exchange?.sweep(now);
    }
  }

  /** Closes the connection now (router shutdown). Idle connections go at once. */
  closeIdle(): void {
    if (this.state === 'head' && (this.buf === null || this.buf.length === 0))
      this.socket.destroy();
  }

  /**
   * Closes the connection now (router shutdown), also in the middle of a response: one whose
   * body ends at the close is cut with a reset, so that it does not pass for complete.
   */
  abort(): void {
    if (this.state === 'request' && this.exchange !== null) this.exchange.cut();
    else this.socket.destroy();
  }

  #onClose(): void {
    const prev = this.state;
    this.state = 'closed';
    if (prev === 'request') this.exchange?.clientGone();
    this.onClosed(this);
  }
}

/** One request proxied to a backend, with retries on others. */
class Exchange implements UpstreamOwner {
  readonly #c: Http1Connection;
  readonly #h: RequestHead;
  readonly #p: DataPlane;
  readonly #start: number;
  #route: ActiveHttpRoute | undefined;
  #set: BackendSet | undefined;
  #requestId = '';
  /** The request head for the backend (with the first body bytes when they fit), as latin1. */
  #upHead: string | null = null;
  /** Request framing; null when the request has no body. */
  #reqBody: BodyFramer | null = null;
  #replay: (string | Buffer)[] | null = [];
  #replayBytes = 0;
  /** Client body bytes waiting for an upstream connection. */
  #queued: Buffer[] = [];
  #backend: Backend | undefined;
  #tried: Set<Backend> | undefined;
  #retries = 0;
  #up: UpSocket | null = null;
  #upReady = false;
  #sentAny = false;
  #sentAt = 0;
  /** Response state: 'none' before any byte, 'head' while reading it, 'body' after. */
  #res: 'none' | 'head' | 'body' | 'done' = 'none';
  #ubuf: Buffer | null = null;
  /** The clock at the latest bytes from the backend. */
  #now = 0;
  #resBody: BodyFramer | null = null;
  #resHead: ResponseHead | null = null;
  #keepClient = true;
  #status = 0;
  #stickyId: string | undefined;
  #finished = false;
  #wantUpgrade = false;

  // The parts of an exchange that exist once it has a route, a backend, a connection, a response.
  get #route_(): ActiveHttpRoute {
    return present(this.#route, 'route');
  }
  get #set_(): BackendSet {
    return present(this.#set, 'backend set');
  }
  get #backend_(): Backend {
    return present(this.#backend, 'backend');
  }
  get #up_(): UpSocket {
    return present(this.#up, 'upstream connection');
  }
  get #resBody_(): BodyFramer {
    return present(this.#resBody, 'response framing');
  }

  /** The client's request head as latin1 (its lines are copied from it). */
  readonly #raw: string;

  constructor(c: Http1Connection, h: RequestHead, raw: string) {
    this.#c = c;
    this.#h = h;
    this.#raw = raw;
    this.#p = c.plane;
    this.#start = this.#p.now();
  }

  /**
   * Sends the request on. `rest`: the client's bytes after the head; `transient`: in a read
   * buffer reused after this call (what is kept of it is copied; a small body goes on inlined
   * in the head's string, which is a copy already).
   */
  start(rest: Buffer | null, transient = false): void {
    const h = this.#h;
    const p = this.#p;
    const c = this.#c;
    this.#keepClient =
      h.version === 11 ? !h.connection.includes('close') : h.connection.includes('keep-alive');
    if (h.chunked) this.#reqBody = new BodyFramer('chunked');
    else if (h.contentLength > 0) this.#reqBody = new BodyFramer('length', h.contentLength);
    // Bytes after the head that are not body belong to the next request.
    let pipelined: Buffer | null = rest;
    let bodyPart: Buffer | null = null;
    if (this.#reqBody !== null && rest !== null) {
      try {
        ({ part: bodyPart, after: pipelined } = splitBody(this.#reqBody, rest));
      } catch (err) {
        this.#localError(400, (err as Error).message, false);
        return;
      }
    }
    if (pipelined !== null) {
      c.buf = transient ? Buffer.from(pipelined) : pipelined;
      c.socket.pause();
    }
    this.#requestId = this.#header('x-request-id');
    if (this.#requestId === '' || !REQUEST_ID_RE.test(this.#requestId))
      this.#requestId = p.requestId();

    const route = p.matcher.match(h.host, h.target);
    this.#route = route;
    if (route === undefined) {
      this.#local(404, `No route for host ${JSON.stringify(h.host.slice(0, 200))}\n`);
      return;
    }
    if (route.httpsOnly === true && !c.secure) {
      let host = h.host;
      const colon = host.lastIndexOf(':');
      if (colon !== -1 && !host.endsWith(']')) host = host.slice(0, colon);
      const port = p.httpsPort !== undefined && p.httpsPort !== 443 ? `:${p.httpsPort}` : '';
      const status = h.method === 'GET' || h.method === 'HEAD' ? 301 : 308;
      const location = `https://${host}${port}${h.target.startsWith('/') ? h.target : '/'}`;
      this.#status = status;
      this.#localRaw(
        status,
        status === 301 ? 'Moved Permanently' : 'Permanent Redirect',
        `Redirecting to ${location}\n`,
        `location: ${location}\r\n`,
      );
      return;
    }
    if (route.maxBodyBytes !== undefined && h.contentLength > route.maxBodyBytes) {
      this.#localError(
        413,
        `the body is larger than this route's limit of ${route.maxBodyBytes} bytes`,
        false,
      );
      return;
    }
    if (
      route.maxBodyBytes !== undefined &&
      this.#reqBody !== null &&
      this.#reqBody.bytes > route.maxBodyBytes
    ) {
      this.#localError(
        413,
        `the body is larger than this route's limit of ${route.maxBodyBytes} bytes`,
        false,
      );
      return;
    }
    this.#set = p.backends(route.service);
    this.#wantUpgrade = h.upgrade !== '' && h.connection.includes('upgrade');
    let upHead = this.#buildHead();
    if (bodyPart !== null && bodyPart.length > 0 && bodyPart.length <= INLINE_BODY) {
      // A small body that came with the head: in the same write, as latin1 too.
      upHead += latin1(bodyPart, 0, bodyPart.length);
      bodyPart = null;
    }
    this.#upHead = upHead;
    // Literal, not push: an array grown from empty takes room for 17.
    if (this.#replay !== null) this.#replay = [upHead];
    this.#replayBytes = upHead.length;
    if (bodyPart !== null && bodyPart.length > 0)
      this.#queue(transient ? Buffer.from(bodyPart) : bodyPart);
    if (route.sticky === true) {
      const cookie = this.#header('cookie');
      if (cookie !== '') this.#stickyId = p.sticky.verify(route.service, cookie);
    }
    this.#attempt(this.#start);
  }

  #header(name: string): string {
    const names = this.#h.names;
    for (let i = 0; i < names.length; i++)
      if (names[i] === name) return this.#h.headers[2 * i + 1] as string;
    return '';
  }

  #buildHead(): string {
    const h = this.#h;
    const c = this.#c;
    let xff = '';
    for (let i = 0; i < h.names.length; i++) {
      // An empty one adds nothing (it made `, 127.0.0.1`).
      if (h.names[i] === 'x-forwarded-for' && h.headers[2 * i + 1] !== '')
        xff += `${h.headers[2 * i + 1] as string}, `;
    }
    let tail =
      (xff === '' ? c.forwardedHead : `x-forwarded-for: ${xff}${c.forwardedLines}x-request-id: `) +
      `${this.#requestId}\r\nx-request-start: t=${Date.now()}\r\n`;
    if (h.chunked) tail += 'transfer-encoding: chunked\r\n';
    if (this.#wantUpgrade) tail += `connection: upgrade\r\nupgrade: ${h.upgrade}\r\n`;
    // The request line is copied as it came: method, target and HTTP/1.0 or 1.1 are checked.
    return copyHeaderLines(
      this.#raw,
      h.lineStart,
      h.lineStarts,
      h.names,
      headerFilter(h, keepRequestHeader),
      '',
      `${tail}\r\n`,
    );
  }

  #queue(chunk: Buffer): void {
    if (this.#replay !== null) {
      this.#replayBytes += chunk.length;
      if (this.#replayBytes > REPLAY_LIMIT) this.#replay = null;
      else this.#replay.push(chunk);
    }
    if (this.#upReady) {
      this.#sentAny = true;
      if (!this.#up_.write(chunk)) {
        this.#c.socket.pause();
        this.#drainWait = true;
      }
    } else {
      this.#queued.push(chunk);
    }
  }

  #drainWait = false;

  /** The backend connection took all we wrote: read more of the client's body. */
  upDrain(): void {
    if (!this.#drainWait) return;
    this.#drainWait = false;
    if (
      this.#c.state === 'request' &&
      this.#c.buf === null &&
      this.#reqBody !== null &&
      !this.#reqBody.done
    )
      this.#c.socket.resume();
  }

  /** Client bytes while this exchange runs: body, then pipelined requests. */
  onClientData(chunk: Buffer): void {
    const body = this.#reqBody;
    if (body === null || body.done) {
      this.#c.buf = this.#c.buf === null ? chunk : Buffer.concat([this.#c.buf, chunk]);
      if (this.#c.buf.length > this.#p.limits.maxHeaderBytes) this.#c.socket.pause();
      return;
    }
    let split: { part: Buffer | null; after: Buffer | null };
    try {
      split = splitBody(body, chunk);
    } catch (err) {
      if (err instanceof FramingError) this.#abortBody(400, err.message);
      return;
    }
    const max = this.#route?.maxBodyBytes;
    if (max !== undefined && body.bytes > max) {
      this.#abortBody(413, `the body is larger than this route's limit of ${max} bytes`);
      return;
    }
    if (split.part !== null) this.#queue(split.part);
    if (split.after !== null) {
      this.#c.buf = split.after;
      this.#c.socket.pause();
    }
  }

  #abortBody(status: number, detail: string): void {
    if (this.#res === 'none' || this.#res === 'head') {
      this.#dropUpstream();
      this.#localError(status, detail, false);
    } else {
      this.#finish(false);
      this.#c.socket.destroy();
    }
  }

  /** Sends the request to a backend; `now` is the clock (this event's). */
  #attempt(now: number): void {
    const set = this.#set;
    let b: Backend | undefined;
    if (set !== undefined) {
      if (this.#stickyId !== undefined && this.#tried === undefined) {
        const s = set.get(this.#stickyId);
        if (s !== undefined && s.usable(now)) b = s;
      }
      b ??= set.pick(this.#tried, now);
    }
    if (b === undefined) {
      if (this.#tried === undefined) {
        this.#local(503, `No ready backend for service ${this.#route_.service}\n`);
      } else {
        this.#localError(
          502,
          'every backend tried failed',
          this.#reqBody === null || this.#reqBody.done,
        );
      }
      return;
    }
    this.#backend = b;
    present(set, 'backend set').acquire(b);
    const pool = this.#p.pool;
    this.#upReady = false;
    this.#res = 'none';
    this.#ubuf = null;
    const s = pool.take(b, this);
    if (s !== undefined) {
      this.#up = s;
      this.upConnect(now);
    } else {
      this.#up = pool.connect(b, this);
      // Body bytes wait for the new connection: stop reading the client until it is there.
      if (this.#reqBody !== null && !this.#reqBody.done) this.#c.socket.pause();
    }
  }

  /** The upstream connection is open (or was taken from the pool): send the request. */
  upConnect(now = this.#p.now()): void {
    const s = this.#up_;
    const upHead = present(this.#upHead, 'request head');
    this.#upReady = true;
    this.#sentAt = now;
    this.#sentAny = true;
    if (this.#retries === 0 || this.#replay === null) {
      const q = this.#queued;
      this.#queued = [];
      if (q.length === 0) s.write(upHead, 'latin1');
      else writeAll(s, [upHead, ...q]);
    } else {
      writeAll(s, this.#replay);
      this.#queued = [];
    }
    if (
      this.#reqBody !== null &&
      !this.#reqBody.done &&
      this.#c.buf === null &&
      this.#c.state === 'request' &&
      this.#c.socket.isPaused()
    ) {
      this.#c.socket.resume();
    }
  }

  /**
   * Bytes from the backend, in the upstream connection's read buffer: returns whether a
   * reference to them was kept past this call (see {@link UpstreamOwner}).
   */
  upData(chunk: Buffer): boolean {
    this.#now = this.#p.now();
    if (this.#res === 'body') return this.#forwardBody(chunk);
    this.#res = 'head';
    this.#ubuf = this.#ubuf === null ? chunk : Buffer.concat([this.#ubuf, chunk]);
    const kept = this.#parseResponse();
    // A partial head waits for more bytes: keep a copy, not the read buffer.
    if (this.#ubuf !== null && this.#ubuf.buffer === chunk.buffer)
      this.#ubuf = Buffer.from(this.#ubuf);
    return kept;
  }

  /** Parses the response head in #ubuf; returns whether a reference to its bytes was kept. */
  #parseResponse(): boolean {
    const p = this.#p;
    for (;;) {
      const ubuf = present(this.#ubuf, 'response bytes');
      let text: string;
      let rh: ResponseHead;
      try {
        const end = findHeadEnd(ubuf, p.limits, true);
        if (end === -1) return false;
        // The head and a small body after it, decoded at once (one response per read).
        text = latin1(ubuf, 0, Math.min(ubuf.length, end + INLINE_BODY));
        rh = parseResponseHead(ubuf, text, end, p.limits);
      } catch (err) {
        this.#ubuf = null;
        this.#set_.failed(this.#backend_);
        this.#dropUpstream();
        this.#localError(
          502,
          `the backend sent an invalid response (${(err as Error).message})`,
          false,
        );
        return false;
      }
      const rest = ubuf.length > rh.length ? ubuf.subarray(rh.length) : null;
      if (rh.status === 101 && this.#wantUpgrade) {
        this.#ubuf = null;
        this.#tunnel(text.slice(0, rh.length), rest && Buffer.from(rest));
        return false;
      }
      if (rh.status >= 100 && rh.status < 200) {
        if (this.#h.version === 11 && rh.status !== 101)
          this.#c.socket.write(text.slice(0, rh.length), 'latin1');
        if (rest === null) {
          this.#ubuf = null;
          this.#res = 'none';
          return false;
        }
        this.#ubuf = rest;
        continue;
      }
      this.#ubuf = null;
      return this.#onResponseHead(rh, text, rest);
    }
  }

  /** Sends the response head on (and the body bytes after it); returns whether they were kept. */
  #onResponseHead(rh: ResponseHead, raw: string, rest: Buffer | null): boolean {
    const p = this.#p;
    const route = this.#route_;
    const b = this.#backend_;
    this.#resHead = rh;
    this.#status = rh.status;
    this.#set_.succeeded(b);
    p.metrics.upstreamLatency(route.service, (this.#now - this.#sentAt) / 1000);
    const noBody = this.#h.method === 'HEAD' || rh.status === 204 || rh.status === 304;
    if (noBody) this.#resBody = new BodyFramer('length', 0);
    else if (rh.chunked) {
      // An HTTP/1.0 client does not know chunked framing (RFC 9112 section 7.1): it gets the
      // data only. Decided here, off the path of Content-Length responses.
      if (this.#h.version === 10) return this.#onDechunkedHead(rh, raw, rest);
      this.#resBody = new BodyFramer('chunked');
    } else if (rh.contentLength >= 0) this.#resBody = new BodyFramer('length', rh.contentLength);
    else this.#resBody = new BodyFramer('close');
    if (this.#resBody.untilClose) this.#keepClient = false;
    if (this.#reqBody !== null && !this.#reqBody.done) this.#keepClient = false;
    // Response head for the client: the backend's header lines copied as they are, less the
    // hop-by-hop ones, then ours.
    let s = '';
    if (rh.chunked && !noBody) s += 'transfer-encoding: chunked\r\n';
    // The lines below are also in #onDechunkedHead: keep them in step.
    if (route.sticky === true && this.#stickyId !== b.id) {
      s += `set-cookie: ${STICKY_COOKIE}=${p.sticky.sign(route.service, b.id)}; Path=/; HttpOnly; SameSite=Lax${this.#c.secure ? '; Secure' : ''}\r\n`;
    }
    if (this.#c.secure && route.hsts === true)
      s += 'strict-transport-security: max-age=31536000\r\n';
    if (!this.#keepClient) s += 'connection: close\r\n';
    else if (this.#h.version === 10) s += 'connection: keep-alive\r\n';
    this.#res = 'body';
    const head = copyHead(raw, rh, `${s}\r\n`);
    if (this.#resBody.done) {
      this.#c.socket.write(head, 'latin1');
      this.#complete(rest);
      return false;
    }
    if (rest !== null) return this.#forwardBody(rest, head, raw, rh.length);
    this.#c.socket.write(head, 'latin1');
    return false;
  }

  /**
   * A chunked response to an HTTP/1.0 client: the head without Transfer-Encoding and with
   * `connection: close`, then the chunks' data only (no sizes, no trailers), as it comes; the
   * close ends the body (nginx does the same). The backend's connection reports to an owner
   * of its own from here on, so Content-Length responses never test for this case. Returns
   * whether a reference to `rest` was kept.
   */
  #onDechunkedHead(rh: ResponseHead, raw: string, rest: Buffer | null): boolean {
    const p = this.#p;
    const route = this.#route_;
    const b = this.#backend_;
    this.#resBody = new BodyFramer('chunked');
    this.#keepClient = false;
    let s = '';
    // As in #onResponseHead.
    if (route.sticky === true && this.#stickyId !== b.id) {
      s += `set-cookie: ${STICKY_COOKIE}=${p.sticky.sign(route.service, b.id)}; Path=/; HttpOnly; SameSite=Lax${this.#c.secure ? '; Secure' : ''}\r\n`;
    }
    if (this.#c.secure && route.hsts === true)
      s += 'strict-transport-security: max-age=31536000\r\n';
    s += 'connection: close\r\n';
    this.#res = 'body';
    const up = this.#up_;
    up.owner = {
      upConnect: () => undefined,
      upData: (chunk: Buffer): boolean => {
        this.#now = p.now();
        return this.#forwardData(chunk);
      },
      upEnd: () => this.upEnd(),
      upClose: () => this.upClose(),
      upDrain: () => this.upDrain(),
    };
    // Less the Trailer header: the trailers it announces do not reach an HTTP/1.0 client.
    const head = copyHead(raw, rh, `${s}\r\n`, keepDechunkedHeader);
    if (rest !== null) return this.#forwardData(rest, head);
    this.#c.socket.write(head, 'latin1');
    return false;
  }

  /**
   * Forwards the data of the chunks in `chunk` (after `head`, if given, in the same write) to
   * an HTTP/1.0 client, moved to its front in place (see {@link BodyFramer.decode}); returns
   * whether the client socket kept a reference to `chunk`. Bad framing cuts the client off:
   * the body ends at the close, so a clean close would pass for a complete body.
   */
  #forwardData(chunk: Buffer, head?: string): boolean {
    const framer = this.#resBody_;
    let n: number;
    try {
      n = framer.decode(chunk);
    } catch {
      this.#finish(false);
      this.#dropUpstream();
      this.#cut();
      return false;
    }
    const cs = this.#c.socket;
    let flowing = true;
    let kept = false;
    if (head !== undefined && n > 0) {
      cs.cork();
      cs.write(head, 'latin1');
      flowing = cs.write(chunk.subarray(0, n));
      cs.uncork();
    } else if (head !== undefined) flowing = cs.write(head, 'latin1');
    else if (n > 0) flowing = cs.write(chunk.subarray(0, n));
    if (n > 0) kept = cs.writableLength > 0;
    if (!flowing && !framer.done) {
      const up = this.#up_;
      up.pause();
      this.#c.awaitDrain(() => up.resume());
    }
    // Bytes after the body do not matter: a backend connection that served an HTTP/1.0 client
    // is not reused.
    if (framer.done) this.#complete(null);
    return kept;
  }

  /** Cuts the client off now (router shutdown), with a reset where #cut gives one. */
  cut(): void {
    this.#cut();
  }

  /**
   * Cuts the client off mid-response. A body the close ends (no length, or de-chunked for an
   * HTTP/1.0 client) is cut with a TCP reset, so that the client cannot take it for complete.
   * Over TLS the socket is destroyed without a close_notify (Node cannot reset the TCP socket
   * under a TLS one), which tells a client that checks for it the same.
   */
  #cut(): void {
    const cs = this.#c.socket;
    if (cs.destroyed) return;
    const rh = this.#resHead;
    const closeEnds =
      this.#resBody?.untilClose === true || (rh !== null && rh.chunked && this.#h.version === 10);
    if (closeEnds && !this.#c.secure) cs.resetAndDestroy();
    else cs.destroy();
  }

  /**
   * Forwards response body bytes (after `head`, if given, in the same write; `raw` holds
   * `chunk`'s bytes as latin1 from `at` as far as it goes); returns whether the client
   * socket kept a reference to `chunk` (its write did not finish at once).
   */
  #forwardBody(chunk: Buffer, head?: string, raw = '', at = 0): boolean {
    const framer = this.#resBody_;
    let end: number;
    try {
      end = framer.feed(chunk);
    } catch {
      this.#finish(false);
      this.#dropUpstream();
      this.#c.socket.destroy();
      return false;
    }
    const cs = this.#c.socket;
    let kept = false;
    let flowing = true;
    if (head !== undefined && at + end <= raw.length) {
      // The head and the body bytes, decoded with it: one string, copied as it is written.
      flowing = cs.write(end === 0 ? head : head + raw.slice(at, at + end), 'latin1');
    } else if (end > 0 || head !== undefined) {
      const out = end === chunk.length ? chunk : chunk.subarray(0, end);
      if (head !== undefined) {
        cs.cork();
        cs.write(head, 'latin1');
        flowing = cs.write(out);
        cs.uncork();
      } else flowing = cs.write(out);
      kept = cs.writableLength > 0;
    }
    if (!flowing && !framer.done) {
      const up = this.#up_;
      up.pause();
      this.#c.awaitDrain(() => up.resume());
    }
    if (end < chunk.length) {
      if (framer.trailing) this.#responseTrailers(framer, chunk);
      else if (framer.done) this.#complete(chunk.subarray(end));
    } else if (framer.done) this.#complete(null);
    return kept;
  }

  /**
   * The response body's trailer section was held back from `chunk` on: once it is complete,
   * its fields go on less the hop-by-hop ones (and those the response's Connection names) and
   * the framing ones, then the response is complete.
   */
  #responseTrailers(framer: BodyFramer, chunk: Buffer): void {
    if (!framer.done) return;
    const drop = present(this.#resHead, 'response head').connection;
    this.#c.socket.write(
      keptTrailerLines(
        present(framer.trailers, 'trailer section'),
        (n) => keepResponseTrailer(n) && !drop.includes(n),
      ),
      'latin1',
    );
    this.#complete(framer.end < chunk.length ? chunk.subarray(framer.end) : null);
  }

  /** The response is complete. */
  #complete(extra: Buffer | null): void {
    const up = this.#up_;
    const b = this.#backend_;
    this.#res = 'done';
    this.#detachUp(up);
    const rh = present(this.#resHead, 'response head');
    const reusable =
      extra === null &&
      rh.version === 11 &&
      !rh.connection.includes('close') &&
      !this.#resBody_.untilClose &&
      this.#h.version === 11 &&
      (this.#reqBody === null || this.#reqBody.done);
    if (reusable) this.#p.pool.put(b, up, this.#now);
    else up.destroy();
    this.#up = null;
    this.#finish(true);
    const c = this.#c;
    const rest = c.buf;
    c.buf = null;
    c.next(this.#keepClient, rest, this.#now);
  }

  #detachUp(up: UpSocket): void {
    up.owner = null;
  }

  /** The backend ended its side. */
  upEnd(): void {
    if (this.#res === 'body' && this.#resBody_.untilClose) {
      this.#complete(null);
      return;
    }
    this.#up?.destroy();
  }

  /** The backend connection closed. */
  upClose(): void {
    if (this.#up === null || this.#finished) return;
    this.#upstreamFailed(false);
  }

  /** The upstream connection failed (or timed out) before the exchange completed. */
  #upstreamFailed(timeout: boolean): void {
    const up = this.#up_;
    this.#detachUp(up);
    up.destroy();
    this.#up = null;
    const b = this.#backend_;
    const set = this.#set_;
    if (this.#res === 'body') {
      // Part of the response went out: nothing can save it; cut the client off.
      this.#finish(false);
      this.#cut();
      return;
    }
    set.failed(b);
    set.release(b);
    this.#backend = undefined;
    const idempotent = IDEMPOTENT.has(this.#h.method);
    const canRetry =
      !timeout &&
      this.#res === 'none' &&
      this.#retries < this.#p.maxRetries &&
      this.#c.state === 'request' &&
      (this.#replay !== null || !this.#sentAny) &&
      (idempotent || !this.#sentAny);
    if (canRetry) {
      (this.#tried ??= new Set()).add(b);
      this.#retries++;
      this.#p.metrics.retry(set.service);
      this.#sentAny = false;
      this.#attempt(this.#p.now());
      return;
    }
    this.#localError(
      timeout ? 504 : 502,
      timeout
        ? 'the backend did not answer in time'
        : 'the backend closed the connection without a response',
      false,
    );
  }

  #tunnel(head: string, rest: Buffer | null): void {
    const up = this.#up_;
    const cs = this.#c.socket;
    this.#detachUp(up);
    this.#c.state = 'tunnel';
    this.#status = 101;
    cs.write(head, 'latin1');
    if (rest !== null) cs.write(rest);
    const pending = this.#c.buf;
    this.#c.buf = null;
    if (pending !== null) up.write(pending);
    const set = this.#set_;
    const b = this.#backend_;
    this.#p.metrics.request(this.#route_.label, 101);
    this.#log(101);
    let released = false;
    const done = (): void => {
      if (released) return;
      released = true;
      set.release(b);
      up.destroy();
      cs.destroy();
    };
    up.on('error', done);
    up.on('close', done);
    cs.on('error', done);
    cs.on('close', done);
    // Backend to client: the upstream connection reads into its own buffer (no stream to
    // pipe), so its bytes are written on here, with the same backpressure as a pipe.
    let resumeUp: (() => void) | null = null;
    up.owner = {
      upConnect: () => undefined,
      upData: (chunk: Buffer): boolean => {
        if (!cs.write(chunk) && resumeUp === null) {
          up.pause();
          resumeUp = () => {
            resumeUp = null;
            up.resume();
          };
          this.#c.awaitDrain(resumeUp);
        }
        return cs.writableLength > 0;
      },
      upEnd: () => cs.end(),
      upClose: done,
      upDrain: () => undefined,
    };
    // Client to backend, as a pipe would: backpressure, and the client's half-close passed on.
    this.#c.tunnel = {
      data: (chunk: Buffer): void => {
        if (!up.write(chunk)) {
          cs.pause();
          up.once('drain', () => cs.resume());
        }
      },
      end: () => up.end(),
    };
    if (cs.isPaused()) cs.resume();
    this.#finished = true;
  }

  /** Called by the sweeper: the upstream response head timeout. */
  sweep(now: number): void {
    if (
      this.#up !== null &&
      this.#upReady &&
      (this.#res === 'none' || this.#res === 'head') &&
      now - this.#sentAt >= this.#p.upstreamTimeoutMs
    ) {
      this.#upstreamFailed(true);
    }
  }

  /** The client went away mid-exchange. */
  clientGone(): void {
    if (this.#finished) return;
    this.#dropUpstream();
    this.#finish(false);
  }

  #dropUpstream(): void {
    const up = this.#up;
    if (up === null) return;
    this.#detachUp(up);
    up.destroy();
    this.#up = null;
  }

  /** Bookkeeping once per request: backend release, metrics, access log. */
  #finish(ok: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#backend !== undefined) {
      this.#set_.release(this.#backend);
    }
    const status = ok ? this.#status : this.#status || 499;
    this.#p.metrics.request(this.#route?.label ?? 'none', status);
    this.#log(status);
  }

  #log(status: number): void {
    const log = this.#p.accessLog;
    if (log === undefined) return;
    const h = this.#h;
    const q = h.target.indexOf('?');
    log({
      method: h.method,
      host: h.host,
      path: q === -1 ? h.target : h.target.slice(0, q),
      status,
      durationMs: this.#p.now() - this.#start,
      route: this.#route?.label,
      backend: this.#backend?.addr,
      requestId: this.#requestId,
      remoteAddr: this.#c.remoteAddr,
      retries: this.#retries,
    });
  }

  /** A local answer that keeps the connection when no request body is left unread. */
  #local(status: number, body: string): void {
    const keep = this.#keepClient && (this.#reqBody === null || this.#reqBody.done);
    this.#status = status;
    this.#finish(true);
    this.#c.respond(status, body, keep);
    const c = this.#c;
    const rest = c.buf;
    c.buf = null;
    c.next(keep, rest);
  }

  #localRaw(status: number, reason: string, body: string, extra: string): void {
    const keep = this.#keepClient && (this.#reqBody === null || this.#reqBody.done);
    this.#finish(true);
    const c = this.#c;
    c.socket.write(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}${keep ? '' : 'connection: close\r\n'}\r\n${body}`,
    );
    const rest = c.buf;
    c.buf = null;
    c.next(keep, rest);
  }

  #localError(status: number, detail: string, keep: boolean): void {
    this.#status = status;
    this.#finish(true);
    const body = `${REASONS[status] ?? 'Error'}: ${detail}\n`;
    const k = keep && this.#keepClient;
    this.#c.respond(status, body, k);
    const c = this.#c;
    const rest = c.buf;
    c.buf = null;
    c.next(k, rest);
  }
}

/** `v`, which the exchange's state guarantees; a missing one is a bug, reported as such. */
function present<T>(v: T | undefined | null, what: string): T {
  if (v === undefined || v === null)
    throw new Error(`router bug: no ${what} at this point of the exchange`);
  return v;
}

/**
 * Whether Connection tokens name no header beyond the hop-by-hop ones (`keep-alive`, `close`,
 * `upgrade`: the usual), which are dropped anyway.
 */
function nothingMore(tokens: readonly string[]): boolean {
  for (const t of tokens) if (t !== 'close' && !isHopByHop(t)) return false;
  return true;
}

/**
 * Whether Connection `tokens` name the field `name` (dropped then), never Content-Length nor
 * Host: the router frames the body it forwards by the one and routes by the other, so the next
 * hop must see them too (without Content-Length it would read the body as the next message).
 */
function named(tokens: readonly string[], name: string): boolean {
  return name !== 'content-length' && name !== 'host' && tokens.includes(name);
}

/** Request header lines passed on: not hop-by-hop, not set (or dropped) by the router. */
function keepRequestHeader(name: string): boolean {
  return !isNotFromClient(name);
}

/**
 * Feeds `chunk` to a request body's framer and splits it: the body bytes to send on, and the
 * bytes after the body (the next request's). A trailer section is held back; once complete, it
 * goes on as its final CRLF alone, none of its fields: a backend that merged trailer fields
 * into the head (as some do) would take a forged X-Forwarded-For, Host or Content-Length from
 * them, and nothing a backend needs comes only there (nginx and Envoy drop them too). Throws
 * the framer's {@link FramingError}.
 */
function splitBody(body: BodyFramer, chunk: Buffer): { part: Buffer | null; after: Buffer | null } {
  const end = body.feed(chunk);
  let part = end === 0 ? null : end === chunk.length ? chunk : chunk.subarray(0, end);
  if (end === chunk.length) return { part, after: null };
  if (!body.trailing) return { part, after: chunk.subarray(end) };
  if (!body.done) return { part, after: null };
  part = part === null ? NO_TRAILERS : Buffer.concat([part, NO_TRAILERS]);
  return { part, after: body.end < chunk.length ? chunk.subarray(body.end) : null };
}

/** Writes strings (as latin1) and Buffers in one system call. */
function writeAll(s: net.Socket, parts: readonly (string | Buffer)[]): void {
  s.cork();
  for (const part of parts) {
    if (typeof part === 'string') s.write(part, 'latin1');
    else s.write(part);
  }
  s.uncork();
}

/**
 * Copies a head from `raw` (latin1) as it is, from `from` (the start line, or the first header
 * line) on, less the header lines whose lower-case names `keep` refuses, between `prefix` (a
 * new start line, or '') and `tail` (added lines and the final CRLF).
 */
function copyHeaderLines(
  raw: string,
  from: number,
  starts: readonly number[],
  names: readonly string[],
  keep: (name: string, i: number) => boolean,
  prefix: string,
  tail: string,
): string {
  let out = prefix;
  let run = from;
  for (let i = 0; i < names.length; i++) {
    if (keep(names[i] as string, i)) continue;
    const start = starts[i] as number;
    if (start > run) out += raw.slice(run, start);
    run = starts[i + 1] as number;
  }
  const end = starts[names.length] as number;
  if (end > run) out += raw.slice(run, end);
  return out + tail;
}

/**
 * The client's copy of a response head: the status line (the backend's, or rewritten to
 * HTTP/1.1 when it spoke 1.0), the backend's header lines less hop-by-hop ones (or those `base`
 * refuses) and those its Connection header names, then `tail` (our lines and the final CRLF).
 */
function copyHead(
  raw: string,
  rh: ResponseHead,
  tail: string,
  base: (name: string) => boolean = keepResponseHeader,
): string {
  // An HTTP/1.1 status line is copied with the rest; a 1.0 one is rewritten.
  const v11 = rh.version === 11;
  return copyHeaderLines(
    raw,
    v11 ? 0 : (rh.lineStarts[0] as number),
    rh.lineStarts,
    rh.names,
    headerFilter(rh, base),
    v11 ? '' : `HTTP/1.1 ${rh.status} ${rh.reason}\r\n`,
    tail,
  );
}

/**
 * Which header lines of a head go on (by lower-case name and index): those `base` allows and
 * the head's Connection header does not name; a repeated Content-Length (equal: the parser
 * refuses others) only once, since a next hop that refuses repeated ones (node:http does)
 * would fail a message the router took.
 */
function headerFilter(
  head: Pick<ResponseHead, 'connection' | 'names' | 'contentLength'>,
  base: (name: string) => boolean,
): (name: string, i: number) => boolean {
  const drop = head.connection;
  const keep = nothingMore(drop) ? base : (n: string) => base(n) && !named(drop, n);
  const cl = head.contentLength >= 0 ? head.names.indexOf('content-length') : -1;
  if (cl === -1 || head.names.indexOf('content-length', cl + 1) === -1) return keep;
  return (n, i) => keep(n) && (n !== 'content-length' || i === cl);
}

/** Response header lines passed on: not hop-by-hop. */
function keepResponseHeader(name: string): boolean {
  return !isHopByHop(name);
}

/** The same for a chunked response passed on to an HTTP/1.0 client without its trailers. */
function keepDechunkedHeader(name: string): boolean {
  return keepResponseHeader(name) && name !== ANNOUNCES_TRAILERS;
}
