import { validateSnapshot } from './internal/validate.js';
import type { Formation, HostSnapshot, JobSnapshot, StopReason } from './types.js';

/** A host as stored at `hosts/<id>`. */
export interface HostRecord extends HostSnapshot {
  /** Where the host's agent can be reached, for logs and health checks (`127.0.0.1:7000`). */
  readonly addr?: string;
}

/** A job as stored at `jobs/<host>/<id>`. */
export interface JobRecord extends JobSnapshot {
  /** What the scheduler wants: `run`, or `stop` (the agent stops it, then sets state `down`). */
  readonly desired: 'run' | 'stop';
  /** Why the scheduler asked it to stop. */
  readonly stopReason?: StopReason;
  /** When the agent last saw it start (ms), for crash backoff. */
  readonly startedAt?: number;
  /** Exit status of the last run, when it ended. */
  readonly exitStatus?: number;
}

/** The per-host allocation summary at `alloc/<host>`; its revision is the commit check. */
export interface HostAlloc {
  readonly jobs: number;
  readonly cpu: number;
  readonly memory: number;
  /** The scheduler that last placed on the host. */
  readonly by: string;
}

/** Parses and validates a host record; throws the scheduler's INVALID_SNAPSHOT error. */
export function parseHostRecord(value: string): HostRecord {
  const host = JSON.parse(value) as HostRecord;
  validateSnapshot({ hosts: [host], jobs: [], formations: [] });
  return host;
}

/** Parses and validates a job record. */
export function parseJobRecord(value: string): JobRecord {
  const job = JSON.parse(value) as JobRecord;
  validateSnapshot({ hosts: [], jobs: [job], formations: [] });
  return job;
}

/** Parses and validates a formation. */
export function parseFormation(value: string): Formation {
  const formation = JSON.parse(value) as Formation;
  validateSnapshot({ hosts: [], jobs: [], formations: [formation] });
  return formation;
}
