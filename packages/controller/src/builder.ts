import type { Logger } from '@flotilla/core';

/**
 * What a {@link Builder} is given: the signature of `build()` in `@flotilla/buildpack`, so that
 * its `build` function is a `Builder` as it is.
 */
export interface BuilderInput {
  /** The app's source tree: the builder may write in it (it is the controller's copy). */
  readonly source: string;
  /** A directory kept between the app's builds (the buildpacks' cache). */
  readonly cacheDir: string;
  /** The app's config vars, as buildpacks see them in their env dir. */
  readonly env: Readonly<Record<string, string>>;
  /** Buildpacks to use instead of detection. */
  readonly buildpacks?: readonly string[];
  /**
   * Where to write the slug: a path in the build's scratch directory, removed with it after the
   * build. A builder may write elsewhere and return that path; the controller then deletes
   * only the file.
   */
  readonly slugPath?: string;
  /** Called with each chunk of output (newlines included), as it comes. */
  readonly onOutput: (chunk: string) => void;
  readonly signal?: AbortSignal;
}

/** What a {@link Builder} made: a slug file and what it knows of the app. */
export interface BuilderResult {
  /** Path of the slug (`.tgz`) it wrote; the controller moves it into its artifact store. */
  readonly slug: string;
  /** Hex sha256 of the slug. */
  readonly sha256: string;
  readonly sizeBytes: number;
  /** Process types and commands: the Procfile, else the buildpacks' defaults. */
  readonly processTypes: Readonly<Record<string, string>>;
  readonly buildpacks: readonly { readonly name: string; readonly url: string }[];
  /** Config vars the buildpacks suggest; recorded, never applied over the user's. */
  readonly configVars?: Readonly<Record<string, string>>;
  readonly addons?: readonly string[];
  readonly durationMs?: number;
}

/**
 * Builds a slug from a source tree. The default is `build` of `@flotilla/buildpack`, imported
 * when the first build runs; {@link ProcfileBuilder} packs the tree as it is.
 */
export interface Builder {
  build(input: BuilderInput): Promise<BuilderResult>;
}

/** What an {@link ImageBuilder} is given: the signature of `buildImage` in `@flotilla/docker`. */
export interface ImageBuildInput {
  /** The build context: the app's source tree. */
  readonly context: string;
  /** The Dockerfile, relative to the context (default `Dockerfile`). */
  readonly dockerfile?: string;
  /** The tag to give the image (`flotilla/demo:b-1a2b3c4d5e6f`). */
  readonly tag: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly onOutput: (chunk: string) => void;
  readonly signal?: AbortSignal;
}

/** What an {@link ImageBuilder} made. */
export interface ImageBuildResult {
  /** The image reference to run (a tag or `sha256:...`). */
  readonly image: string;
  /** Process types from the image's Procfile, else `web` from its `CMD`. */
  readonly processTypes: Readonly<Record<string, string>>;
}

/** Builds a container image from a Dockerfile app (`@flotilla/docker`'s `buildImage`). Optional: without it Dockerfile apps build with buildpacks. */
export interface ImageBuilder {
  buildImage(input: ImageBuildInput): Promise<ImageBuildResult>;
}

/**
 * The optional capability of an {@link ImageBuilder} to remove an image it built: with it, the
 * controller removes the images of an app's Dockerfile builds when the app is destroyed
 * (without it they stay, and the destroy logs that it left them).
 */
export interface ImageRemover {
  /**
   * Removes the image `image` (a tag the builder gave, `flotilla/demo:b-1a2b3c4d5e6f`); resolves
   * false when it was not there. Never forced: an image a container still uses is refused.
   */
  removeImage(image: string, options: { readonly signal?: AbortSignal }): Promise<boolean>;
  /**
   * The local tags (`repository:tag`) of the repositories `reference` names (`flotilla/*`).
   * Optional: with it, `Controller.collectArtifacts` also removes the images of builds no
   * release keeps any more, and those of apps gone.
   */
  listImages?(reference: string, options: { readonly signal?: AbortSignal }): Promise<string[]>;
}

/**
 * What `buildImage` of `@flotilla/docker` is given, as the controller calls it: its output comes
 * as lines without their newline (the controller adds them back).
 */
export interface LineImageBuildOptions {
  /** The Docker client of {@link DockerImageBuild.client}. */
  readonly docker: unknown;
  /** The build context: the app's source tree. */
  readonly context: string;
  /** The tag to give the image (`flotilla/demo:b-1a2b3c4d5e6f`). */
  readonly tag: string;
  /** The Dockerfile, relative to the context (default `Dockerfile`). */
  readonly dockerfile?: string;
  /** `--build-arg`s. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Each line of output, without its newline, as it comes (always given by the controller). */
  readonly onOutput?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** A child of the controller's logger. */
  readonly logger?: Logger;
}

/**
 * `buildImage` of `@flotilla/docker` and the Docker client it builds with, for
 * `ControllerOptions.docker`: the controller makes its {@link ImageBuilder} over them, so that
 * a platform passes the function as it is, with no adapter, and the controller does not depend
 * on `@flotilla/docker`.
 *
 * @example
 * ```ts
 * import { buildImage } from '@flotilla/docker';
 * new Controller({ store, artifacts, workDir, docker: { buildImage, client: new Docker() } });
 * ```
 */
export interface DockerImageBuild {
  /** `buildImage` of `@flotilla/docker`. */
  buildImage(options: LineImageBuildOptions): Promise<ImageBuildResult>;
  /** The Docker client (dockerode) given to `buildImage` as `docker`. */
  readonly client: unknown;
  /**
   * `removeImage` of `@flotilla/docker` (optional): with it, destroying an app removes the
   * images its Dockerfile builds made.
   */
  removeImage?(options: {
    readonly docker: unknown;
    readonly image: string;
    readonly signal?: AbortSignal;
  }): Promise<boolean>;
  /**
   * `listImageTags` of `@flotilla/docker` (optional, with `removeImage`): with it,
   * `collectArtifacts` also removes the images no release keeps.
   */
  listImageTags?(options: {
    readonly docker: unknown;
    readonly reference: string;
    readonly signal?: AbortSignal;
  }): Promise<string[]>;
}
