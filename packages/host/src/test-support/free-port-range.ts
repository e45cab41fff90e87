// Test-only helper shared by the HostAgent suites (excluded from the build).
import { createServer } from 'node:net';

/** `n` consecutive loopback ports whose first one is free now, below the ephemeral range. */
export async function freePortRange(n: number): Promise<{ from: number; to: number }> {
  for (;;) {
    // Below the ephemeral range (32768-60999): a port taken by an outgoing connection fails a job.
    const from = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(from, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return { from, to: from + n - 1 };
  }
}
