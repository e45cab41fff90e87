import { closedError, leaseNotFoundError, StoreError, StoreErrorCodes } from '@flotilla/store';
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';

/** What a failed call was doing, for the error message and fields. */
export interface CallContext {
  /** E.g. `get of "apps/web"`. */
  readonly what: string;
  readonly key?: string;
  readonly lease?: string;
}

/** etcd's own error texts (etcdserver/api/v3rpc/rpctypes), mapped to the shared codes. */
const MESSAGES: readonly (readonly [
  string,
  (typeof StoreErrorCodes)[keyof typeof StoreErrorCodes],
])[] = [
  ['requested lease not found', StoreErrorCodes.LEASE_NOT_FOUND],
  ['too many operations in txn request', StoreErrorCodes.TOO_MANY_OPS],
  ['request is too large', StoreErrorCodes.TOO_LARGE],
  ['duplicate key given in txn request', StoreErrorCodes.DUPLICATE_KEY],
  ['required revision has been compacted', StoreErrorCodes.COMPACTED],
  ['required revision is a future revision', StoreErrorCodes.INVALID_ARGUMENT],
  ['too large lease TTL', StoreErrorCodes.INVALID_ARGUMENT],
  ['key is not provided', StoreErrorCodes.INVALID_KEY],
];

/** Whether `err` is (or wraps) etcd's "lease not found". */
export function isLeaseNotFound(err: unknown): boolean {
  return (
    err instanceof EtcdLeaseInvalidError ||
    (err instanceof Error && err.message.includes('requested lease not found'))
  );
}

function isAuthProblem(err: unknown): boolean {
  return (
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof GRPCUnauthenticatedError
  );
}

/**
 * Turns whatever etcd3 or grpc threw into a `StoreError` with the code every backend uses:
 * unreachable or failing etcd is `FLOTILLA_STORE_UNAVAILABLE` (retryable), with the original
 * error as `cause`.
 */
export function toStoreError(err: unknown, context: CallContext): StoreError {
  if (err instanceof StoreError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const fields = {
    cause: err,
    ...(context.key === undefined ? {} : { key: context.key }),
    ...(context.lease === undefined ? {} : { lease: context.lease }),
  };
  if (err instanceof ClientClosedError) return closedError('store', err);
  if (isLeaseNotFound(err)) {
    return leaseNotFoundError(context.lease, {
      what: context.what,
      cause: err,
      ...(context.key === undefined ? {} : { key: context.key }),
    });
  }
  if (isAuthProblem(err)) {
    return new StoreError(
      StoreErrorCodes.UNAVAILABLE,
      `${context.what} failed: etcd refused the credentials or the permission (${message}): check the auth option and the etcd user's roles`,
      { ...fields, retryable: false },
    );
  }
  for (const [text, code] of MESSAGES) {
    if (message.includes(text)) {
      return new StoreError(code, `${context.what} failed: etcd says ${message}`, fields);
    }
  }
  const retryable = err instanceof Error && isRecoverableError(err);
  return new StoreError(
    StoreErrorCodes.UNAVAILABLE,
    retryable
      ? `${context.what} failed: etcd is unavailable (${message}): retry once etcd is reachable`
      : `${context.what} failed: etcd answered with an error (${message})`,
    { ...fields, retryable },
  );
}
