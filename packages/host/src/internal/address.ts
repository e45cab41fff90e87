import { isIP } from 'node:net';
import { HostError, HostErrorCodes } from '../errors.js';
import { describe } from './validate.js';

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * The host part of an agent's `address` (`127.0.0.1:7000` gives `127.0.0.1`, `[::1]:7000`
 * gives `[::1]`): what its jobs are published under in discovery, with each job's port.
 * Throws `FLOTILLA_HOST_INVALID_OPTIONS` for anything but `host:port`.
 */
export function addressHost(address: unknown): string {
  const bad = (why: string): HostError =>
    new HostError(
      HostErrorCodes.INVALID_OPTIONS,
      `address ${describe(address)} is invalid: ${why}; write host:port, e.g. "127.0.0.1:7000" or "[::1]:7000" (its host is where the host's jobs are reached)`,
      { path: 'address' },
    );
  if (typeof address !== 'string') throw bad('it is not a string');
  const colon = address.lastIndexOf(':');
  if (colon <= 0) throw bad('the port is missing');
  const host = address.slice(0, colon);
  const port = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    throw bad('the port must be a number from 1 to 65535');
  if (host.startsWith('[')) {
    if (!host.endsWith(']') || isIP(host.slice(1, -1)) !== 6)
      throw bad('the IPv6 address in brackets is malformed');
    return host;
  }
  if (host.includes(':')) throw bad('an IPv6 host must be in brackets');
  if (isIP(host) === 4) return host;
  if (/^[\d.]+$/.test(host)) throw bad('the IPv4 address is malformed');
  if (!HOSTNAME.test(host)) throw bad('the host is not a valid IP address or host name');
  return host;
}
