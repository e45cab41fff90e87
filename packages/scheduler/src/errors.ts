import { FlotillaError } from '@flotilla/core';

/** Every code a {@link SchedulerError} can carry. */
export const SchedulerErrorCodes = {
  /** A snapshot that cannot be scheduled: duplicate ids, negative resources, a bad count... */
  INVALID_SNAPSHOT: 'FLOTILLA_SCHEDULER_INVALID_SNAPSHOT',
  /** Bad options: an unknown strategy, a plugin without a name... */
  INVALID_OPTIONS: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS',
  /** A simulator call named a host or job that does not exist. */
  UNKNOWN_ID: 'FLOTILLA_SCHEDULER_UNKNOWN_ID',
  /** The simulated cluster kept changing and never settled (a feedback loop). */
  NOT_SETTLED: 'FLOTILLA_SCHEDULER_NOT_SETTLED',
  /** The scheduler epoch (the member list sharding apps) kept changing under compare-and-set; retried later. */
  CONFLICT: 'FLOTILLA_SCHEDULER_CONFLICT',
  /** Another live scheduler holds this scheduler's id (its member key did not expire in 2 TTLs). */
  ID_IN_USE: 'FLOTILLA_SCHEDULER_ID_IN_USE',
  /** The Scheduler service was closed. */
  CLOSED: 'FLOTILLA_SCHEDULER_CLOSED',
} as const;

/** The union of {@link SchedulerErrorCodes} values. */
export type SchedulerErrorCode = (typeof SchedulerErrorCodes)[keyof typeof SchedulerErrorCodes];

/** The error of `@flotilla/scheduler`. `path` points into the input (`hosts[3].capacity.cpu`). */
export class SchedulerError extends FlotillaError<SchedulerErrorCode> {
  /** Where in the input the problem is, when it is in the input. */
  readonly path: string | undefined;

  constructor(
    code: SchedulerErrorCode,
    message: string,
    details: { path?: string; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, { cause: details.cause, retryable: details.retryable ?? false });
    this.path = details.path;
  }
}
