import http from 'node:http';
import { constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Backend } from './backend-set.js';
import type { DataPlane } from './data-plane.js';
import { ANNOUNCES_TRAILERS, FORWARDED, HOP_BY_HOP, IDEMPOTENT } from './forwarding.js';

/**
 * Hop-by-hop headers, `host` (HTTP/2 carries it as `:authority`), and `trailer`: trailers are
 * dropped both ways over HTTP/2, and so is the header that announces them.
 */
const HOP = new Set([...HOP_BY_HOP, 'host', ANNOUNCES_TRAILERS]);

/**
 * Serves HTTP/2 clients (negotiated by ALPN on the TLS listener): the same routes, balancing,
 * retries (for body-less idempotent requests), stickiness and limits, forwarded to backends
 * over HTTP/1.1 with a keep-alive agent. WebSockets over HTTP/2 (RFC 8441) are not supported.
 */
export function createH2Handler(
  plane: DataPlane,
  agent: http.Agent,
): (req: Http2ServerRequest, res: Http2ServerResponse) => void {
  const local = (
    res: Http2ServerResponse,
    status: number,
    body: string,
    route: string,
    extra: Record<string, string> = {},
  ): void => {
    plane.metrics.request(route, status);
    if (res.headersSent) {
      res.stream.close();
      return;
    }
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...extra });
    res.end(body);
  };
  return (req, res) => {
    const start = plane.now();
    const authority = req.headers[':authority'] ?? req.headers.host ?? '';
    const route = plane.matcher.match(authority, req.url);
    if (route === undefined) {
      local(res, 404, `No route for host ${JSON.stringify(authority.slice(0, 200))}\n`, 'none');
      return;
    }
    const cl = Number(req.headers['content-length'] ?? '0');
    if (route.maxBodyBytes !== undefined && cl > route.maxBodyBytes) {
      local(
        res,
        413,
        `Content Too Large: the body is larger than this route's limit of ${route.maxBodyBytes} bytes\n`,
        route.label,
      );
      return;
    }
    const set = plane.backends(route.service);
    let requestId = String(req.headers['x-request-id'] ?? '');
    if (!/^[\x21-\x7e]{1,200}$/.test(requestId)) requestId = plane.requestId();
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith(':') || HOP.has(k) || FORWARDED.has(k) || v === undefined) continue;
      headers[k] = v;
    }
    const ra = req.socket.remoteAddress ?? '';
    const remote = ra.startsWith('::ffff:') ? ra.slice(7) : ra;
    const xff = req.headers['x-forwarded-for'];
    headers.host = authority;
    headers['x-forwarded-for'] =
      xff === undefined || String(xff).trim() === '' ? remote : `${String(xff)}, ${remote}`;
    headers['x-forwarded-proto'] = 'https';
    headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
    headers['x-request-id'] = requestId;
    headers['x-request-start'] = `t=${Date.now()}`;
    const bodyless =
      (req.headers['content-length'] === undefined || cl === 0) &&
      req.readableEnded !== false &&
      req.stream.endAfterHeaders;
    const tried = new Set<Backend>();
    let stickyId: string | undefined;
    if (route.sticky === true && typeof req.headers.cookie === 'string')
      stickyId = plane.sticky.verify(route.service, req.headers.cookie);
    let received = 0;
    const attempt = (): void => {
      let b: Backend | undefined;
      if (set !== undefined && stickyId !== undefined && tried.size === 0) {
        const s = set.get(stickyId);
        if (s?.usable(plane.now()) === true) b = s;
      }
      b ??= set?.pick(tried);
      if (set === undefined || b === undefined) {
        local(
          res,
          tried.size === 0 ? 503 : 502,
          tried.size === 0
            ? `No ready backend for service ${route.service}\n`
            : 'Bad Gateway: every backend tried failed\n',
          route.label,
        );
        return;
      }
      const backend = b;
      set.acquire(backend);
      let released = false;
      const release = (): void => {
        if (!released) {
          released = true;
          set.release(backend);
        }
      };
      const sentAt = plane.now();
      const up = http.request({
        host: backend.host,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
        timeout: plane.upstreamTimeoutMs,
      });
      up.on('timeout', () => up.destroy(new Error('upstream timeout')));
      let responded = false;
      up.on('response', (ur) => {
        responded = true;
        // upstreamTimeoutMs is for the head (as over HTTP/1): the socket's idle timer would
        // also cut a body whose client pauses, or whose backend streams slowly.
        up.setTimeout(0);
        set.succeeded(backend);
        plane.metrics.upstreamLatency(route.service, (plane.now() - sentAt) / 1000);
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(ur.headers))
          if (!HOP.has(k) && v !== undefined) out[k] = v;
        if (route.sticky === true && stickyId !== backend.id) {
          const cookie = `flotilla_sticky=${plane.sticky.sign(route.service, backend.id)}; Path=/; HttpOnly; SameSite=Lax; Secure`;
          const prev = out['set-cookie'];
          out['set-cookie'] =
            prev === undefined ? [cookie] : [...(Array.isArray(prev) ? prev : [prev]), cookie];
        }
        if (route.hsts === true) out['strict-transport-security'] = 'max-age=31536000';
        const status = ur.statusCode ?? 502;
        res.writeHead(status, out);
        // As a pipe, but a client that takes nothing for sendTimeoutMs has its stream reset,
        // which lets the backend's connection go (as over HTTP/1).
        ur.on('data', (chunk: Buffer) => {
          if (res.write(chunk)) return;
          ur.pause();
          stalled = setTimeout(
            () => res.stream.close(constants.NGHTTP2_CANCEL),
            plane.sendTimeoutMs,
          );
          res.once('drain', () => {
            clearTimeout(stalled);
            ur.resume();
          });
        });
        ur.on('end', () => {
          res.end();
          release();
          plane.metrics.request(route.label, status);
          plane.accessLog?.({
            method: req.method,
            host: authority,
            path: req.url.split('?')[0] ?? '',
            status,
            durationMs: plane.now() - start,
            route: route.label,
            backend: backend.addr,
            requestId,
            remoteAddr: remote,
            retries: tried.size,
          });
        });
        ur.on('error', () => {
          release();
          // Not NO_ERROR: node:http2 (and others) take that for the end of a whole body.
          res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        });
      });
      up.on('error', () => {
        release();
        if (responded) {
          res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
          return;
        }
        set.failed(backend);
        tried.add(backend);
        if (
          bodyless &&
          IDEMPOTENT.has(req.method) &&
          tried.size <= plane.maxRetries &&
          !res.stream.destroyed
        ) {
          plane.metrics.retry(route.service);
          attempt();
        } else local(res, 502, 'Bad Gateway: the backend failed before answering\n', route.label);
      });
      let stalled: NodeJS.Timeout | undefined;
      res.stream.once('close', () => {
        clearTimeout(stalled);
        if (!up.destroyed) up.destroy();
        release();
      });
      if (bodyless) up.end();
      else {
        req.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (route.maxBodyBytes !== undefined && received > route.maxBodyBytes) {
            up.destroy();
            local(
              res,
              413,
              `Content Too Large: the body is larger than this route's limit of ${route.maxBodyBytes} bytes\n`,
              route.label,
            );
          }
        });
        req.pipe(up);
      }
    };
    attempt();
  };
}
