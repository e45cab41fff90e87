import { FlotillaError } from '@flotilla/core';

/** Every code a {@link HostError} can carry. */
export const HostErrorCodes = {
  /** A job spec with a missing or mistyped field, a bad id, or an env name or value refused. */
  INVALID_SPEC: 'FLOTILLA_HOST_INVALID_SPEC',
  /** Bad driver or call options: a negative grace, a zero sample interval, an unknown signal. */
  INVALID_OPTIONS: 'FLOTILLA_HOST_INVALID_OPTIONS',
  /** `start` with the id of a job the driver already knows (running, or exited and not removed). */
  JOB_EXISTS: 'FLOTILLA_HOST_JOB_EXISTS',
  /** A job id the driver does not know (never started, or removed). */
  JOB_NOT_FOUND: 'FLOTILLA_HOST_JOB_NOT_FOUND',
  /** `remove` of a job that still runs: stop it first. */
  JOB_RUNNING: 'FLOTILLA_HOST_JOB_RUNNING',
  /** `signal` to a job that has exited. */
  JOB_EXITED: 'FLOTILLA_HOST_JOB_EXITED',
  /** The job's process could not be started: its cwd is missing, `bash` is not on the host. */
  START_FAILED: 'FLOTILLA_HOST_START_FAILED',
  /** The driver's state directory cannot be created, read or written. */
  STATE_DIR: 'FLOTILLA_HOST_STATE_DIR',
  /** Another live driver holds the state directory: two drivers would adopt the same jobs. */
  STATE_DIR_IN_USE: 'FLOTILLA_HOST_STATE_DIR_IN_USE',
  /**
   * A job's state record under the state directory cannot be read back (truncated, edited). The
   * driver reports it through its logger and leaves the directory in place for an operator.
   */
  STATE_RECORD: 'FLOTILLA_HOST_STATE_RECORD',
  /** An artifact could not be fetched: unreachable, HTTP error (401/403: check the token), missing file. Retryable for network errors and 5xx. */
  ARTIFACT_FETCH: 'FLOTILLA_HOST_ARTIFACT_FETCH',
  /** A download that is not the artifact its release names: wrong sha256, truncated, or larger than declared. Never used. */
  ARTIFACT_CORRUPT: 'FLOTILLA_HOST_ARTIFACT_CORRUPT',
  /**
   * An artifact download that stalled: no byte came (nor, before them, the response headers)
   * for the cache's `idleTimeoutMs`. Retryable; nothing is kept of it.
   */
  ARTIFACT_STALLED: 'FLOTILLA_HOST_ARTIFACT_STALLED',
  /** An artifact descriptor that cannot be fetched as given: a bad URL scheme, sha256 or size; an image on a driver that runs slugs. */
  ARTIFACT_INVALID: 'FLOTILLA_HOST_ARTIFACT_INVALID',
  /**
   * The artifact cache's `dir` is used by the cache of another live process (another agent):
   * each would evict slugs the other's jobs run from. Give each agent a `dir` of its own.
   */
  ARTIFACT_CACHE_IN_USE: 'FLOTILLA_HOST_ARTIFACT_CACHE_IN_USE',
  /** Every port of the agent's range is taken: widen `ports` or run fewer jobs on the host. */
  NO_PORT: 'FLOTILLA_HOST_NO_PORT',
  /** The driver or log buffer was closed. */
  CLOSED: 'FLOTILLA_HOST_CLOSED',
} as const;

/** The union of {@link HostErrorCodes} values. */
export type HostErrorCode = (typeof HostErrorCodes)[keyof typeof HostErrorCodes];

/** The error thrown by `@flotilla/host` for bad input, misuse and failures to run a job. */
export class HostError extends FlotillaError<HostErrorCode> {
  /** The job concerned, when there is one. */
  readonly jobId: string | undefined;
  /** The field or option concerned (`spec.env.PORT`), when there is one. */
  readonly path: string | undefined;

  constructor(
    code: HostErrorCode,
    message: string,
    details: { jobId?: string; path?: string; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, { cause: details.cause, retryable: details.retryable ?? false });
    this.jobId = details.jobId;
    this.path = details.path;
  }
}
