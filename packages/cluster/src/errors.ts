import { FlotillaError } from '@flotilla/core';

/** Every code a {@link ClusterError} can carry. */
export const ClusterErrorCodes = {
  /**
   * A record read from the store, or handed to a writer, is not valid: bad JSON, a missing or
   * mistyped field, an unknown enum value, an id that does not match its key. `key` and
   * `cause` say which and why.
   */
  INVALID_RECORD: 'FLOTILLA_CLUSTER_INVALID_RECORD',
  /**
   * An id (app, release, process type, host, job) that cannot round-trip through a key: empty,
   * too long, or with a character outside `A-Z a-z 0-9 . _ - @ : +` (a `/`, say). Refused
   * where it is written.
   */
  INVALID_ID: 'FLOTILLA_CLUSTER_INVALID_ID',
  /**
   * An option of a call is out of range: `drainHost`'s `deadlineMs` not a whole number of ms
   * from 1 to `MAX_DRAIN_DEADLINE_MS` (365 days), say. Nothing is written.
   */
  INVALID_OPTION: 'FLOTILLA_CLUSTER_INVALID_OPTION',
  /** A release record already exists under that key with different content: releases are immutable. */
  RELEASE_EXISTS: 'FLOTILLA_CLUSTER_RELEASE_EXISTS',
  /** A formation names a release that has not been written, or a process type it does not declare. */
  UNKNOWN_RELEASE: 'FLOTILLA_CLUSTER_UNKNOWN_RELEASE',
  /** An operator call named a host that has never registered. */
  UNKNOWN_HOST: 'FLOTILLA_CLUSTER_UNKNOWN_HOST',
  /**
   * An exclusive `registerHost` found the host's heartbeat held by another live lease: another
   * agent runs with this host id (or a crashed one's lease has not expired yet). Retryable.
   */
  HOST_IN_USE: 'FLOTILLA_CLUSTER_HOST_IN_USE',
  /** A compare-and-set update kept losing to other writers and gave up; retry it. */
  CONFLICT: 'FLOTILLA_CLUSTER_CONFLICT',
  /** The ClusterState or the host registration was closed. */
  CLOSED: 'FLOTILLA_CLUSTER_CLOSED',
} as const;

/** The union of {@link ClusterErrorCodes} values. */
export type ClusterErrorCode = (typeof ClusterErrorCodes)[keyof typeof ClusterErrorCodes];

/** The error of `@flotilla/cluster`: `key` is the store key concerned, `path` the field. */
export class ClusterError extends FlotillaError<ClusterErrorCode> {
  /** The store key of the record concerned, when there is one. */
  readonly key: string | undefined;
  /** The field at fault inside the record (`processes.web.count`), when known. */
  readonly path: string | undefined;

  constructor(
    code: ClusterErrorCode,
    message: string,
    details: { key?: string; path?: string; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, {
      cause: details.cause,
      ...(details.retryable === undefined ? {} : { retryable: details.retryable }),
    });
    this.key = details.key;
    this.path = details.path;
  }
}
