// Test-only helper shared by the host package's suites (excluded from the build).
import { createServer, type Server } from 'node:net';

/**
 * `n` consecutive loopback ports that are all free now, below the ephemeral range (32768-60999):
 * a port taken by an outgoing connection would fail a job.
 */
export async function freePortRange(n: number): Promise<{ from: number; to: number }> {
  for (;;) {
    const from = 20000 + Math.floor(Math.random() * 12000);
    const held: Server[] = [];
    let ok = true;
    for (let p = from; p < from + n && ok; p++) {
      const srv = await new Promise<Server | undefined>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(undefined));
        s.listen(p, '127.0.0.1', () => resolve(s));
      });
      if (srv === undefined) ok = false;
      else held.push(srv);
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (ok) return { from, to: from + n - 1 };
  }
}
