import { randomBytes } from 'node:crypto';
import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import { ClusterKeys, isValidId } from '@flotilla/cluster';
import type { Store } from '@flotilla/store';
import { SchedulerError, SchedulerErrorCodes } from '../errors.js';
import type { SchedulerOptions } from '../scheduler.js';

/** {@link SchedulerOptions} checked once, with every default applied. */
export interface ResolvedOptions {
  readonly store: Store;
  readonly keys: ClusterKeys;
  readonly id: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly hostGraceMs: number;
  readonly restartBackoffMs: readonly number[];
  readonly crashResetMs: number;
  readonly crashLoopAfter: number;
  readonly commitConcurrency: number;
  readonly memberTtlMs: number;
  readonly watchOwnJobs: boolean;
}

const DEFAULT_BACKOFF = [0, 10_000, 30_000, 60_000, 120_000, 300_000];

function bad(option: string, what: string, got: unknown): SchedulerError {
  return new SchedulerError(
    SchedulerErrorCodes.INVALID_OPTIONS,
    `option ${option} ${what}, got ${typeof got === 'string' ? JSON.stringify(got) : String(got)}`,
    { path: option },
  );
}

function duration(
  options: SchedulerOptions,
  name: keyof SchedulerOptions,
  fallback: number,
  min = 0,
): number {
  const v = options[name] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
    throw bad(name, `must be a number of ms >= ${min}`, v);
  return v;
}

/** Checks the options of a Scheduler and applies defaults; throws `FLOTILLA_SCHEDULER_INVALID_OPTIONS`. */
export function resolveOptions(options: SchedulerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw bad('options', 'must be an object', options);
  const store = options.store;
  if (typeof store !== 'object' || store === null || typeof store.txn !== 'function')
    throw bad('store', 'must be a Store', store);
  const id = options.id ?? `scheduler-${randomBytes(4).toString('hex')}`;
  if (!isValidId(id)) throw bad('id', 'must be 1-200 of A-Z a-z 0-9 . _ - @ : +', id);
  const prefix = options.prefix ?? 'cluster/';
  if (typeof prefix !== 'string') throw bad('prefix', 'must be a string', prefix);
  const backoff = options.restartBackoffMs ?? DEFAULT_BACKOFF;
  if (
    !Array.isArray(backoff) ||
    backoff.length === 0 ||
    backoff.some((ms) => typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0)
  )
    throw bad('restartBackoffMs', 'must be a non-empty list of ms >= 0', backoff);
  const crashLoopAfter = options.crashLoopAfter ?? 5;
  if (!Number.isSafeInteger(crashLoopAfter) || crashLoopAfter < 1)
    throw bad('crashLoopAfter', 'must be an integer >= 1', crashLoopAfter);
  const commitConcurrency = options.commitConcurrency ?? 32;
  if (!Number.isSafeInteger(commitConcurrency) || commitConcurrency < 1 || commitConcurrency > 1024)
    throw bad('commitConcurrency', 'must be an integer from 1 to 1024', commitConcurrency);
  const watchOwnJobs = options.watchOwnJobs ?? true;
  if (typeof watchOwnJobs !== 'boolean')
    throw bad('watchOwnJobs', 'must be a boolean', watchOwnJobs);
  return {
    store,
    keys: new ClusterKeys(prefix),
    id,
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
    hostGraceMs: duration(options, 'hostGraceMs', 10_000),
    restartBackoffMs: [...backoff],
    crashResetMs: duration(options, 'crashResetMs', 300_000),
    crashLoopAfter,
    commitConcurrency,
    memberTtlMs: duration(options, 'memberTtlMs', 10_000, 1000),
    watchOwnJobs,
  };
}
