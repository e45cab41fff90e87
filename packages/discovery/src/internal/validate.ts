import { isIP } from 'node:net';
import { MAX_LEASE_TTL_MS, byteLength } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from '../errors.js';

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const SERVICE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const META_KEY = /^[A-Za-z0-9_.-]{1,128}$/;
/** Most bytes of meta (JSON, UTF-8) per instance. */
export const MAX_META_BYTES = 16 * 1024;

/** Checks a service (or election) name: lower-case DNS-style labels. */
export function validateService(service: unknown): asserts service is string {
  if (typeof service !== 'string' || service.length > 253 || !SERVICE.test(service)) {
    throw new DiscoveryError(
      DiscoveryErrorCodes.INVALID_SERVICE,
      `service name ${JSON.stringify(service)} is invalid: use lower-case letters, digits and '-', in dot-separated labels (e.g. "demo-web")`,
      typeof service === 'string' ? { service } : {},
    );
  }
}

/** Checks an instance or candidate id: it must round-trip through its key (no `/`). */
export function validateId(id: unknown, what = 'instance id'): asserts id is string {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw new DiscoveryError(
      DiscoveryErrorCodes.INVALID_ID,
      `${what} ${JSON.stringify(id)} is invalid: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit`,
      typeof id === 'string' ? { instanceId: id } : {},
    );
  }
}

/** Checks `host:port` (IPv6 in brackets). */
export function validateAddr(addr: unknown): asserts addr is string {
  const bad = (why: string): DiscoveryError =>
    new DiscoveryError(
      DiscoveryErrorCodes.INVALID_ADDR,
      `address ${JSON.stringify(addr)} is invalid: ${why}; write host:port, e.g. "127.0.0.1:5001" or "[::1]:5001"`,
    );
  if (typeof addr !== 'string') throw bad('it is not a string');
  const colon = addr.lastIndexOf(':');
  if (colon <= 0) throw bad('the port is missing');
  let host = addr.slice(0, colon);
  const port = addr.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw bad('the port must be a number from 1 to 65535');
  }
  if (host.startsWith('[')) {
    if (!host.endsWith(']') || isIP(host.slice(1, -1)) !== 6)
      throw bad('the IPv6 address in brackets is malformed');
    return;
  }
  if (host.includes(':')) throw bad('an IPv6 host must be in brackets');
  host = host.toLowerCase();
  if (isIP(host) === 4) return;
  if (/^[\d.]+$/.test(host)) throw bad('the IPv4 address is malformed');
  if (!HOSTNAME.test(host)) throw bad('the host is not a valid IP address or host name');
}

/** Checks meta: a flat record of string values, keys safe, at most {@link MAX_META_BYTES}. */
export function validateMeta(meta: unknown): asserts meta is Record<string, string> {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw new DiscoveryError(
      DiscoveryErrorCodes.INVALID_META,
      'meta must be a record of string values',
    );
  }
  for (const [key, value] of Object.entries(meta)) {
    // `__proto__` round-trips through JSON, but a consumer that copies meta with
    // Object.assign or `m[key] = value` would set a prototype instead of a label.
    if (!META_KEY.test(key) || key === '__proto__') {
      throw new DiscoveryError(
        DiscoveryErrorCodes.INVALID_META,
        `meta key ${JSON.stringify(key)} is invalid: use 1-128 letters, digits, '_', '.' or '-'`,
      );
    }
    if (typeof value !== 'string') {
      throw new DiscoveryError(
        DiscoveryErrorCodes.INVALID_META,
        `meta.${key} must be a string, got ${typeof value}: serialise it`,
      );
    }
  }
  const size = byteLength(JSON.stringify(meta));
  if (size > MAX_META_BYTES) {
    throw new DiscoveryError(
      DiscoveryErrorCodes.INVALID_META,
      `meta is ${size} bytes, over the limit of ${MAX_META_BYTES}: keep meta small (a release, a zone)`,
    );
  }
}

/** Checks a readiness flag. */
export function validateReady(ready: unknown): asserts ready is boolean {
  if (typeof ready !== 'boolean') {
    throw new DiscoveryError(DiscoveryErrorCodes.INVALID_META, 'ready must be a boolean');
  }
}

/** Checks a TTL: an integer number of ms, from 1000 to the longest a lease may have. */
export function validateTtl(ttlMs: unknown): asserts ttlMs is number {
  if (
    typeof ttlMs !== 'number' ||
    !Number.isSafeInteger(ttlMs) ||
    ttlMs < 1000 ||
    ttlMs > MAX_LEASE_TTL_MS
  ) {
    throw new DiscoveryError(
      DiscoveryErrorCodes.INVALID_TTL,
      `ttlMs must be an integer from 1000 to ${MAX_LEASE_TTL_MS} ms, got ${String(ttlMs)} (etcd backends round up to whole seconds, minimum 2 s)`,
    );
  }
}
