import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { silentLogger, type Logger } from '@flotilla/core';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';
import { imageExists, readProgress, REPOSITORY } from './internal/engine.js';
import { collectRootFs, packRootFs, STACK_UID, STACK_USER } from './internal/rootfs.js';

/** The repository stack images are tagged in by default. */
export const DEFAULT_STACK_REPOSITORY = 'flotilla/stack';

/** Bumped whenever what the image is made of changes in code (not in the host's files). */
const RECIPE = 'flotilla-stack/1';

/** The slice of dockerode {@link createStackImage} uses. */
export type StackImageDocker = Pick<Docker, 'getImage' | 'importImage'>;

/** Options of {@link createStackImage}. */
export interface StackImageOptions {
  /** The dockerd to build in. Default: dockerode's default (`DOCKER_HOST` or /var/run/docker.sock). */
  readonly docker?: StackImageDocker;
  /** Repository of the tags. Default `flotilla/stack`. */
  readonly repository?: string;
  /** More programs to copy from the host's PATH, with their libraries (`['git', 'make']`). */
  readonly extraPrograms?: readonly string[];
  /**
   * Where to keep what `ldd` said of the host's programs (by path, size and mtime), so that a
   * call whose image exists costs no ldd run. Default `$XDG_CACHE_HOME/flotilla` or
   * `~/.cache/flotilla`; `null` for none.
   */
  readonly cacheDir?: string | null;
  /** Labels set on the image (for example to find and remove test images). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Also tag the image `<repository>:latest`. Default true. */
  readonly tagLatest?: boolean;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

/** The stack image {@link createStackImage} made or found. */
export interface StackImage {
  /** `<repository>:<digest12>`: the reference to run. */
  readonly image: string;
  /** The image id (`sha256:...`). */
  readonly id: string;
  /** The sha256 of the image's inputs (files, modes, sizes, mtimes, recipe). */
  readonly digest: string;
  /** Whether this call imported it (false: it was there already). */
  readonly built: boolean;
  /** Optional programs this host lacks, left out of the image. */
  readonly missing: readonly string[];
  /** The uid and name of the non-root user in it. */
  readonly user: { readonly uid: number; readonly name: string };
}

/**
 * Builds the stack image, the base that slugs run in and buildpacks build in, from this host's
 * own files, without any registry: bash, coreutils, sed, grep, tar, gzip, curl, node and npm,
 * the shared libraries they need (found with `ldd`), the CA bundle, and an `/etc/passwd` with
 * the non-root user `flotilla` (uid 1000, home `/app`). The root filesystem is streamed to
 * `docker import`. Idempotent: tagged `<repository>:<digest12>` by a digest of its inputs, it is
 * imported only when they changed; otherwise the call only stats files and asks dockerd once.
 *
 * Throws `FLOTILLA_DOCKER_STACK_INPUT` (a required program is missing: names its Debian
 * package), `FLOTILLA_DOCKER_ENGINE`, `FLOTILLA_DOCKER_INVALID_OPTIONS`.
 *
 * @example
 * ```ts
 * const stack = await createStackImage({ docker: new Docker() });
 * // { image: 'flotilla/stack:3f9a0c1d2e4b', built: true, ... }; a second call: built: false
 * ```
 */
export async function createStackImage(options: StackImageOptions = {}): Promise<StackImage> {
  const repository = options.repository ?? DEFAULT_STACK_REPOSITORY;
  if (typeof repository !== 'string' || repository.length > 200 || !REPOSITORY.test(repository)) {
    throw new DockerError(
      DockerErrorCodes.INVALID_OPTIONS,
      `repository ${JSON.stringify(repository)} is not a Docker repository name: use lower-case letters, digits and . _ - /`,
      { path: 'repository' },
    );
  }
  const labels = options.labels ?? {};
  for (const name of options.extraPrograms ?? []) {
    // a name, found on PATH: never a path (../../etc/shadow would be copied into the image)
    if (typeof name !== 'string' || !/^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,99}$/.test(name)) {
      throw new DockerError(
        DockerErrorCodes.INVALID_OPTIONS,
        `extraPrograms: ${JSON.stringify(name)} is not a program name (letters, digits, . _ + -; no /)`,
        { path: 'extraPrograms' },
      );
    }
  }
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string' || /[\0\n"\\]/.test(k + v) || k === '') {
      throw new DockerError(
        DockerErrorCodes.INVALID_OPTIONS,
        `label ${JSON.stringify(k)}: keys and values are strings without NUL, newline, quote or backslash`,
        {
          path: `labels.${k}`,
        },
      );
    }
  }
  const logger = options.logger ?? silentLogger;
  const docker = options.docker ?? new Docker();
  const { signal } = options;
  signal?.throwIfAborted();
  const labelText = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const cacheDir =
    options.cacheDir === undefined
      ? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flotilla')
      : options.cacheDir;
  const rootfs = await collectRootFs(
    `${RECIPE} ${labelText}`,
    options.extraPrograms ?? [],
    cacheDir === null ? undefined : join(cacheDir, 'stack-ldd.json'),
  );
  const tag = rootfs.digest.slice(0, 12);
  const image = `${repository}:${tag}`;
  const base = {
    digest: rootfs.digest,
    missing: rootfs.missing,
    user: { uid: STACK_UID, name: STACK_USER },
    image,
  };
  const found = await imageExists(docker, image);
  if (found !== undefined) {
    if (options.tagLatest !== false) await tagLatest(docker, image, repository);
    return { ...base, id: found.Id, built: false };
  }
  signal?.throwIfAborted();
  logger.info({ image, missing: rootfs.missing }, 'importing the stack image');
  const changes = [
    'ENV PATH=/usr/local/bin:/usr/bin:/bin',
    'ENV LANG=C.UTF-8',
    'WORKDIR /app',
    'CMD ["bash"]',
    `LABEL flotilla.stack.digest=${rootfs.digest}`,
    ...Object.entries(labels).map(([k, v]) => `LABEL "${k}"="${v}"`),
  ];
  const pack = packRootFs(rootfs, signal);
  const tarStream = Readable.from(pack as AsyncIterable<Buffer>);
  let id: string | undefined;
  try {
    const progress = await docker.importImage(tarStream, {
      repo: repository,
      tag,
      changes,
      message: 'flotilla stack image, from the host',
      ...(signal === undefined ? {} : { abortSignal: signal }),
    });
    await readProgress(
      progress,
      (msg) => {
        if (typeof msg.status === 'string' && msg.status.startsWith('sha256:')) id = msg.status;
      },
      signal,
    );
  } catch (err) {
    tarStream.destroy();
    pack.destroy();
    signal?.throwIfAborted();
    if (err instanceof DockerError) throw err;
    throw engineError(`cannot import the stack image ${image}`, err);
  }
  const imported = await imageExists(docker, image);
  if (imported === undefined)
    throw engineError(`the stack image ${image} is missing after its import`, id);
  if (options.tagLatest !== false) await tagLatest(docker, image, repository);
  return { ...base, id: imported.Id, built: true };
}

async function tagLatest(docker: StackImageDocker, image: string, repo: string): Promise<void> {
  try {
    await docker.getImage(image).tag({ repo, tag: 'latest' });
  } catch (err) {
    throw engineError(`cannot tag ${image} as ${repo}:latest`, err);
  }
}
