import { FlotillaError } from '@flotilla/core';

/**
 * Every code an {@link EtcdError} can carry. Calls on an `EtcdStore` throw `StoreError`s with
 * the shared `FLOTILLA_STORE_*` codes, like every backend; these codes are for what only this
 * package can get wrong, such as its options.
 */
export const EtcdErrorCodes = {
  /** An `EtcdStore` option is missing or malformed: endpoints, prefix, TLS, auth, timeouts. */
  CONFIG: 'FLOTILLA_ETCD_CONFIG',
} as const;

/** The union of {@link EtcdErrorCodes} values. */
export type EtcdErrorCode = (typeof EtcdErrorCodes)[keyof typeof EtcdErrorCodes];

/** Typed fields of an {@link EtcdError}. */
export interface EtcdErrorDetails {
  /** The option concerned, e.g. `'endpoints'`. */
  readonly option?: string;
  readonly cause?: unknown;
}

/**
 * The error `@flotilla/etcd` throws for its own mistakes (bad options). Errors of store calls
 * are `StoreError`s from `@flotilla/store`. Match on {@link EtcdError.code}.
 *
 * @example
 * ```ts
 * try {
 *   new EtcdStore({ endpoints: [] });
 * } catch (err) {
 *   if (isFlotillaError(err, 'FLOTILLA_ETCD_CONFIG')) console.error(err.message);
 * }
 * ```
 */
export class EtcdError extends FlotillaError<EtcdErrorCode> {
  /** The option concerned, when there is one. */
  readonly option: string | undefined;

  constructor(code: EtcdErrorCode, message: string, details: EtcdErrorDetails = {}) {
    super(code, message, { cause: details.cause, retryable: false });
    this.option = details.option;
  }
}
