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

/** `names` by length: a name is compared only with those of its length, without a hash. */
function byLength(names: ReadonlySet<string>): readonly (readonly string[])[] {
  const lists: string[][] = [];
  for (let i = 0; i < 64; i++) lists.push([]);
  for (const n of names) lists[n.length]?.push(n);
  return lists;
}
const HOP_BY_HOP_BY_LENGTH = byLength(HOP_BY_HOP);
const FORWARDED_BY_LENGTH = byLength(FORWARDED);

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

/** Whether a lower-case header name is in {@link FORWARDED}. */
export function isForwarded(name: string): boolean {
  return within(FORWARDED_BY_LENGTH, name);
}
