import { FlotillaError } from '@flotilla/core';

/** Every code a {@link DiscoveryError} can carry. Store failures keep their store codes. */
export const DiscoveryErrorCodes = {
  /** A service name that is not a DNS-style name (`demo-web`, `api.v2`). */
  INVALID_SERVICE: 'FLOTILLA_DISCOVERY_INVALID_SERVICE',
  /** An instance or candidate id outside `[A-Za-z0-9_.-]`, 1-128 characters. */
  INVALID_ID: 'FLOTILLA_DISCOVERY_INVALID_ID',
  /** An address that is not `host:port`. */
  INVALID_ADDR: 'FLOTILLA_DISCOVERY_INVALID_ADDR',
  /** Meta that is not a flat record of string values, or is too large. */
  INVALID_META: 'FLOTILLA_DISCOVERY_INVALID_META',
  /** A TTL that is not an integer number of ms from 1000 to 2^31 - 1 (a lease's longest). */
  INVALID_TTL: 'FLOTILLA_DISCOVERY_INVALID_TTL',
  /**
   * An entry under `services/` that is not a valid instance: not JSON, a missing or mistyped
   * field, an id or service other than its key names, a key that names no service and id.
   * Reads skip it and report it (watch's `invalid` event, Discovery's `invalid-record` event).
   * Also an election's leader entry that cannot be read (the election's `error` event).
   */
  INVALID_RECORD: 'FLOTILLA_DISCOVERY_INVALID_RECORD',
  /** An instance id already registered by a live registrant. */
  DUPLICATE_ID: 'FLOTILLA_DISCOVERY_DUPLICATE_ID',
  /**
   * A listener of a registration's or an election's event threw (or, async, rejected). Reported as an `error` event,
   * with the thrown value as `cause`; the registration or election carries on regardless.
   */
  LISTENER_FAILED: 'FLOTILLA_DISCOVERY_LISTENER_FAILED',
  /** The registration, election or discovery was closed. */
  CLOSED: 'FLOTILLA_DISCOVERY_CLOSED',
} as const;

/** The union of {@link DiscoveryErrorCodes} values. */
export type DiscoveryErrorCode = (typeof DiscoveryErrorCodes)[keyof typeof DiscoveryErrorCodes];

/** The error thrown by `@flotilla/discovery` for bad input and misuse. */
export class DiscoveryError extends FlotillaError<DiscoveryErrorCode> {
  /** The service concerned, when there is one. */
  readonly service: string | undefined;
  /** The instance id concerned, when there is one. */
  readonly instanceId: string | undefined;
  /** The store key concerned, when there is one (an invalid record's). */
  readonly key: string | undefined;

  /** @param details - the service, instance id, key and cause concerned, when known. */
  constructor(
    code: DiscoveryErrorCode,
    message: string,
    details: { service?: string; instanceId?: string; key?: string; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.service = details.service;
    this.instanceId = details.instanceId;
    this.key = details.key;
  }
}
