import { createHash } from 'node:crypto';

/** The labels the driver puts on each job's container; `list()` adopts by `DRIVER`. */
export const LABELS = {
  JOB: 'flotilla.job',
  APP: 'flotilla.app',
  RELEASE: 'flotilla.release',
  TYPE: 'flotilla.type',
  INDEX: 'flotilla.index',
  PORT: 'flotilla.port',
  STOP_GRACE: 'flotilla.stop-grace-ms',
  DRIVER: 'flotilla.driver',
} as const;

/**
 * The container name of a job: `flotilla-<instance>-<id>` with the characters Docker refuses
 * in names (`@ : +`) replaced, and a digest of the id so that two ids never share a name.
 * Names are unique in a dockerd: two drivers racing to start one job cannot both create it.
 */
export function containerName(instanceId: string, jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 120);
  const digest = createHash('sha256').update(jobId).digest('hex').slice(0, 8);
  return `flotilla-${instanceId}-${safe}-${digest}`;
}
