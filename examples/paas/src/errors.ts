import { FlotillaError } from '@flotilla/core';

/** Every code a {@link PaasError} can carry. */
export const PaasErrorCodes = {
  /** A server or CLI option with a bad value (a port out of range, an unknown `--store` URL). */
  INVALID_OPTIONS: 'FLOTILLA_PAAS_INVALID_OPTIONS',
  /** A request body or query that does not match the endpoint's schema. */
  INVALID_REQUEST: 'FLOTILLA_PAAS_INVALID_REQUEST',
  /** A call without a valid token. */
  UNAUTHORIZED: 'FLOTILLA_PAAS_UNAUTHORIZED',
  /** No such route, or no such resource. */
  NOT_FOUND: 'FLOTILLA_PAAS_NOT_FOUND',
  /** The request body is larger than the endpoint takes. */
  TOO_LARGE: 'FLOTILLA_PAAS_TOO_LARGE',
  /** The CLI could not reach the server, or the server answered with an error. */
  API: 'FLOTILLA_PAAS_API',
  /** The CLI cannot tell which app a command is about. */
  NO_APP: 'FLOTILLA_PAAS_NO_APP',
  /** The token file or data directory cannot be read or written. */
  DATA_DIR: 'FLOTILLA_PAAS_DATA_DIR',
  /** The server is still starting its components. */
  STARTING: 'FLOTILLA_PAAS_STARTING',
  /** `git` failed while receiving a push. */
  GIT: 'FLOTILLA_PAAS_GIT',
} as const;

/** The union of {@link PaasErrorCodes} values. */
export type PaasErrorCode = (typeof PaasErrorCodes)[keyof typeof PaasErrorCodes];

/** An error of the reference PaaS (server, API, CLI), with a stable `code`. */
export class PaasError extends FlotillaError<PaasErrorCode> {
  /** The HTTP status this error is answered with, when it reaches the API. */
  readonly status: number;

  /**
   * @param code - what went wrong
   * @param message - what to fix
   * @param options - HTTP status, cause, retryable
   */
  constructor(
    code: PaasErrorCode,
    message: string,
    options: { status?: number; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, options);
    this.status = options.status ?? 400;
  }
}
