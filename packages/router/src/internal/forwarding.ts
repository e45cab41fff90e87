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

/** 1 at the lengths some name of `names` has: most other names are told apart without a hash. */
function lengthsOf(names: ReadonlySet<string>): Uint8Array {
  const lengths = new Uint8Array(64);
  for (const n of names) lengths[n.length] = 1;
  return lengths;
}
const HOP_BY_HOP_LENGTHS = lengthsOf(HOP_BY_HOP);
const FORWARDED_LENGTHS = lengthsOf(FORWARDED);

/** Whether a lower-case header name is in {@link HOP_BY_HOP}. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP_LENGTHS[name.length] === 1 && HOP_BY_HOP.has(name);
}

/** Whether a lower-case header name is in {@link FORWARDED}. */
export function isForwarded(name: string): boolean {
  return FORWARDED_LENGTHS[name.length] === 1 && FORWARDED.has(name);
}
