import { FlotillaError } from '@flotilla/core';

/**
 * Every code a {@link DockerError} can carry. The README documents each; codes are never reused
 * for another meaning. The {@link DockerDriver} throws `@flotilla/host`'s codes
 * (`FLOTILLA_HOST_*`), as every driver does; an aborted call rejects with the signal's `reason`.
 */
export const DockerErrorCodes = {
  /** An option of the wrong kind: a tag or instance id Docker refuses, a relative path, a bad timeout. */
  INVALID_OPTIONS: 'FLOTILLA_DOCKER_INVALID_OPTIONS',
  /** dockerd refused or failed a call, or cannot be reached (retryable): check that it runs. */
  ENGINE: 'FLOTILLA_DOCKER_ENGINE',
  /** `createStackImage`: a program or file the stack image needs is not on this host (names the Debian package). */
  STACK_INPUT: 'FLOTILLA_DOCKER_STACK_INPUT',
  /** An image that is not present locally: nothing is ever pulled; build or import it first. */
  IMAGE_NOT_FOUND: 'FLOTILLA_DOCKER_IMAGE_NOT_FOUND',
  /** `buildImage`: the context is not a directory, cannot be read, or is larger than `maxContextBytes`. */
  CONTEXT: 'FLOTILLA_DOCKER_CONTEXT',
  /** `buildImage`: the Dockerfile is missing, outside the context, or has no `FROM`. */
  DOCKERFILE: 'FLOTILLA_DOCKER_DOCKERFILE',
  /** `buildImage`: a step of the build failed; the message holds Docker's error, the output went to `onOutput`. */
  BUILD_FAILED: 'FLOTILLA_DOCKER_BUILD_FAILED',
  /** `buildImage`: the context's Procfile cannot be parsed. */
  PROCFILE: 'FLOTILLA_DOCKER_PROCFILE',
  /** `ContainerExecutor.exec`: a bad request (relative cwd or mount, empty argv, NUL bytes). */
  INVALID_REQUEST: 'FLOTILLA_DOCKER_INVALID_REQUEST',
  /** `ContainerExecutor.exec`: a mount is missing or cannot be given to the build user (run the executor as root). */
  MOUNT: 'FLOTILLA_DOCKER_MOUNT',
  /** The executor was closed. */
  CLOSED: 'FLOTILLA_DOCKER_CLOSED',
} as const;

/** The union of {@link DockerErrorCodes} values. */
export type DockerErrorCode = (typeof DockerErrorCodes)[keyof typeof DockerErrorCodes];

/** The error thrown by `@flotilla/docker` outside the driver. */
export class DockerError extends FlotillaError<DockerErrorCode> {
  /** The option, file or image concerned, when there is one. */
  readonly path: string | undefined;

  constructor(
    code: DockerErrorCode,
    message: string,
    details: { path?: string; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, message, { cause: details.cause, retryable: details.retryable ?? false });
    this.path = details.path;
  }
}

/** Wraps an error of dockerd or of the connection to it as `FLOTILLA_DOCKER_ENGINE`. */
export function engineError(what: string, cause: unknown): DockerError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const status = (cause as { statusCode?: unknown } | undefined)?.statusCode;
  // a connection failure or a 5xx may pass when tried again; a 4xx is the request's fault
  const retryable = typeof status !== 'number' || status >= 500;
  return new DockerError(DockerErrorCodes.ENGINE, `${what}: ${detail}`, { cause, retryable });
}
