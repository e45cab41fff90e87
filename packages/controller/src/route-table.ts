/** A route as the controller asks for it: HTTP traffic for `domain` goes to discovery service `service`. */
export interface RouteInput {
  readonly type: 'http';
  readonly domain: string;
  readonly path?: string;
  /** The discovery service (`<app>-web`). */
  readonly service: string;
}

/** A route as a route table lists it (of any type: a router's table also holds tcp routes). */
export interface RouteEntry {
  readonly id: string;
  readonly type: string;
  readonly service: string;
  /** For http routes. */
  readonly domain?: string;
  readonly path?: string;
}

/**
 * The slice of `RouteTable` from `@flotilla/router` the controller uses for domains. Default:
 * `new RouteTable(store)` from `@flotilla/router`, imported when first needed.
 */
export interface RouteTableLike {
  /** Adds or replaces a route; resolves with it (or its id). */
  set(route: RouteInput): Promise<{ readonly id: string } | string>;
  /** Removes a route by id. */
  remove(id: string): Promise<unknown>;
  /** The routes, of one service when given. */
  list(filter?: { readonly service?: string }): Promise<readonly RouteEntry[]>;
}
