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

/** Shows a key (or any user text) in a message: JSON-quoted, and cut to 80 characters. */
export function showKey(key: string, max = 80): string {
  if (key.length <= max) return JSON.stringify(key);
  let end = max - 1;
  // Never split a surrogate pair: half of one has no UTF-8 form.
  if (/[\ud800-\udbff]/.test(key.charAt(end - 1))) end--;
  return `${JSON.stringify(key.slice(0, end))}… (${key.length} characters)`;
}

/**
 * The `FLOTILLA_STORE_CLOSED` error every backend throws once closed, from every call,
 * watch and lease handle.
 *
 * @param what - what is closed, for the message (default `'store'`).
 * @param cause - the engine's own error, when the engine reported the close.
 */
export function closedError(what = 'store', cause?: unknown): StoreError {
  return new StoreError(
    StoreErrorCodes.CLOSED,
    `the ${what} is closed: create a new one`,
    cause === undefined ? {} : { cause },
  );
}

/** Options of {@link leaseNotFoundError}. */
export interface LeaseNotFoundOptions {
  /** The call that failed, e.g. `put of "hosts/a"`, to start the message with. */
  readonly what?: string;
  /** The key concerned, when there is one. */
  readonly key?: string;
  /** The engine's own error. */
  readonly cause?: unknown;
}

/**
 * The `FLOTILLA_STORE_LEASE_NOT_FOUND` error every backend throws for a put or renewal of a
 * lease that expired or was revoked (or never existed).
 *
 * @param lease - the lease id, when known (etcd does not say which lease of a txn is missing).
 */
export function leaseNotFoundError(
  lease: string | undefined,
  options: LeaseNotFoundOptions = {},
): StoreError {
  const which = lease === undefined ? 'the lease' : `lease ${showKey(lease, 40)}`;
  const what = options.what === undefined ? '' : `${options.what} failed: `;
  return new StoreError(
    StoreErrorCodes.LEASE_NOT_FOUND,
    `${what}${which} does not exist (it expired or was revoked): grant a new one`,
    {
      ...(lease === undefined ? {} : { lease }),
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    },
  );
}

/**
 * The `FLOTILLA_STORE_COMPACTED` error every backend fails a watch with when the revision it
 * asked for is older than the compaction point (or the history is otherwise gone).
 *
 * @param fromRevision - the revision the watch asked for, when known.
 * @param compactRevision - the oldest revision a watch may start from now.
 * @param why - says why, when it is not a plain compaction (etcd lost its history, say).
 */
export function compactedError(
  fromRevision: number | undefined,
  compactRevision: number,
  why?: string,
): StoreError {
  const reason =
    why ??
    `revision ${fromRevision ?? '?'} has been compacted (oldest available: ${compactRevision})`;
  return new StoreError(
    StoreErrorCodes.COMPACTED,
    `${reason}: list again and watch from the list's revision + 1`,
    { compactRevision },
  );
}
