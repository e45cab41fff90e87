import type Docker from 'dockerode';
import { silentLogger, type Logger } from '@flotilla/core';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';
import { REPOSITORY, statusOf, TAG } from './internal/engine.js';

/** The slice of a dockerode client {@link removeImage} uses. */
export type RemoveImageDocker = Pick<Docker, 'getImage'>;

/** Options of {@link removeImage}. */
export interface RemoveImageOptions {
  /** The Docker client (dockerode). */
  readonly docker: RemoveImageDocker;
  /** The tag to remove, `repository:tag` (what {@link buildImage} was given, `flotilla/demo:b-1a2b`). */
  readonly image: string;
  /** Aborts the removal: the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
}

/**
 * Removes an image tag, as `docker rmi <repository:tag>` without `--force`: the tag goes, and
 * the image's layers with it once no other tag and no container holds them. Resolves true when
 * the tag was removed, false when there was none. What the controller calls for the images of
 * an app it destroys (`ControllerOptions.docker.removeImage`).
 *
 * @example
 * ```ts
 * await removeImage({ docker: new Docker(), image: 'flotilla/demo:b-1a2b3c4d5e6f' });
 * ```
 *
 * @throws {@link DockerError} `FLOTILLA_DOCKER_INVALID_OPTIONS` for an image that is not
 * `repository:tag` (an id or a bare repository is refused: only a tag names one image of one
 * build); `FLOTILLA_DOCKER_ENGINE` when dockerd refuses (409: a container still uses the image,
 * remove it first; not retryable) or cannot be reached (retryable). The signal's reason when
 * `signal` aborts.
 */
export async function removeImage(options: RemoveImageOptions): Promise<boolean> {
  const { docker, image, signal } = options;
  const logger = options.logger ?? silentLogger;
  const colon = typeof image === 'string' ? image.lastIndexOf(':') : -1;
  if (
    typeof image !== 'string' ||
    colon < 1 ||
    image.length > 255 ||
    // `sha256:<hex>` reads as repository:tag, and dockerd takes it for an image id.
    image.startsWith('sha256:') ||
    !REPOSITORY.test(image.slice(0, colon)) ||
    !TAG.test(image.slice(colon + 1))
  )
    throw new DockerError(
      DockerErrorCodes.INVALID_OPTIONS,
      `image ${JSON.stringify(image)} is not repository:tag (lower-case repository, tag of letters, digits, _ . -): give the tag the image was built with`,
      { path: 'image' },
    );
  signal?.throwIfAborted();
  try {
    await docker.getImage(image).remove({
      ...(signal === undefined ? {} : { abortSignal: signal }),
    });
  } catch (err) {
    signal?.throwIfAborted();
    if (statusOf(err) === 404) return false;
    throw engineError(
      statusOf(err) === 409
        ? `dockerd refused to remove ${image}, a container still uses it (remove the container first)`
        : `dockerd could not remove ${image}`,
      err,
    );
  }
  logger.info({ image }, 'image removed');
  return true;
}
