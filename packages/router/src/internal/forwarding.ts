/**
 * Header and method rules both HTTP/1.1 and HTTP/2 front ends share, kept once so they cannot
 * drift apart.
 */

/** Hop-by-hop headers: they describe one connection and are never forwarded. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Headers the router sets itself (X-Forwarded-For appended to the client's, X-Request-Id kept
 * when valid; see http1-connection.ts and h2-handler.ts).
 */
export const SET_BY_ROUTER: ReadonlySet<string> = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-request-id',
  'x-request-start',
]);

/**
 * Headers that claim what only a proxy knows (the client's address, the scheme, the host,
 * path prefix or URL it used) and that the router does not set: frameworks told to trust the
 * proxy believe them (Express `trust proxy`: X-Forwarded-Host; Rack and Rails: Forwarded,
 * X-Forwarded-Ssl, X-Forwarded-Scheme, Client-IP; Spring: Forwarded, X-Forwarded-Prefix; nginx
 * setups and Go middleware: X-Real-IP, True-Client-IP; gunicorn: X-Forwarded-Protocol;
 * Tornado: X-Scheme, before X-Forwarded-Proto; the request-ip package: X-Client-IP, before
 * X-Forwarded-For), so a client's copy is dropped, as a hardened nginx clears them. Not
 * setting them keeps the head the router writes as short as it was. The Host header itself is
 * passed on as sent.
 *
 * Among them, those that replace the request's path in a backend, so that a request routed
 * (and limited) by its path `/public` is served as `/admin`: X-Original-URL and X-Rewrite-URL
 * (IIS URL Rewrite, Symfony and Zend before their 2018 fixes), X-Original-URI (the nginx
 * `auth_request` convention, read by auth services) and X-Forwarded-Uri (Traefik's forward
 * auth; read by Authelia and oauth2-proxy behind a proxy).
 */
export const DROPPED_FROM_CLIENT: ReadonlySet<string> = new Set([
  'x-real-ip',
  'forwarded',
  'x-forwarded-host',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-forwarded-prefix',
  'client-ip',
  'true-client-ip',
  'x-forwarded-protocol',
  'x-scheme',
  'x-client-ip',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-forwarded-uri',
]);

/**
 * `Trailer`, which announces the fields of a chunked body's trailer section. A request's trailer
 * fields never reach the backend (nor, over HTTP/2, a response's reach the client: see the
 * README's Trailers), so neither does the announcement of them.
 */
export const ANNOUNCES_TRAILERS = 'trailer';

/** Request headers a client may not set: {@link SET_BY_ROUTER} and {@link DROPPED_FROM_CLIENT}. */
export const FORWARDED: ReadonlySet<string> = new Set([...SET_BY_ROUTER, ...DROPPED_FROM_CLIENT]);

/** Methods safe to send to another backend when the first failed before answering. */
export const IDEMPOTENT: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PUT',
  'DELETE',
]);

/** `names` by length: a name is compared only with those of its length, without a hash. */
function byLength(names: ReadonlySet<string>): readonly (readonly string[])[] {
  const lists: string[][] = [];
  for (let i = 0; i < 64; i++) lists.push([]);
  for (const n of names) lists[n.length]?.push(n);
  return lists;
}
const HOP_BY_HOP_BY_LENGTH = byLength(HOP_BY_HOP);
/** Both, for request heads: one look-up per field, not one per set. */
const NOT_FROM_CLIENT_BY_LENGTH = byLength(
  new Set([...HOP_BY_HOP, ...FORWARDED, ANNOUNCES_TRAILERS]),
);

function within(lists: readonly (readonly string[])[], name: string): boolean {
  const list = lists[name.length];
  if (list === undefined) return false;
  for (const n of list) if (n === name) return true;
  return false;
}

/** Whether a lower-case header name is in {@link HOP_BY_HOP}. */
export function isHopByHop(name: string): boolean {
  return within(HOP_BY_HOP_BY_LENGTH, name);
}

/**
 * Whether a client's request header of this lower-case name is dropped: it is in {@link
 * HOP_BY_HOP} or {@link FORWARDED}, or is {@link ANNOUNCES_TRAILERS} (one look-up for all).
 */
export function isNotFromClient(name: string): boolean {
  return within(NOT_FROM_CLIENT_BY_LENGTH, name);
}

/**
 * Whether a response trailer field (lower-case name) goes on to the client: not hop-by-hop,
 * and none of those that frame the message (Content-Length, Trailer; RFC 9110 6.5.1 forbids
 * them in trailers), which a client that merges trailers into the head would misread.
 */
export function keepResponseTrailer(name: string): boolean {
  return !isHopByHop(name) && name !== 'content-length' && name !== 'trailer';
}
