import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, normalize, relative, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { silentLogger, type Logger } from '@flotilla/core';
import { parseProcfile } from '@flotilla/procfile';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';
import { listContext, packContext } from './internal/context.js';
import { dockerfileImages } from './internal/dockerfile.js';
import { imageExists, readProgress, REPOSITORY, TAG } from './internal/engine.js';

/** The slice of dockerode {@link buildImage} uses. */
export type BuildImageDocker = Pick<Docker, 'buildImage' | 'getImage'>;

/** Options of {@link buildImage}. */
export interface BuildImageOptions {
  readonly docker: BuildImageDocker;
  /** The build context: an absolute directory. `.dockerignore` in it is honoured. */
  readonly context: string;
  /** The Dockerfile, relative to the context. Default `Dockerfile`. */
  readonly dockerfile?: string;
  /** `repository:tag` to give the image, e.g. `flotilla/app-demo:v3`. */
  readonly tag: string;
  /** `--build-arg`s. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Labels on the image. */
  readonly labels?: Readonly<Record<string, string>>;
  /** The build's output, one line at a time, without its newline. */
  readonly onOutput?: (line: string) => void;
  /** The context may hold at most this many bytes of files. Default 1 GiB. */
  readonly maxContextBytes?: number;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

/** What {@link buildImage} built. */
export interface BuiltImage {
  /** The tag given, `repository:tag`: what a release runs (`JobSpec.image`). */
  readonly image: string;
  /** The image id, `sha256:...`. */
  readonly id: string;
  /**
   * Process types: the context's Procfile when there is one, else `web` running the image's
   * `ENTRYPOINT` and `CMD` (as a shell command line); empty when the image has neither.
   */
  readonly processTypes: Readonly<Record<string, string>>;
  /** The images the Dockerfile builds from (all present locally). */
  readonly baseImages: readonly string[];
}

const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Builds an image from a Dockerfile with the real dockerd, streaming its output. Nothing is
 * pulled: the Dockerfile's `FROM` (and `COPY --from=`) images must be present locally, which
 * is checked before the build starts (`FLOTILLA_DOCKER_IMAGE_NOT_FOUND`), and the build runs
 * with `pull: false`. Intermediate containers are removed, also when a step fails.
 *
 * Throws `FLOTILLA_DOCKER_INVALID_OPTIONS`, `FLOTILLA_DOCKER_CONTEXT`,
 * `FLOTILLA_DOCKER_DOCKERFILE`, `FLOTILLA_DOCKER_IMAGE_NOT_FOUND`,
 * `FLOTILLA_DOCKER_BUILD_FAILED`, `FLOTILLA_DOCKER_PROCFILE`, `FLOTILLA_DOCKER_ENGINE`; an
 * aborted build rejects with the signal's reason.
 *
 * @example
 * ```ts
 * const built = await buildImage({ docker, context: '/tmp/src/demo', tag: 'flotilla/demo:v3',
 *   onOutput: (line) => console.log(line) });
 * // { image: 'flotilla/demo:v3', id: 'sha256:...', processTypes: { web: 'node server.js' } }
 * ```
 */
export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  const { docker, signal } = options;
  const logger = options.logger ?? silentLogger;
  const onOutput = options.onOutput ?? (() => undefined);
  const { context, dockerfile, tag } = checkOptions(options);
  const buildArgs = { ...options.buildArgs };
  const maxContextBytes = options.maxContextBytes ?? 1024 ** 3;
  signal?.throwIfAborted();

  const isDir = await stat(context).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir) {
    throw new DockerError(
      DockerErrorCodes.CONTEXT,
      `the build context ${context} is not a directory`,
      {
        path: context,
      },
    );
  }
  let text: string;
  try {
    text = await readFile(resolvePath(context, dockerfile), 'utf8');
  } catch (err) {
    throw new DockerError(
      DockerErrorCodes.DOCKERFILE,
      `cannot read the Dockerfile ${dockerfile} in ${context}: add one, or name it with the dockerfile option`,
      { path: dockerfile, cause: err },
    );
  }
  const { images, stages } = dockerfileImages(text, buildArgs);
  if (stages === 0) {
    throw new DockerError(
      DockerErrorCodes.DOCKERFILE,
      `${dockerfile} has no FROM instruction: start it with FROM <a local image>`,
      {
        path: dockerfile,
      },
    );
  }
  for (const ref of images) {
    if ((await imageExists(docker, ref.image)) === undefined) {
      throw new DockerError(
        DockerErrorCodes.IMAGE_NOT_FOUND,
        `${dockerfile}:${ref.line} builds from ${ref.image}, which is not present in this dockerd, and images are never pulled: build it first (flotilla-stack build makes the stack image flotilla/stack:latest), or FROM an image that is present`,
        { path: ref.image },
      );
    }
  }

  // the Procfile is checked before the build: a bad one must not leave a tagged image behind
  const procfileTypes = await readProcfile(context);
  const entries = await listContext(context, dockerfile, maxContextBytes, signal);
  const pack = packContext(entries, signal);
  let packError: unknown;
  pack.on('error', (err: unknown) => (packError = err));
  const tarStream = Readable.from(pack as AsyncIterable<Buffer>);
  logger.info({ tag, context, files: entries.length }, 'building an image');
  let id: string | undefined;
  let partial = '';
  const emit = (text: string): void => {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf('\n')) !== -1) {
      onOutput(partial.slice(0, nl).replace(/\r$/, ''));
      partial = partial.slice(nl + 1);
    }
  };
  try {
    const progress = await docker.buildImage(tarStream, {
      t: tag,
      dockerfile,
      buildargs: buildArgs,
      labels: { ...options.labels },
      pull: false,
      rm: true,
      forcerm: true,
      ...(signal === undefined ? {} : { abortSignal: signal }),
    } as Docker.ImageBuildOptions);
    await readProgress(
      progress,
      (msg) => {
        if (typeof msg.stream === 'string') emit(msg.stream);
        else if (typeof msg.status === 'string') emit(`${msg.status}\n`);
        const aux = msg.aux as { ID?: unknown } | undefined;
        if (typeof aux?.ID === 'string') id = aux.ID;
        if (typeof msg.error === 'string') emit(`${msg.error}\n`);
      },
      signal,
    );
  } catch (err) {
    tarStream.destroy();
    signal?.throwIfAborted();
    if (partial !== '') emit('\n');
    if (packError !== undefined) {
      throw new DockerError(
        DockerErrorCodes.CONTEXT,
        `cannot pack the build context ${context}: ${(packError as Error).message}`,
        {
          path: context,
          cause: packError,
        },
      );
    }
    if (err instanceof DockerError) throw err;
    if ((err as { statusCode?: unknown }).statusCode !== undefined)
      throw engineError(`dockerd refused the build of ${tag}`, err);
    throw new DockerError(
      DockerErrorCodes.BUILD_FAILED,
      `the build of ${tag} failed: ${(err as Error).message}`,
      {
        path: tag,
        cause: err,
      },
    );
  }
  if (partial !== '') emit('\n');
  const built = await imageExists(docker, tag);
  if (built === undefined) throw engineError(`the image ${tag} is missing after its build`, id);
  return {
    image: tag,
    id: built.Id,
    processTypes: procfileTypes ?? cmdProcessTypes(built.Config),
    baseImages: images.map((i) => i.image),
  };
}

function checkOptions(o: BuildImageOptions): { context: string; dockerfile: string; tag: string } {
  const bad = (path: string, why: string): never => {
    throw new DockerError(DockerErrorCodes.INVALID_OPTIONS, `${path}: ${why}`, { path });
  };
  if (typeof o.context !== 'string' || !isAbsolute(o.context) || o.context.includes('\0')) {
    bad('context', `${JSON.stringify(o.context)} is not an absolute directory path`);
  }
  const dockerfile = o.dockerfile ?? 'Dockerfile';
  if (
    typeof dockerfile !== 'string' ||
    dockerfile === '' ||
    dockerfile.includes('\0') ||
    isAbsolute(dockerfile) ||
    normalize(dockerfile).startsWith('..') ||
    relative(o.context, resolvePath(o.context, dockerfile)).startsWith('..')
  ) {
    throw new DockerError(
      DockerErrorCodes.DOCKERFILE,
      `dockerfile ${JSON.stringify(dockerfile)} must be a path inside the context`,
      {
        path: 'dockerfile',
      },
    );
  }
  const tag = o.tag;
  const colon = typeof tag === 'string' ? tag.lastIndexOf(':') : -1;
  if (
    typeof tag !== 'string' ||
    colon < 1 ||
    tag.length > 255 ||
    !REPOSITORY.test(tag.slice(0, colon)) ||
    !TAG.test(tag.slice(colon + 1))
  ) {
    bad(
      'tag',
      `${JSON.stringify(tag)} is not repository:tag (lower-case repository, tag of letters, digits, _ . -)`,
    );
  }
  for (const [k, v] of Object.entries(o.buildArgs ?? {})) {
    if (!ARG_NAME.test(k)) bad(`buildArgs.${k}`, 'not a build arg name');
    if (typeof v !== 'string' || v.includes('\0'))
      bad(`buildArgs.${k}`, 'values are strings without NUL');
  }
  for (const [k, v] of Object.entries(o.labels ?? {})) {
    if (k === '' || k.includes('\0') || typeof v !== 'string' || v.includes('\0'))
      bad(`labels.${k}`, 'labels are non-empty strings without NUL');
  }
  const max = o.maxContextBytes;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1))
    bad('maxContextBytes', `${String(max)} is not a positive whole number`);
  return {
    context: resolvePath(o.context),
    dockerfile: dockerfile.split('\\').join('/'),
    tag: tag as string,
  };
}

/** A shell-quoted command line of an argv. */
function shellJoin(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

/** The process types of the context's Procfile, or undefined when it has none. */
async function readProcfile(context: string): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(resolvePath(context, 'Procfile'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // the image's CMD
    throw new DockerError(DockerErrorCodes.PROCFILE, `cannot read the Procfile in ${context}`, {
      path: 'Procfile',
      cause: err,
    });
  }
  try {
    const pf = parseProcfile(text, { strict: true });
    return Object.fromEntries(pf.entries.map((e) => [e.name, e.command]));
  } catch (err) {
    throw new DockerError(
      DockerErrorCodes.PROCFILE,
      `the Procfile in ${context} cannot be used: ${(err as Error).message}`,
      { path: 'Procfile', cause: err },
    );
  }
}

/** `web` from the image's ENTRYPOINT and CMD, as one shell command line. */
function cmdProcessTypes(
  config: { Cmd?: string[] | null; Entrypoint?: string[] | string | null } | undefined,
): Record<string, string> {
  const entry = config?.Entrypoint;
  const argv = [
    ...(Array.isArray(entry) ? entry : typeof entry === 'string' ? [entry] : []),
    ...(config?.Cmd ?? []),
  ];
  if (argv.length === 0) return {};
  // shell form (`CMD node server.js`) is ["/bin/sh", "-c", "node server.js"]: keep the line
  if (argv.length === 3 && argv[0] === '/bin/sh' && argv[1] === '-c')
    return { web: argv[2] as string };
  return { web: shellJoin(argv) };
}
