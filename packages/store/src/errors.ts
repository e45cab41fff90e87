import { FlotillaError } from '@flotilla/core';

/**
 * Every code a {@link StoreError} can carry. All backends use these codes, so code written
 * against the `Store` interface handles errors the same way on memory, SQLite and etcd.
 */
export const StoreErrorCodes = {
  /** The store was closed; create a new one. */
  CLOSED: 'FLOTILLA_STORE_CLOSED',
  /** A watch asked for a revision that compaction has dropped; re-list and watch from there. */
  COMPACTED: 'FLOTILLA_STORE_COMPACTED',
  /** A key that is not a non-empty string. */
  INVALID_KEY: 'FLOTILLA_STORE_INVALID_KEY',
  /** A value that is not a string. */
  INVALID_VALUE: 'FLOTILLA_STORE_INVALID_VALUE',
  /** A malformed argument: a TTL, a limit, a revision, a transaction shape. */
  INVALID_ARGUMENT: 'FLOTILLA_STORE_INVALID_ARGUMENT',
  /** A value or request larger than {@link StoreLimits}. */
  TOO_LARGE: 'FLOTILLA_STORE_TOO_LARGE',
  /** A transaction with more operations than {@link StoreLimits.maxTxnOps}. */
  TOO_MANY_OPS: 'FLOTILLA_STORE_TOO_MANY_OPS',
  /** A transaction that writes the same key twice. */
  DUPLICATE_KEY: 'FLOTILLA_STORE_DUPLICATE_KEY',
  /** A put or renewal that names a lease that does not exist (any more). */
  LEASE_NOT_FOUND: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
  /** The backend cannot be reached or failed; retryable. */
  UNAVAILABLE: 'FLOTILLA_STORE_UNAVAILABLE',
} as const;

/** The union of {@link StoreErrorCodes} values. */
export type StoreErrorCode = (typeof StoreErrorCodes)[keyof typeof StoreErrorCodes];

/** Typed fields of a {@link StoreError}. */
export interface StoreErrorDetails {
  readonly key?: string;
  readonly lease?: string;
  /** For `FLOTILLA_STORE_COMPACTED`: the oldest revision still available. */
  readonly compactRevision?: number;
  readonly retryable?: boolean;
  readonly cause?: unknown;
}

/**
 * The error of every `Store` backend. Match on {@link StoreError.code}; `retryable` is true
 * for `FLOTILLA_STORE_UNAVAILABLE`.
 */
export class StoreError extends FlotillaError<StoreErrorCode> {
  /** The key concerned, when there is one. */
  readonly key: string | undefined;
  /** The lease concerned, when there is one. */
  readonly lease: string | undefined;
  /** For `FLOTILLA_STORE_COMPACTED`: the oldest revision a watch may start from. */
  readonly compactRevision: number | undefined;

  constructor(code: StoreErrorCode, message: string, details: StoreErrorDetails = {}) {
    super(code, message, {
      cause: details.cause,
      retryable: details.retryable ?? code === StoreErrorCodes.UNAVAILABLE,
    });
    this.key = details.key;
    this.lease = details.lease;
    this.compactRevision = details.compactRevision;
  }
}
