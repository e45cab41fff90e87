import { readFile } from 'node:fs/promises';
import type { PortRange } from '../ports.js';

/** Where Linux keeps the range of ports it picks for outgoing connections. */
export const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/**
 * The part of `ports` that lies in the kernel's ephemeral range (read from `file`), or
 * undefined when none does or the range cannot be read. A job port in it can be taken by any
 * outgoing connection (the agent's own health probes included) before the job binds it, and the
 * job then fails with EADDRINUSE.
 */
export async function ephemeralOverlap(
  ports: PortRange,
  file = EPHEMERAL_RANGE_FILE,
): Promise<PortRange | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (m === null) return undefined;
  const from = Math.max(ports.from, Number(m[1]));
  const to = Math.min(ports.to, Number(m[2]));
  return from <= to ? { from, to } : undefined;
}
