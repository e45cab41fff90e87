import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterState, HostRecord, HostRegistration } from '@flotilla/cluster';
import { type Clock, type Logger, isFlotillaError, retry } from '@flotilla/core';

/**
 * Registers a host exclusively: its record and a heartbeat under a lease of `ttlMs`. The lease
 * of each registration is kept in `<workDir>/.lease`, so that a restarted agent takes over its
 * previous life's heartbeat at once (the host stays up and its jobs are adopted). While another
 * lease holds the heartbeat (a second agent with the same id) it waits up to two TTLs for it
 * to expire, then fails with `FLOTILLA_CLUSTER_HOST_IN_USE`: two agents never run one host's
 * jobs.
 */
export async function registerHostExclusively(options: {
  readonly cluster: ClusterState;
  readonly record: Omit<HostRecord, 'registeredAt'>;
  readonly ttlMs: number;
  readonly workDir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}): Promise<HostRegistration> {
  const { cluster, record, ttlMs, clock, signal } = options;
  const leaseFile = join(options.workDir, '.lease');
  const previous = (await readFile(leaseFile, 'utf8').catch(() => '')).trim();
  const deadline = clock.now() + 2 * ttlMs;
  const registration = await retry(
    () =>
      cluster.registerHost(record, {
        ttlMs,
        signal,
        exclusive: true,
        ...(previous === '' ? {} : { takeOver: previous }),
      }),
    {
      clock,
      signal,
      initialMs: Math.max(100, ttlMs / 4),
      maxMs: ttlMs,
      retryable: (err) =>
        isFlotillaError(err, 'FLOTILLA_CLUSTER_HOST_IN_USE') && clock.now() < deadline,
      onRetry: () =>
        options.logger.warn(
          { host: record.id },
          'another lease holds this host: waiting for it to expire',
        ),
    },
  );
  await writeFile(leaseFile, registration.lease.id);
  return registration;
}
