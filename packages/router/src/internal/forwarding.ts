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

/** Headers the router sets itself; a client's copies are dropped, never passed on. */
export const FORWARDED: ReadonlySet<string> = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-request-id',
  'x-request-start',
]);

/** Methods safe to send to another backend when the first failed before answering. */
export const IDEMPOTENT: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PUT',
  'DELETE',
]);
