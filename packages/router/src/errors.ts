import { FlotillaError } from '@flotilla/core';

/** Every code a {@link RouterError} can carry. Store failures keep their store codes. */
export const RouterErrorCodes = {
  /** A route that is not valid: a bad domain, path, port, service or option. */
  INVALID_ROUTE: 'FLOTILLA_ROUTER_INVALID_ROUTE',
  /** A route id that names no route (or is not a route id at all). */
  INVALID_ROUTE_ID: 'FLOTILLA_ROUTER_INVALID_ROUTE_ID',
  /** A stored route or certificate entry that cannot be read (reported, never skipped quietly). */
  INVALID_RECORD: 'FLOTILLA_ROUTER_INVALID_RECORD',
  /** A certificate and key that do not load (bad PEM, a key that does not match). */
  INVALID_CERTIFICATE: 'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
  /** Router or listen options that are not valid (a bad port, a negative timeout...). */
  INVALID_OPTIONS: 'FLOTILLA_ROUTER_INVALID_OPTIONS',
  /** A listener could not bind its address (in use, not permitted). */
  LISTEN_FAILED: 'FLOTILLA_ROUTER_LISTEN_FAILED',
  /** `waitForDrained` ran out of time before every router drained the instance. */
  DRAIN_TIMEOUT: 'FLOTILLA_ROUTER_DRAIN_TIMEOUT',
  /** A call on a router that is closed (or closing). */
  CLOSED: 'FLOTILLA_ROUTER_CLOSED',
} as const;

/** The union of {@link RouterErrorCodes} values. */
export type RouterErrorCode = (typeof RouterErrorCodes)[keyof typeof RouterErrorCodes];

/** The error thrown by `@flotilla/router` for bad input and misuse. */
export class RouterError extends FlotillaError<RouterErrorCode> {
  /** The store key concerned, when there is one (an invalid record's). */
  readonly key: string | undefined;

  /** @param details - the key and cause concerned, when known; whether a retry may succeed. */
  constructor(
    code: RouterErrorCode,
    message: string,
    details: { key?: string; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, { cause: details.cause, retryable: details.retryable ?? false });
    this.key = details.key;
  }
}
