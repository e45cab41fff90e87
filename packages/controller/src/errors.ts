import { FlotillaError } from '@flotilla/core';
import type { Deployment } from './deployment.js';

/** Every code a {@link ControllerError} can carry. */
export const ControllerErrorCodes = {
  /** An argument or option is malformed: a bad app name, config key, count, size, domain, path. `path` names it. */
  INVALID_INPUT: 'FLOTILLA_CONTROLLER_INVALID_INPUT',
  /** An app name that is already taken. */
  APP_EXISTS: 'FLOTILLA_CONTROLLER_APP_EXISTS',
  /** No app of that name (or it is being destroyed). */
  APP_NOT_FOUND: 'FLOTILLA_CONTROLLER_APP_NOT_FOUND',
  /** No build of that id in the app. */
  BUILD_NOT_FOUND: 'FLOTILLA_CONTROLLER_BUILD_NOT_FOUND',
  /** A build that failed: the builder's error is the `cause`, the output says more. */
  BUILD_FAILED: 'FLOTILLA_CONTROLLER_BUILD_FAILED',
  /** No release of that version in the app. */
  RELEASE_NOT_FOUND: 'FLOTILLA_CONTROLLER_RELEASE_NOT_FOUND',
  /** The app has no build yet: nothing to deploy, run or scale. */
  NO_BUILD: 'FLOTILLA_CONTROLLER_NO_BUILD',
  /** A process type the current release does not declare. */
  UNKNOWN_PROCESS_TYPE: 'FLOTILLA_CONTROLLER_UNKNOWN_PROCESS_TYPE',
  /** Another deploy (or scale, restart, destroy) of the app holds its lock. Retryable. */
  DEPLOY_IN_PROGRESS: 'FLOTILLA_CONTROLLER_DEPLOY_IN_PROGRESS',
  /** A deploy that did not go live: it was rolled back, the previous release still serves. `reason` and `jobs` say why. */
  DEPLOY_FAILED: 'FLOTILLA_CONTROLLER_DEPLOY_FAILED',
  /** The release phase (the `release` process type) failed: the deploy stopped before any job changed. */
  RELEASE_PHASE_FAILED: 'FLOTILLA_CONTROLLER_RELEASE_PHASE_FAILED',
  /** A hook vetoed the step; `hook` and the message give its reason. */
  VETOED: 'FLOTILLA_CONTROLLER_VETOED',
  /** A domain another app (or this one) already has. */
  DOMAIN_EXISTS: 'FLOTILLA_CONTROLLER_DOMAIN_EXISTS',
  /** A domain the app does not have. */
  DOMAIN_NOT_FOUND: 'FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND',
  /** An artifact whose digest does not match what was expected, or that is missing from the store. */
  ARTIFACT_INVALID: 'FLOTILLA_CONTROLLER_ARTIFACT_INVALID',
  /** A needed plug-in is not there: no builder for Dockerfile apps, no one-off runner, no route table. */
  NOT_CONFIGURED: 'FLOTILLA_CONTROLLER_NOT_CONFIGURED',
  /** A record under the controller's prefix that cannot be read; `key` names it. */
  INVALID_RECORD: 'FLOTILLA_CONTROLLER_INVALID_RECORD',
  /** A compare-and-set kept losing to other writers. Retryable. */
  CONFLICT: 'FLOTILLA_CONTROLLER_CONFLICT',
  /** An event stream's consumer fell more than `maxBacklog` events behind; the stream ended. Open a new one. */
  EVENT_BACKLOG: 'FLOTILLA_CONTROLLER_EVENT_BACKLOG',
  /** A call on a controller that is not started, or closed. */
  CLOSED: 'FLOTILLA_CONTROLLER_CLOSED',
} as const;

/** The union of {@link ControllerErrorCodes} values. */
export type ControllerErrorCode = (typeof ControllerErrorCodes)[keyof typeof ControllerErrorCodes];

/** Details a {@link ControllerError} may carry. */
export interface ControllerErrorDetails {
  /** The app concerned. */
  readonly app?: string;
  /** The argument or field at fault (`config.FOO`, `formation.web.count`). */
  readonly path?: string;
  /** The store key of an unreadable record. */
  readonly key?: string;
  /** The hook that vetoed. */
  readonly hook?: string;
  /** The deployment that failed, for `FLOTILLA_CONTROLLER_DEPLOY_FAILED` (its `reason` and `failedJobs`). */
  readonly deployment?: Deployment;
  readonly cause?: unknown;
  readonly retryable?: boolean;
}

/** The error of `@flotilla/controller`. Match on `code`. */
export class ControllerError extends FlotillaError<ControllerErrorCode> {
  /** The app concerned, when there is one. */
  readonly app: string | undefined;
  /** The argument or field at fault, when known. */
  readonly path: string | undefined;
  /** The store key of the record concerned, when there is one. */
  readonly key: string | undefined;
  /** The hook that vetoed, for `FLOTILLA_CONTROLLER_VETOED`. */
  readonly hook: string | undefined;
  /** The deployment that failed, for `FLOTILLA_CONTROLLER_DEPLOY_FAILED`. */
  readonly deployment: Deployment | undefined;

  constructor(code: ControllerErrorCode, message: string, details: ControllerErrorDetails = {}) {
    super(code, message, {
      cause: details.cause,
      ...(details.retryable === undefined ? {} : { retryable: details.retryable }),
    });
    this.app = details.app;
    this.path = details.path;
    this.key = details.key;
    this.hook = details.hook;
    this.deployment = details.deployment;
  }
}
