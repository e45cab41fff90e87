import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@flotilla/core';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { presentedSecret, tokenMatches } from './auth.js';
import { errorResponse } from './errors.js';
import { Status, type Routes } from './routes.js';

/** A handler of the paths outside the JSON API (git), given the request once authenticated. */
export type RawHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** What {@link ApiServer} serves. */
export interface ApiServerOptions {
  readonly token: string;
  readonly routes: Routes;
  readonly logger: Logger;
}

/**
 * The HTTP server of the API: every call needs the token (bearer, or basic auth's password as
 * `git` sends it); answers are JSON, errors `{ id, message, code }`.
 */
export class ApiServer {
  readonly #o: ApiServerOptions;
  readonly #server: Server;
  readonly #raw: { readonly prefix: string; readonly handler: RawHandler }[] = [];
  #closed: Promise<void> | undefined;
  #ready = false;

  constructor(options: ApiServerOptions) {
    this.#o = options;
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.requestTimeout = 0; // pushes and log streams last as long as they last
    this.#server.headersTimeout = 30_000;
  }

  /** Listens; resolves with the bound address. A port in use is `FLOTILLA_PAAS_INVALID_OPTIONS`. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void =>
        reject(
          new PaasError(
            PaasErrorCodes.INVALID_OPTIONS,
            err.code === 'EADDRINUSE'
              ? `${host}:${port} is in use: stop what listens there, or give another port (--api-port, FLOTILLA_API_PORT)`
              : `cannot listen on ${host}:${port}: ${err.message}`,
            { cause: err },
          ),
        );
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Serves paths under `prefix` (`/git/`) with `handler`, after the same token check. */
  raw(prefix: string, handler: RawHandler): void {
    this.#raw.push({ prefix, handler });
  }

  /** Starts answering calls; until then every call gets 503 (the server is starting). */
  ready(): void {
    this.#ready = true;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const ac = new AbortController();
    // A client that goes away (its socket closed or ended) aborts what its call started.
    res.on('close', () => ac.abort(new Error('the client went away')));
    try {
      const raw = this.#raw.find((r) => url.pathname.startsWith(r.prefix));
      if (!tokenMatches(this.#o.token, presentedSecret(req))) {
        req.resume();
        res.setHeader(
          'www-authenticate',
          raw === undefined ? 'Bearer realm="flotilla"' : 'Basic realm="flotilla"',
        );
        throw new PaasError(
          PaasErrorCodes.UNAUTHORIZED,
          'missing or wrong token: run `flotilla login`, or set FLOTILLA_TOKEN',
          { status: 401 },
        );
      }
      if (!this.#ready)
        throw new PaasError(
          PaasErrorCodes.STARTING,
          'the server is starting: try again in a moment',
          {
            status: 503,
            retryable: true,
          },
        );
      if (raw !== undefined) {
        await raw.handler(req, res);
        return;
      }
      const { handler, params } = this.#o.routes.match(req.method ?? 'GET', url.pathname);
      const result = await handler({
        req,
        res,
        params,
        query: url.searchParams,
        signal: ac.signal,
      });
      if (res.headersSent || res.writableEnded) return;
      if (result instanceof Status) send(res, result.status, result.body);
      else send(res, 200, result);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) this.#o.logger.error({ err, path: url.pathname }, 'request failed');
      if (!res.headersSent) {
        // A body left unread (a 413, a 401 before the upload ended): this connection is done.
        if (!req.complete) res.setHeader('connection', 'close');
        send(res, status, body);
      } else res.destroy();
    } finally {
      this.#o.logger.debug(
        {
          method: req.method,
          path: url.pathname,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        },
        'request',
      );
    }
  }

  /** Stops accepting calls and ends open ones (log streams, pushes). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closed;
  }
}

/** Answers with JSON. */
export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
