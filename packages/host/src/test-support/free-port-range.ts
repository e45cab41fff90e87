// Test-only helper shared by the host package's suites (excluded from the build).
import { claimPortRange } from '../../../../test/support/port-slots.js';

/**
 * `n` consecutive loopback ports for a host agent's jobs, below the ephemeral range
 * (32768-60999): a port taken by an outgoing connection would fail a job. They come from a port
 * slot this process holds (test/support/port-slots.ts), so that no suite running in parallel is
 * handed the same ports between this check and a job binding one.
 */
export async function freePortRange(n: number): Promise<{ from: number; to: number }> {
  return claimPortRange(n);
}
