import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Clock, isFlotillaError, type Logger, retry } from '@flotilla/core';
import { extractSlug } from '@flotilla/slug';
import type { ArtifactStore } from '../artifact-store.js';
import type { Build, BuildSource, CreateBuildOptions } from '../build.js';
import type {
  Builder,
  BuilderInput,
  BuilderResult,
  DockerImageBuild,
  ImageBuilder,
} from '../builder.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { BuildOutputWriter } from './build-output.js';
import type { HookRegistry } from './hook-registry.js';
import { buildImageTag } from './image-capability.js';
import { invalid, show } from './names.js';
import type { Repo } from './repo.js';

/** What a build needs around it. */
export interface BuildRunnerContext {
  readonly repo: Repo;
  readonly artifacts: ArtifactStore;
  readonly builder: () => Promise<Builder>;
  readonly imageBuilder: ImageBuilder | undefined;
  readonly hooks: HookRegistry;
  readonly workDir: string;
  /** How long a build waits for the app's build cache held by another build, ms. */
  readonly cacheLockTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** The code `@flotilla/buildpack` throws when another build holds the cache directory. */
const CACHE_LOCKED = 'FLOTILLA_BUILDPACK_CACHE_LOCKED';

/** A checked source, with its id for the build record. */
export interface CheckedSource {
  readonly source: BuildSource;
  /** The git sha, `sha256:<hex>` of a tarball, or the image. */
  readonly id: string;
}

const SHA = /^[0-9a-f]{7,64}$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$/;

/** Checks a build source before anything is written; a tarball's digest is computed here. */
export async function checkSource(source: unknown, signal?: AbortSignal): Promise<CheckedSource> {
  if (typeof source !== 'object' || source === null)
    throw invalid('source', 'the build source must be an object with a type');
  const s = source as Record<string, unknown>;
  const path = (v: unknown, p: string): string => {
    if (typeof v !== 'string' || v === '' || v.includes('\0'))
      throw invalid(p, `${show(v)} is not a path`);
    return v;
  };
  if (s.type === 'tarball') {
    const file = path(s.path, 'source.path');
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile() !== true)
      throw invalid(
        'source.path',
        `${show(file)} is not a file: give the path of a .tar.gz of the app`,
      );
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash, signal === undefined ? {} : { signal });
    return { source: { type: 'tarball', path: file }, id: `sha256:${hash.digest('hex')}` };
  }
  if (s.type === 'git') {
    const dir = path(s.dir, 'source.dir');
    if (typeof s.sha !== 'string' || !SHA.test(s.sha))
      throw invalid(
        'source.sha',
        `${show(s.sha)} is not a git commit: give 7 to 64 lowercase hex digits`,
      );
    const st = await stat(dir).catch(() => undefined);
    if (st?.isDirectory() !== true)
      throw invalid(
        'source.dir',
        `${show(dir)} is not a directory: give the checkout of the commit`,
      );
    return { source: { type: 'git', dir, sha: s.sha }, id: s.sha };
  }
  if (s.type === 'image') {
    if (typeof s.image !== 'string' || !IMAGE.test(s.image))
      throw invalid('source.image', `${show(s.image)} is not an image reference`);
    const types = s.processTypes;
    if (typeof types !== 'object' || types === null || Object.keys(types).length === 0)
      throw invalid(
        'source.processTypes',
        'an image build needs its process types: { web: "command" }',
      );
    const out: Record<string, string> = {};
    for (const [t, c] of Object.entries(types)) {
      if (!/^[a-z][a-z0-9_-]{0,62}$/.test(t))
        throw invalid(
          `source.processTypes.${t.slice(0, 40)}`,
          `${show(t)} is not a process type name`,
        );
      if (typeof c !== 'string' || c.trim() === '' || c.includes('\0') || c.length > 64 * 1024)
        throw invalid(
          `source.processTypes.${t}`,
          `the command of ${t} must be a non-empty string without NUL`,
        );
      out[t] = c;
    }
    return { source: { type: 'image', image: s.image, processTypes: out }, id: s.image };
  }
  throw invalid('source.type', `${show(s.type)} is not a source type: use tarball, git or image`);
}

/** What a finished build produced. */
export type BuildProduct = Pick<Build, 'artifact' | 'processTypes' | 'buildpacks'>;

/**
 * Runs one build: prepares the source tree (a copy: the builder may write in it), runs the
 * image builder for a Dockerfile app or the slug builder otherwise, stores the slug by digest
 * in the artifact store, and cleans up its tree. Throws with the reason on failure.
 */
export async function runBuild(
  ctx: BuildRunnerContext,
  build: Build,
  source: BuildSource,
  env: Readonly<Record<string, string>>,
  options: CreateBuildOptions,
  out: BuildOutputWriter,
  signal: AbortSignal,
): Promise<BuildProduct & { builder: Build['builder'] }> {
  if (source.type === 'image') {
    out.line(`-----> Using image ${source.image}`);
    return {
      builder: 'image',
      artifact: { type: 'image', image: source.image },
      processTypes: source.processTypes,
    };
  }
  const root = join(ctx.workDir, 'builds', build.app, build.id);
  const src = join(root, 'src');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  try {
    if (source.type === 'tarball') {
      out.line('-----> Extracting source');
      await extractSlug(source.path, src, { signal });
      // A tarball of one top-level directory (GitHub's, `git archive --prefix`) is that directory's tree.
      const entries = await readdir(src, { withFileTypes: true });
      const only = entries.length === 1 ? entries[0] : undefined;
      if (only?.isDirectory() === true) {
        const inner = join(root, 'inner');
        await cp(join(src, only.name), inner, { recursive: true, verbatimSymlinks: true });
        await rm(src, { recursive: true, force: true });
        await cp(inner, src, { recursive: true, verbatimSymlinks: true });
        await rm(inner, { recursive: true, force: true });
      }
    } else {
      out.line(`-----> Fetching ${source.sha.slice(0, 12)}`);
      await cp(source.dir, src, {
        recursive: true,
        verbatimSymlinks: true,
        filter: (from) =>
          !(from === join(source.dir, '.git') || from.startsWith(join(source.dir, '.git') + '/')),
      });
    }
    signal.throwIfAborted();
    const hasDockerfile = await stat(join(src, 'Dockerfile')).then(
      (s) => s.isFile(),
      () => false,
    );
    const useDocker =
      options.builder === 'dockerfile' ||
      (options.builder === undefined && hasDockerfile && ctx.imageBuilder !== undefined);
    if (useDocker) {
      if (ctx.imageBuilder === undefined)
        throw new ControllerError(
          ControllerErrorCodes.NOT_CONFIGURED,
          'builder dockerfile was asked for, and the controller has no imageBuilder: configure one (@flotilla/docker)',
          { app: build.app, path: 'builder' },
        );
      out.line('-----> Building with the Dockerfile');
      const res = await untilAborted(
        ctx.imageBuilder.buildImage({
          context: src,
          tag: buildImageTag(build.app, build.id),
          onOutput: (chunk) => out.write(chunk),
          signal,
        }),
        signal,
      );
      return {
        builder: 'dockerfile',
        artifact: { type: 'image', image: res.image },
        processTypes: { ...res.processTypes },
      };
    }
    const builder = await ctx.builder();
    const cacheDir = join(ctx.workDir, 'cache', build.app);
    await mkdir(cacheDir, { recursive: true });
    const res = await waitingForCache(ctx, build.app, out, signal, () =>
      untilAborted(
        builder.build({
          source: src,
          cacheDir,
          env,
          ...(options.buildpacks === undefined ? {} : { buildpacks: options.buildpacks }),
          slugPath: join(root, 'slug.tgz'),
          onOutput: (chunk) => out.write(chunk),
          signal,
        }),
        signal,
      ),
    );
    signal.throwIfAborted();
    const stored = await ctx.artifacts.put(res.slug, { sha256: res.sha256, signal });
    await rm(res.slug, { force: true }).catch(() => undefined);
    out.line(
      `-----> Slug stored: sha256 ${stored.digest.slice(0, 12)}, ${(stored.size / 1024 / 1024).toFixed(1)} MiB`,
    );
    return {
      builder: 'buildpack',
      artifact: { type: 'slug', sha256: stored.digest, size: stored.size },
      processTypes: { ...res.processTypes },
      buildpacks: res.buildpacks.map((b) => ({ name: b.name, url: b.url })),
    };
  } finally {
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The reason a build failed, for its record and output. */
export function failureReason(err: unknown): string {
  if (isFlotillaError(err)) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Runs a build, and runs it again while another build (of another controller or process on
 * the same work directory) holds the app's build cache: the wait is said once in the build's
 * output, polled with a backoff of 250 ms to 2 s, and bounded by `cacheLockTimeoutMs` (then the
 * builder's `FLOTILLA_BUILDPACK_CACHE_LOCKED` is the build's failure).
 */
function waitingForCache(
  ctx: BuildRunnerContext,
  app: string,
  out: BuildOutputWriter,
  signal: AbortSignal,
  run: () => Promise<BuilderResult>,
): Promise<BuilderResult> {
  let said = false;
  return retry(run, {
    clock: ctx.clock,
    signal,
    initialMs: 250,
    maxMs: 2000,
    budgetMs: ctx.cacheLockTimeoutMs,
    retryable: (err) => isFlotillaError(err) && err.code === CACHE_LOCKED,
    onRetry: () => {
      if (!said)
        out.line(`-----> Build cache in use: waiting for the previous build of ${app} to finish`);
      said = true;
    },
  });
}

/** A module's export, or `FLOTILLA_CONTROLLER_NOT_CONFIGURED` saying what to do. */
async function importFunction(specifier: string, name: string): Promise<unknown> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      `${specifier} could not be loaded (${(err as Error).message}): install it or pass a builder`,
      { cause: err },
    );
  }
  if (typeof mod[name] !== 'function')
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      `${specifier} has no ${name} function in this version: pass a builder`,
    );
  return mod[name];
}

/**
 * The default builder: `build` of `@flotilla/buildpack`, imported when the first build runs.
 * Its `onOutput` hands over each line without its newline as it comes; each is passed on with
 * its newline at once, so that followers of the build's output see it live, line by line.
 */
export async function defaultBuilder(logger: Logger): Promise<Builder> {
  const build = (await importFunction('@flotilla/buildpack', 'build')) as (
    input: Omit<BuilderInput, 'onOutput'> & {
      onOutput: (line: string) => void;
      logger: Logger;
    },
  ) => Promise<BuilderResult>;
  return {
    build: (input) => build({ ...input, onOutput: (line) => input.onOutput(`${line}\n`), logger }),
  };
}

/**
 * The {@link ImageBuilder} over `buildImage` of `@flotilla/docker` (`ControllerOptions.docker`):
 * each line of its output is passed on with its newline as it comes.
 */
export function dockerImageBuilder(docker: DockerImageBuild, logger: Logger): ImageBuilder {
  const remove = docker.removeImage?.bind(docker);
  const list = docker.listImageTags?.bind(docker);
  return {
    buildImage: async (input) => {
      const built = await docker.buildImage({
        docker: docker.client,
        context: input.context,
        tag: input.tag,
        ...(input.dockerfile === undefined ? {} : { dockerfile: input.dockerfile }),
        ...(input.buildArgs === undefined ? {} : { buildArgs: input.buildArgs }),
        ...(input.signal === undefined ? {} : { signal: input.signal }),
        onOutput: (line) => input.onOutput(`${line}\n`),
        logger,
      });
      return { image: built.image, processTypes: built.processTypes };
    },
    ...(remove === undefined
      ? {}
      : {
          removeImage: (image: string, options: { readonly signal?: AbortSignal }) =>
            remove({
              docker: docker.client,
              image,
              ...(options.signal === undefined ? {} : { signal: options.signal }),
            }),
        }),
    ...(list === undefined
      ? {}
      : {
          listImages: (reference: string, options: { readonly signal?: AbortSignal }) =>
            list({
              docker: docker.client,
              reference,
              ...(options.signal === undefined ? {} : { signal: options.signal }),
            }),
        }),
  };
}

/**
 * A builder's promise, or the signal's reason as soon as it aborts: a builder that ignores its
 * signal must not keep a cancelled build (or the controller's close()) waiting.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
