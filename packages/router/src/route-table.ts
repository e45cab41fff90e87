import { type Logger, silentLogger } from '@flotilla/core';
import type { CallOptions, Store } from '@flotilla/store';
import { RouterError } from './errors.js';
import { isRouteId, type Route, type StoredRoute, validateRoute } from './route.js';

/** The default key prefix of every router record in the store. */
export const DEFAULT_ROUTER_PREFIX = 'router/';

/** Options of {@link RouteTable}. */
export interface RouteTableOptions {
  /** Key prefix of the router's records (default `router/`); routes live under `<prefix>routes/`. */
  readonly prefix?: string;
  /** Where unreadable entries are reported as warnings (default: silent). */
  readonly logger?: Logger;
  /** Called for every stored entry that is not a valid route (it is left out of `list()`). */
  readonly onInvalidRecord?: (error: RouterError) => void;
}

/**
 * Parses one stored route. Throws `FLOTILLA_ROUTER_INVALID_RECORD` (naming the key) when the
 * value is not a valid route or its id is not the one its key names.
 */
export function parseRouteRecord(key: string, value: string, prefix: string): StoredRoute {
  const id = key.slice(`${prefix}routes/`.length);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (cause) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_RECORD',
      `route entry ${key} is not JSON: delete it or set the route again`,
      { key, cause },
    );
  }
  try {
    const route = validateRoute(parsed);
    if (route.id !== id) throw new Error(`its id is ${route.id}, its key names ${id}`);
    return route;
  } catch (cause) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_RECORD',
      `route entry ${key} is not a valid route (${(cause as Error).message}): delete it or set the route again`,
      { key, cause },
    );
  }
}

/**
 * The routes in a store, without running a router: what a controller uses to publish routes
 * that every router sharing the store picks up live.
 *
 * @example
 * ```ts
 * const routes = new RouteTable(store);
 * const r = await routes.set({ type: 'http', domain: 'demo.localhost', service: 'demo-web' });
 * await routes.remove(r.id);
 * ```
 */
export class RouteTable {
  readonly #store: Store;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #onInvalid: ((error: RouterError) => void) | undefined;

  /** Makes no store call. */
  constructor(store: Store, options: RouteTableOptions = {}) {
    this.#store = store;
    this.#prefix = options.prefix ?? DEFAULT_ROUTER_PREFIX;
    this.#logger = options.logger ?? silentLogger;
    this.#onInvalid = options.onInvalidRecord;
  }

  /** The prefix under which routes are stored (`<prefix>routes/`). */
  get routesPrefix(): string {
    return `${this.#prefix}routes/`;
  }

  /**
   * Validates and stores a route, replacing the route with the same domain and path (HTTP) or
   * port (TCP). Resolves with the stored, normalised route and its id.
   */
  async set(route: Route, options: CallOptions = {}): Promise<StoredRoute> {
    const stored = validateRoute(route);
    await this.#store.put(this.routesPrefix + stored.id, JSON.stringify(stored), options);
    return stored;
  }

  /** Removes a route by id; resolves false when there was none. */
  async remove(id: string, options: CallOptions = {}): Promise<boolean> {
    if (!isRouteId(id)) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_ROUTE_ID',
        `${JSON.stringify(id)} is not a route id: use the id that set() or list() returned (tcp-<port> or http-<hash>)`,
      );
    }
    const res = await this.#store.delete(this.routesPrefix + id, options);
    return res.deleted > 0;
  }

  /** Reads one route by id; `undefined` when absent. */
  async get(id: string, options: CallOptions = {}): Promise<StoredRoute | undefined> {
    if (!isRouteId(id)) return undefined;
    const kv = await this.#store.get(this.routesPrefix + id, options);
    return kv === undefined ? undefined : parseRouteRecord(kv.key, kv.value, this.#prefix);
  }

  /**
   * Lists the routes, optionally of one service, sorted by id. Entries that are not valid
   * routes are left out and reported (`onInvalidRecord`, and a warning).
   */
  async list(
    filter: { readonly service?: string } = {},
    options: CallOptions = {},
  ): Promise<StoredRoute[]> {
    const out: StoredRoute[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#store.list(this.routesPrefix, {
        ...options,
        limit: 500,
        ...(after === undefined ? {} : { after }),
      });
      for (const kv of page.kvs) {
        try {
          const route = parseRouteRecord(kv.key, kv.value, this.#prefix);
          if (filter.service === undefined || route.service === filter.service) out.push(route);
        } catch (err) {
          this.#logger.warn({ err, key: kv.key }, 'invalid route entry left out');
          this.#onInvalid?.(err as RouterError);
        }
      }
      if (!page.more || page.kvs.length === 0) break;
      after = page.kvs[page.kvs.length - 1]?.key;
    }
    return out;
  }
}
