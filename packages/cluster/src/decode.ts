import type { KeyValue } from '@flotilla/store';
import { ClusterError, ClusterErrorCodes } from './errors.js';
import type { ClusterKey, ClusterKeys } from './keys.js';
import {
  validateFormation,
  validateHeartbeat,
  validateHostAlloc,
  validateHostControl,
  validateHostRecord,
  validateJobRecord,
  validateJobStatus,
  validateReleaseRecord,
  validateSchedulerEpoch,
  type Formation,
  type Heartbeat,
  type HostAlloc,
  type HostControl,
  type HostRecord,
  type JobRecord,
  type JobStatus,
  type ReleaseRecord,
  type SchedulerEpoch,
} from './records.js';

/** A record read from the store, with the ids of its key: the result of {@link decodeRecord}. */
export type ClusterRecord =
  | { readonly kind: 'host'; readonly hostId: string; readonly record: HostRecord }
  | { readonly kind: 'heartbeat'; readonly hostId: string; readonly record: Heartbeat }
  | { readonly kind: 'host-control'; readonly hostId: string; readonly record: HostControl }
  | { readonly kind: 'alloc'; readonly hostId: string; readonly record: HostAlloc }
  | {
      readonly kind: 'formation';
      readonly app: string;
      readonly release: string;
      readonly record: Formation;
    }
  | {
      readonly kind: 'release';
      readonly app: string;
      readonly release: string;
      readonly record: ReleaseRecord;
    }
  | {
      readonly kind: 'job';
      readonly hostId: string;
      readonly jobId: string;
      readonly record: JobRecord;
    }
  | {
      readonly kind: 'job-status';
      readonly hostId: string;
      readonly jobId: string;
      readonly record: JobStatus;
    }
  | { readonly kind: 'scheduler'; readonly schedulerId: string }
  | { readonly kind: 'scheduler-epoch'; readonly record: SchedulerEpoch };

function invalid(key: string, message: string, cause?: unknown): ClusterError {
  const path = cause instanceof ClusterError ? cause.path : undefined;
  return new ClusterError(ClusterErrorCodes.INVALID_RECORD, `record at ${key} ${message}`, {
    key,
    cause,
    ...(path === undefined ? {} : { path }),
  });
}

function json(kv: KeyValue): unknown {
  try {
    return JSON.parse(kv.value) as unknown;
  } catch (err) {
    throw invalid(kv.key, `is not JSON: ${(err as Error).message}`, err);
  }
}

function check<T>(kv: KeyValue, validate: (v: unknown) => T): T {
  const value = json(kv);
  try {
    return validate(value);
  } catch (err) {
    throw invalid(kv.key, `is not valid: ${(err as Error).message}`, err);
  }
}

/** The id at `path` in the record must be the one in its key; the cause names the field. */
function match(key: string, path: string, got: string, want: string): void {
  if (got === want) return;
  const why = `holds ${JSON.stringify(got)}, but its key says ${JSON.stringify(want)}`;
  throw invalid(
    key,
    `is not valid: ${path} ${why}`,
    new ClusterError(ClusterErrorCodes.INVALID_RECORD, `${path} ${why}`, { path }),
  );
}

/**
 * Reads one key-value of the cluster state strictly: the JSON, every field, and the ids in the
 * record against the ids in the key. Returns `undefined` for a key outside the layout (another
 * tool's). Throws `FLOTILLA_CLUSTER_INVALID_RECORD`, with the `key` and a `cause`, for anything
 * else that is wrong: callers report it, they never skip it silently.
 *
 * A caller that has already classified the key (to skip kinds it does not read) passes the
 * result as `where`, so the key is not parsed twice.
 */
export function decodeRecord(
  keys: ClusterKeys,
  kv: KeyValue,
  where: ClusterKey | undefined = keys.parse(kv.key),
): ClusterRecord | undefined {
  if (where === undefined) return undefined;
  switch (where.kind) {
    case 'invalid':
      throw invalid(kv.key, `is not a key of the cluster layout: ${where.reason}`);
    case 'host': {
      const record = check(kv, validateHostRecord);
      match(kv.key, 'host.id', record.id, where.hostId);
      return { kind: 'host', hostId: where.hostId, record };
    }
    case 'heartbeat':
      return { kind: 'heartbeat', hostId: where.hostId, record: check(kv, validateHeartbeat) };
    case 'host-control':
      return { kind: 'host-control', hostId: where.hostId, record: check(kv, validateHostControl) };
    case 'alloc':
      return { kind: 'alloc', hostId: where.hostId, record: check(kv, validateHostAlloc) };
    case 'formation':
    case 'release': {
      const record =
        where.kind === 'formation'
          ? check(kv, validateFormation)
          : check(kv, validateReleaseRecord);
      const what = where.kind === 'formation' ? 'formation' : 'release';
      match(kv.key, `${what}.app`, record.app, where.app);
      match(kv.key, `${what}.release`, record.release, where.release);
      return where.kind === 'formation'
        ? { ...where, kind: 'formation', record: record as Formation }
        : { ...where, kind: 'release', record: record as ReleaseRecord };
    }
    case 'job': {
      const record = check(kv, validateJobRecord);
      match(kv.key, 'job.id', record.id, where.jobId);
      match(kv.key, 'job.hostId', record.hostId, where.hostId);
      return { ...where, kind: 'job', record };
    }
    case 'job-status':
      return { ...where, kind: 'job-status', record: check(kv, validateJobStatus) };
    case 'scheduler':
      return where;
    case 'scheduler-epoch':
      return { kind: 'scheduler-epoch', record: check(kv, validateSchedulerEpoch) };
  }
}
