import { createServer } from 'node:net';
import { isIP } from 'node:net';

/** What binding a port for a moment said. */
export type PortProbe = 'free' | 'in-use';

/**
 * Whether nothing listens on `port`: it is bound for a moment (exclusively, then closed) on the
 * wildcard address, which on Linux collides with a listener on any local address (`127.0.0.1`,
 * `0.0.0.0`, `::`, `::1`), and on `host` when it is an IP literal. Only `EADDRINUSE` and
 * `EACCES` mean in use; an address that is not this machine's (`EADDRNOTAVAIL`, a NAT'd public
 * address) says nothing and is skipped.
 */
export async function probePort(port: number, host: string | undefined): Promise<PortProbe> {
  const hosts: (string | undefined)[] = [undefined];
  const literal = host?.startsWith('[') === true ? host.slice(1, -1) : host;
  if (literal !== undefined && isIP(literal) !== 0) hosts.push(literal);
  for (const h of hosts) if ((await bindOnce(port, h)) === 'in-use') return 'in-use';
  return 'free';
}

function bindOnce(port: number, host: string | undefined): Promise<PortProbe | 'unknown'> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? 'in-use' : 'unknown'),
    );
    server.listen({ port, ...(host === undefined ? {} : { host }), exclusive: true }, () =>
      server.close(() => resolve('free')),
    );
  });
}
