import { isFlotillaError } from '@flotilla/core';
import type { Deployment } from '@flotilla/controller';
import { PaasError } from '../../errors.js';

/** The body of every API error: Heroku's `{ id, message }`, plus the Flotilla code. */
export interface ApiErrorBody {
  /** A short machine id in Heroku's style: `not_found`, `invalid_params`, `unauthorized`... */
  readonly id: string;
  /** What went wrong and what to do about it. */
  readonly message: string;
  /** The `FLOTILLA_*` code, when the error has one. */
  readonly code?: string;
  /**
   * Lines to show under the message: for a deploy that failed (`FLOTILLA_CONTROLLER_DEPLOY_FAILED`),
   * each failed dyno with its message and last log lines, as `git push` shows them.
   */
  readonly details?: readonly string[];
}

/** The failed dynos of a deploy, each with its message and last 20 log lines, for a user to read. */
export function failedDynoLines(deployment: Deployment | undefined): string[] {
  const lines: string[] = [];
  for (const job of deployment?.failedJobs ?? []) {
    lines.push(` !     ${job.type} (${job.id}): ${job.message ?? job.state}`);
    for (const line of job.logs.slice(-20)) lines.push(`       | ${line}`);
  }
  return lines;
}

/**
 * The status and body an error is answered with. Flotilla errors map by their code's suffix
 * (`*_NOT_FOUND` is 404, `*_EXISTS` or `*_CONFLICT` 409, `*_INVALID*` 422); anything else is a
 * 500 whose message does not leak internals.
 */
export function errorResponse(err: unknown): { status: number; body: ApiErrorBody } {
  if (err instanceof PaasError) {
    return {
      status: err.status,
      body: { id: idFor(err.status), message: err.message, code: err.code },
    };
  }
  if (isFlotillaError(err)) {
    const status = statusForCode(err.code, err.retryable);
    const details = failedDynoLines((err as { deployment?: Deployment }).deployment);
    return {
      status,
      body: {
        id: idFor(status),
        message: userMessage(err),
        code: err.code,
        ...(details.length === 0 ? {} : { details }),
      },
    };
  }
  return {
    status: 500,
    body: { id: 'internal_error', message: userMessage(err) },
  };
}

/**
 * What a user reads for an error (an API answer, a push's last line): its message, except that
 * a component closed under the call (`*_CLOSED`: the server is shutting down) says so and to
 * retry, not the library's 'the controller is closed: create a new one', and an error without
 * a code leaks nothing.
 */
export function userMessage(err: unknown): string {
  if (!isFlotillaError(err)) return 'internal error: see the server log';
  if (!(err instanceof PaasError) && /_CLOSED$/.test(err.code))
    return `the server is shutting down: retry once it is back (${err.message})`;
  return err.message;
}

function statusForCode(code: string, retryable: boolean): number {
  if (/_NOT_FOUND$|_NO_SUCH_|_UNKNOWN_/.test(code)) return 404;
  if (/_EXISTS$|_CONFLICT$|_TAKEN$|_IN_USE$|_BUSY$/.test(code)) return 409;
  if (/_CLOSED$/.test(code)) return 503;
  if (retryable) return 503;
  if (/_INVALID|_SYNTAX$|_TOO_|_LIMIT|_MISSING/.test(code)) return 422;
  return 400;
}

function idFor(status: number): string {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 422:
      return 'invalid_params';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal_error' : 'bad_request';
  }
}
