import { createHash } from 'node:crypto';
import { RouterError } from './errors.js';

/** An HTTP route: requests for `domain` whose path starts with `path` go to `service`. */
export interface HttpRoute {
  /** The kind of route. */
  readonly type: 'http';
  /**
   * The host name it serves, lower-case (`demo.example.com`), or a wildcard `*.example.com`
   * matching any name one or more labels below `example.com` (an exact route wins).
   */
  readonly domain: string;
  /**
   * The path prefix, on segment boundaries (`/api` matches `/api` and `/api/x`, not
   * `/apix`); the longest matching prefix wins. Default `/`.
   */
  readonly path?: string;
  /** The discovery service whose ready instances serve it. */
  readonly service: string;
  /** Pin each client to one backend with a signed cookie, while that backend is ready. */
  readonly sticky?: boolean;
  /** Redirect plain HTTP requests to HTTPS (308, or 301 for GET and HEAD). */
  readonly httpsOnly?: boolean;
  /** Send `Strict-Transport-Security` on HTTPS responses. */
  readonly hsts?: boolean;
  /** Refuse request bodies larger than this many bytes with 413 (default: no limit). */
  readonly maxBodyBytes?: number;
}

/** A TCP route: connections to `port` on the router go to `service`. */
export interface TcpRoute {
  /** The kind of route. */
  readonly type: 'tcp';
  /** The router's listening port for this route, 1-65535. */
  readonly port: number;
  /** The discovery service whose ready instances serve it. */
  readonly service: string;
}

/** A route of either kind. */
export type Route = HttpRoute | TcpRoute;

/**
 * A route as stored, with its id: `tcp-<port>` for a TCP route, `http-<hash>` (of domain and
 * path) for an HTTP one, so that setting a route twice replaces it.
 */
export type StoredRoute = Route & {
  /** The route's id, derived from its domain and path, or port. */
  readonly id: string;
};

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN_RE = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);
const SERVICE_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
// Path characters allowed by RFC 3986 (pchar and '/'), no query or fragment.
const PATH_RE = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const ROUTE_ID_RE = /^(?:tcp-[0-9]{1,5}|http-[0-9a-f]{24})$/;

const invalid = (message: string): RouterError =>
  new RouterError('FLOTILLA_ROUTER_INVALID_ROUTE', message);

/** Checks a service name: lower-case DNS-style labels, as `@flotilla/discovery` requires. */
export function isServiceName(service: unknown): service is string {
  return typeof service === 'string' && service.length <= 253 && SERVICE_RE.test(service);
}

/** Checks a domain as routes and certificates take it: lower-case host name or `*.` wildcard. */
export function isDomainPattern(domain: unknown): domain is string {
  return typeof domain === 'string' && domain.length <= 253 && DOMAIN_RE.test(domain);
}

/** Tells whether `id` has the shape of a route id. */
export function isRouteId(id: unknown): id is string {
  return typeof id === 'string' && ROUTE_ID_RE.test(id);
}

/** Normalises a path prefix: no trailing slash except for the root. */
function normalisePath(path: string): string {
  let p = path;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/**
 * Checks a route and returns it normalised (domain lower-cased, path without a trailing
 * slash, defaults filled in), with its id. Throws `FLOTILLA_ROUTER_INVALID_ROUTE` saying what
 * to fix.
 */
export function validateRoute(input: unknown): StoredRoute {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid(
      'a route must be an object: { type: "http", domain, service } or { type: "tcp", port, service }',
    );
  }
  const r = input as Record<string, unknown>;
  if (!isServiceName(r.service)) {
    throw invalid(
      `route service ${JSON.stringify(r.service)} is not a service name: use lower-case letters, digits, '-' and '.' (as registered in discovery)`,
    );
  }
  if (r.type === 'tcp') {
    for (const k of Object.keys(r)) {
      if (!['type', 'port', 'service', 'id'].includes(k))
        throw invalid(`tcp route has an unknown field "${k}": allowed are type, port, service`);
    }
    const port = r.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalid(`tcp route port ${String(port)} is not an integer from 1 to 65535`);
    }
    if (r.id !== undefined && r.id !== `tcp-${port}`) {
      throw invalid(
        `route id ${JSON.stringify(r.id)} does not match its port (expected tcp-${port}); leave id out`,
      );
    }
    return { type: 'tcp', port, service: r.service, id: `tcp-${port}` };
  }
  if (r.type !== 'http')
    throw invalid(`route type ${JSON.stringify(r.type)} is neither "http" nor "tcp"`);
  const allowed = [
    'type',
    'domain',
    'path',
    'service',
    'sticky',
    'httpsOnly',
    'hsts',
    'maxBodyBytes',
    'id',
  ];
  for (const k of Object.keys(r)) {
    if (!allowed.includes(k))
      throw invalid(
        `http route has an unknown field "${k}": allowed are ${allowed.slice(0, -1).join(', ')}`,
      );
  }
  if (typeof r.domain !== 'string' || r.domain.length === 0 || r.domain.length > 253) {
    throw invalid(
      'http route domain must be a host name of 1-253 characters, like "demo.example.com" or "*.example.com"',
    );
  }
  const domain = r.domain.toLowerCase().replace(/\.$/, '');
  if (!DOMAIN_RE.test(domain)) {
    throw invalid(
      `http route domain ${JSON.stringify(r.domain)} is not a host name: use labels of a-z, 0-9 and '-', optionally starting with "*."`,
    );
  }
  let path = '/';
  if (r.path !== undefined) {
    if (typeof r.path !== 'string' || r.path.length > 1024 || !PATH_RE.test(r.path)) {
      throw invalid(
        `http route path ${JSON.stringify(r.path)} must start with '/', hold only URL path characters (no query, fragment, space or control characters) and be at most 1024 characters`,
      );
    }
    path = normalisePath(r.path);
  }
  const route: { -readonly [K in keyof HttpRoute]: HttpRoute[K] } & { id: string } = {
    type: 'http',
    domain,
    path,
    service: r.service,
    id: `http-${createHash('sha256').update(`${domain} ${path}`).digest('hex').slice(0, 24)}`,
  };
  for (const flag of ['sticky', 'httpsOnly', 'hsts'] as const) {
    const v = r[flag];
    if (v === undefined) continue;
    if (typeof v !== 'boolean')
      throw invalid(`http route option ${flag} must be true or false, not ${JSON.stringify(v)}`);
    if (v) route[flag] = true;
  }
  if (r.maxBodyBytes !== undefined) {
    const m = r.maxBodyBytes;
    if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0) {
      throw invalid(
        `http route maxBodyBytes ${String(m)} must be a non-negative integer number of bytes`,
      );
    }
    route.maxBodyBytes = m;
  }
  if (r.id !== undefined && r.id !== route.id) {
    throw invalid(
      `route id ${JSON.stringify(r.id)} does not match its ${route.type === 'http' ? 'domain and path' : 'port'} (expected ${route.id}); leave id out`,
    );
  }
  return route;
}
