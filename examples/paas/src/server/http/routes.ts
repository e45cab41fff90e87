import type { IncomingMessage, ServerResponse } from 'node:http';
import { PaasError, PaasErrorCodes } from '../../errors.js';

/** What a handler gets: the request, the response, the path's parameters and the query. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Aborted when the client goes away: pass it to long operations. */
  readonly signal: AbortSignal;
}

/** A route handler: returns a value to answer as JSON (200, or `status`), or answers itself. */
export type Handler = (ctx: RequestContext) => Promise<unknown>;

interface Route {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: Handler;
}

/** A result with a status other than 200. */
export class Status {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {}
}

/** A tiny method + path router: `/apps/:app/config-vars`. Segments are matched decoded. */
export class Routes {
  readonly #routes: Route[] = [];

  /** Adds a route. */
  on(method: string, path: string, handler: Handler): this {
    this.#routes.push({ method, parts: path.split('/').filter(Boolean), handler });
    return this;
  }

  /** Finds the handler of a request, or throws 404 / 405. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const segs = pathname.split('/').filter(Boolean);
    let decoded: string[];
    try {
      decoded = segs.map((s) => decodeURIComponent(s));
    } catch {
      throw new PaasError(PaasErrorCodes.NOT_FOUND, `no route for ${pathname}`, { status: 404 });
    }
    let pathMatched = false;
    for (const route of this.#routes) {
      if (route.parts.length !== decoded.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (const [i, part] of route.parts.entries()) {
        const seg = decoded[i] ?? '';
        if (part.startsWith(':')) params[part.slice(1)] = seg;
        else if (part !== seg) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      pathMatched = true;
      if (route.method === method) return { handler: route.handler, params };
    }
    if (pathMatched)
      throw new PaasError(PaasErrorCodes.NOT_FOUND, `${method} is not allowed on ${pathname}`, {
        status: 405,
      });
    throw new PaasError(PaasErrorCodes.NOT_FOUND, `no route for ${method} ${pathname}`, {
      status: 404,
    });
  }
}
