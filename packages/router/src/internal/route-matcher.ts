import type { HttpRoute, StoredRoute, TcpRoute } from '../route.js';

/** An HTTP route as the data plane uses it. */
export type ActiveHttpRoute = HttpRoute & {
  readonly id: string;
  /** The path prefix as requests are matched: normalised like theirs (see {@link normalizePath}). */
  readonly path: string;
  readonly label: string;
};

/**
 * Matches requests to HTTP routes: exact domain first, then the most specific wildcard
 * (`*.example.com`), then within a domain the longest path prefix on segment boundaries.
 * Immutable: a route change builds a new matcher, swapped in at once.
 */
export class RouteMatcher {
  readonly #exact = new Map<string, ActiveHttpRoute[]>();
  readonly #wildcard = new Map<string, ActiveHttpRoute[]>();
  /** TCP routes by port. */
  readonly tcp = new Map<number, TcpRoute & { readonly id: string }>();
  /** Every service some route names. */
  readonly services = new Set<string>();
  // The last Host value and its domain name: clients send the same few Host values again and
  // again, and the kept name's hash is computed once (a cache, not route state).
  #lastHost = '';
  #lastName = '';

  constructor(routes: Iterable<StoredRoute>) {
    for (const r of routes) {
      this.services.add(r.service);
      if (r.type === 'tcp') {
        this.tcp.set(r.port, r);
        continue;
      }
      const written = r.path ?? '/';
      // The route's own path in the form requests are matched in: `/a%20b` names `/a b`.
      const path = matchForm(written);
      const active: ActiveHttpRoute = { ...r, path, label: `${r.domain}${written}` };
      const wild = r.domain.startsWith('*.');
      const map = wild ? this.#wildcard : this.#exact;
      const key = wild ? r.domain.slice(2) : r.domain;
      const list = map.get(key) ?? [];
      list.push(active);
      list.sort((a, b) => b.path.length - a.path.length);
      map.set(key, list);
    }
  }

  /**
   * The route for a Host header value (any case, optional port) and a request target; or
   * undefined when none matches.
   */
  match(host: string, target: string): ActiveHttpRoute | undefined {
    let name: string;
    if (host === this.#lastHost) {
      name = this.#lastName;
    } else if (!HOST_RE.test(host)) {
      // Not a host name: `x.evil.test/.example.com` would match `*.example.com`, and the
      // backend (or an HTTPS redirect) would take it as a link to evil.test.
      name = '';
      this.#lastHost = host;
      this.#lastName = name;
    } else {
      name = host;
      const colon = name.lastIndexOf(':');
      if (colon !== -1 && !name.endsWith(']')) name = name.slice(0, colon);
      name = name.toLowerCase();
      if (name.endsWith('.')) name = name.slice(0, -1);
      this.#lastHost = host;
      this.#lastName = name;
    }
    let q = target.indexOf('?');
    if (q === -1) q = target.length;
    // absolute-form targets (a proxy request) use their own path
    let path = target.slice(0, q);
    if (!path.startsWith('/')) {
      const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*(\/.*)?$/.exec(path);
      path = m?.[1] ?? '/';
    }
    // Routes match the path as a backend would read it, as nginx's locations do: `/%61pi`,
    // `//api` and `/x/../api` are `/api` (else they would escape its route's httpsOnly or
    // maxBodyBytes). The target is forwarded as sent.
    path = matchForm(path, false);
    const exact = this.#exact.get(name);
    if (exact !== undefined) {
      const r = pick(exact, path);
      if (r !== undefined) return r;
    }
    let dot = name.indexOf('.');
    while (dot !== -1) {
      const list = this.#wildcard.get(name.slice(dot + 1));
      if (list !== undefined) {
        const r = pick(list, path);
        if (r !== undefined) return r;
      }
      dot = name.indexOf('.', dot + 1);
    }
    return undefined;
  }
}

/** A Host value: DNS labels (a trailing dot allowed), an IPv4 or bracketed IPv6 address, a port (maybe empty). */
const HOST_RE = /^(?:[a-zA-Z0-9_-]+(?:\.[a-zA-Z0-9_-]+)*\.?|\[[0-9a-fA-F:.]+\])(?::[0-9]{0,5})?$/;

/**
 * A request path as routes match it: `%XX` escapes decoded (a malformed one kept as is), runs
 * of `/` merged, and `.` and `..` segments resolved (never above the root).
 */
export function normalizePath(path: string): string {
  let decoded = path;
  if (path.includes('%')) {
    decoded = path.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) =>
      String.fromCharCode(parseInt(hex, 16)),
    );
  }
  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string;
    if (seg === '..') out.pop();
    else if (seg !== '.' && seg !== '') out.push(seg);
  }
  // A trailing slash (or dot segment) is kept: `/api/` stays under `/api`.
  const last = segments[segments.length - 1];
  const trailing = segments.length > 1 && (last === '' || last === '.' || last === '..');
  return `/${out.join('/')}${trailing && out.length > 0 ? '/' : ''}`;
}

/**
 * `path` as routes match it: {@link normalizePath}, when it has something to normalise. A
 * route's prefix (`prefix`) loses a trailing slash, as the route table stores them.
 */
function matchForm(path: string, prefix = true): string {
  if (!path.includes('%') && !path.includes('/.') && !path.includes('//')) return path;
  const n = normalizePath(path);
  return prefix && n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function pick(list: readonly ActiveHttpRoute[], path: string): ActiveHttpRoute | undefined {
  for (const r of list) {
    const p = r.path;
    if (p === '/' || path === p || (path.startsWith(p) && path.charCodeAt(p.length) === 47))
      return r;
  }
  return undefined;
}
