import type Docker from 'dockerode';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';

/** The slice of a dockerode client {@link listImageTags} uses. */
export type ListImageTagsDocker = Pick<Docker, 'listImages'>;

/** Options of {@link listImageTags}. */
export interface ListImageTagsOptions {
  /** The Docker client (dockerode). */
  readonly docker: ListImageTagsDocker;
  /**
   * The repositories to list, as dockerd's `reference` filter takes them: a repository
   * (`flotilla/demo`) or a pattern (`flotilla/*`, every repository under `flotilla/`).
   */
  readonly reference: string;
  /** Aborts the listing: the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * The local image tags (`repository:tag`) of the repositories `reference` names, sorted: what
 * the controller lists to collect the images of builds no release keeps any more, and those
 * of apps gone.
 *
 * @example
 * ```ts
 * await listImageTags({ docker: new Docker(), reference: 'flotilla/*' });
 * // ['flotilla/demo:b-1a2b3c4d5e6f', 'flotilla/demo:b-9f8e7d6c5b4a']
 * ```
 *
 * @throws {@link DockerError} `FLOTILLA_DOCKER_INVALID_OPTIONS` for a reference that is empty,
 * holds a tag or a digest, or a NUL byte; `FLOTILLA_DOCKER_ENGINE` when dockerd refuses or
 * cannot be reached. The signal's reason when `signal` aborts.
 */
export async function listImageTags(options: ListImageTagsOptions): Promise<string[]> {
  const { docker, reference, signal } = options;
  if (
    typeof reference !== 'string' ||
    !/^[a-z0-9*][a-z0-9._/*-]{0,254}$/.test(reference) ||
    reference.includes('//')
  )
    throw new DockerError(
      DockerErrorCodes.INVALID_OPTIONS,
      `reference ${JSON.stringify(reference)} is not a repository or a pattern of them (flotilla/demo, flotilla/*): no tag, no digest`,
      { path: 'reference' },
    );
  signal?.throwIfAborted();
  let images: Awaited<ReturnType<Docker['listImages']>>;
  try {
    images = await docker.listImages({
      filters: JSON.stringify({ reference: [reference] }),
      ...(signal === undefined ? {} : { abortSignal: signal }),
    });
  } catch (err) {
    signal?.throwIfAborted();
    throw engineError(`dockerd could not list the images of ${reference}`, err);
  }
  const tags = images.flatMap((i) => i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  return [...new Set(tags)].sort();
}
